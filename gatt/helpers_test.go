package gatt

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/alignkit/alignkit/data/chat"
	"github.com/alignkit/alignkit/internal/sharedtest"
	"github.com/alignkit/alignkit/rlhf"
)

// sharedDir is ../shared; tests skip unless it holds stories260K.
func sharedDir(t *testing.T) string {
	t.Helper()
	return sharedtest.Dir(t, "models/stories260K/config.json")
}

// scriptGen is a fake generator: each reply is reply(prompt messages, sample index). It records the
// prompts it was given.
type scriptGen struct {
	mu      sync.Mutex
	reply   func(msgs []chat.Message, j int) string
	prompts [][]chat.Message
	seeds   []uint64
}

func (g *scriptGen) Generate(_ context.Context, ps []rlhf.Prompt, k int, s rlhf.Sampling) ([][]string, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([][]string, len(ps))
	for i, p := range ps {
		g.prompts = append(g.prompts, p.Messages)
		g.seeds = append(g.seeds, s.Seed)
		for j := range k {
			out[i] = append(out[i], g.reply(p.Messages, j))
		}
	}
	return out, nil
}

// lastUser is the content of the last user message.
func lastUser(msgs []chat.Message) string {
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Role == "user" {
			return msgs[i].Content
		}
	}
	return ""
}

// echoReply answers "reply to <first word of the user message>".
func echoReply(msgs []chat.Message, j int) string {
	f := strings.Fields(lastUser(msgs))
	if len(f) == 0 {
		return fmt.Sprintf("reply %d", j)
	}
	return fmt.Sprintf("reply %d to %s", j, f[0])
}

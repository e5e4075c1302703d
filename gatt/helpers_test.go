package gatt

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/alignkit/alignkit/data/chat"
	"github.com/alignkit/alignkit/rlhf"
)

// sharedDir is ../shared from the repo root (the directory holding go.mod), or a skip.
func sharedDir(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Skip("no go.mod above the test directory")
		}
		dir = parent
	}
	shared := filepath.Join(dir, "..", "shared")
	if _, err := os.Stat(filepath.Join(shared, "models", "stories260K", "config.json")); err != nil {
		t.Skipf("../shared with models/stories260K not found at %s: the reference files are absent", shared)
	}
	return shared
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

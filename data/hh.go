package data

import (
	"strings"
)

// hh-rlhf style transcripts: "\n\nHuman: ...\n\nAssistant: ...". The markers
// are recognised only at the start of the text or after a blank line, as in
// Anthropic's data.
const (
	hhHuman     = "Human:"
	hhAssistant = "Assistant:"
)

// isHHTranscript reports whether s looks like an hh-rlhf transcript.
func isHHTranscript(s string) bool {
	t := strings.TrimLeft(s, " \t\r\n")
	return strings.HasPrefix(t, hhHuman) && strings.Contains(s, "\n\n"+hhAssistant)
}

// parseHHTranscript splits an hh-rlhf transcript into messages. Each
// "\n\nHuman:" starts a user turn and each "\n\nAssistant:" an assistant turn;
// a paragraph that starts with neither continues the current turn (rejoined
// with "\n\n"). Turn contents are trimmed of surrounding whitespace, as TRL's
// hh-rlhf conversion does. Consecutive turns of the same role (a few
// hh-rlhf transcripts have "Assistant: ...\n\nAssistant: ...") are merged
// into one turn joined by "\n\n", which keeps the text and makes the
// conversation alternate as chat templates require. A trailing "Assistant:"
// with no text yields an assistant message with empty content.
func parseHHTranscript(s string) []Message {
	var msgs []Message
	for _, para := range strings.Split(strings.TrimSpace(s), "\n\n") {
		switch {
		case strings.HasPrefix(para, hhHuman):
			msgs = append(msgs, Message{Role: "user", Content: strings.TrimSpace(para[len(hhHuman):])})
		case strings.HasPrefix(para, hhAssistant):
			msgs = append(msgs, Message{Role: "assistant", Content: strings.TrimSpace(para[len(hhAssistant):])})
		case len(msgs) == 0:
			// Text before the first marker: keep it as a user turn rather
			// than drop it silently.
			msgs = append(msgs, Message{Role: "user", Content: strings.TrimSpace(para)})
		default:
			last := &msgs[len(msgs)-1]
			last.Content = strings.TrimSpace(last.Content + "\n\n" + para)
		}
	}
	merged := msgs[:0]
	for _, m := range msgs {
		if n := len(merged); n > 0 && merged[n-1].Role == m.Role {
			merged[n-1].Content = strings.TrimSpace(merged[n-1].Content + "\n\n" + m.Content)
			continue
		}
		merged = append(merged, m)
	}
	return merged
}

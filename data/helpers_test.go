package data

import (
	"sort"
	"strings"
)

// fakeEncoder is an honest byte-level tokenizer: every byte b of normal text
// is id b+byteOffset; special-token strings become reserved ids below
// byteOffset, but only inside Special spans. Optional merges turn a
// two-byte string of normal text into one id (ids >= 300), across span
// boundaries, as a BPE tokenizer merges across the text it is given.
type fakeEncoder struct {
	eos      int32
	addBOS   bool
	template string
	merges   map[string]int32
}

const byteOffset = 16

var fakeSpecials = []string{
	0: "<unk>", 1: "<s>", 2: "</s>", 3: "<|im_start|>", 4: "<|im_end|>",
	5: "<|begin_of_text|>", 6: "<|eot_id|>", 7: "<|start_header_id|>", 8: "<|end_header_id|>",
}

const (
	fakeUnk, fakeBOS, fakeEOS, fakeIMStart, fakeIMEnd int32 = 0, 1, 2, 3, 4
	fakeBOT, fakeEOT                                  int32 = 5, 6
)

func newFake() *fakeEncoder { return &fakeEncoder{eos: fakeEOS, addBOS: true} }

func (f *fakeEncoder) BOS() int32           { return fakeBOS }
func (f *fakeEncoder) EOS() int32           { return f.eos }
func (f *fakeEncoder) AddBOS() bool         { return f.addBOS }
func (f *fakeEncoder) ChatTemplate() string { return f.template }

func (f *fakeEncoder) EncodeChat(parts []Span, addBOS bool) []int32 {
	var text strings.Builder
	var special []bool // per byte: inside a Special span
	for _, p := range parts {
		text.WriteString(p.Text)
		for range len(p.Text) {
			special = append(special, p.Special)
		}
	}
	s := text.String()
	var ids []int32
	if addBOS {
		ids = append(ids, fakeBOS)
	}
	// Longest special first, so "<|im_start|>" never matches as "<".
	order := make([]int, len(fakeSpecials))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return len(fakeSpecials[order[a]]) > len(fakeSpecials[order[b]]) })
outer:
	for i := 0; i < len(s); {
		if special[i] {
			for _, id := range order {
				sp := fakeSpecials[id]
				if strings.HasPrefix(s[i:], sp) && allTrue(special[i:i+len(sp)]) {
					ids = append(ids, int32(id))
					i += len(sp)
					continue outer
				}
			}
		}
		if i+2 <= len(s) {
			if id, ok := f.merges[s[i:i+2]]; ok {
				ids = append(ids, id)
				i += 2
				continue
			}
		}
		ids = append(ids, int32(s[i])+byteOffset)
		i++
	}
	return ids
}

func allTrue(b []bool) bool {
	for _, v := range b {
		if !v {
			return false
		}
	}
	return true
}

// decode shows ids as text, special ids by name and merged ids as "{id}".
func decode(ids []int32) string {
	var sb strings.Builder
	for _, id := range ids {
		switch {
		case id < byteOffset:
			sb.WriteString(fakeSpecials[id])
		case id < byteOffset+256:
			sb.WriteByte(byte(id - byteOffset))
		default:
			sb.WriteString("{merged}")
		}
	}
	return sb.String()
}

// show renders an example with each run of loss-carrying targets in [[ ]].
func show(ids []int32, mask []bool) string {
	var sb strings.Builder
	in := false
	for i, id := range ids {
		if mask[i] != in {
			if mask[i] {
				sb.WriteString("[[")
			} else {
				sb.WriteString("]]")
			}
			in = mask[i]
		}
		sb.WriteString(decode([]int32{id}))
	}
	if in {
		sb.WriteString("]]")
	}
	return sb.String()
}

// mm builds a Message (keyed, as vet wants for the imported type).
func mm(role, content string) Message { return Message{Role: role, Content: content} }

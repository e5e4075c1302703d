package tokenizer

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/dlclark/regexp2"
)

// regexp2Split splits s with a backtracking engine that has lookahead (dlclark/regexp2, a port of
// .NET's), the reference the hand-written scanners must equal: matches and the text between them.
func regexp2Split(t *testing.T, re *regexp2.Regexp, s string) []string {
	t.Helper()
	var out []string
	r := []rune(s)
	offset := 0
	m, err := re.FindRunesMatch(r)
	for ; m != nil && err == nil; m, err = re.FindNextMatch(m) {
		if m.Index > offset {
			out = append(out, string(r[offset:m.Index]))
		}
		if m.Length > 0 {
			out = append(out, string(r[m.Index:m.Index+m.Length]))
		}
		offset = m.Index + m.Length
	}
	if err != nil {
		t.Fatal(err)
	}
	if offset < len(r) {
		out = append(out, string(r[offset:]))
	}
	return out
}

// TestScannersEqualRegex compares the GPT-2, Llama 3 and Qwen2 scanners with their regexes, run by a
// backtracking engine, on random strings over the characters the patterns treat differently:
// ASCII and other letters, digits and other numbers (², Ⅷ, ٣), spaces of several kinds, \r and \n,
// apostrophes and contraction letters in both cases, punctuation, combining marks, emoji.
func TestScannersEqualRegex(t *testing.T) {
	alphabet := []rune("aZsStTdDmMrReEvVlL'' ' \t\n\r\u00a0\u3000\u2009\u000b.,!?-_()\"#$0123456789²Ⅷ٣éßЖ中\u0301😀\u200d\U0001F44D")
	rng := rand.New(rand.NewPCG(7, 11))
	fixed := []string{"", " ", "  ", "   a", "\n\n  \n x", "a  \t", "'s'S'Re 'LL'll'x", "12345 1234567", " ?!..\n\r\nb", "  !!", "中文 ٣٣٣٣ ²²²²"}
	for _, tc := range []struct {
		name, pattern string
		sc            splitter
	}{
		{"gpt2", gpt2Regex, gpt2Scanner{}},
		{"llama3", llama3Regex, llama3Scanner{maxDigits: 3}},
		{"qwen2", qwen2Regex, llama3Scanner{maxDigits: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			re := regexp2.MustCompile(tc.pattern, regexp2.None)
			texts := slices.Clone(fixed)
			for range 20000 {
				n := rng.IntN(16)
				var b strings.Builder
				for range n {
					b.WriteRune(alphabet[rng.IntN(len(alphabet))])
				}
				texts = append(texts, b.String())
			}
			bad := 0
			for _, s := range texts {
				want := regexp2Split(t, re, s)
				got := tc.sc.split(s, nil)
				if !slices.Equal(got, want) {
					if bad++; bad <= 10 {
						t.Errorf("%q:\n got %q\nwant %q", s, got, want)
					}
				}
			}
		})
	}
}

// TestUnicodeSpaces: \s in other RE2 patterns means Unicode whitespace, inside and outside classes,
// as in Oniguruma; escaped backslashes and literal brackets are left alone.
func TestUnicodeSpaces(t *testing.T) {
	for _, tc := range []struct{ pattern, text string }{
		{`\s+`, "a\u3000\u00a0 b"},
		{`[^\s\p{L}]+`, "ab\u2009!!\u3000?"},
		{`\\s|[]\s]`, `x\s]` + "\u2028"},
	} {
		sp, err := newSplitter(tc.pattern)
		if err != nil {
			t.Fatal(err)
		}
		want := regexp2Split(t, regexp2.MustCompile(tc.pattern, regexp2.None), tc.text)
		if got := sp.split(tc.text, nil); !slices.Equal(got, want) {
			t.Errorf("%s on %q: got %q want %q", tc.pattern, tc.text, got, want)
		}
	}
}

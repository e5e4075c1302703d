package tokenizer

import (
	"fmt"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// splitter is one Split pre-tokenizer (behavior Isolated): it cuts s into its matches and the text
// between them, appending the pieces to dst in order. Every byte of s lands in exactly one piece.
type splitter interface {
	split(s string, dst []string) []string
}

// newSplitter builds the splitter for a pre-tokenizer regex. GPT-2's, Llama 3's and Qwen2's
// patterns use a lookahead (\s+(?!\S)) that Go's regexp lacks; they get hand-written scanners,
// as llama.cpp's unicode.cpp has, equivalent to the regex with Unicode categories from Go's unicode
// package. Any other pattern must be RE2 syntax; \s in it is rewritten to Unicode whitespace, as
// Oniguruma (which Hugging Face's tokenizers uses) reads it.
func newSplitter(pattern string) (splitter, error) {
	switch pattern {
	case gpt2Regex:
		return gpt2Scanner{}, nil
	case llama3Regex:
		return llama3Scanner{maxDigits: 3}, nil
	case qwen2Regex:
		return llama3Scanner{maxDigits: 1}, nil
	}
	re, err := regexp.Compile(unicodeSpaces(pattern))
	if err != nil {
		return nil, fmt.Errorf("regex %q: %w (supported: the GPT-2, Llama 3 and Qwen2 pre-tokenizer patterns, or any pattern in RE2 syntax, which has no lookaround)", pattern, err)
	}
	return regexSplitter{re}, nil
}

// unicodeSpaces rewrites \s, which is ASCII whitespace in RE2 but Unicode White_Space in
// Oniguruma, to the White_Space characters, inside and outside character classes.
func unicodeSpaces(p string) string {
	const ws = `\t\n\v\f\r \x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}`
	var b strings.Builder
	inClass := false
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '\\' && i+1 < len(p):
			if p[i+1] == 's' {
				if inClass {
					b.WriteString(ws)
				} else {
					b.WriteString("[" + ws + "]")
				}
			} else {
				b.WriteByte(c)
				b.WriteByte(p[i+1])
			}
			i++
			continue
		case c == '[' && !inClass:
			inClass = true
			b.WriteByte(c)
			// A ']' right after '[' or '[^' is a literal.
			if i+1 < len(p) && p[i+1] == '^' {
				b.WriteByte('^')
				i++
			}
			if i+1 < len(p) && p[i+1] == ']' {
				b.WriteByte(']')
				i++
			}
			continue
		case c == ']' && inClass:
			inClass = false
		}
		b.WriteByte(c)
	}
	return b.String()
}

type regexSplitter struct{ re *regexp.Regexp }

func (r regexSplitter) split(s string, dst []string) []string {
	offset := 0
	for _, m := range r.re.FindAllStringIndex(s, -1) {
		if m[0] > offset {
			dst = append(dst, s[offset:m[0]])
		}
		if m[1] > m[0] {
			dst = append(dst, s[m[0]:m[1]])
		}
		offset = m[1]
	}
	if offset < len(s) {
		dst = append(dst, s[offset:])
	}
	return dst
}

// Rune classes of the patterns: \p{L}, \p{N} and \s (Unicode White_Space, as Oniguruma's \s).
const (
	classLetter = 1 << iota
	classNumber
	classSpace
)

// runes decodes s into its runes, their classes and their byte offsets (offs[len(rs)] == len(s)).
// s is valid UTF-8 here (the encoder replaced invalid bytes before).
func runes(s string) (rs []rune, cls []uint8, offs []int) {
	n := utf8.RuneCountInString(s)
	rs, cls, offs = make([]rune, 0, n), make([]uint8, 0, n), make([]int, 0, n+1)
	for i, r := range s {
		var c uint8
		switch {
		case r < utf8.RuneSelf:
			switch {
			case 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z':
				c = classLetter
			case '0' <= r && r <= '9':
				c = classNumber
			case r == ' ' || '\t' <= r && r <= '\r':
				c = classSpace
			}
		case unicode.IsLetter(r):
			c = classLetter
		case unicode.IsNumber(r):
			c = classNumber
		case unicode.IsSpace(r):
			c = classSpace
		}
		rs, cls, offs = append(rs, r), append(cls, c), append(offs, i)
	}
	return rs, cls, append(offs, len(s))
}

// foldsTo says whether r equals the ASCII letter lower under Unicode simple case folding, as the
// regex's (?i:...) compares (so "'S" and the Kelvin sign in "'K" cases behave as Oniguruma's).
func foldsTo(r rune, lower rune) bool {
	if r == lower {
		return true
	}
	for f := unicode.SimpleFold(lower); f != lower; f = unicode.SimpleFold(f) {
		if f == r {
			return true
		}
	}
	return false
}

// contraction is the length in runes of a contraction ('s 't 're 've 'm 'll 'd) at rs[i], 0 if
// none; fold makes it case-insensitive.
func contraction(rs []rune, i int, fold bool) int {
	if rs[i] != '\'' || i+1 >= len(rs) {
		return 0
	}
	eq := func(r, want rune) bool {
		if fold {
			return foldsTo(r, want)
		}
		return r == want
	}
	a := rs[i+1]
	if eq(a, 's') || eq(a, 't') || eq(a, 'm') || eq(a, 'd') {
		return 2
	}
	if i+2 < len(rs) {
		b := rs[i+2]
		if (eq(a, 'r') && eq(b, 'e')) || (eq(a, 'v') && eq(b, 'e')) || (eq(a, 'l') && eq(b, 'l')) {
			return 3
		}
	}
	return 0
}

// spaceRun scans the whitespace run at rs[i:] and returns its end and the end of its last \r or \n
// (-1 if it has none).
func spaceRun(rs []rune, cls []uint8, i int) (end, lastNewline int) {
	lastNewline = -1
	for end = i; end < len(rs) && cls[end]&classSpace != 0; end++ {
		if rs[end] == '\r' || rs[end] == '\n' {
			lastNewline = end + 1
		}
	}
	return end, lastNewline
}

// llama3Scanner is Llama 3's pre-tokenizer regex, and with maxDigits 1 Qwen2's:
//
//	(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//
// Each branch is tried in order at each position, as the regex's alternation is.
type llama3Scanner struct{ maxDigits int }

func (sc llama3Scanner) split(s string, dst []string) []string {
	rs, cls, offs := runes(s)
	n := len(rs)
	at := func(i int) uint8 {
		if i < n {
			return cls[i]
		}
		return 0
	}
	for i := 0; i < n; {
		start := i
		r, c := rs[i], cls[i]
		switch {
		case contraction(rs, i, true) > 0:
			i += contraction(rs, i, true)
		case r != '\r' && r != '\n' && c&classNumber == 0 && (c&classLetter != 0 || at(i+1)&classLetter != 0):
			// [^\r\n\p{L}\p{N}]?\p{L}+
			i++
			for i < n && cls[i]&classLetter != 0 {
				i++
			}
		case c&classNumber != 0:
			// \p{N}{1,maxDigits}
			for i < n && cls[i]&classNumber != 0 && i-start < sc.maxDigits {
				i++
			}
		case c&(classSpace|classLetter|classNumber) == 0 || r == ' ' && i+1 < n && at(i+1)&(classSpace|classLetter|classNumber) == 0:
			// ' ?[^\s\p{L}\p{N}]+[\r\n]*'
			if r == ' ' {
				i++
			}
			for i < n && cls[i]&(classSpace|classLetter|classNumber) == 0 {
				i++
			}
			for i < n && (rs[i] == '\r' || rs[i] == '\n') {
				i++
			}
		default:
			// Whitespace: \s*[\r\n]+ | \s+(?!\S) | \s+
			end, lastNL := spaceRun(rs, cls, i)
			switch {
			case lastNL > 0:
				i = lastNL
			case end-i > 1 && end < n:
				i = end - 1 // leave the last space to the word after it
			default:
				i = end
			}
		}
		dst = append(dst, s[offs[start]:offs[i]])
	}
	return dst
}

// gpt2Scanner is GPT-2's pre-tokenizer regex (ByteLevel's use_regex):
//
//	's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
type gpt2Scanner struct{}

func (gpt2Scanner) split(s string, dst []string) []string {
	rs, cls, offs := runes(s)
	n := len(rs)
	at := func(i int) uint8 {
		if i < n {
			return cls[i]
		}
		return 0
	}
	for i := 0; i < n; {
		start := i
		// The optional leading space of the next three branches.
		j := i
		if rs[i] == ' ' {
			j++
		}
		cj := at(j)
		switch {
		case contraction(rs, i, false) > 0:
			i += contraction(rs, i, false)
		case j < n && cj&classLetter != 0:
			for i = j; i < n && cls[i]&classLetter != 0; i++ {
			}
		case j < n && cj&classNumber != 0:
			for i = j; i < n && cls[i]&classNumber != 0; i++ {
			}
		case j < n && cj&(classSpace|classLetter|classNumber) == 0:
			for i = j; i < n && cls[i]&(classSpace|classLetter|classNumber) == 0; i++ {
			}
		default:
			end, _ := spaceRun(rs, cls, i)
			if end-i > 1 && end < n {
				i = end - 1
			} else {
				i = end
			}
		}
		dst = append(dst, s[offs[start]:offs[i]])
	}
	return dst
}

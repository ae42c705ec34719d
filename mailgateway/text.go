package mailgateway

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/encoding/charmap"
)

// Mail text arrives in every state: 8-bit headers in an undeclared charset,
// CRLF and bare CR, control characters, right-to-left overrides. A page is
// read on a phone at the bedside, so what reaches it is valid UTF-8 with
// plain line breaks and nothing that changes how the text displays.

// toUTF8 returns s as valid UTF-8. Text that is not UTF-8 is almost always
// Windows-1252 (the superset of Latin-1 that mail clients actually send).
func toUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	if d, err := charmap.Windows1252.NewDecoder().String(s); err == nil && utf8.ValidString(d) {
		return d
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// invisible reports characters that are dropped: controls other than line
// breaks and tabs, and the bidirectional overrides that can make "bed 12"
// display as "bed 21".
func invisible(r rune) bool {
	switch {
	case r == '\n' || r == '\t':
		return false
	case unicode.IsControl(r):
		return true
	case r >= 0x202A && r <= 0x202E, r >= 0x2066 && r <= 0x2069, r == 0x200E, r == 0x200F, r == 0xFEFF:
		return true
	}
	return false
}

// cleanText normalises a body: valid UTF-8, "\n" line breaks, no invisible
// characters, no trailing spaces, at most one blank line in a row, trimmed.
func cleanText(s string) string {
	s = toUTF8(s)
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	var b strings.Builder
	b.Grow(len(s))
	blank := 0
	for line := range strings.SplitSeq(s, "\n") {
		line = strings.Map(func(r rune) rune {
			if r == '\t' {
				return ' '
			}
			if invisible(r) {
				return -1
			}
			return r
		}, line)
		line = strings.TrimRightFunc(line, unicode.IsSpace)
		if line == "" {
			blank++
			continue
		}
		if b.Len() > 0 {
			if blank > 0 {
				b.WriteString("\n\n")
			} else {
				b.WriteByte('\n')
			}
		}
		blank = 0
		b.WriteString(line)
	}
	return strings.TrimSpace(b.String())
}

// cleanLine is cleanText folded onto one line with runs of spaces collapsed,
// capped at max runes.
func cleanLine(s string, max int) string {
	return capRunes(strings.Join(strings.Fields(cleanText(s)), " "), max)
}

// capRunes shortens s to at most max runes, ending in an ellipsis when cut.
func capRunes(s string, max int) string {
	if max <= 0 {
		return ""
	}
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	n := 0
	for i := range s {
		if n == max-1 {
			return strings.TrimRightFunc(s[:i], unicode.IsSpace) + "…"
		}
		n++
	}
	return s
}

// firstLine is the first non-empty line of s.
func firstLine(s string) string {
	for line := range strings.SplitSeq(s, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			return line
		}
	}
	return ""
}

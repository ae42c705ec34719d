package mailgateway

import (
	"io"
	"strings"
	"unicode"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// htmlToText renders HTML-only mail as the plain text a clinician would read:
// tags stripped, entities decoded, block elements and <br> as line breaks,
// script, style and head dropped. It streams with the tokenizer rather than
// building a tree, so a hostile document costs no more than its size, and
// stops once limit bytes of text are written.
func htmlToText(r io.Reader, limit int) string {
	z := html.NewTokenizer(r)
	z.SetMaxBuf(maxPartText)
	var b strings.Builder
	skip, pre := 0, 0
	space := false // a collapsed space is pending
	newline := func() {
		space = false
		s := b.String()
		// At most one blank line in a row: paragraphs, not towers of <br>.
		if len(s) == 0 || strings.HasSuffix(s, "\n\n") {
			return
		}
		b.WriteByte('\n')
	}
	for b.Len() < limit {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			return b.String()
		case html.TextToken:
			if skip > 0 {
				continue
			}
			text := string(z.Text()) // entities decoded
			if pre > 0 {
				b.WriteString(text)
				continue
			}
			for _, r := range text {
				if unicode.IsSpace(r) {
					space = true
					continue
				}
				if space && b.Len() > 0 && !strings.HasSuffix(b.String(), "\n") {
					b.WriteByte(' ')
				}
				space = false
				b.WriteRune(r)
			}
		case html.StartTagToken, html.SelfClosingTagToken:
			name, _ := z.TagName()
			a := atom.Lookup(name)
			switch a {
			case atom.Script, atom.Style, atom.Head, atom.Title, atom.Template, atom.Noscript:
				if tt == html.StartTagToken {
					skip++
				}
			case atom.Br:
				if b.Len() > 0 {
					b.WriteByte('\n')
				}
				space = false
			case atom.Pre:
				newline()
				pre++
			case atom.Li:
				newline()
				b.WriteString("- ")
			case atom.Td, atom.Th:
				space = true
			default:
				if isBlock(a) {
					newline()
				}
			}
		case html.EndTagToken:
			name, _ := z.TagName()
			a := atom.Lookup(name)
			switch a {
			case atom.Script, atom.Style, atom.Head, atom.Title, atom.Template, atom.Noscript:
				if skip > 0 {
					skip--
				}
			case atom.Pre:
				if pre > 0 {
					pre--
				}
				newline()
			default:
				if isBlock(a) || a == atom.Li {
					newline()
				}
			}
		}
	}
	return b.String()
}

func isBlock(a atom.Atom) bool {
	switch a {
	case atom.P, atom.Div, atom.Tr, atom.Table, atom.Ul, atom.Ol, atom.Blockquote, atom.Hr,
		atom.H1, atom.H2, atom.H3, atom.H4, atom.H5, atom.H6, atom.Section, atom.Article,
		atom.Header, atom.Footer, atom.Address, atom.Dl, atom.Dt, atom.Dd, atom.Body, atom.Html:
		return true
	}
	return false
}

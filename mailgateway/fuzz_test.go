package mailgateway

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/callroom/callroom/escalation"
)

// FuzzParseMessage: inbound email is written by anyone on the internet. The
// parser must not panic, must answer an error rather than a half-read
// message, and what it returns must fit a page. Run longer by hand:
//
//	go test ./mailgateway -run '^$' -fuzz FuzzParseMessage -fuzztime 5m
func FuzzParseMessage(f *testing.F) {
	for _, s := range []string{
		"From: a@example.org\r\nSubject: STAT bed 4\r\n\r\nplease come\r\n",
		"Subject: =?utf-8?q?caf=C3=A9?=\r\nContent-Type: text/html\r\n\r\n<p>hi<br>there</p>",
		"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b\r\nContent-Type: application/pdf\r\n\r\n%PDF\r\n--b--\r\n",
		"Subject: " + string(bytes.Repeat([]byte("x"), 2000)) + "\r\n\r\n",
		"Auto-Submitted: auto-replied\r\n\r\nout of office",
		"\r\n\r\n", "garbage", "Content-Type: multipart/alternative; boundary=\"\"\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := ParseMessage(raw)
		if err != nil {
			if m != nil {
				t.Fatal("an error and a message")
			}
			return
		}
		if utf8.RuneCountInString(m.Summary) > escalation.MaxSummary || utf8.RuneCountInString(m.Text) > escalation.MaxBody {
			t.Fatalf("summary %d, text %d runes: over the page limits", utf8.RuneCountInString(m.Summary), utf8.RuneCountInString(m.Text))
		}
		if m.DedupKey == "" {
			t.Fatal("no dedup key")
		}
	})
}

// FuzzParseReplyAddress: a reply address must never name a notification
// unless it carries that notification's MAC.
func FuzzParseReplyAddress(f *testing.F) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	good := ReplyAddress(secret, "page.example.org", uuid.MustParse("8f4c2b1e-0000-4000-8000-000000000001"))
	for _, s := range []string{good, "ack+x@page.example.org", "", "@", "a@b@c", good + "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, addr string) {
		id, err := ParseReplyAddress(secret, addr)
		if err != nil {
			return
		}
		// Accepted only when it carries the id's own MAC.
		if !strings.Contains(strings.ToLower(addr), id.String()+"."+replyMAC(secret, id)) {
			t.Fatalf("%q accepted as %v without its MAC", addr, id)
		}
	})
}

package mailgateway

import (
	"strings"
	"testing"

	"github.com/google/uuid"
)

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

package notify

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestNoticeValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Notice)
		want   string // "" means valid
	}{
		{"complete", func(*Notice) {}, ""},
		{"direct page without service or reply-to", func(n *Notice) { n.ServiceName, n.ReplyTo = "", "" }, ""},
		{"non-ASCII service", func(n *Notice) { n.ServiceName = "Cardiología" }, ""},
		{"http link", func(n *Notice) { n.Link = "http://localhost:8080/pages/1" }, ""},
		{"no notification id", func(n *Notice) { n.NotificationID = uuid.Nil }, "notification id is missing"},
		{"no page id", func(n *Notice) { n.PageID = uuid.Nil }, "page id is missing"},
		{"empty priority", func(n *Notice) { n.Priority = "" }, "priority is not one of routine, urgent, asap, stat"},
		{"upper-case priority", func(n *Notice) { n.Priority = "STAT" }, "priority is not one of routine, urgent, asap, stat"},
		{"no created at", func(n *Notice) { n.CreatedAt = time.Time{} }, "created at is missing"},
		{"LF in service", func(n *Notice) { n.ServiceName = "A\nB" }, "service name contains control characters"},
		{"tab in service", func(n *Notice) { n.ServiceName = "A\tB" }, "service name contains control characters"},
		{"invalid UTF-8 in service", func(n *Notice) { n.ServiceName = "A\xffB" }, "service name contains control characters"},
		{"long service", func(n *Notice) { n.ServiceName = strings.Repeat("x", 201) }, "service name is too long"},
		{"no link", func(n *Notice) { n.Link = "" }, "link is missing"},
		{"relative link", func(n *Notice) { n.Link = "/pages/1" }, "link is not an absolute http(s) URL"},
		{"javascript link", func(n *Notice) { n.Link = "javascript:alert(1)" }, "link is not an absolute http(s) URL"},
		{"link with space", func(n *Notice) { n.Link = "https://x.example/a b" }, "link contains whitespace or control characters"},
		{"long link", func(n *Notice) { n.Link = "https://x.example/" + strings.Repeat("a", 2048) }, "link is too long"},
		{"reply-to list", func(n *Notice) { n.ReplyTo = "a@x.example, b@x.example" }, "reply-to is not a single email address"},
		{"reply-to not an address", func(n *Notice) { n.ReplyTo = "ack" }, "reply-to is not a single email address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := testNotice()
			tt.change(&n)
			err := n.Validate()
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("Validate() = %q, want %q", got, tt.want)
			}
		})
	}
}

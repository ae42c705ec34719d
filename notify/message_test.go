package notify

import (
	"bytes"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"testing"
	"time"
)

func TestComposeEmailVariants(t *testing.T) {
	from := &mail.Address{Name: "Callroom", Address: "callroom@hospital.example"}
	to := &mail.Address{Address: "oncall@hospital.example"}
	date := time.Date(2026, 3, 1, 14, 5, 30, 0, time.UTC)

	tests := []struct {
		name        string
		change      func(*Notice)
		subject     string
		importance  string // "" means the header must be absent
		bodyHas     []string
		bodyHasNot  []string
		wantReplyTo bool
	}{
		{
			name:        "stat with service and reply-to",
			change:      func(*Notice) {},
			subject:     "[STAT] Page from callroom — Cardiology",
			importance:  "high",
			bodyHas:     []string{"Service:  Cardiology", "Reply ACK to acknowledge."},
			wantReplyTo: true,
		},
		{
			name:       "routine direct page",
			change:     func(n *Notice) { n.Priority, n.ServiceName, n.ReplyTo = PriorityRoutine, "", "" },
			subject:    "[ROUTINE] Page from callroom",
			bodyHas:    []string{"ROUTINE page from callroom", "Service:  (paged to you directly)"},
			bodyHasNot: []string{"Reply ACK"},
		},
		{
			name:        "urgent",
			change:      func(n *Notice) { n.Priority = PriorityUrgent },
			subject:     "[URGENT] Page from callroom — Cardiology",
			importance:  "high",
			wantReplyTo: true,
		},
		{
			name:        "asap with a long non-ASCII service name",
			change:      func(n *Notice) { n.Priority, n.ServiceName = PriorityASAP, strings.Repeat("Cirugía pediátrica ", 8) },
			subject:     "[ASAP] Page from callroom — " + strings.Repeat("Cirugía pediátrica ", 8),
			importance:  "high",
			bodyHas:     []string{"Service:  " + strings.Repeat("Cirugía pediátrica ", 8)},
			wantReplyTo: true,
		},
		{
			name:        "link with query string",
			change:      func(n *Notice) { n.Link = "https://callroom.example.org/pages/x?from=email&step=2" },
			subject:     "[STAT] Page from callroom — Cardiology",
			importance:  "high",
			bodyHas:     []string{"\r\nhttps://callroom.example.org/pages/x?from=email&step=2\r\n"},
			wantReplyTo: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := testNotice()
			tt.change(&n)
			if err := n.Validate(); err != nil {
				t.Fatalf("test notice invalid: %v", err)
			}
			m, err := composeEmail(from, to, n, date)
			if err != nil {
				t.Fatal(err)
			}
			if m.envelopeFrom != from.Address || m.envelopeTo != to.Address {
				t.Errorf("envelope = %q -> %q", m.envelopeFrom, m.envelopeTo)
			}
			msg, err := mail.ReadMessage(bytes.NewReader(m.data))
			if err != nil {
				t.Fatal(err)
			}
			subject, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
			if err != nil || subject != tt.subject {
				t.Errorf("Subject = %q (%v), want %q", subject, err, tt.subject)
			}
			if got := msg.Header.Get("Importance"); got != tt.importance {
				t.Errorf("Importance = %q, want %q", got, tt.importance)
			}
			if got := msg.Header.Get("Reply-To") != ""; got != tt.wantReplyTo {
				t.Errorf("Reply-To present = %v, want %v", got, tt.wantReplyTo)
			}
			body, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range append(tt.bodyHas, n.PageID.String(), n.Link) {
				if !bytes.Contains(body, []byte(s)) {
					t.Errorf("body lacks %q:\n%s", s, body)
				}
			}
			for _, s := range tt.bodyHasNot {
				if bytes.Contains(body, []byte(s)) {
					t.Errorf("body has %q", s)
				}
			}
			for i, line := range bytes.Split(m.data, []byte("\r\n")) {
				if len(line) > 998 || bytes.ContainsAny(line, "\r\n") {
					t.Errorf("line %d is not a valid SMTP line", i)
				}
			}
		})
	}
}

func TestHeaderWriterRefusesInjection(t *testing.T) {
	for _, v := range []string{"a\r\nBcc: x@evil.example", "a\nb", "a\rb", "a\x00b"} {
		var h headerWriter
		h.add("X-Test", v)
		if h.err == nil {
			t.Errorf("add accepted %q", v)
		}
		var h2 headerWriter
		h2.addText("Subject", v)
		if h2.err == nil {
			t.Errorf("addText accepted %q", v)
		}
	}
	// A display name with CRLF in the configured From is encoded, not
	// passed through.
	m, err := composeEmail(&mail.Address{Name: "Evil\r\nBcc: x@evil.example", Address: "c@hospital.example"},
		&mail.Address{Address: "oncall@hospital.example"}, testNotice(), time.Now())
	if err == nil && bytes.Contains(m.data, []byte("\r\nBcc:")) {
		t.Error("CRLF in a display name reached the header block")
	}
}

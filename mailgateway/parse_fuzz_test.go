package mailgateway_test

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/emersion/go-smtp"

	"github.com/callroom/callroom/escalation"
	"github.com/callroom/callroom/mailgateway"
)

// FuzzParseMessage feeds the message-to-page parser arbitrary bytes. It
// must never panic, must refuse only with the SMTP errors the gateway
// answers (552 too big a header, 554 unreadable), and whatever it accepts
// must be a page escalation would take: valid UTF-8, within the summary and
// body limits, a known priority. Run longer with
// `go test -run '^$' -fuzz FuzzParseMessage ./mailgateway`.
func FuzzParseMessage(f *testing.F) {
	for _, seed := range []string{
		"From: a@lab.example.org\r\nSubject: STAT: K 6.9\r\n\r\nRepeat sample.\r\n",
		"From: a@lab.example.org\nSubject: Fi\xe8vre chambre 9\nX-Priority: 1\n\nTexte\n",
		"Subject: =?UTF-8?B?Qmx1dGRydWNrIOKGkw==?=\nImportance: high\nMT-Priority: 4\n\n",
		"From: a@x\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/html\n\n<p>Call <b>me</b></p>\n--b\nContent-Type: application/pdf\nContent-Disposition: attachment\n\nJVBE\n--b--\n",
		"From: a@x\nContent-Type: multipart/alternative; boundary=\"q\"\n\n--q\n--q\nContent-Type: multipart/mixed; boundary=q\n\n--q--\n",
		"Content-Type: text/plain; charset=x-unknown\n\nbody\n",
		"Content-Transfer-Encoding: base64\n\n!!!not base64\n",
		"no header at all\n\nbody",
		"Subject: \n\n\n",
		"",
		"Subject: " + strings.Repeat("x", 2000) + "\r\n\r\n",
		"Auto-Submitted: auto-replied\r\n\r\nout of office",
		"Content-Type: multipart/alternative; boundary=\"\"\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := mailgateway.ParseMessage(raw)
		if err != nil {
			if m != nil {
				t.Fatal("an error and a message")
			}
			var se *smtp.SMTPError
			if !errors.As(err, &se) || (se.Code != 552 && se.Code != 554) {
				t.Fatalf("refused with %v, want an SMTP 552 or 554", err)
			}
			return
		}
		for name, s := range map[string]string{"subject": m.Subject, "summary": m.Summary, "body": m.Body, "text": m.Text} {
			if !utf8.ValidString(s) {
				t.Fatalf("%s is not valid UTF-8: %q", name, s)
			}
		}
		if n := utf8.RuneCountInString(m.Summary); n > escalation.MaxSummary {
			t.Fatalf("summary has %d characters", n)
		}
		if strings.ContainsAny(m.Summary, "\r\n") {
			t.Fatalf("summary spans lines: %q", m.Summary)
		}
		if n := utf8.RuneCountInString(m.Body); n > escalation.MaxBody {
			t.Fatalf("body has %d characters", n)
		}
		switch m.Priority {
		case "", escalation.Routine, escalation.Urgent, escalation.ASAP, escalation.Stat:
		default:
			t.Fatalf("priority %q", m.Priority)
		}
		if m.DedupKey == "" {
			t.Fatal("no dedup key")
		}
		if m.Attachments < 0 {
			t.Fatalf("attachments = %d", m.Attachments)
		}
	})
}

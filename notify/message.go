package notify

import (
	"bytes"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"time"
)

// emailMessage is a rendered RFC 5322 message and its envelope. Rendering is
// separate from sending so that an invalid notice is refused before any
// connection is opened.
type emailMessage struct {
	envelopeFrom string
	envelopeTo   string
	data         []byte // CRLF line endings, headers then body
}

// subject is "[STAT] Page from callroom — Cardiology", or without the dash
// part for a page sent directly to a person. The priority leads so it is
// visible on a lock screen that truncates.
func subject(n Notice) string {
	s := "[" + strings.ToUpper(n.Priority) + "] Page from callroom"
	if n.ServiceName != "" {
		s += " — " + n.ServiceName
	}
	return s
}

// messageID is stable for a notification, so a retried attempt that reaches
// the mailbox twice is recognisably the same message (and some relays and
// clients collapse such duplicates).
func messageID(n Notice) string {
	return "<" + n.NotificationID.String() + "@callroom>"
}

// plainBody is the whole text of the email. It says only what the Notice
// carries; the clinician opens the link and signs in to see the page.
func plainBody(n Notice) string {
	service := n.ServiceName
	if service == "" {
		service = "(paged to you directly)"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s page from callroom\n\n", strings.ToUpper(n.Priority))
	fmt.Fprintf(&b, "Priority: %s\n", strings.ToUpper(n.Priority))
	fmt.Fprintf(&b, "Service:  %s\n", service)
	fmt.Fprintf(&b, "Page:     %s\n", n.PageID)
	fmt.Fprintf(&b, "Paged at: %s\n\n", n.CreatedAt.UTC().Format("2006-01-02 15:04:05 UTC"))
	fmt.Fprintf(&b, "Open the page (sign-in required):\n%s\n", n.Link)
	if n.ReplyTo != "" {
		b.WriteString("\nReply ACK to acknowledge.\n")
	}
	b.WriteString("\nThis notification contains no patient information by design.\n")
	return b.String()
}

// composeEmail renders n for one recipient. date is the Date header; callers
// pass the time of the attempt.
//
// The body is quoted-printable so the message is 7-bit clean (a service name
// may be non-ASCII) and no line exceeds SMTP limits whatever the link length;
// relays without 8BITMIME pass it untouched.
func composeEmail(from, to *mail.Address, n Notice, date time.Time) (*emailMessage, error) {
	var replyTo *mail.Address
	if n.ReplyTo != "" {
		var err error
		if replyTo, err = parseAddress(n.ReplyTo); err != nil {
			return nil, fmt.Errorf("reply-to: %w", err)
		}
	}
	return compose(from, to, replyTo, subject(n), plainBody(n), date, messageID(n), func(h *headerWriter) {
		h.add("X-Callroom-Page", n.PageID.String())
		h.add("X-Callroom-Priority", n.Priority)
		// Mail clients sort and flag on these; routine pages stay unflagged
		// so the flag keeps meaning something.
		switch n.Priority {
		case PriorityStat, PriorityASAP:
			h.add("Importance", "high")
			h.add("X-Priority", "1 (Highest)")
		case PriorityUrgent:
			h.add("Importance", "high")
			h.add("X-Priority", "2 (High)")
		}
	})
}

// compose renders one plain-text, quoted-printable message. extra adds the
// header fields particular to the kind of message.
func compose(from, to, replyTo *mail.Address, subj, body string, date time.Time, msgID string, extra func(*headerWriter)) (*emailMessage, error) {
	h := headerWriter{}
	h.add("From", from.String())
	h.add("To", to.String())
	if replyTo != nil {
		h.add("Reply-To", replyTo.String())
	}
	h.addText("Subject", subj)
	h.add("Date", date.Format(time.RFC1123Z))
	h.add("Message-ID", msgID)
	h.add("MIME-Version", "1.0")
	h.add("Content-Type", "text/plain; charset=utf-8")
	h.add("Content-Transfer-Encoding", "quoted-printable")
	// RFC 3834: tells vacation responders not to answer. Without it an
	// out-of-office reply could land on the acknowledge-by-reply address.
	h.add("Auto-Submitted", "auto-generated")
	h.add("X-Auto-Response-Suppress", "OOF, AutoReply")
	if extra != nil {
		extra(&h)
	}
	if h.err != nil {
		return nil, h.err
	}

	var buf bytes.Buffer
	buf.Write(h.buf.Bytes())
	buf.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&buf)
	if _, err := qp.Write([]byte(body)); err != nil {
		return nil, err
	}
	if err := qp.Close(); err != nil {
		return nil, err
	}
	return &emailMessage{envelopeFrom: from.Address, envelopeTo: to.Address, data: buf.Bytes()}, nil
}

// headerWriter collects header fields and remembers the first unsafe value.
// It is the last line of defence against header injection: whatever the
// earlier validation missed, a value with CR, LF or another control
// character never reaches the wire.
type headerWriter struct {
	buf bytes.Buffer
	err error
}

func (h *headerWriter) add(name, value string) {
	if h.err != nil {
		return
	}
	if hasControl(value) {
		h.err = fmt.Errorf("header %s: value contains CR, LF or control characters", name)
		return
	}
	h.write(name, value)
}

// addText adds an unstructured field (RFC 5322 section 3.2.5), encoding and
// folding it when it is not plain ASCII. The check runs on the raw text, so
// the only CRLFs in the output are the folds this function inserts.
func (h *headerWriter) addText(name, text string) {
	if h.err != nil {
		return
	}
	if hasControl(text) {
		h.err = fmt.Errorf("header %s: value contains CR, LF or control characters", name)
		return
	}
	h.write(name, encodeHeaderText(text))
}

func (h *headerWriter) write(name, value string) {
	h.buf.WriteString(name)
	h.buf.WriteString(": ")
	h.buf.WriteString(value)
	h.buf.WriteString("\r\n")
}

// encodeHeaderText RFC 2047-encodes s if it is not plain ASCII and folds the
// encoded words onto continuation lines, keeping each line near the
// recommended 78 characters.
func encodeHeaderText(s string) string {
	enc := mime.QEncoding.Encode("utf-8", s)
	if enc == s {
		return s
	}
	// Inside Q-encoded words a space is written as "_", so a literal space
	// here only ever separates two encoded words.
	return strings.ReplaceAll(enc, "?= =?", "?=\r\n =?")
}

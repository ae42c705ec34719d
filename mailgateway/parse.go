package mailgateway

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	netmail "net/mail"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // ISO-8859-*, Windows-125*, Shift_JIS... in bodies and headers
	"github.com/emersion/go-message/mail"

	"github.com/callroom/callroom/escalation"
)

// Limits on the work one message can cause and on what is kept of it. The
// message as a whole is already bounded by Config.MaxMessageBytes.
const (
	// maxHeaderBytes and maxHeaderFields refuse header bombs before any
	// MIME parsing: real mail, Received and DKIM lines included, has a few
	// dozen fields in a few KiB.
	maxHeaderBytes  = 64 << 10
	maxHeaderFields = 500
	// maxMultiparts bounds MIME nesting, whose cost grows with depth.
	maxMultiparts = 32
	// maxParts is how many leaf parts are looked at; the rest are counted
	// as not shown.
	maxParts = 100
	// maxPartText is how much of one text part is read.
	maxPartText = 256 << 10
	// maxSubject is how much of a subject is kept before it becomes a
	// summary; replies read their command from it.
	maxSubject = 1000
)

// Message is what the gateway takes from one email. Subject, Summary, Body
// and Text are valid UTF-8 and bounded; they are PHI and are never logged.
type Message struct {
	// Subject is the decoded subject on one line, priority prefix stripped.
	Subject string
	// Summary is the page summary: the subject, or the first line of the
	// text when there is none, at most escalation.MaxSummary runes.
	Summary string
	// Body is the page body: the text and a note of attachments not shown,
	// at most escalation.MaxBody runes.
	Body string
	// Text is the message text alone (text/plain, or HTML rendered as text),
	// at most escalation.MaxBody runes.
	Text string
	// Priority is the highest priority any header or the subject asks for.
	Priority escalation.Priority
	// MessageID is the Message-ID header as sent, empty when missing.
	MessageID string
	// DedupKey identifies the message for escalation's dedup: "msgid:" and
	// a hash of the Message-ID, or "msgsum:" and a hash of the whole message
	// when it has none.
	DedupKey string
	// From is the lower-cased address in the From header; empty when
	// missing or unreadable.
	From string
	// AutoReplied marks out-of-office and other automatic replies.
	AutoReplied bool
	// AutoSubmitted marks any automatic message (Auto-Submitted other than
	// "no", bulk and list precedence), auto replies included.
	AutoSubmitted bool
	// Attachments counts parts not shown: attachments, inline images and
	// parts beyond the ones read.
	Attachments int
}

// ParseMessage reads a whole RFC 5322 message. It needs no network and no
// database, never panics on any input, and refuses what cannot be read with
// the *smtp.SMTPError the gateway answers: 552 for a header bomb, 554 for
// a header or MIME structure that cannot be parsed. A message without
// subject or text parses; whether that can page is the caller's question.
func ParseMessage(raw []byte) (*Message, error) {
	if err := checkStructure(raw); err != nil {
		return nil, err
	}
	e, err := message.Read(bytes.NewReader(raw))
	if err != nil && !message.IsUnknownCharset(err) {
		return nil, errMalformed
	}
	h := mail.Header{Header: e.Header}
	m := &Message{}
	subject, subjectPrio := subjectPriority(cleanLine(headerText(h, "Subject"), maxSubject))
	m.Subject = subject
	m.From = fromAddress(h)
	m.MessageID = strings.TrimSpace(h.Get("Message-Id"))
	m.DedupKey = dedupKey(m.MessageID, raw)
	m.AutoReplied, m.AutoSubmitted = autoResponse(h)

	text, attachments, err := readText(e)
	if err != nil && text == "" && subject == "" {
		return nil, errMalformed
	}
	m.Text = capRunes(text, escalation.MaxBody)
	m.Attachments = attachments

	summary, linePrio := subject, escalation.Priority("")
	if summary == "" {
		summary, linePrio = subjectPriority(firstLine(m.Text))
	}
	m.Summary = capRunes(strings.TrimSpace(summary), escalation.MaxSummary)
	m.Priority = maxPriority(headerPriority(h), subjectPrio, linePrio)
	m.Body = pageBody(text, attachments)
	return m, nil
}

// checkStructure refuses header bombs and deep MIME nesting by scanning the
// raw bytes, before a parser spends memory on them.
func checkStructure(raw []byte) error {
	fields, multiparts := 0, 0
	inHeader := true
	for pos := 0; pos < len(raw); {
		end := bytes.IndexByte(raw[pos:], '\n')
		if end < 0 {
			end = len(raw)
		} else {
			end += pos + 1
		}
		line := raw[pos:end]
		if inHeader {
			if len(bytes.TrimRight(line, "\r\n")) == 0 {
				inHeader = false
			} else {
				if line[0] != ' ' && line[0] != '\t' {
					fields++
				}
				if end > maxHeaderBytes || fields > maxHeaderFields {
					return errHeaderTooLarge
				}
			}
		}
		if len(line) > 13 && (line[0] == 'c' || line[0] == 'C') &&
			bytes.EqualFold(line[:13], []byte("content-type:")) &&
			bytes.Contains(bytes.ToLower(line), []byte("multipart")) {
			if multiparts++; multiparts > maxMultiparts {
				return errMalformed
			}
		}
		pos = end
	}
	return nil
}

// headerText decodes an RFC 2047 header; a value that cannot be decoded is
// used as sent (cleanLine makes it valid UTF-8).
func headerText(h mail.Header, key string) string {
	v, err := h.Text(key)
	if err != nil {
		return h.Get(key)
	}
	return v
}

func fromAddress(h mail.Header) string {
	if list, err := h.AddressList("From"); err == nil && len(list) > 0 {
		return strings.ToLower(list[0].Address)
	}
	if a, err := netmail.ParseAddress(h.Get("From")); err == nil {
		return strings.ToLower(a.Address)
	}
	return ""
}

// dedupKey hashes the Message-ID, whose text is the sender's and may be
// long; escalation keeps at most 200 bytes.
func dedupKey(messageID string, raw []byte) string {
	id := strings.TrimSpace(strings.Trim(strings.TrimSpace(messageID), "<>"))
	if id != "" {
		sum := sha256.Sum256([]byte(id))
		return "msgid:" + hex.EncodeToString(sum[:16])
	}
	sum := sha256.Sum256(raw)
	return "msgsum:" + hex.EncodeToString(sum[:16])
}

// autoResponse reads RFC 3834's Auto-Submitted and the older conventions
// out-of-office responders still use.
func autoResponse(h mail.Header) (replied, submitted bool) {
	as := strings.ToLower(firstToken(h.Get("Auto-Submitted")))
	replied = as == "auto-replied" || h.Has("X-Autoreply") || h.Has("X-Autorespond")
	prec := strings.ToLower(firstToken(h.Get("Precedence")))
	if prec == "auto_reply" {
		replied = true
	}
	submitted = replied || (as != "" && as != "no") || prec == "bulk" || prec == "list" || prec == "junk"
	return replied, submitted
}

// readText walks the MIME tree: the text/plain parts are the text (HTML is
// used, as text, only when there is no plain part, since multipart/
// alternative carries both); everything else is counted as not shown. On a
// MIME error it returns what it read so far with the error.
func readText(e *message.Entity) (text string, attachments int, err error) {
	mr := mail.NewReader(e)
	var plain []string
	htmlText, haveHTML := "", false
	for i := 0; ; i++ {
		p, perr := mr.NextPart()
		if perr == io.EOF {
			break
		}
		if perr != nil && (!message.IsUnknownCharset(perr) || p == nil) {
			err = perr
			break
		}
		if i >= maxParts {
			attachments++
			continue
		}
		inline, ok := p.Header.(*mail.InlineHeader)
		if !ok {
			attachments++
			continue
		}
		ct, _, _ := inline.ContentType()
		switch strings.ToLower(ct) {
		case "text/plain", "":
			b, _ := io.ReadAll(io.LimitReader(p.Body, maxPartText))
			if t := cleanText(string(b)); t != "" {
				plain = append(plain, t)
			}
		case "text/html":
			if !haveHTML {
				htmlText, haveHTML = htmlToText(io.LimitReader(p.Body, maxPartText), maxPartText), true
			}
		default:
			attachments++
		}
	}
	if len(plain) > 0 {
		text = strings.Join(plain, "\n\n")
	} else {
		text = cleanText(htmlText)
	}
	return text, attachments, err
}

// pageBody is the text with a note of what is not shown, within
// escalation.MaxBody runes.
func pageBody(text string, attachments int) string {
	note := ""
	switch {
	case attachments == 1:
		note = "(1 attachment not shown)"
	case attachments > 1:
		note = fmt.Sprintf("(%d attachments not shown)", attachments)
	}
	if note == "" {
		return capRunes(text, escalation.MaxBody)
	}
	if text == "" {
		return note
	}
	return capRunes(text, escalation.MaxBody-utf8.RuneCountInString(note)-2) + "\n\n" + note
}

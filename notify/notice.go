package notify

import (
	"errors"
	"net/mail"
	"net/url"
	"strings"
	"time"
	"unicode"

	"github.com/google/uuid"
)

// Priorities a page can have, from least to most urgent. They appear in
// subjects and payloads as they are, so gateways can route on them.
const (
	PriorityRoutine = "routine"
	PriorityUrgent  = "urgent"
	PriorityASAP    = "asap"
	PriorityStat    = "stat"
)

// Notice is everything a notification may say. It deliberately has no field
// for patient names, identifiers or page text: email and webhook bodies must
// carry no PHI, and a field that does not exist cannot be filled by mistake.
// The clinician follows Link and signs in to read the page itself.
type Notice struct {
	// NotificationID is unique per (page, recipient, contact method, step).
	// It is the idempotency key: the email Message-ID and the webhook
	// Idempotency-Key are derived from it, so a retried attempt is
	// recognisable as the same notification.
	NotificationID uuid.UUID
	PageID         uuid.UUID
	Priority       string // PriorityRoutine, PriorityUrgent, PriorityASAP or PriorityStat
	// ServiceName is the paged service, e.g. "Cardiology"; empty for a page
	// sent directly to a person.
	ServiceName string
	// Link is the absolute http(s) URL of the page in callroom.
	Link string
	// ReplyTo is an optional per-notification address for
	// acknowledge-by-reply. Only email uses it.
	ReplyTo   string
	CreatedAt time.Time
}

// Limits on the free-text fields. They keep an email header well under the
// 998-octet line limit and stop a runaway value from producing an absurd
// notification.
const (
	maxServiceNameLen = 200
	maxLinkLen        = 2048
)

// Validate reports the first field that makes n unsendable. Messages name the
// field but never echo its value, so they are safe to log and store.
//
// Control characters are refused in every text field because ServiceName,
// Link and ReplyTo end up in email headers: a CR or LF there would let a
// value inject headers (or a second message body).
func (n Notice) Validate() error {
	switch {
	case n.NotificationID == uuid.Nil:
		return errors.New("notification id is missing")
	case n.PageID == uuid.Nil:
		return errors.New("page id is missing")
	case !validPriority(n.Priority):
		return errors.New("priority is not one of routine, urgent, asap, stat")
	case n.CreatedAt.IsZero():
		return errors.New("created at is missing")
	case hasControl(n.ServiceName):
		return errors.New("service name contains control characters")
	case len(n.ServiceName) > maxServiceNameLen:
		return errors.New("service name is too long")
	}
	if err := validateLink(n.Link); err != nil {
		return err
	}
	if n.ReplyTo != "" {
		if _, err := parseAddress(n.ReplyTo); err != nil {
			return errors.New("reply-to is not a single email address")
		}
	}
	return nil
}

func validPriority(p string) bool {
	switch p {
	case PriorityRoutine, PriorityUrgent, PriorityASAP, PriorityStat:
		return true
	}
	return false
}

func validateLink(link string) error {
	if link == "" {
		return errors.New("link is missing")
	}
	if len(link) > maxLinkLen {
		return errors.New("link is too long")
	}
	if hasControl(link) || strings.ContainsAny(link, " \t") {
		return errors.New("link contains whitespace or control characters")
	}
	u, err := url.Parse(link)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return errors.New("link is not an absolute http(s) URL")
	}
	return nil
}

// parseAddress accepts exactly one address, optionally with a display name,
// and refuses anything that could break out of a header.
func parseAddress(s string) (*mail.Address, error) {
	if hasControl(s) {
		return nil, errors.New("address contains control characters")
	}
	a, err := mail.ParseAddress(s)
	if err != nil {
		return nil, err
	}
	return a, nil
}

// hasControl reports whether s contains a control character (which includes
// CR, LF, NUL and TAB) or is not valid UTF-8.
func hasControl(s string) bool {
	for _, r := range s {
		if r == unicode.ReplacementChar || unicode.IsControl(r) {
			return true
		}
	}
	return false
}

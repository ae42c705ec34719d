package mailgateway

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/callroom/callroom"
	"github.com/callroom/callroom/escalation"
)

type recipientKind int

const (
	toService recipientKind = iota + 1
	toUser
	toReply
)

// recipient is one accepted RCPT, resolved.
type recipient struct {
	kind    recipientKind
	address string // as given, lower case; for audit details
	target  uuid.UUID
	// priority is the floor an address tag (cardiology+stat@) asks for.
	priority escalation.Priority
	reply    notified
}

func (r recipient) same(o recipient) bool {
	if r.kind == toReply {
		return o.kind == toReply && r.reply.ID == o.reply.ID
	}
	return r.kind == o.kind && r.target == o.target
}

// resolve turns an RCPT address into a recipient or the refusal to answer.
// Errors that are not *smtp.SMTPError are the database's.
func (s *Server) resolve(ctx context.Context, se *session, to string) (recipient, error) {
	to = strings.ToLower(strings.TrimSpace(to))
	i := strings.LastIndexByte(to, '@')
	if i <= 0 || i == len(to)-1 {
		return recipient{}, errUnknownRecipient
	}
	local, domain := to[:i], normalizeDomain(to[i+1:])
	if !slices.Contains(s.cfg.Domains, domain) {
		return recipient{}, errRelayDenied
	}
	r := recipient{address: to}

	if strings.HasPrefix(local, replyPrefix) {
		id, err := ParseReplyAddress(s.cfg.ReplySecret, local)
		if err != nil {
			return r, errUnknownRecipient
		}
		n, err := s.dir.notification(ctx, id)
		if errors.Is(err, errNoSuchNotified) {
			return r, errUnknownRecipient
		}
		if err != nil {
			return r, err
		}
		// The envelope sender is known before any data: a reply from
		// anyone but the notified person is refused here, and their own
		// mail system tells them why.
		if !n.Active || se.from == "" || !n.from(se.from) {
			return r, errNotReplySender
		}
		r.kind, r.reply, r.target = toReply, n, n.PageID
		return r, nil
	}

	// Sender policy comes before any lookup, so a sender who may not page
	// cannot probe which services exist.
	if err := se.senderMayPage(); err != nil {
		return r, err
	}
	if key, ok := strings.CutPrefix(local, "page+"); ok {
		id, err := s.dir.userForPaging(ctx, key)
		switch {
		case errors.Is(err, errNoSuchUser):
			return r, errUnknownRecipient
		case errors.Is(err, errAmbiguousUser):
			return r, errAmbiguousRecipient
		case err != nil:
			return r, err
		}
		r.kind, r.target = toUser, id
		return r, nil
	}

	svc, err := s.pages.ServiceByEmailAlias(ctx, to)
	if errors.Is(err, callroom.ErrNotFound) {
		// cardiology+stat@: the alias with a priority tag.
		base, tag, tagged := cutLast(local, "+")
		p, isPriority := parsePriority(tag)
		if !tagged || !isPriority || base == "" {
			return r, errUnknownRecipient
		}
		svc, err = s.pages.ServiceByEmailAlias(ctx, base+"@"+domain)
		if errors.Is(err, callroom.ErrNotFound) {
			return r, errUnknownRecipient
		}
		r.priority = p
	}
	if err != nil {
		return r, err
	}
	r.kind, r.target = toService, svc.ID
	return r, nil
}

func cutLast(s, sep string) (before, after string, found bool) {
	if i := strings.LastIndex(s, sep); i >= 0 {
		return s[:i], s[i+len(sep):], true
	}
	return s, "", false
}

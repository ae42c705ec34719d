package mailgateway

import (
	"context"
	"errors"

	"github.com/emersion/go-smtp"
	"github.com/jackc/pgx/v5"

	"github.com/callroom/callroom"
	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/escalation"
	"github.com/callroom/callroom/internal/pg"
)

// deliver does what one accepted message asks: a page per service or person
// it was sent to, then the replies. It returns nil only when all of it
// committed; any database failure is a 451, and a retry of the same message
// is safe (pages dedup on the Message-ID, reply actions are idempotent).
func (s *Server) deliver(ctx context.Context, se *session, m *Message) error {
	var targets []recipient
	var replies []recipient
	for _, r := range se.recipients {
		if r.kind == toReply {
			replies = append(replies, r)
		} else {
			targets = append(targets, r)
		}
	}
	if len(targets) > 0 {
		if err := s.createPages(ctx, se, m, targets); err != nil {
			return err
		}
	}
	for _, r := range replies {
		if err := s.handleReply(ctx, se, m, r); err != nil {
			return s.temporary("handling a reply", se, err)
		}
	}
	return nil
}

func (s *Server) createPages(ctx context.Context, se *session, m *Message, targets []recipient) error {
	if m.AutoReplied {
		// An out-of-office reply is nobody asking for help.
		s.log.Info("mail dropped: automatic reply to a paging address", "remote", se.remote.String(), "envelope_sender", se.from)
		return nil
	}
	if m.Summary == "" {
		return errEmpty
	}
	in := make([]escalation.NewPage, len(targets))
	for i, t := range targets {
		p := escalation.NewPage{Priority: maxPriority(m.Priority, t.priority), Summary: m.Summary, Body: m.Body, DedupKey: m.DedupKey}
		id := t.target
		if t.kind == toService {
			p.ServiceID = &id
		} else {
			p.UserID = &id
		}
		in[i] = p
	}
	actor := se.actor()
	var pages []escalation.Page
	var created []bool
	var err error
	if bc, ok := s.pages.(BatchCreator); ok && len(in) > 1 {
		pages, created, err = bc.CreateBatch(ctx, actor, in)
	} else {
		// One transaction per page (see the package documentation): a
		// failure part-way answers 451, and the retry dedups the pages
		// that did commit.
		for _, p := range in {
			page, c, cerr := s.pages.Create(ctx, actor, p)
			if cerr != nil {
				err = cerr
				break
			}
			pages, created = append(pages, page), append(created, c)
		}
	}
	if err != nil {
		return s.createError(se, err)
	}
	// The envelope sender is recorded beside escalation's own page.create
	// entry; ids, addresses and flags only, never the text.
	err = pg.InTx(ctx, s.db, func(tx pgx.Tx) error {
		for i, p := range pages {
			if err := audit.Record(ctx, tx, actor, audit.Entry{Action: "page.email", ObjectType: "page", ObjectID: p.ID.String(),
				Details: map[string]any{"envelope_sender": se.from, "recipient": targets[i].address, "authenticated_as": se.authUser,
					"tls": se.tls, "dedup_key": m.DedupKey, "created": created[i], "priority": p.Priority}}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return s.temporary("auditing pages from email", se, err)
	}
	ids := make([]string, len(pages))
	fresh := 0
	for i, p := range pages {
		ids[i] = p.ID.String()
		if created[i] {
			fresh++
		}
	}
	s.log.Info("pages from email", "remote", se.remote.String(), "envelope_sender", se.from,
		"pages", ids, "created", fresh, "dedup_key", m.DedupKey)
	return nil
}

// createError maps what escalation.Store.Create refused. Validation errors
// are the message's fault and permanent; anything else is ours and
// temporary.
func (s *Server) createError(se *session, err error) error {
	if fe, ok := callroom.AsFieldError(err); ok {
		switch fe.Field {
		case "service_id", "user_id":
			// Deleted or deactivated between RCPT and DATA.
			return errUnknownRecipient
		}
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "Page refused: " + fe.Detail}
	}
	return s.temporary("creating pages from email", se, err)
}

// temporary logs a failure that is ours and answers 451, so the sender's
// MTA keeps the message and retries.
func (s *Server) temporary(what string, se *session, err error) error {
	var smtpErr *smtp.SMTPError
	if errors.As(err, &smtpErr) {
		return smtpErr
	}
	s.log.Error(what, "remote", se.remote.String(), "err", err.Error())
	return errTemporary
}

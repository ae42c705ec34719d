package mailgateway

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/callroom/callroom"
	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/auth"
	"github.com/callroom/callroom/escalation"
)

// handleReply acts on a reply to a notification. The envelope sender was
// checked at RCPT; here the From header must name the notified person too,
// since that is what their mail client shows and what a forwarded message
// changes. Refusals that are the person's business (already acknowledged,
// already resolved) are answered by email; the SMTP answer is 250 either
// way, because the message was handled and a bounce would say less.
//
// A non-nil error is the database's or the hook's: the caller answers 451
// and the sender retries. Every action is safe to repeat: acknowledging and
// resolving twice change nothing, and escalating names the step the
// notification was for, so a retry after the page moved on does nothing.
func (s *Server) handleReply(ctx context.Context, se *session, m *Message, r recipient) error {
	n := r.reply
	actor := audit.Actor{UserID: n.UserID, ClientAddr: se.actor().ClientAddr}
	details := map[string]any{"notification_id": n.ID, "envelope_sender": se.from, "tls": se.tls}
	if m.AutoSubmitted {
		s.log.Info("reply dropped: automatic message", "notification_id", n.ID)
		return nil
	}
	if !n.from(m.From) {
		s.log.Warn("reply refused: From is not the notified person", "notification_id", n.ID, "remote", se.remote.String())
		details["reason"] = "the From header is not the notified person's address"
		return audit.Record(ctx, s.db, actor, audit.Entry{Action: "page.email_reply", ObjectType: "page",
			ObjectID: n.PageID.String(), Outcome: audit.Denied, Details: details})
	}
	cmd, text := ParseReply(m.Subject, m.Text)
	if cmd == CmdNone {
		if s.OnReplyText == nil {
			s.log.Info("reply text dropped: no thread to post it to", "notification_id", n.ID, "page_id", n.PageID)
			return nil
		}
		return s.OnReplyText(ctx, n.PageID, n.UserID, text)
	}
	user, err := s.users.User(ctx, n.UserID)
	if err != nil {
		return err
	}
	who := auth.Principal{User: user, ClientAddr: actor.ClientAddr}
	before, err := s.dir.pageState(ctx, n.PageID)
	if err != nil {
		return err
	}
	details["command"] = string(cmd)

	var page escalation.Page
	switch cmd {
	case CmdAck:
		if before.Status == escalation.Acknowledged {
			s.answerAlreadyAcknowledged(n, cmd, before)
			return s.auditReply(ctx, actor, n, details, "already acknowledged")
		}
		page, err = s.pages.Acknowledge(ctx, who, n.PageID)
		if err == nil && page.AcknowledgedBy != nil && *page.AcknowledgedBy != user.ID {
			// Someone else acknowledged between the look and the act.
			after, serr := s.dir.pageState(ctx, n.PageID)
			if serr != nil {
				return serr
			}
			s.answerAlreadyAcknowledged(n, cmd, after)
			return s.auditReply(ctx, actor, n, details, "already acknowledged")
		}
	case CmdResolve:
		page, err = s.pages.Resolve(ctx, who, n.PageID)
	case CmdEscalate:
		if before.Status == escalation.Acknowledged {
			s.answerAlreadyAcknowledged(n, cmd, before)
			return s.auditReply(ctx, actor, n, details, "already acknowledged")
		}
		var round, step *int
		if n.Step >= 0 {
			round, step = &n.Round, &n.Step
		}
		page, err = s.pages.Escalate(ctx, who, n.PageID, round, step)
	}
	var conflict *callroom.ConflictError
	switch {
	case errors.As(err, &conflict):
		s.answer(n, fmt.Sprintf("Your %s was not applied", strings.ToUpper(string(cmd))),
			fmt.Sprintf("Your reply %s to page %s was not applied: %s.", strings.ToUpper(string(cmd)), n.PageID, conflict.Detail))
		return s.auditReply(ctx, actor, n, details, conflict.Detail)
	case errors.Is(err, callroom.ErrForbidden), errors.Is(err, callroom.ErrNotFound):
		s.log.Warn("reply refused", "notification_id", n.ID, "err", err.Error())
		return s.auditReply(ctx, actor, n, details, err.Error())
	case err != nil:
		return err
	}
	s.log.Info("reply applied", "notification_id", n.ID, "page_id", n.PageID, "command", string(cmd), "status", string(page.Status))
	return audit.Record(ctx, s.db, actor, audit.Entry{Action: "page.email_reply", ObjectType: "page", ObjectID: n.PageID.String(), Details: details})
}

// auditReply records a reply that changed nothing, and why.
func (s *Server) auditReply(ctx context.Context, actor audit.Actor, n notified, details map[string]any, reason string) error {
	details["reason"] = reason
	return audit.Record(ctx, s.db, actor, audit.Entry{Action: "page.email_reply", ObjectType: "page",
		ObjectID: n.PageID.String(), Outcome: audit.Failure, Details: details})
}

func (s *Server) answerAlreadyAcknowledged(n notified, cmd Command, st pageState) {
	by := "someone"
	if st.AckName != "" {
		by = st.AckName
	}
	if st.AcknowledgedBy != nil && *st.AcknowledgedBy == n.UserID {
		by = "you"
	}
	at := ""
	if st.AcknowledgedAt != nil {
		at = " at " + st.AcknowledgedAt.UTC().Format("2006-01-02 15:04 UTC")
	}
	s.answer(n, "Page already acknowledged",
		fmt.Sprintf("Your reply %s to page %s was not applied: the page was already acknowledged by %s%s.",
			strings.ToUpper(string(cmd)), n.PageID, by, at))
}

// answer emails the notified person in the background: the SMTP client
// should not wait on another mail server for its 250. The text names the
// page by id and says nothing about the patient.
func (s *Server) answer(n notified, subject, body string) {
	if s.SendMail == nil {
		return
	}
	if s.cfg.PublicURL != "" {
		body += "\n\nOpen the page (sign-in required):\n" + strings.TrimRight(s.cfg.PublicURL, "/") + "/pages/" + n.PageID.String()
	}
	body += "\n\nThis message contains no patient information by design.\n"
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(s.base), time.Minute)
		defer cancel()
		if err := s.SendMail(ctx, n.Email, subject, body); err != nil {
			s.log.Warn("answering a reply", "notification_id", n.ID, "err", err.Error())
		}
	}()
}

package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/google/uuid"

	"github.com/callroom/callroom"
	"github.com/callroom/callroom/auth"
	"github.com/callroom/callroom/mailgateway"
)

// newMailGateway builds the inbound SMTP gateway and connects it to the rest
// of callroom: replies that are not commands go to the page's thread, the
// gateway's answers go out through the notification relay, and notification
// emails get reply addresses the gateway recognises.
func (s *Server) newMailGateway(cfg mailgateway.Config) error {
	if cfg.PublicURL == "" {
		cfg.PublicURL = s.cfg.PublicURL
	}
	gw, err := mailgateway.New(cfg, mailgateway.Deps{Pages: s.Pages, Users: s.Auth, DB: s.cfg.Pool,
		Log: s.cfg.Log.With("component", "mailgateway")})
	if err != nil {
		return err
	}
	gw.OnReplyText = func(ctx context.Context, pageID, userID uuid.UUID, text string) error {
		u, err := s.Auth.User(ctx, userID)
		if err != nil {
			return err
		}
		_, err = s.Inbox.ReplyToPage(ctx, auth.Principal{User: u, ClientAddr: "smtp"}, pageID, text)
		if errors.Is(err, callroom.ErrNotFound) || errors.Is(err, callroom.ErrForbidden) {
			// No thread to file it in (the page named no patient), or the
			// person left it: the reply is dropped, and only that is logged.
			s.cfg.Log.Info("email reply text not filed", "component", "mailgateway", "page_id", pageID, "reason", err.Error())
			return nil
		}
		return err
	}
	if s.Pages.Email != nil {
		gw.SendMail = s.Pages.Email.SendNote
	}
	if len(cfg.ReplySecret) > 0 && len(cfg.Domains) > 0 {
		secret, domain := cfg.ReplySecret, cfg.Domains[0]
		s.Pages.ReplyAddress = func(id uuid.UUID) string { return mailgateway.ReplyAddress(secret, domain, id) }
	}
	s.Mail = gw
	return nil
}

// serveMail starts the gateway; the returned function stops it, letting
// open sessions finish within drain.
func (s *Server) serveMail(ctx context.Context, drain time.Duration) (stop func(), err error) {
	ln := s.MailListener
	if ln == nil {
		if ln, err = net.Listen("tcp", s.cfg.Mail.Addr); err != nil {
			return nil, fmt.Errorf("smtp listen: %w", err)
		}
	}
	mctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := s.Mail.Run(mctx, ln, drain); err != nil {
			s.cfg.Log.Error("mail gateway stopped", "err", err.Error())
		}
	}()
	// Stop accepting mail as soon as ctx ends, alongside the HTTP drain.
	stopOnDone := context.AfterFunc(ctx, cancel)
	return func() { stopOnDone(); cancel(); <-done }, nil
}

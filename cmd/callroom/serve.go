package main

import (
	"context"
	"fmt"
	"io"
	"net"

	"github.com/callroom/callroom/internal/pg"
	"github.com/callroom/callroom/internal/server"
)

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	fs, cfg, check := newFlags("serve", stderr, true)
	demo := fs.Bool("demo", false, "seed a small demo hospital (users, schedules, services) if the database has no users")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := check(); err != nil {
		return err
	}
	log := newLogger(stderr, cfg)
	pool, err := pg.Open(ctx, cfg.databaseURL, pg.Options{MaxConns: int32(cfg.dbMaxConns)})
	if err != nil {
		return err
	}
	defer pool.Close()
	srv, err := server.New(ctx, server.Config{
		Pool: pool, Log: log, PublicURL: cfg.publicURL,
		SessionIdle: cfg.sessionIdle, SessionLifetime: cfg.sessionLifetime, EscalationPoll: cfg.escalationPoll,
		SMTPRelay: cfg.smtpRelay, SMTPFrom: cfg.smtpFrom, SMTPUsername: cfg.smtpUsername, SMTPPassword: cfg.smtpPassword, SMTPHelo: cfg.smtpHelo,
	})
	if err != nil {
		return err
	}
	if *demo {
		logins, err := seedDemo(ctx, srv)
		if err != nil {
			return fmt.Errorf("demo data: %w", err)
		}
		printDemo(stderr, cfg.publicURL, logins)
	}
	ln, err := net.Listen("tcp", cfg.httpAddr)
	if err != nil {
		return err
	}
	log.Info("callroom serving", "addr", ln.Addr().String(), "public_url", cfg.publicURL)
	return srv.Serve(ctx, ln, cfg.shutdownTimeout)
}

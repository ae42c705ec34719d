package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"

	"github.com/callroom/callroom/internal/pg"
	"github.com/callroom/callroom/internal/server"
	"github.com/callroom/callroom/keys"
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
	// The master key comes from a file or the environment, never a flag, so it
	// does not show in the process list, and never from the database.
	mk, err := keys.LoadMasterKeys(cfg.masterKeyFile, os.Getenv("CALLROOM_MASTER_KEY"))
	if err != nil {
		return fmt.Errorf("master key: %w (create one with 'callroom keys init --file PATH' and set CALLROOM_MASTER_KEY_FILE)", err)
	}
	pool, err := pg.Open(ctx, cfg.databaseURL, pg.Options{MaxConns: int32(cfg.dbMaxConns)})
	if err != nil {
		return err
	}
	defer pool.Close()
	var metricsLn net.Listener
	if cfg.metricsAddr != "" {
		if metricsLn, err = net.Listen("tcp", cfg.metricsAddr); err != nil {
			return fmt.Errorf("--metrics-addr: %w", err)
		}
		defer metricsLn.Close()
	}
	srv, err := server.New(ctx, server.Config{
		MetricsListener: metricsLn,
		Pool:            pool, Log: log, PublicURL: cfg.publicURL, MasterKeys: mk,
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

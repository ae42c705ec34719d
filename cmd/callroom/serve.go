package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"

	"github.com/callroom/callroom/fhir"
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
	var ehr *fhir.Config
	subscribe := false
	if path := os.Getenv("CALLROOM_FHIR_CONFIG"); path != "" {
		c, sub, err := fhir.LoadConfig(path, cfg.publicURL)
		if err != nil {
			return err
		}
		ehr, subscribe = &c, sub
	}
	pool, err := pg.Open(ctx, cfg.databaseURL, pg.Options{MaxConns: int32(cfg.dbMaxConns)})
	if err != nil {
		return err
	}
	defer pool.Close()
	srv, err := server.New(ctx, server.Config{
		Pool: pool, Log: log, PublicURL: cfg.publicURL, MasterKeys: mk,
		SessionIdle: cfg.sessionIdle, SessionLifetime: cfg.sessionLifetime, EscalationPoll: cfg.escalationPoll,
		SMTPRelay: cfg.smtpRelay, SMTPFrom: cfg.smtpFrom, SMTPUsername: cfg.smtpUsername, SMTPPassword: cfg.smtpPassword, SMTPHelo: cfg.smtpHelo,
		FHIR: ehr,
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
	if subscribe {
		// An EHR that is down must not keep paging from starting.
		if refs, err := fhir.Subscribe(ctx, *ehr); err != nil {
			log.Warn("registering FHIR subscriptions failed; run 'callroom fhir subscribe' later", "err", err.Error())
		} else {
			log.Info("FHIR subscriptions registered", "count", len(refs))
		}
	}
	ln, err := net.Listen("tcp", cfg.httpAddr)
	if err != nil {
		return err
	}
	log.Info("callroom serving", "addr", ln.Addr().String(), "public_url", cfg.publicURL)
	return srv.Serve(ctx, ln, cfg.shutdownTimeout)
}

package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/callroom/callroom/httpapi"
	"github.com/callroom/callroom/ratelimit"

	"github.com/callroom/callroom/fhir"
	"github.com/callroom/callroom/internal/pg"
	"github.com/callroom/callroom/internal/server"
	"github.com/callroom/callroom/keys"
	"github.com/callroom/callroom/web"
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
	mail, err := mailConfig(cfg)
	if err != nil {
		return fmt.Errorf("smtp gateway: %w", err)
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
	proxies, _ := httpapi.ParseTrustedProxies(cfg.trustedProxies) // checked above
	srv, err := server.New(ctx, server.Config{
		MetricsListener: metricsLn,
		Pool:            pool, Log: log, PublicURL: cfg.publicURL, MasterKeys: mk,
		SessionIdle: cfg.sessionIdle, SessionLifetime: cfg.sessionLifetime, EscalationPoll: cfg.escalationPoll,
		SMTPRelay: cfg.smtpRelay, SMTPFrom: cfg.smtpFrom, SMTPUsername: cfg.smtpUsername, SMTPPassword: cfg.smtpPassword, SMTPHelo: cfg.smtpHelo,
		FHIR: ehr,
		Mail: mail,
		TLS:  cfg.tlsCertFile != "", FrameAncestors: cfg.frameAncestors, TrustedProxies: proxies,
		OIDCIssuer: cfg.oidcIssuer, OIDCClientID: cfg.oidcClientID, OIDCClientSecret: cfg.oidcClientSecret, PasswordLoginOff: !cfg.passwordLogin,
		Limits: &httpapi.Limits{
			LoginPerIP:     ratelimit.Rule{Limit: cfg.loginRatePerMinute, Window: time.Minute},
			LoginPerEmail:  ratelimit.Rule{Limit: httpapi.DefaultLimits.LoginPerEmail.Limit, Window: time.Minute},
			PagesPerCaller: ratelimit.Rule{Limit: cfg.pageRatePerMinute, Window: time.Minute},
		},
		SMART: smartFromEnv(),
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
	if cfg.tlsCertFile != "" {
		tc, err := tlsConfig(cfg.tlsCertFile, cfg.tlsKeyFile)
		if err != nil {
			ln.Close()
			return err
		}
		ln = tls.NewListener(ln, tc)
	}
	log.Info("callroom serving", "addr", ln.Addr().String(), "public_url", cfg.publicURL)
	return srv.Serve(ctx, ln, cfg.shutdownTimeout)
}

// smartFromEnv configures the EHR launch of the patient-chart view from
// CALLROOM_SMART_ISSUER (the EHR's FHIR base URL), CALLROOM_SMART_CLIENT_ID
// and CALLROOM_SMART_CLIENT_SECRET (optional); nil when no issuer is set.
func smartFromEnv() *web.SMART {
	iss := os.Getenv("CALLROOM_SMART_ISSUER")
	if iss == "" {
		return nil
	}
	return &web.SMART{Issuer: iss, ClientID: env("CALLROOM_SMART_CLIENT_ID", "callroom"),
		ClientSecret: os.Getenv("CALLROOM_SMART_CLIENT_SECRET")}
}

// tlsConfig terminates TLS in callroom itself (HIPAA 164.312(e)(1)): TLS 1.2
// at least, HTTP/2 offered. Go's default cipher suites are all AEAD with
// forward secrecy for TLS 1.2. The key pair is read again when its files
// change, so a renewed certificate needs no restart.
func tlsConfig(certFile, keyFile string) (*tls.Config, error) {
	kp := &keyPair{certFile: certFile, keyFile: keyFile}
	if _, err := kp.get(); err != nil {
		return nil, fmt.Errorf("TLS certificate: %w", err)
	}
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     []string{"h2", "http/1.1"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return kp.get() },
	}, nil
}

package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/callroom/callroom/httpapi"
)

// config is every setting, read from the environment and overridden by flags.
type config struct {
	databaseURL     string
	dbMaxConns      int
	httpAddr        string
	metricsAddr     string
	publicURL       string
	logLevel        slog.Level
	logFormat       string
	sessionIdle     time.Duration
	sessionLifetime time.Duration
	escalationPoll  time.Duration
	shutdownTimeout time.Duration
	smtpRelay       string
	smtpFrom        string
	smtpUsername    string
	smtpPassword    string
	smtpHelo        string
	masterKeyFile   string
	// Inbound SMTP gateway; off unless mailAddr is set.
	mailAddr, mailDomains, mailTLSCert, mailTLSKey string
	mailUsersFile, mailNetworks, mailSenders       string
	mailMaxBytes                                   int
	// Transmission and person-authentication safeguards (docs/SECURITY.md).
	tlsCertFile, tlsKeyFile               string
	frameAncestors                        string
	oidcIssuer, oidcClientID              string
	oidcClientSecret                      string
	passwordLogin                         bool
	loginRatePerMinute, pageRatePerMinute int
	trustedProxies                        string
}

func env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if v := os.Getenv(name); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
	}
	return def
}

func envInt(name string, def int) int {
	if v := os.Getenv(name); v != "" {
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
	}
	return def
}

// flags registers the settings a command uses on fs and returns a function
// that validates them after parsing.
func newFlags(name string, stderr io.Writer, withServer bool) (*flag.FlagSet, *config, func() error) {
	cfg := &config{}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.databaseURL, "database-url", env("DATABASE_URL", ""), "PostgreSQL URL (env DATABASE_URL)")
	fs.IntVar(&cfg.dbMaxConns, "db-max-conns", envInt("CALLROOM_DB_MAX_CONNS", 20), "database pool size (env CALLROOM_DB_MAX_CONNS)")
	level := fs.String("log-level", env("CALLROOM_LOG_LEVEL", "info"), "debug, info, warn or error (env CALLROOM_LOG_LEVEL)")
	fs.StringVar(&cfg.logFormat, "log-format", env("CALLROOM_LOG_FORMAT", "json"), "json or text (env CALLROOM_LOG_FORMAT)")
	if withServer {
		fs.StringVar(&cfg.httpAddr, "http-addr", env("CALLROOM_HTTP_ADDR", "127.0.0.1:8080"), "HTTP listen address (env CALLROOM_HTTP_ADDR)")
		fs.StringVar(&cfg.metricsAddr, "metrics-addr", env("CALLROOM_METRICS_ADDR", ""), "serve /metrics on this address instead of the HTTP address (env CALLROOM_METRICS_ADDR)")
		fs.StringVar(&cfg.publicURL, "public-url", env("CALLROOM_PUBLIC_URL", ""), "URL users reach callroom at (env CALLROOM_PUBLIC_URL; default http://HTTP_ADDR)")
		fs.DurationVar(&cfg.sessionIdle, "session-idle", envDuration("CALLROOM_SESSION_IDLE", 15*time.Minute), "sign out after this long idle (env CALLROOM_SESSION_IDLE)")
		fs.DurationVar(&cfg.sessionLifetime, "session-lifetime", envDuration("CALLROOM_SESSION_LIFETIME", 12*time.Hour), "sign out after this long regardless (env CALLROOM_SESSION_LIFETIME)")
		fs.DurationVar(&cfg.escalationPoll, "escalation-poll", envDuration("CALLROOM_ESCALATION_POLL", 50*time.Millisecond), "how often the escalation queue looks for due steps (env CALLROOM_ESCALATION_POLL)")
		fs.StringVar(&cfg.smtpRelay, "smtp-relay", env("CALLROOM_SMTP_RELAY", ""), "host:port of the SMTP relay for email notifications; STARTTLS is required unless it is loopback (env CALLROOM_SMTP_RELAY)")
		fs.StringVar(&cfg.smtpFrom, "smtp-from", env("CALLROOM_SMTP_FROM", "callroom@localhost"), "From address of notification email (env CALLROOM_SMTP_FROM)")
		fs.StringVar(&cfg.smtpHelo, "smtp-helo", env("CALLROOM_SMTP_HELO", "localhost"), "name this host gives the relay (env CALLROOM_SMTP_HELO)")
		fs.StringVar(&cfg.masterKeyFile, "master-key-file", env("CALLROOM_MASTER_KEY_FILE", ""), "file of master keys that encrypt data at rest (env CALLROOM_MASTER_KEY_FILE; or set CALLROOM_MASTER_KEY)")
		fs.StringVar(&cfg.mailAddr, "smtp-addr", env("CALLROOM_SMTP_ADDR", ""), "listen for inbound email pages on this address, e.g. :2525 (env CALLROOM_SMTP_ADDR; off when empty)")
		fs.StringVar(&cfg.mailDomains, "smtp-domains", env("CALLROOM_SMTP_DOMAINS", ""), "comma-separated domains the gateway accepts mail for, e.g. pager.example.org (env CALLROOM_SMTP_DOMAINS)")
		fs.StringVar(&cfg.mailTLSCert, "smtp-tls-cert", env("CALLROOM_SMTP_TLS_CERT", ""), "PEM certificate for STARTTLS (env CALLROOM_SMTP_TLS_CERT)")
		fs.StringVar(&cfg.mailTLSKey, "smtp-tls-key", env("CALLROOM_SMTP_TLS_KEY", ""), "PEM key for STARTTLS (env CALLROOM_SMTP_TLS_KEY)")
		fs.StringVar(&cfg.mailUsersFile, "smtp-users-file", env("CALLROOM_SMTP_USERS_FILE", ""), "file of username:argon2id-hash lines for SMTP AUTH after STARTTLS (env CALLROOM_SMTP_USERS_FILE)")
		fs.StringVar(&cfg.mailNetworks, "smtp-allowed-networks", env("CALLROOM_SMTP_ALLOWED_NETWORKS", "127.0.0.0/8,::1/128"), "CIDRs that may send without AUTH; \"none\" for none (env CALLROOM_SMTP_ALLOWED_NETWORKS)")
		fs.StringVar(&cfg.mailSenders, "smtp-allowed-senders", env("CALLROOM_SMTP_ALLOWED_SENDERS", ""), "envelope senders (addresses or @domains) unauthenticated clients may page from; any when empty (env CALLROOM_SMTP_ALLOWED_SENDERS)")
		fs.IntVar(&cfg.mailMaxBytes, "smtp-max-bytes", envInt("CALLROOM_SMTP_MAX_BYTES", 1<<20), "largest message accepted, in bytes (env CALLROOM_SMTP_MAX_BYTES)")
		fs.StringVar(&cfg.tlsCertFile, "tls-cert-file", env("CALLROOM_TLS_CERT_FILE", ""), "PEM certificate chain: serve HTTPS (TLS 1.2+) and send HSTS (env CALLROOM_TLS_CERT_FILE)")
		fs.StringVar(&cfg.tlsKeyFile, "tls-key-file", env("CALLROOM_TLS_KEY_FILE", ""), "PEM private key of --tls-cert-file (env CALLROOM_TLS_KEY_FILE)")
		fs.StringVar(&cfg.frameAncestors, "frame-ancestors", env("CALLROOM_FRAME_ANCESTORS", "'none'"), "CSP frame-ancestors: origins allowed to embed callroom, e.g. the EHR's (env CALLROOM_FRAME_ANCESTORS)")
		fs.StringVar(&cfg.oidcIssuer, "oidc-issuer", env("CALLROOM_OIDC_ISSUER", ""), "OpenID Connect issuer URL: enables single sign-on at /auth/oidc/login (env CALLROOM_OIDC_ISSUER)")
		fs.StringVar(&cfg.oidcClientID, "oidc-client-id", env("CALLROOM_OIDC_CLIENT_ID", ""), "client id registered with the OpenID Connect provider (env CALLROOM_OIDC_CLIENT_ID; secret in env CALLROOM_OIDC_CLIENT_SECRET)")
		fs.BoolVar(&cfg.passwordLogin, "password-login", env("CALLROOM_PASSWORD_LOGIN", "true") == "true", "allow sign-in with local passwords; false leaves single sign-on only (env CALLROOM_PASSWORD_LOGIN)")
		fs.IntVar(&cfg.loginRatePerMinute, "login-rate", envInt("CALLROOM_LOGIN_RATE", 120), "sign-in attempts per minute per client address; 0 is unlimited (env CALLROOM_LOGIN_RATE)")
		fs.IntVar(&cfg.pageRatePerMinute, "page-rate", envInt("CALLROOM_PAGE_RATE", 120), "pages created per minute per API token or user; 0 is unlimited (env CALLROOM_PAGE_RATE)")
		fs.StringVar(&cfg.trustedProxies, "trusted-proxies", env("CALLROOM_TRUSTED_PROXIES", ""), "load balancer addresses or CIDRs whose X-Forwarded-For names the client (env CALLROOM_TRUSTED_PROXIES)")
		cfg.oidcClientSecret = os.Getenv("CALLROOM_OIDC_CLIENT_SECRET")
		cfg.smtpUsername = os.Getenv("CALLROOM_SMTP_USERNAME")
		cfg.smtpPassword = os.Getenv("CALLROOM_SMTP_PASSWORD")
		fs.DurationVar(&cfg.shutdownTimeout, "shutdown-timeout", envDuration("CALLROOM_SHUTDOWN_TIMEOUT", 20*time.Second), "how long SIGTERM waits for requests and jobs to finish (env CALLROOM_SHUTDOWN_TIMEOUT)")
	}
	check := func() error {
		if cfg.databaseURL == "" {
			return errors.New("no database: set DATABASE_URL or pass --database-url (or use 'make run', which starts a private PostgreSQL)")
		}
		if err := cfg.logLevel.UnmarshalText([]byte(*level)); err != nil {
			return fmt.Errorf("--log-level: %w", err)
		}
		if cfg.dbMaxConns < 2 {
			return errors.New("--db-max-conns must be at least 2")
		}
		if withServer {
			if cfg.publicURL == "" {
				cfg.publicURL = "http://" + cfg.httpAddr
			}
			u, err := url.Parse(cfg.publicURL)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return fmt.Errorf("--public-url %q: want an absolute http(s) URL", cfg.publicURL)
			}
			if cfg.sessionIdle <= 0 || cfg.sessionLifetime < cfg.sessionIdle {
				return errors.New("--session-idle must be positive and no longer than --session-lifetime")
			}
			if (cfg.tlsCertFile == "") != (cfg.tlsKeyFile == "") {
				return errors.New("--tls-cert-file and --tls-key-file go together")
			}
			if err := httpapi.CheckFrameAncestors(cfg.frameAncestors); err != nil {
				return fmt.Errorf("--frame-ancestors: %w", err)
			}
			if (cfg.oidcIssuer == "") != (cfg.oidcClientID == "") {
				return errors.New("--oidc-issuer and --oidc-client-id go together")
			}
			if !cfg.passwordLogin && cfg.oidcIssuer == "" {
				return errors.New("--password-login=false needs single sign-on (--oidc-issuer), or nobody could sign in")
			}
			if _, err := httpapi.ParseTrustedProxies(cfg.trustedProxies); err != nil {
				return fmt.Errorf("--trusted-proxies: %w", err)
			}
			if cfg.loginRatePerMinute < 0 || cfg.pageRatePerMinute < 0 {
				return errors.New("--login-rate and --page-rate must not be negative")
			}
		}
		return nil
	}
	return fs, cfg, check
}

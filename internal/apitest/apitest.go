// Package apitest runs a whole callroom instance (real PostgreSQL, River,
// HTTP API) inside a test and gives a small JSON client for it.
package apitest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/auth"
	"github.com/callroom/callroom/fhir"
	"github.com/callroom/callroom/internal/pgtest"
	"github.com/callroom/callroom/internal/server"
	"github.com/callroom/callroom/keys"
	"github.com/callroom/callroom/mailgateway"
	"github.com/callroom/callroom/ratelimit"
)

// TestMasterKey is the master key of test instances (id "test").
const TestMasterKey = "test:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

// Instance is a running callroom.
type Instance struct {
	T      testing.TB
	DB     *pgtest.DB
	Server *server.Server
	URL    string
	// MetricsURL is where /metrics is served: URL+"/metrics", or the
	// separate listener's when Options.SeparateMetrics.
	MetricsURL string
	Logs       *bytes.Buffer // everything the instance logged, for PHI checks
	// MailAddr is where the SMTP gateway listens when Options.Mail is set.
	MailAddr string
	logMu    *sync.Mutex
}

// Options adjust an instance.
type Options struct {
	// DB reuses a database (for several instances on one database).
	DB *pgtest.DB
	// SMTPRelay is the host:port of an SMTP relay for email notifications
	// (server.Config.SMTPRelay); empty leaves email unconfigured.
	SMTPRelay string
	// Mail, when set, runs the inbound SMTP gateway on 127.0.0.1:0
	// (Instance.MailAddr); its PublicURL defaults to the instance's.
	Mail *mailgateway.Config
	// Setup, when set, adjusts the built server before it starts serving
	// (e.g. escalation.Store's delivery retry knobs).
	Setup func(*server.Server)
	// FHIR connects the instance to an EHR (server.Config.FHIR).
	FHIR *fhir.Config
	// SeparateMetrics serves /metrics on a listen address of its own.
	SeparateMetrics bool
}

type lockedWriter struct {
	mu  *sync.Mutex
	buf *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

// Start runs an instance until the test ends.
func Start(t testing.TB, opt ...Options) *Instance {
	t.Helper()
	var o Options
	if len(opt) > 0 {
		o = opt[0]
	}
	db := o.DB
	if db == nil {
		db = pgtest.NewWithPoolSize(t, 20)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	logs, mu := &bytes.Buffer{}, &sync.Mutex{}
	log := slog.New(slog.NewJSONHandler(lockedWriter{mu, logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	mk, err := keys.LoadMasterKeys("", TestMasterKey)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	cfg := server.Config{Pool: db.Pool, Log: log, PublicURL: url, EscalationPoll: 20 * time.Millisecond, MasterKeys: mk}
	cfg.FHIR = o.FHIR
	metricsURL := url + "/metrics"
	if o.SeparateMetrics {
		mln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		cfg.MetricsListener, metricsURL = mln, "http://"+mln.Addr().String()+"/metrics"
	}
	if o.SMTPRelay != "" {
		cfg.SMTPRelay, cfg.SMTPFrom = o.SMTPRelay, "callroom@callroom.test"
	}
	cfg.Mail = o.Mail
	srv, err := server.New(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	var mailAddr string
	if o.Mail != nil {
		mln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		srv.MailListener, mailAddr = mln, mln.Addr().String()
	}
	// Paging tests and benchmarks send far more pages per token than any
	// ward; the page limit is tested on its own (httpapi TestRateLimits).
	srv.API.Limits.PagesPerCaller = ratelimit.Rule{}
	if o.Setup != nil {
		o.Setup(srv)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln, 5*time.Second) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return &Instance{T: t, DB: db, Server: srv, URL: url, MetricsURL: metricsURL, Logs: logs, logMu: mu, MailAddr: mailAddr}
}

// LogText returns what the instance has logged so far.
func (in *Instance) LogText() string {
	in.logMu.Lock()
	defer in.logMu.Unlock()
	return in.Logs.String()
}

// User creates a user with roles and returns a client acting as them.
func (in *Instance) User(name string, roles ...string) *Client {
	in.T.Helper()
	ctx := context.Background()
	email := "user-" + uuid.NewString()[:13] + "@example.org"
	u, err := in.Server.Auth.CreateUser(ctx, audit.System, auth.NewUser{Email: email, Name: name, Roles: roles, TimeZone: "America/Chicago"})
	if err != nil {
		in.T.Fatal(err)
	}
	_, secret, err := in.Server.Auth.CreateToken(ctx, audit.System, u.ID, "test", nil)
	if err != nil {
		in.T.Fatal(err)
	}
	return &Client{T: in.T, Base: in.URL, Token: secret, User: u}
}

// Anonymous returns a client without credentials.
func (in *Instance) Anonymous() *Client { return &Client{T: in.T, Base: in.URL} }

// Client calls the API as one user.
type Client struct {
	T     testing.TB
	Base  string
	Token string
	User  auth.User
}

// Response is a decoded answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
	JSON   map[string]any
}

// Field returns the problem's "field", for 4xx answers.
func (r Response) Field() string {
	f, _ := r.JSON["field"].(string)
	return f
}

// Do sends a request with a JSON body (v may be a string of raw JSON, []byte, or any value to marshal).
func (c *Client) Do(method, path string, v any) Response {
	c.T.Helper()
	var body io.Reader
	switch b := v.(type) {
	case nil:
	case string:
		body = strings.NewReader(b)
	case []byte:
		body = bytes.NewReader(b)
	default:
		j, err := json.Marshal(v)
		if err != nil {
			c.T.Fatal(err)
		}
		body = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, c.Base+path, body)
	if err != nil {
		c.T.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.T.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
	if len(b) > 0 && b[0] == '{' {
		json.Unmarshal(b, &r.JSON) //nolint:errcheck
	}
	return r
}

// Must sends a request and fails the test unless the status is want; it
// returns the decoded JSON object.
func (c *Client) Must(want int, method, path string, v any) map[string]any {
	c.T.Helper()
	r := c.Do(method, path, v)
	if r.Status != want {
		c.T.Fatalf("%s %s: status %d, want %d: %s", method, path, r.Status, want, r.Body)
	}
	return r.JSON
}

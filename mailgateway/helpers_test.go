package mailgateway_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callroom/callroom/escalation"
	"github.com/callroom/callroom/internal/apitest"
	"github.com/callroom/callroom/mailgateway"
)

const testDomain = "pager.example.org"

var testSecret = []byte("0123456789abcdef0123456789abcdef-test")

// fixture is a callroom instance with a service paged at
// cardiology@pager.example.org that reaches Dr A at once.
type fixture struct {
	in        *apitest.Instance
	admin     *apitest.Client
	doctor    *apitest.Client
	serviceID uuid.UUID
	policyID  string
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	return fixtureOn(t, apitest.Start(t))
}

// fixtureOn adds Dr A, an admin and the Cardiology service to a running
// instance.
func fixtureOn(t testing.TB, in *apitest.Instance) *fixture {
	t.Helper()
	f := &fixture{in: in, admin: in.User("Avery Admin", "admin"), doctor: in.User("Dr A", "physician")}
	pol := f.admin.Must(201, "POST", "/api/v1/escalation-policies", map[string]any{"name": "Cardio", "steps": []any{
		map[string]any{"delay_seconds": 300, "targets": []any{map[string]any{"user_id": f.doctor.User.ID}}},
	}})
	f.policyID = pol["id"].(string)
	f.serviceID = f.service(t, "Cardiology", "cardiology")
	return f
}

// service adds a service with an email alias.
func (f *fixture) service(t testing.TB, name, alias string) uuid.UUID {
	t.Helper()
	svc := f.admin.Must(201, "POST", "/api/v1/services", map[string]any{"name": name, "escalation_policy_id": f.policyID, "email_alias": alias})
	return uuid.MustParse(svc["id"].(string))
}

// gateway is a running mail gateway and what its hooks saw.
type gateway struct {
	Addr string
	Srv  *mailgateway.Server
	logs *lockedBuffer

	mu        sync.Mutex
	sent      []sentMail
	sentCh    chan sentMail
	replyText []string
}

type sentMail struct{ To, Subject, Body string }

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (g *gateway) Logs() string { return g.logs.String() }

func (g *gateway) Sent() []sentMail {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]sentMail(nil), g.sent...)
}

// startGateway runs a gateway for the instance on 127.0.0.1:0. adjust may
// change the configuration and dependencies before it starts.
func startGateway(t testing.TB, in *apitest.Instance, adjust func(*mailgateway.Config, *mailgateway.Deps)) *gateway {
	t.Helper()
	g := &gateway{logs: &lockedBuffer{}, sentCh: make(chan sentMail, 16)}
	cfg := mailgateway.Config{
		Domains:         []string{testDomain},
		ReplySecret:     testSecret,
		ReadTimeout:     10 * time.Second,
		WriteTimeout:    10 * time.Second,
		DeliveryTimeout: 10 * time.Second,
		PublicURL:       in.URL,
	}
	deps := mailgateway.Deps{
		Pages: in.Server.Pages, Users: in.Server.Auth, DB: in.DB.Pool,
		Log: slog.New(slog.NewJSONHandler(g.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if adjust != nil {
		adjust(&cfg, &deps)
	}
	srv, err := mailgateway.New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	srv.SendMail = func(ctx context.Context, to, subject, body string) error {
		m := sentMail{to, subject, body}
		g.mu.Lock()
		g.sent = append(g.sent, m)
		g.mu.Unlock()
		select {
		case g.sentCh <- m:
		default:
		}
		return nil
	}
	srv.OnReplyText = func(ctx context.Context, pageID, userID uuid.UUID, text string) error {
		g.mu.Lock()
		defer g.mu.Unlock()
		g.replyText = append(g.replyText, text)
		return nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, ln, 5*time.Second) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gateway: %v", err)
		}
	})
	g.Addr, g.Srv = ln.Addr().String(), srv
	return g
}

// mail is one message to send.
type mail struct {
	From       string // envelope sender
	To         []string
	Data       string // whole message; built from the fields below when empty
	Subject    string
	Body       string
	MessageID  string
	Headers    []string
	HeaderFrom string
}

func (m mail) bytes() []byte {
	if m.Data != "" {
		return []byte(strings.ReplaceAll(m.Data, "\n", "\r\n"))
	}
	var b strings.Builder
	from := m.HeaderFrom
	if from == "" {
		from = m.From
	}
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\n", from, strings.Join(m.To, ", "))
	if m.Subject != "" {
		fmt.Fprintf(&b, "Subject: %s\r\n", m.Subject)
	}
	id := m.MessageID
	if id == "" {
		id = "<" + uuid.NewString() + "@test.example.org>"
	}
	fmt.Fprintf(&b, "Message-ID: %s\r\nDate: Sun, 01 Mar 2026 14:05:30 +0000\r\n", id)
	for _, h := range m.Headers {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	b.WriteString(strings.ReplaceAll(m.Body, "\n", "\r\n"))
	return []byte(b.String())
}

// stage says where a send failed.
type stage string

const (
	atDial stage = "dial"
	atMail stage = "MAIL"
	atRcpt stage = "RCPT"
	atData stage = "DATA"
	atDot  stage = "end of data"
)

type sendError struct {
	Stage stage
	Err   error
}

func (e *sendError) Error() string { return string(e.Stage) + ": " + e.Err.Error() }

func (e *sendError) code() int {
	var se *smtp.SMTPError
	if errors.As(e.Err, &se) {
		return se.Code
	}
	return 0
}

// session is an open client connection.
type clientOpts struct {
	StartTLS *tls.Config
	User     string
	Password string
}

func dial(t testing.TB, addr string, o clientOpts) *smtp.Client {
	t.Helper()
	var c *smtp.Client
	var err error
	if o.StartTLS != nil {
		c, err = smtp.DialStartTLS(addr, o.StartTLS)
	} else {
		c, err = smtp.Dial(addr)
	}
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Hello("client.test.example.org"); err != nil {
		t.Fatalf("EHLO: %v", err)
	}
	if o.User != "" {
		if err := c.Auth(sasl.NewPlainClient("", o.User, o.Password)); err != nil {
			t.Fatalf("AUTH: %v", err)
		}
	}
	return c
}

// send runs one mail transaction on c; a refused recipient fails the send
// at RCPT, as a real client with one recipient would.
func send(c *smtp.Client, m mail) *sendError {
	if err := c.Mail(m.From, nil); err != nil {
		c.Reset()
		return &sendError{atMail, err}
	}
	for _, to := range m.To {
		if err := c.Rcpt(to, nil); err != nil {
			c.Reset()
			return &sendError{atRcpt, err}
		}
	}
	w, err := c.Data()
	if err != nil {
		c.Reset()
		return &sendError{atData, err}
	}
	if _, err := w.Write(m.bytes()); err != nil {
		return &sendError{atDot, err}
	}
	if err := w.Close(); err != nil {
		return &sendError{atDot, err}
	}
	return nil
}

// sendOne dials, sends and quits.
func sendOne(t testing.TB, addr string, m mail) *sendError {
	t.Helper()
	c := dial(t, addr, clientOpts{})
	defer c.Quit()
	return send(c, m)
}

func mustSend(t testing.TB, addr string, m mail) {
	t.Helper()
	if err := sendOne(t, addr, m); err != nil {
		t.Fatalf("send: %v", err)
	}
}

func wantCode(t testing.TB, err *sendError, st stage, code int) {
	t.Helper()
	if err == nil {
		t.Fatalf("send succeeded, want %d at %s", code, st)
	}
	if err.Stage != st || err.code() != code {
		t.Fatalf("send failed with %v, want %d at %s", err, code, st)
	}
}

// pages lists the instance's pages, newest first.
func pages(t testing.TB, in *apitest.Instance) []escalation.Page {
	t.Helper()
	ps, err := in.Server.Pages.List(context.Background(), escalation.Filter{Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

func onePage(t testing.TB, in *apitest.Instance) escalation.Page {
	t.Helper()
	ps := pages(t, in)
	if len(ps) != 1 {
		t.Fatalf("%d pages, want 1", len(ps))
	}
	return ps[0]
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 15 s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// selfSignedTLS returns a server config for a fresh certificate for
// localhost and 127.0.0.1, and a pool that trusts it.
func selfSignedTLS(t testing.TB) (*tls.Config, *x509.CertPool, []byte, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: testDomain},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{testDomain, "localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pemBlock("CERTIFICATE", der)
	keyPEM := pemBlock("EC PRIVATE KEY", keyDER)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12},
		pool, certPEM, keyPEM
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func smtpCode(err error) int {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

func enhanced(err error) string {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return fmt.Sprintf("%d.%d.%d", se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2])
	}
	return ""
}

func plain(user, password string) sasl.Client { return sasl.NewPlainClient("", user, password) }

func smtpDialStartTLS(addr string, cfg *tls.Config) (*smtp.Client, error) {
	c, err := smtp.DialStartTLS(addr, cfg)
	if err != nil {
		return nil, err
	}
	if err := c.Hello("client.test.example.org"); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// readReply reads one (possibly multi-line) SMTP reply.
func readReply(t testing.TB, r *bufio.Reader) string {
	t.Helper()
	var all []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading a reply: %v (so far %q)", err, all)
		}
		line = strings.TrimRight(line, "\r\n")
		all = append(all, line)
		if len(line) < 4 || line[3] != '-' {
			return strings.Join(all, "\n")
		}
	}
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// notificationFor is the first notification of the page to user, or uuid.Nil.
func notificationFor(t testing.TB, f *fixture, pageID, userID uuid.UUID) uuid.UUID {
	t.Helper()
	var id uuid.UUID
	err := f.in.DB.Pool.QueryRow(context.Background(), `SELECT id FROM notifications WHERE page_id = $1 AND user_id = $2
		ORDER BY created_at LIMIT 1`, pageID, userID).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return uuid.Nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return id
}

package notify

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// received is one message as the test relay saw it.
type received struct {
	helo   string
	tls    bool
	authed bool
	from   string
	to     []string
	data   []byte
}

// testRelay is an in-process go-smtp backend. Recipients listed in rcptErr
// are answered with that error, which is how the tests script 4xx and 5xx
// replies.
type testRelay struct {
	requireAuth        bool
	username, password string
	rcptErr            map[string]*smtp.SMTPError

	mu   sync.Mutex
	msgs []received
}

func (r *testRelay) NewSession(c *smtp.Conn) (smtp.Session, error) {
	_, isTLS := c.TLSConnectionState()
	return &testSession{relay: r, cur: received{helo: c.Hostname(), tls: isTLS}}, nil
}

func (r *testRelay) messages() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.msgs...)
}

type testSession struct {
	relay *testRelay
	cur   received
}

func (s *testSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *testSession) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if username != s.relay.username || password != s.relay.password {
			return smtp.ErrAuthFailed
		}
		s.cur.authed = true
		return nil
	}), nil
}

func (s *testSession) Mail(from string, _ *smtp.MailOptions) error {
	if s.relay.requireAuth && !s.cur.authed {
		return smtp.ErrAuthRequired
	}
	s.cur.from = from
	return nil
}

func (s *testSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if err, ok := s.relay.rcptErr[to]; ok {
		return err
	}
	s.cur.to = append(s.cur.to, to)
	return nil
}

func (s *testSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.cur.data = b
	s.relay.mu.Lock()
	s.relay.msgs = append(s.relay.msgs, s.cur)
	s.relay.mu.Unlock()
	return nil
}

func (s *testSession) Reset()        { s.cur.from, s.cur.to, s.cur.data = "", nil, nil }
func (s *testSession) Logout() error { return nil }

// startRelay serves relay on 127.0.0.1. With tlsConfig and !implicit it
// offers STARTTLS; with implicit it speaks TLS from the first byte.
func startRelay(t *testing.T, relay *testRelay, tlsConfig *tls.Config, implicit bool) string {
	t.Helper()
	srv := smtp.NewServer(relay)
	srv.Domain = "relay.test"
	srv.ReadTimeout = 5 * time.Second
	srv.WriteTimeout = 5 * time.Second
	srv.ErrorLog = log.New(io.Discard, "", 0)
	srv.TLSConfig = tlsConfig
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if implicit {
		ln = tls.NewListener(ln, tlsConfig)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func newTestEmailSender(t *testing.T, cfg EmailConfig) *EmailSender {
	t.Helper()
	if cfg.From == "" {
		cfg.From = "Callroom <callroom@hospital.example>"
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	s, err := NewEmailSender(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.now = func() time.Time { return time.Date(2026, 3, 1, 14, 5, 30, 0, time.UTC) }
	return s
}

func TestEmailSendSTARTTLSWithAuth(t *testing.T) {
	serverTLS, pool := selfSignedTLS(t)
	relay := &testRelay{requireAuth: true, username: "callroom", password: "s3cret"}
	addr := startRelay(t, relay, serverTLS, false)
	s := newTestEmailSender(t, EmailConfig{
		Addr:      addr,
		Username:  "callroom",
		Password:  "s3cret",
		HeloName:  "callroom.hospital.example",
		TLSConfig: &tls.Config{RootCAs: pool},
	})
	n := testNotice()

	out, err := s.Send(context.Background(), "Dr Jane Doe <jane.doe@hospital.example>", n)
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if !out.Delivered() || out.Detail == "" {
		t.Fatalf("outcome = %+v, want delivered with the relay's reply as detail", out)
	}

	msgs := relay.messages()
	if len(msgs) != 1 {
		t.Fatalf("relay got %d messages, want 1", len(msgs))
	}
	got := msgs[0]
	if !got.tls || !got.authed {
		t.Errorf("tls=%v authed=%v, want both", got.tls, got.authed)
	}
	if got.helo != "callroom.hospital.example" {
		t.Errorf("helo = %q", got.helo)
	}
	if got.from != "callroom@hospital.example" || len(got.to) != 1 || got.to[0] != "jane.doe@hospital.example" {
		t.Errorf("envelope = %q -> %q", got.from, got.to)
	}
	checkMessage(t, got.data, n, `"Dr Jane Doe" <jane.doe@hospital.example>`)
}

// checkMessage asserts the exact header set and the exact decoded body: any
// text beyond what the Notice carries fails the test.
func checkMessage(t *testing.T, data []byte, n Notice, wantTo string) {
	t.Helper()
	for i, b := range data {
		if b >= 0x80 {
			t.Fatalf("byte %d of the message is not 7-bit", i)
		}
	}
	for i, line := range strings.Split(string(data), "\r\n") {
		if len(line) > 78 {
			t.Errorf("line %d is %d characters long", i, len(line))
		}
		if strings.Contains(line, "\n") || strings.Contains(line, "\r") {
			t.Errorf("line %d has a bare CR or LF", i)
		}
	}
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("not an RFC 5322 message: %v", err)
	}
	wantHeaders := map[string]string{
		"From":                      `"Callroom" <callroom@hospital.example>`,
		"To":                        wantTo,
		"Reply-To":                  "<" + n.ReplyTo + ">",
		"Subject":                   "[STAT] Page from callroom — Cardiology",
		"Date":                      "Sun, 01 Mar 2026 14:05:30 +0000",
		"Message-Id":                "<" + n.NotificationID.String() + "@callroom>",
		"Mime-Version":              "1.0",
		"Content-Type":              "text/plain; charset=utf-8",
		"Content-Transfer-Encoding": "quoted-printable",
		"Auto-Submitted":            "auto-generated",
		"X-Auto-Response-Suppress":  "OOF, AutoReply",
		"X-Callroom-Page":           n.PageID.String(),
		"X-Callroom-Priority":       "stat",
		"Importance":                "high",
		"X-Priority":                "1 (Highest)",
	}
	var names []string
	for k := range msg.Header {
		names = append(names, k)
	}
	sort.Strings(names)
	if len(names) != len(wantHeaders) {
		t.Errorf("header fields = %v, want exactly %d fields", names, len(wantHeaders))
	}
	dec := new(mime.WordDecoder)
	for k, want := range wantHeaders {
		vals := msg.Header[k]
		if len(vals) != 1 {
			t.Errorf("header %s appears %d times", k, len(vals))
			continue
		}
		got, err := dec.DecodeHeader(vals[0])
		if err != nil {
			t.Errorf("header %s: %v", k, err)
		}
		if got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	body, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
	if err != nil {
		t.Fatalf("body is not quoted-printable: %v", err)
	}
	wantBody := "STAT page from callroom\r\n" +
		"\r\n" +
		"Priority: STAT\r\n" +
		"Service:  Cardiology\r\n" +
		"Page:     " + n.PageID.String() + "\r\n" +
		"Paged at: 2026-03-01 14:05:09 UTC\r\n" +
		"\r\n" +
		"Open the page (sign-in required):\r\n" +
		n.Link + "\r\n" +
		"\r\n" +
		"Reply ACK to acknowledge.\r\n" +
		"\r\n" +
		"This notification contains no patient information by design.\r\n"
	if string(body) != wantBody {
		t.Errorf("body =\n%s\nwant\n%s", body, wantBody)
	}
}

func TestEmailImplicitTLS(t *testing.T) {
	serverTLS, pool := selfSignedTLS(t)
	relay := &testRelay{requireAuth: true, username: "u", password: "p"}
	addr := startRelay(t, relay, serverTLS, true)
	s := newTestEmailSender(t, EmailConfig{
		Addr: addr, Username: "u", Password: "p", ImplicitTLS: true,
		TLSConfig: &tls.Config{RootCAs: pool},
	})
	if _, err := s.Send(context.Background(), "oncall@hospital.example", testNotice()); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if msgs := relay.messages(); len(msgs) != 1 || !msgs[0].tls || !msgs[0].authed {
		t.Fatalf("relay got %+v, want one message over TLS after AUTH", msgs)
	}
}

func TestEmailPlaintextLoopbackRelay(t *testing.T) {
	relay := &testRelay{}
	addr := startRelay(t, relay, nil, false)
	s := newTestEmailSender(t, EmailConfig{Addr: addr})
	if _, err := s.Send(context.Background(), "oncall@hospital.example", testNotice()); err != nil {
		t.Fatalf("Send to a loopback relay without STARTTLS: %v", err)
	}
	if msgs := relay.messages(); len(msgs) != 1 || msgs[0].tls {
		t.Fatalf("relay got %+v, want one cleartext message", msgs)
	}
}

func TestEmailSendFailures(t *testing.T) {
	serverTLS, pool := selfSignedTLS(t)
	relay := &testRelay{rcptErr: map[string]*smtp.SMTPError{
		"gone@hospital.example": {Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "mailbox unavailable"},
		"busy@hospital.example": {Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"},
	}}
	plainAddr := startRelay(t, relay, nil, false)
	authRelay := &testRelay{requireAuth: true, username: "callroom", password: "right"}
	tlsAddr := startRelay(t, authRelay, serverTLS, false)

	tests := []struct {
		name          string
		cfg           EmailConfig
		to            string
		wantRetryable bool
		wantReason    string // prefix
	}{
		{"550 at RCPT is permanent", EmailConfig{Addr: plainAddr}, "gone@hospital.example", false, "smtp 550 5.1.1 mailbox unavailable"},
		{"451 at RCPT is retryable", EmailConfig{Addr: plainAddr}, "busy@hospital.example", true, "smtp 451 4.3.0 try again later"},
		{"relay down is retryable", EmailConfig{Addr: closedAddr(t)}, "oncall@hospital.example", true, "smtp: dial tcp: connection refused"},
		{"wrong password is permanent", EmailConfig{Addr: tlsAddr, Username: "callroom", Password: "wrong", TLSConfig: &tls.Config{RootCAs: pool}}, "oncall@hospital.example", false, "smtp 535 5.7.8"},
		{"untrusted certificate is permanent", EmailConfig{Addr: tlsAddr, Username: "callroom", Password: "right", TLSConfig: &tls.Config{RootCAs: x509.NewCertPool()}}, "oncall@hospital.example", false, "smtp: tls: "},
		{"credentials are never sent in cleartext", EmailConfig{Addr: plainAddr, Username: "callroom", Password: "right"}, "oncall@hospital.example", false, "smtp: refusing to send credentials without TLS"},
		{"implicit TLS against a STARTTLS port", EmailConfig{Addr: plainAddr, ImplicitTLS: true}, "oncall@hospital.example", false, "smtp: tls: remote did not answer with TLS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestEmailSender(t, tt.cfg)
			out, err := s.Send(context.Background(), tt.to, testNotice())
			de := asDeliveryError(t, err)
			if de.Retryable != tt.wantRetryable || !strings.HasPrefix(de.Reason, tt.wantReason) {
				t.Errorf("got retryable=%v reason=%q, want retryable=%v reason starting %q", de.Retryable, de.Reason, tt.wantRetryable, tt.wantReason)
			}
			if out != de.Outcome() || out.Status != StatusFailed {
				t.Errorf("outcome %+v does not mirror the error %+v", out, de)
			}
		})
	}
	if n := len(relay.messages()) + len(authRelay.messages()); n != 0 {
		t.Errorf("relays accepted %d messages, want none", n)
	}
}

func TestEmailTimeoutAndCancel(t *testing.T) {
	addr := silentServer(t) // accepts, never greets

	t.Run("timeout", func(t *testing.T) {
		s := newTestEmailSender(t, EmailConfig{Addr: addr, Timeout: 200 * time.Millisecond})
		start := time.Now()
		_, err := s.Send(context.Background(), "oncall@hospital.example", testNotice())
		de := asDeliveryError(t, err)
		if !de.Retryable || de.Reason != "smtp: timeout" {
			t.Errorf("got %+v, want retryable smtp: timeout", de)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("Send took %v with a 200ms timeout", d)
		}
	})
	t.Run("caller cancels", func(t *testing.T) {
		s := newTestEmailSender(t, EmailConfig{Addr: addr, Timeout: time.Minute})
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		_, err := s.Send(ctx, "oncall@hospital.example", testNotice())
		de := asDeliveryError(t, err)
		if !de.Retryable || de.Reason != "smtp: canceled" {
			t.Errorf("got %+v, want retryable smtp: canceled", de)
		}
	})
}

// A relay that sends bytes after "220" to STARTTLS could have them read as
// if they came over TLS; the sender must stop.
func TestEmailSTARTTLSResponseInjection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 512)
		io.WriteString(c, "220 evil ESMTP\r\n")
		c.Read(buf) // EHLO
		io.WriteString(c, "250-evil\r\n250 STARTTLS\r\n")
		c.Read(buf) // STARTTLS
		io.WriteString(c, "220 go ahead\r\n250 injected\r\n")
		c.Read(buf)
	}()
	s := newTestEmailSender(t, EmailConfig{Addr: ln.Addr().String()})
	_, err = s.Send(context.Background(), "oncall@hospital.example", testNotice())
	de := asDeliveryError(t, err)
	if de.Retryable || de.Reason != "smtp: relay sent data after its STARTTLS reply" {
		t.Errorf("got %+v", de)
	}
}

func TestEmailRefusesBadInputBeforeConnecting(t *testing.T) {
	// The address is closed: had Send connected, the failure would be a
	// retryable dial error instead of the permanent one expected.
	s := newTestEmailSender(t, EmailConfig{Addr: closedAddr(t)})
	withService := func(v string) Notice { n := testNotice(); n.ServiceName = v; return n }
	withReplyTo := func(v string) Notice { n := testNotice(); n.ReplyTo = v; return n }
	withLink := func(v string) Notice { n := testNotice(); n.Link = v; return n }
	tests := []struct {
		name   string
		to     string
		n      Notice
		reason string
	}{
		{"CRLF in service name", "a@hospital.example", withService("Cardiology\r\nBcc: x@evil.example"), "invalid notice: service name contains control characters"},
		{"LF in reply-to", "a@hospital.example", withReplyTo("ack@x.example\nBcc: x@evil.example"), "invalid notice: reply-to is not a single email address"},
		{"CR in link", "a@hospital.example", withLink("https://callroom.example.org/p\rX-Evil: 1"), "invalid notice: link contains whitespace or control characters"},
		{"CRLF in recipient", "a@hospital.example\r\nBcc: x@evil.example", testNotice(), "smtp: invalid recipient address"},
		{"two recipients", "a@hospital.example, b@hospital.example", testNotice(), "smtp: invalid recipient address"},
		{"unknown priority", "a@hospital.example", func() Notice { n := testNotice(); n.Priority = "STAT"; return n }(), "invalid notice: priority is not one of routine, urgent, asap, stat"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Send(context.Background(), tt.to, tt.n)
			de := asDeliveryError(t, err)
			if de.Retryable || de.Reason != tt.reason {
				t.Errorf("got retryable=%v reason=%q, want permanent %q", de.Retryable, de.Reason, tt.reason)
			}
		})
	}
}

func TestStarttlsPolicy(t *testing.T) {
	tests := []struct {
		host    string
		offered bool
		allowed bool
	}{
		{"192.0.2.1", true, true},
		{"192.0.2.1", false, false},
		{"10.0.0.25", false, false},
		{"smtp.hospital.example", false, false},
		{"localhost.hospital.example", false, false},
		{"2001:db8::25", false, false},
		{"127.0.0.1", false, true},
		{"127.10.20.30", false, true},
		{"::1", false, true},
		{"[::1]", false, true},
		{"::ffff:127.0.0.1", false, true},
		{"localhost", false, true},
		{"LocalHost.", false, true},
	}
	for _, tt := range tests {
		err := starttlsPolicy(tt.host, tt.offered)
		if (err == nil) != tt.allowed {
			t.Errorf("starttlsPolicy(%q, offered=%v) = %v, want allowed=%v", tt.host, tt.offered, err, tt.allowed)
		}
		if err != nil && IsRetryable(err) {
			t.Errorf("starttlsPolicy(%q) refusal is retryable; it is a configuration error", tt.host)
		}
	}
}

func TestNewEmailSenderRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  EmailConfig
	}{
		{"no port", EmailConfig{Addr: "smtp.hospital.example", From: "c@hospital.example"}},
		{"no from", EmailConfig{Addr: "127.0.0.1:25"}},
		{"from with CRLF", EmailConfig{Addr: "127.0.0.1:25", From: "c@hospital.example\r\nBcc: x@evil.example"}},
		{"user without password", EmailConfig{Addr: "127.0.0.1:25", From: "c@hospital.example", Username: "u"}},
		{"helo with space", EmailConfig{Addr: "127.0.0.1:25", From: "c@hospital.example", HeloName: "a b"}},
		{"negative timeout", EmailConfig{Addr: "127.0.0.1:25", From: "c@hospital.example", Timeout: -time.Second}},
	}
	for _, tt := range tests {
		if _, err := NewEmailSender(tt.cfg); err == nil {
			t.Errorf("%s: NewEmailSender accepted %+v", tt.name, tt.cfg)
		}
	}
	cfg := &tls.Config{}
	if _, err := NewEmailSender(EmailConfig{Addr: "127.0.0.1:25", From: "c@hospital.example", TLSConfig: cfg}); err != nil {
		t.Fatal(err)
	}
	if cfg.ServerName != "" || cfg.MinVersion != 0 {
		t.Error("NewEmailSender modified the caller's tls.Config")
	}
}

func TestClassifySMTPReplyCodes(t *testing.T) {
	tests := []struct {
		err       *smtp.SMTPError
		retryable bool
		reason    string
	}{
		{&smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 4, 2}, Message: "closing"}, true, "smtp 421 4.4.2 closing"},
		{&smtp.SMTPError{Code: 452, Message: "insufficient storage"}, true, "smtp 452 insufficient storage"},
		{&smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "rejected\r\nsecond line"}, false, "smtp 554 5.7.1 rejected"},
		{&smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "auth required"}, false, "smtp 530 5.7.0 auth required"},
	}
	for _, tt := range tests {
		de := classifySMTP(context.Background(), tt.err)
		if de.Retryable != tt.retryable || de.Reason != tt.reason || !errors.Is(de, tt.err) {
			t.Errorf("classifySMTP(%v) = %+v, want retryable=%v reason=%q", tt.err, de, tt.retryable, tt.reason)
		}
	}
}

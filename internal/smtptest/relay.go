// Package smtptest runs a real SMTP relay (go-smtp) in a test, so what
// callroom sends by email is checked as it crossed the wire.
package smtptest

import (
	"io"
	"log"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// Mail is one message a relay accepted.
type Mail struct {
	From string
	To   []string
	Data string // the whole message, headers and body, as sent
}

// Relay is an in-process SMTP server on 127.0.0.1 that keeps every message it
// accepts. It offers neither TLS nor AUTH: callroom allows that for a
// loopback relay only.
type Relay struct {
	Addr string

	mu      sync.Mutex
	msgs    []Mail
	arrived chan struct{}
}

// StartRelay runs a relay until the test ends.
func StartRelay(t testing.TB) *Relay {
	t.Helper()
	r := &Relay{arrived: make(chan struct{}, 1)}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &session{relay: r}, nil }))
	srv.Domain = "relay.test"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	srv.ErrorLog = log.New(io.Discard, "", 0)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.Addr = ln.Addr().String()
	go srv.Serve(ln) //nolint:errcheck
	t.Cleanup(func() { srv.Close() })
	return r
}

// Messages returns what the relay accepted so far.
func (r *Relay) Messages() []Mail {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.msgs)
}

// WaitFor waits up to timeout for a message to a recipient (compared as
// given) and returns it.
func (r *Relay) WaitFor(t testing.TB, to string, timeout time.Duration) Mail {
	t.Helper()
	return r.WaitMatch(t, "email to "+to, timeout, func(m Mail) bool { return slices.Contains(m.To, to) })
}

// WaitMatch waits up to timeout for a message match accepts and returns the
// first one; what names it in the failure.
func (r *Relay) WaitMatch(t testing.TB, what string, timeout time.Duration, match func(Mail) bool) Mail {
	t.Helper()
	deadline := time.After(timeout)
	for {
		for _, m := range r.Messages() {
			if match(m) {
				return m
			}
		}
		select {
		case <-r.arrived:
		case <-deadline:
			t.Fatalf("no %s within %s", what, timeout)
		}
	}
}

type session struct {
	relay *Relay
	cur   Mail
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error { s.cur.From = from; return nil }

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.cur.To = append(s.cur.To, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.cur.Data = string(b)
	s.relay.mu.Lock()
	s.relay.msgs = append(s.relay.msgs, s.cur)
	s.relay.mu.Unlock()
	select {
	case s.relay.arrived <- struct{}{}:
	default:
	}
	return nil
}

func (s *session) Reset()        { s.cur = Mail{} }
func (s *session) Logout() error { return nil }

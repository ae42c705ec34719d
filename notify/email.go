package notify

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/mail"
	"net/netip"
	"net/textproto"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/google/uuid"
)

// DefaultEmailTimeout bounds one whole SMTP attempt (dial, TLS, every command
// and the wait after the final dot) when EmailConfig.Timeout is zero.
const DefaultEmailTimeout = 30 * time.Second

// EmailConfig describes the hospital's SMTP relay. Callroom submits to a
// relay and never talks to recipients' MX hosts: the relay owns queuing,
// DKIM and bounce handling.
type EmailConfig struct {
	// Addr is the relay as host:port, e.g. "smtp.hospital.example:587".
	Addr string
	// Username and Password enable AUTH PLAIN. Credentials are only ever
	// sent over TLS; an attempt that would send them in cleartext fails.
	Username string
	Password string
	// From is the sender, optionally with a display name:
	// "Callroom <callroom@hospital.example>".
	From string
	// HeloName is sent in EHLO. Defaults to "localhost"; set it to this
	// host's FQDN for relays that check HELO names.
	HeloName string
	// Timeout bounds one attempt; DefaultEmailTimeout when zero.
	Timeout time.Duration
	// ImplicitTLS connects with TLS from the first byte (port 465,
	// "submissions") instead of upgrading with STARTTLS.
	ImplicitTLS bool
	// TLSConfig is used for STARTTLS and implicit TLS, mainly to set RootCAs
	// for a relay with a private CA. ServerName defaults to the host in Addr.
	TLSConfig *tls.Config
}

// EmailSender sends one notification email per Send call through the relay.
// It is safe for concurrent use; every Send opens its own connection, since
// paging volume is low and a pooled connection is one more thing to go
// stale at 3 a.m.
type EmailSender struct {
	addr      string
	host      string
	from      *mail.Address
	helo      string
	username  string
	password  string
	timeout   time.Duration
	implicit  bool
	tlsConfig *tls.Config
	now       func() time.Time
}

// NewEmailSender checks cfg and returns a sender. Mistakes found here are
// configuration errors, reported at startup rather than as failed pages.
func NewEmailSender(cfg EmailConfig) (*EmailSender, error) {
	host, port, err := net.SplitHostPort(cfg.Addr)
	if err != nil || host == "" || port == "" {
		return nil, fmt.Errorf("notify: email relay address %q is not host:port", cfg.Addr)
	}
	from, err := parseAddress(cfg.From)
	if err != nil {
		return nil, fmt.Errorf("notify: email from address: %w", err)
	}
	helo := cfg.HeloName
	if helo == "" {
		helo = "localhost"
	}
	if hasControl(helo) || strings.ContainsAny(helo, " ") {
		return nil, errors.New("notify: email helo name contains spaces or control characters")
	}
	if (cfg.Username == "") != (cfg.Password == "") {
		return nil, errors.New("notify: email username and password must be set together")
	}
	if cfg.Timeout < 0 {
		return nil, errors.New("notify: email timeout is negative")
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = DefaultEmailTimeout
	}
	var tlsConfig *tls.Config
	if cfg.TLSConfig != nil {
		tlsConfig = cfg.TLSConfig.Clone()
	} else {
		tlsConfig = &tls.Config{}
	}
	if tlsConfig.ServerName == "" {
		// go-smtp only fills this in for connections it dials itself.
		tlsConfig.ServerName = host
	}
	if tlsConfig.MinVersion == 0 {
		tlsConfig.MinVersion = tls.VersionTLS12
	}
	return &EmailSender{
		addr:      cfg.Addr,
		host:      host,
		from:      from,
		helo:      helo,
		username:  cfg.Username,
		password:  cfg.Password,
		timeout:   timeout,
		implicit:  cfg.ImplicitTLS,
		tlsConfig: tlsConfig,
		now:       time.Now,
	}, nil
}

// Send makes one attempt to hand a notification email for n to the relay,
// addressed to the single recipient to.
//
// On success the Outcome is delivered and its Detail is the relay's reply to
// the final dot (usually carrying the queue id); the error is nil. On
// failure the error is a *DeliveryError and the Outcome mirrors it:
//
//   - permanent: SMTP 5xx (e.g. 550 unknown mailbox, 535 bad credentials),
//     a non-loopback relay that does not offer STARTTLS, an untrusted
//     certificate, an invalid notice or recipient address;
//   - retryable: SMTP 4xx, refused or dropped connections, timeouts and
//     cancellation.
//
// A timeout after the message was sent but before the relay confirmed it
// is reported as retryable, so the recipient can get the email twice; the
// Message-ID is the same both times.
func (s *EmailSender) Send(ctx context.Context, to string, n Notice) (Outcome, error) {
	if err := n.Validate(); err != nil {
		return failure(permanent(err, "invalid notice: %s", err))
	}
	rcpt, err := parseAddress(to)
	if err != nil {
		return failure(permanent(err, "smtp: invalid recipient address"))
	}
	msg, err := composeEmail(s.from, rcpt, n, s.now())
	if err != nil {
		return failure(permanent(err, "smtp: cannot compose message: %s", err))
	}

	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	detail, err := s.deliver(ctx, msg)
	if err != nil {
		return failure(classifySMTP(ctx, err))
	}
	return Outcome{Status: StatusDelivered, Detail: cleanRemoteText(detail)}, nil
}

// SendNote makes one attempt to send a short plain-text email that is not a
// page notification, such as the mail gateway's answer to a reply that could
// not act ("the page was already acknowledged"). Like notifications, notes
// must carry no PHI; the caller writes the text. Errors are *DeliveryError.
func (s *EmailSender) SendNote(ctx context.Context, to, subject, body string) error {
	rcpt, err := parseAddress(to)
	if err != nil {
		return permanent(err, "smtp: invalid recipient address")
	}
	msg, err := compose(s.from, rcpt, nil, subject, body, s.now(), "<"+uuid.NewString()+"@callroom>", nil)
	if err != nil {
		return permanent(err, "smtp: cannot compose message: %s", err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if _, err := s.deliver(ctx, msg); err != nil {
		return classifySMTP(ctx, err)
	}
	return nil
}

// deliver runs one SMTP session and returns the relay's reply to the final
// dot.
func (s *EmailSender) deliver(ctx context.Context, msg *emailMessage) (string, error) {
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", s.addr)
	if err != nil {
		return "", err
	}
	defer raw.Close()
	// go-smtp sets a fresh deadline per command and clears it afterwards;
	// clamping keeps every step inside this attempt's deadline, and closing
	// on cancellation unblocks whatever step is in progress.
	deadline, _ := ctx.Deadline()
	conn := &deadlineConn{Conn: raw, limit: deadline}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		return "", err
	}
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()

	var (
		c      *smtp.Client
		secure bool
	)
	if s.implicit {
		tc := tls.Client(conn, s.tlsConfig)
		if err := tc.HandshakeContext(ctx); err != nil {
			return "", err
		}
		c, secure = s.newClient(tc), true
	} else {
		c = s.newClient(conn)
	}
	if err := c.Hello(s.helo); err != nil {
		return "", err
	}
	if !secure {
		offered, _ := c.Extension("STARTTLS")
		if err := starttlsPolicy(s.host, offered); err != nil {
			s.quit(c)
			return "", err
		}
		if offered {
			if c, err = s.startTLS(ctx, conn); err != nil {
				return "", err
			}
			secure = true
		}
	}

	// From here on the session is healthy; leave it politely on failure so
	// the relay does not log an aborted connection.
	ok := false
	defer func() {
		if !ok {
			s.quit(c)
		}
	}()
	if s.username != "" {
		if !secure {
			return "", permanent(nil, "smtp: refusing to send credentials without TLS")
		}
		if !c.SupportsAuth(sasl.Plain) {
			return "", permanent(nil, "smtp: relay does not offer AUTH PLAIN")
		}
		if err := c.Auth(sasl.NewPlainClient("", s.username, s.password)); err != nil {
			return "", err
		}
	}
	var opts *smtp.MailOptions
	if !isASCII(msg.envelopeFrom) || !isASCII(msg.envelopeTo) {
		if supported, _ := c.Extension("SMTPUTF8"); !supported {
			return "", permanent(nil, "smtp: relay does not support SMTPUTF8 for a non-ASCII address")
		}
		opts = &smtp.MailOptions{UTF8: true}
	}
	if err := c.Mail(msg.envelopeFrom, opts); err != nil {
		return "", err
	}
	if err := c.Rcpt(msg.envelopeTo, nil); err != nil {
		return "", err
	}
	w, err := c.Data()
	if err != nil {
		return "", err
	}
	if _, err := w.Write(msg.data); err != nil {
		return "", err
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return "", err
	}
	ok = true
	s.quit(c) // the message is queued; a failed QUIT changes nothing
	return resp.StatusText, nil
}

func (s *EmailSender) newClient(conn net.Conn) *smtp.Client {
	c := smtp.NewClient(conn)
	c.CommandTimeout = s.timeout
	c.SubmissionTimeout = s.timeout
	return c
}

// quitTimeout bounds the courtesy QUIT so it cannot eat the attempt's budget.
const quitTimeout = 2 * time.Second

func (s *EmailSender) quit(c *smtp.Client) {
	c.CommandTimeout = quitTimeout
	_ = c.Quit()
}

// startTLS issues STARTTLS on a session that has already said EHLO and
// returns a client for the encrypted session, which has said EHLO again.
//
// go-smtp keeps its STARTTLS private and only offers it bundled with an EHLO
// as "localhost" and no way to fall back, so the command is sent here. The
// new client expects a greeting, as on a fresh connection; it is given a
// synthetic one, since after STARTTLS the server sends none.
func (s *EmailSender) startTLS(ctx context.Context, conn net.Conn) (*smtp.Client, error) {
	if _, err := io.WriteString(conn, "STARTTLS\r\n"); err != nil {
		return nil, err
	}
	br := bufio.NewReader(conn)
	if _, _, err := textproto.NewReader(br).ReadResponse(220); err != nil {
		var te *textproto.Error
		if errors.As(err, &te) {
			return nil, &smtp.SMTPError{Code: te.Code, Message: te.Msg}
		}
		return nil, err
	}
	if br.Buffered() > 0 {
		// Plaintext sent ahead of the handshake would otherwise be
		// mistaken for protected data (the STARTTLS injection attacks).
		return nil, permanent(nil, "smtp: relay sent data after its STARTTLS reply")
	}
	tc := tls.Client(conn, s.tlsConfig)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, err
	}
	c := s.newClient(&greetedConn{Conn: tc, r: io.MultiReader(strings.NewReader("220 TLS established\r\n"), tc)})
	if err := c.Hello(s.helo); err != nil {
		return nil, err
	}
	return c, nil
}

// starttlsPolicy decides whether a session may continue without TLS.
// Cleartext is allowed only to a loopback relay (a local MTA on the same
// host), where there is no network to eavesdrop on. Anywhere else a relay
// without STARTTLS is a configuration problem that retrying cannot fix, so
// the failure is permanent and escalation moves on.
func starttlsPolicy(host string, offered bool) error {
	if offered || isLoopbackHost(host) {
		return nil
	}
	return permanent(nil, "smtp: relay does not offer STARTTLS; refusing cleartext to a non-loopback relay")
}

// isLoopbackHost reports whether host names this machine by construction:
// "localhost" or a literal loopback address. Other names are not resolved,
// because DNS could point them anywhere.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
	return err == nil && ip.Unmap().IsLoopback()
}

// classifySMTP turns an error from deliver into a DeliveryError: SMTP 4xx
// replies are retryable and 5xx replies permanent (RFC 5321 section 4.2.1);
// everything below SMTP goes to classifyTransport.
func classifySMTP(ctx context.Context, err error) *DeliveryError {
	var de *DeliveryError
	if errors.As(err, &de) {
		return de
	}
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		reason := smtpReason(se)
		de := retryable(err, "%s", reason)
		if se.Code >= 500 {
			de = permanent(err, "%s", reason)
		}
		de.Detail = fmt.Sprintf("smtp %d", se.Code)
		return de
	}
	return classifyTransport(ctx, "smtp", err)
}

// smtpReason renders a reply as "smtp 550 5.1.1 mailbox unavailable".
func smtpReason(se *smtp.SMTPError) string {
	r := fmt.Sprintf("smtp %d", se.Code)
	if ec := se.EnhancedCode; ec[0] > 0 {
		r += fmt.Sprintf(" %d.%d.%d", ec[0], ec[1], ec[2])
	}
	if m := cleanRemoteText(se.Message); m != "" {
		r += " " + m
	}
	return r
}

// deadlineConn never lets a deadline be later than limit, or be cleared,
// so every read and write of the attempt ends by the attempt's deadline.
type deadlineConn struct {
	net.Conn
	limit time.Time
}

func (d *deadlineConn) clamp(t time.Time) time.Time {
	if !d.limit.IsZero() && (t.IsZero() || t.After(d.limit)) {
		return d.limit
	}
	return t
}

func (d *deadlineConn) SetDeadline(t time.Time) error { return d.Conn.SetDeadline(d.clamp(t)) }

func (d *deadlineConn) SetReadDeadline(t time.Time) error {
	return d.Conn.SetReadDeadline(d.clamp(t))
}

func (d *deadlineConn) SetWriteDeadline(t time.Time) error {
	return d.Conn.SetWriteDeadline(d.clamp(t))
}

// greetedConn replays a greeting before the connection's own data.
type greetedConn struct {
	net.Conn
	r io.Reader
}

func (g *greetedConn) Read(p []byte) (int, error) { return g.r.Read(p) }

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

package mailgateway

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/callroom/callroom/audit"
)

// session is one SMTP conversation. go-smtp makes a new one after STARTTLS,
// so what it knows about TLS and authentication is never stale.
type session struct {
	srv        *Server
	remote     netip.Addr
	tls        bool
	authUser   string // set by a successful AUTH
	from       string // envelope sender, lower case; "" for the null sender
	fromSet    bool
	recipients []recipient
}

func (s *Server) newSession(c *smtp.Conn) (smtp.Session, error) {
	sess := &session{srv: s}
	if ap, err := netip.ParseAddrPort(c.Conn().RemoteAddr().String()); err == nil {
		sess.remote = ap.Addr().Unmap()
	} else if tcp, ok := c.Conn().RemoteAddr().(*net.TCPAddr); ok {
		sess.remote, _ = netip.AddrFromSlice(tcp.IP)
		sess.remote = sess.remote.Unmap()
	}
	_, sess.tls = c.TLSConnectionState()
	return sess, nil
}

// actor is the audit actor for work done on behalf of this client.
func (se *session) actor() audit.Actor {
	return audit.Actor{ClientAddr: "smtp:" + se.remote.String()}
}

func (se *session) fromAllowedNetwork() bool {
	for _, p := range se.srv.cfg.AllowedNetworks {
		if p.Contains(se.remote) {
			return true
		}
	}
	return false
}

// AuthMechanisms offers PLAIN when internal senders are configured. go-smtp
// only advertises and accepts it over TLS.
func (se *session) AuthMechanisms() []string {
	if !se.srv.creds.any() {
		return nil
	}
	return []string{sasl.Plain}
}

func (se *session) Auth(mech string) (sasl.Server, error) {
	if mech != sasl.Plain || !se.srv.creds.any() {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if (identity != "" && identity != username) || !se.srv.creds.check(username, password) {
			se.srv.log.Warn("smtp authentication failed", "remote", se.remote.String())
			return smtp.ErrAuthFailed
		}
		se.authUser = username
		return nil
	}), nil
}

// Mail admits the client: authenticated, or from an allowed network.
func (se *session) Mail(from string, _ *smtp.MailOptions) error {
	if se.authUser == "" && !se.fromAllowedNetwork() {
		return errAuthRequired
	}
	if from != "" && (!strings.Contains(from, "@") || len(from) > 254) {
		return errBadSenderSyntax
	}
	se.from, se.fromSet = strings.ToLower(from), true
	se.recipients = nil
	return nil
}

// senderMayPage applies AllowedSenders to unauthenticated clients.
func (se *session) senderMayPage() error {
	if se.from == "" {
		return errNullSender
	}
	if se.authUser != "" || len(se.srv.cfg.AllowedSenders) == 0 {
		return nil
	}
	_, domain, _ := strings.Cut(se.from, "@")
	for _, a := range se.srv.cfg.AllowedSenders {
		if a == se.from || (strings.HasPrefix(a, "@") && a[1:] == domain) {
			return nil
		}
	}
	return errSenderNotAllowed
}

// Rcpt resolves each recipient now, so an unknown one is refused before the
// client sends any data.
func (se *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	ctx, cancel := context.WithTimeout(se.srv.base, se.srv.cfg.DeliveryTimeout)
	defer cancel()
	r, err := se.srv.resolve(ctx, se, to)
	if err != nil {
		var smtpErr *smtp.SMTPError
		if !errors.As(err, &smtpErr) {
			se.srv.log.Error("resolving a recipient", "remote", se.remote.String(), "err", err.Error())
			return errTemporary
		}
		return err
	}
	// The same service or reply address twice is one page or one action.
	if !slices.ContainsFunc(se.recipients, r.same) {
		se.recipients = append(se.recipients, r)
	}
	return nil
}

// Data reads the whole message (it is bounded by MaxMessageBytes), then
// creates the pages and performs the replies. It returns nil, which go-smtp
// answers 250, only after they committed.
func (se *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		// go-smtp's own error for the size limit (552) goes back as it is:
		// swallowing it would answer 250 to a truncated message.
		return err
	}
	msg, err := ParseMessage(raw)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(se.srv.base, se.srv.cfg.DeliveryTimeout)
	defer cancel()
	return se.srv.deliver(ctx, se, msg)
}

func (se *session) Reset() {
	se.from, se.fromSet, se.recipients = "", false, nil
}

func (se *session) Logout() error { return nil }

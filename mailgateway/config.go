package mailgateway

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"time"
)

// Defaults for the zero values of Config.
const (
	DefaultMaxMessageBytes = 1 << 20
	DefaultMaxRecipients   = 50
	DefaultMaxConnections  = 100
	DefaultTimeout         = 60 * time.Second
	// DefaultDeliveryTimeout bounds the database work for one message. It is
	// well under the sender's own DATA timeout (RFC 5321 suggests 10
	// minutes), so a stuck database turns into a 451 the sender retries,
	// not a dropped connection.
	DefaultDeliveryTimeout = 30 * time.Second
	// MinReplySecret is the shortest reply secret accepted, in bytes.
	MinReplySecret = 32
)

// Config is how the gateway listens and whom it accepts mail from.
type Config struct {
	// Addr is where the command listens (CALLROOM_SMTP_ADDR); the gateway
	// itself serves any listener it is given.
	Addr string
	// Domains are the domains whose addresses the gateway accepts, e.g.
	// "pager.example.org". Mail for any other domain is refused: the
	// gateway never relays.
	Domains []string
	// Hostname is the name in the greeting; the first domain when empty.
	Hostname string
	// TLSConfig enables STARTTLS. LoadTLS builds it from a certificate and
	// key file.
	TLSConfig *tls.Config
	// Credentials are the internal senders that may AUTH PLAIN (after
	// STARTTLS only) and then send from anywhere.
	Credentials []Credential
	// AllowedNetworks may send without authenticating. Loopback only when
	// nil; an empty non-nil slice allows no network.
	AllowedNetworks []netip.Prefix
	// AllowedSenders, when set, are the envelope senders an unauthenticated
	// client may page from: whole addresses ("analyzer@lab.example.org") or
	// domains ("@lab.example.org"). Replies to notifications are not
	// subject to it.
	AllowedSenders []string
	// MaxMessageBytes bounds one message (DefaultMaxMessageBytes).
	MaxMessageBytes int64
	// MaxRecipients bounds RCPT commands per message (DefaultMaxRecipients).
	MaxRecipients int
	// MaxConnections bounds concurrent connections (DefaultMaxConnections);
	// further clients wait in the listen backlog.
	MaxConnections int
	// ReadTimeout and WriteTimeout bound each command and reply
	// (DefaultTimeout). The whole DATA transfer must arrive within
	// ReadTimeout of the DATA command.
	ReadTimeout, WriteTimeout time.Duration
	// DeliveryTimeout bounds the database work for one message
	// (DefaultDeliveryTimeout).
	DeliveryTimeout time.Duration
	// ReplySecret keys the reply addresses (at least MinReplySecret bytes).
	// Empty disables acknowledge-by-reply: reply+ addresses are unknown.
	ReplySecret []byte
	// PublicURL, when set, puts a link to the page in emails the gateway
	// sends back.
	PublicURL string
}

// Credential is one internal sender allowed to authenticate.
type Credential struct {
	Username string
	// Hash is an argon2id hash from auth.HashPassword, or a bcrypt hash.
	Hash string
}

func (c *Config) withDefaults() {
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if c.MaxRecipients == 0 {
		c.MaxRecipients = DefaultMaxRecipients
	}
	if c.MaxConnections == 0 {
		c.MaxConnections = DefaultMaxConnections
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = DefaultTimeout
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultTimeout
	}
	if c.DeliveryTimeout == 0 {
		c.DeliveryTimeout = DefaultDeliveryTimeout
	}
	if c.AllowedNetworks == nil {
		c.AllowedNetworks = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	}
	// Copies, so normalising never changes the caller's slices.
	domains := make([]string, len(c.Domains))
	for i, d := range c.Domains {
		domains[i] = normalizeDomain(d)
	}
	c.Domains = domains
	if c.Hostname == "" && len(c.Domains) > 0 {
		c.Hostname = c.Domains[0]
	}
	senders := make([]string, len(c.AllowedSenders))
	for i, s := range c.AllowedSenders {
		senders[i] = strings.ToLower(strings.TrimSpace(s))
	}
	c.AllowedSenders = senders
}

// validate reports configuration mistakes at start-up rather than as
// refused pages at 3 a.m.
func (c *Config) validate() error {
	if len(c.Domains) == 0 {
		return errors.New("mailgateway: no domain to serve (CALLROOM_SMTP_DOMAINS)")
	}
	for _, d := range c.Domains {
		if d == "" || strings.ContainsAny(d, "@ \t\r\n") {
			return fmt.Errorf("mailgateway: %q is not a domain", d)
		}
	}
	if c.MaxMessageBytes < 1024 || c.MaxRecipients < 1 || c.MaxConnections < 1 {
		return errors.New("mailgateway: message size, recipient and connection limits must be positive")
	}
	if c.ReadTimeout < 0 || c.WriteTimeout < 0 || c.DeliveryTimeout < 0 {
		return errors.New("mailgateway: timeouts must not be negative")
	}
	if len(c.Credentials) > 0 && c.TLSConfig == nil {
		// AUTH is only offered after STARTTLS; without TLS the credentials
		// could never be used.
		return errors.New("mailgateway: SMTP credentials need a TLS certificate (CALLROOM_SMTP_TLS_CERT, CALLROOM_SMTP_TLS_KEY)")
	}
	seen := map[string]bool{}
	for _, cr := range c.Credentials {
		if cr.Username == "" || cr.Hash == "" {
			return errors.New("mailgateway: a credential needs a username and a hash")
		}
		if seen[cr.Username] {
			return fmt.Errorf("mailgateway: credential %q listed twice", cr.Username)
		}
		seen[cr.Username] = true
		if !strings.HasPrefix(cr.Hash, "$argon2id$") && !strings.HasPrefix(cr.Hash, "$2") {
			return fmt.Errorf("mailgateway: credential %q: hash is neither argon2id nor bcrypt", cr.Username)
		}
	}
	if len(c.ReplySecret) > 0 && len(c.ReplySecret) < MinReplySecret {
		return fmt.Errorf("mailgateway: reply secret must be at least %d bytes", MinReplySecret)
	}
	for _, s := range c.AllowedSenders {
		if s == "" || !strings.Contains(s, "@") {
			return fmt.Errorf("mailgateway: allowed sender %q is neither an address nor @domain", s)
		}
	}
	return nil
}

func normalizeDomain(d string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(d)), ".")
}

// LoadTLS reads a PEM certificate chain and key for STARTTLS.
func LoadTLS(certFile, keyFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("mailgateway: TLS certificate: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// ParseList splits a comma- or space-separated setting.
func ParseList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
}

// ParseNetworks parses a comma-separated list of CIDRs; a bare address is a
// single host.
func ParseNetworks(s string) ([]netip.Prefix, error) {
	out := []netip.Prefix{}
	for _, f := range ParseList(s) {
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("mailgateway: %q is neither a CIDR nor an address", f)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

// ParseCredentials reads "username:hash" lines; blank lines and lines
// starting with # are skipped. Hashes (argon2id PHC strings, bcrypt) contain
// no colon, so the first colon separates.
func ParseCredentials(r io.Reader) ([]Credential, error) {
	var out []Credential
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		if !ok || user == "" || hash == "" {
			return nil, fmt.Errorf("mailgateway: credentials line %d: want username:hash", n)
		}
		out = append(out, Credential{Username: user, Hash: hash})
	}
	return out, sc.Err()
}

// LoadCredentials reads ParseCredentials' format from a file
// (CALLROOM_SMTP_USERS_FILE), so hashes stay out of the environment.
func LoadCredentials(path string) ([]Credential, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("mailgateway: credentials: %w", err)
	}
	defer f.Close()
	return ParseCredentials(f)
}

// ParseSecret checks a reply secret from the environment.
func ParseSecret(s string) ([]byte, error) {
	if s == "" {
		return nil, nil
	}
	if len(s) < MinReplySecret {
		return nil, fmt.Errorf("mailgateway: reply secret must be at least %d bytes (e.g. openssl rand -hex 32)", MinReplySecret)
	}
	return []byte(s), nil
}

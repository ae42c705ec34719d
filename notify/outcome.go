package notify

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Status values of an Outcome. They are plain strings so the caller can store
// them as they are.
const (
	StatusDelivered = "delivered"
	StatusFailed    = "failed"
)

// Outcome is what one delivery attempt did, in a form the caller can record
// next to the notification without further interpretation. Nothing in it
// carries PHI: Reason and Detail come from the relay's or gateway's status
// line, never from message content.
type Outcome struct {
	Status     string        // StatusDelivered or StatusFailed
	Retryable  bool          // only meaningful when Status is StatusFailed
	Reason     string        // short and PHI-free, e.g. "smtp 550 5.1.1 mailbox unavailable", "webhook: HTTP 503"
	Detail     string        // e.g. the relay's "queued as" line or "HTTP 202"
	RetryAfter time.Duration // delay the remote side asked for; 0 when it asked for none
}

// Delivered reports whether the attempt handed the notification over.
func (o Outcome) Delivered() bool { return o.Status == StatusDelivered }

// DeliveryError is the only error type the senders return, so a job can
// decide with one errors.As whether to retry, snooze or give up and escalate
// to the next contact method.
//
// Retryable is false for failures that repeating cannot fix (a rejected
// mailbox, a 4xx from a gateway, a relay without STARTTLS, an invalid
// notice); giving up early on those lets escalation move on instead of
// burning the retry budget of a STAT page.
type DeliveryError struct {
	Retryable  bool
	Reason     string        // same PHI-free text as Outcome.Reason
	Detail     string        // same as Outcome.Detail, may be empty
	RetryAfter time.Duration // server-requested delay (Retry-After), 0 if none
	Err        error         // underlying cause for logs; may be nil
}

func (e *DeliveryError) Error() string {
	kind := "permanent"
	if e.Retryable {
		kind = "retryable"
	}
	return "notify: " + kind + ": " + e.Reason
}

func (e *DeliveryError) Unwrap() error { return e.Err }

// Outcome returns the failed Outcome that corresponds to e.
func (e *DeliveryError) Outcome() Outcome {
	return Outcome{
		Status:     StatusFailed,
		Retryable:  e.Retryable,
		Reason:     e.Reason,
		Detail:     e.Detail,
		RetryAfter: e.RetryAfter,
	}
}

// IsRetryable reports whether another attempt could succeed. nil is not
// retryable; an error that is not a *DeliveryError is treated as retryable,
// because for a page a duplicate is cheaper than a silent drop.
func IsRetryable(err error) bool {
	if err == nil {
		return false
	}
	var de *DeliveryError
	if errors.As(err, &de) {
		return de.Retryable
	}
	return true
}

// RetryAfter returns the delay the remote side asked for, if err carries one.
func RetryAfter(err error) (time.Duration, bool) {
	var de *DeliveryError
	if errors.As(err, &de) && de.RetryAfter > 0 {
		return de.RetryAfter, true
	}
	return 0, false
}

// failure builds the (Outcome, error) pair a sender returns on failure, so the
// two can never disagree.
func failure(de *DeliveryError) (Outcome, error) {
	return de.Outcome(), de
}

func permanent(err error, format string, args ...any) *DeliveryError {
	return &DeliveryError{Retryable: false, Reason: fmt.Sprintf(format, args...), Err: err}
}

func retryable(err error, format string, args ...any) *DeliveryError {
	return &DeliveryError{Retryable: true, Reason: fmt.Sprintf(format, args...), Err: err}
}

// maxReasonLen bounds text that comes from a remote server so one chatty
// relay cannot fill a database column or a log line.
const maxReasonLen = 160

// cleanRemoteText makes text from a remote status line safe to store: one
// line, no control characters, bounded length.
func cleanRemoteText(s string) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if len(s) > maxReasonLen {
		cut := maxReasonLen
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

// classifyTransport turns a failure below the protocol (dialing, TLS, a
// dropped or stalled connection) into a DeliveryError. ctx is the attempt's
// context: when it is done, the connection was torn down on purpose and the
// resulting "use of closed connection" would be a misleading reason.
//
// Everything here is retryable except TLS failures that point at
// configuration (an untrusted or mismatched certificate, a plaintext server
// on a TLS port): retrying those only delays escalation.
func classifyTransport(ctx context.Context, prefix string, err error) *DeliveryError {
	if ctxErr := ctx.Err(); ctxErr != nil {
		if errors.Is(ctxErr, context.DeadlineExceeded) {
			return retryable(err, "%s: timeout", prefix)
		}
		return retryable(err, "%s: canceled", prefix)
	}
	var (
		certErr      *tls.CertificateVerificationError
		unknownCA    x509.UnknownAuthorityError
		hostnameErr  x509.HostnameError
		invalidCert  x509.CertificateInvalidError
		recordErr    tls.RecordHeaderError
		dnsErr       *net.DNSError
		opErr        *net.OpError
		netErr       net.Error
		inner        error
		innermostErr = func(e error) error {
			for {
				u := errors.Unwrap(e)
				if u == nil {
					return e
				}
				e = u
			}
		}
	)
	switch {
	case errors.As(err, &unknownCA), errors.As(err, &hostnameErr), errors.As(err, &invalidCert):
		return permanent(err, "%s: tls: %s", prefix, cleanRemoteText(innermostErr(err).Error()))
	case errors.As(err, &certErr):
		return permanent(err, "%s: tls: certificate verification failed", prefix)
	case errors.As(err, &recordErr):
		return permanent(err, "%s: tls: remote did not answer with TLS", prefix)
	case errors.As(err, &netErr) && netErr.Timeout():
		return retryable(err, "%s: timeout", prefix)
	case errors.As(err, &dnsErr):
		return retryable(err, "%s: dns: %s", prefix, cleanRemoteText(dnsErr.Err))
	case errors.As(err, &opErr):
		inner = innermostErr(opErr.Err)
		return retryable(err, "%s: %s %s: %s", prefix, opErr.Op, opErr.Net, cleanRemoteText(inner.Error()))
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return retryable(err, "%s: connection closed by remote", prefix)
	default:
		return retryable(err, "%s: %s", prefix, cleanRemoteText(err.Error()))
	}
}

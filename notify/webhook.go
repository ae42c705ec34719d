package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/callroom/callroom/internal/peer"
)

// Webhook wire constants. Gateway authors match on these.
const (
	WebhookEvent           = "page.notify"
	HeaderIdempotencyKey   = "Idempotency-Key"
	HeaderWebhookTime      = "X-Callroom-Timestamp"
	HeaderWebhookSignature = "X-Callroom-Signature"
)

// DefaultWebhookTimeout bounds one webhook attempt when WebhookConfig.Timeout
// is zero. Gateways should answer fast and queue; a slow answer ties up a
// worker that could be paging someone else.
const DefaultWebhookTimeout = 10 * time.Second

// maxWebhookResponse is how much of a response body is read (and thrown
// away, so the connection can be reused). Nothing in it is needed, and a
// misbehaving gateway must not make us read without bound.
const maxWebhookResponse = 64 << 10

// minWebhookSecret is the shortest accepted HMAC key.
const minWebhookSecret = 16

// WebhookConfig describes one SMS or pager gateway endpoint.
type WebhookConfig struct {
	// URL receives the POST. It must be https, except for a loopback host
	// (a gateway sidecar on the same machine).
	URL string
	// Secret keys the HMAC-SHA256 signature; at least 16 bytes.
	Secret []byte
	// Timeout bounds one attempt; DefaultWebhookTimeout when zero.
	Timeout time.Duration
	// Client sends the request; when nil, one that keeps a connection open
	// per worker calling the gateway (peer.Transport). It
	// is copied, not modified: the copy never follows redirects.
	Client *http.Client
}

// WebhookPayload is the complete JSON body of a webhook. It is exported so
// Go integrators can decode it; it has no field for patient data and none
// may be added.
type WebhookPayload struct {
	Event          string    `json:"event"` // always WebhookEvent
	NotificationID uuid.UUID `json:"notification_id"`
	PageID         uuid.UUID `json:"page_id"`
	Priority       string    `json:"priority"`
	Service        string    `json:"service"` // empty for a page sent directly to a person
	Link           string    `json:"link"`
	CreatedAt      time.Time `json:"created_at"` // RFC 3339, UTC
}

// WebhookSender POSTs one signed JSON notification per Send call.
//
// # Signature scheme
//
// Each request carries
//
//	X-Callroom-Timestamp: <unix seconds at signing>
//	X-Callroom-Signature: sha256=<hex of HMAC-SHA256(secret, timestamp + "." + body)>
//
// where body is the exact request body bytes. A gateway verifies by
// recomputing the HMAC over the timestamp header, a literal ".", and the raw
// body, comparing in constant time, and rejecting timestamps more than a few
// minutes from its clock (which bounds replays). VerifyWebhookSignature does
// exactly this. The header may in future list several comma-separated
// "sha256=" values (during secret rotation); accept if any matches.
//
// Idempotency-Key is the notification id and is the same on every retry of
// the same notification, so a gateway can drop duplicates; the timestamp
// and signature change per attempt.
type WebhookSender struct {
	url     string
	secret  []byte
	timeout time.Duration
	client  *http.Client
	now     func() time.Time
}

// NewWebhookSender checks cfg and returns a sender.
func NewWebhookSender(cfg WebhookConfig) (*WebhookSender, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, errors.New("notify: webhook URL is not an absolute http(s) URL")
	}
	if u.Scheme == "http" && !isLoopbackHost(u.Hostname()) {
		return nil, errors.New("notify: webhook URL must use https unless the host is loopback")
	}
	if len(cfg.Secret) < minWebhookSecret {
		return nil, fmt.Errorf("notify: webhook secret must be at least %d bytes", minWebhookSecret)
	}
	if cfg.Timeout < 0 {
		return nil, errors.New("notify: webhook timeout is negative")
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = DefaultWebhookTimeout
	}
	// The notify queue's workers (30) may all be calling the gateway.
	client := &http.Client{Transport: peer.Transport(32)}
	if cfg.Client != nil {
		c := *cfg.Client
		client = &c
	}
	// A redirect is answered as a failure rather than followed: the signed
	// body must only go to the configured host, and a gateway that moved
	// needs its configuration fixed.
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &WebhookSender{
		url:     cfg.URL,
		secret:  bytes.Clone(cfg.Secret),
		timeout: timeout,
		client:  client,
		now:     time.Now,
	}, nil
}

// Send makes one attempt to POST n to the gateway.
//
// A 2xx answer means delivered (Outcome.Detail is "HTTP 2xx") and the error
// is nil. Otherwise the error is a *DeliveryError and the Outcome mirrors it:
//
//   - retryable: 5xx, 408, 425, 429, network errors, timeouts, cancellation;
//     a Retry-After header (seconds or HTTP date) becomes RetryAfter;
//   - permanent: any other 4xx, 3xx (redirects are not followed), an
//     untrusted certificate, an invalid notice.
func (s *WebhookSender) Send(ctx context.Context, n Notice) (Outcome, error) {
	if err := n.Validate(); err != nil {
		return failure(permanent(err, "invalid notice: %s", err))
	}
	body, err := json.Marshal(WebhookPayload{
		Event:          WebhookEvent,
		NotificationID: n.NotificationID,
		PageID:         n.PageID,
		Priority:       n.Priority,
		Service:        n.ServiceName,
		Link:           n.Link,
		CreatedAt:      n.CreatedAt.UTC(),
	})
	if err != nil {
		return failure(permanent(err, "webhook: cannot encode payload"))
	}

	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return failure(permanent(err, "webhook: cannot build request"))
	}
	timestamp := strconv.FormatInt(s.now().Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "callroom-notify")
	req.Header.Set(HeaderIdempotencyKey, n.NotificationID.String())
	req.Header.Set(HeaderWebhookTime, timestamp)
	req.Header.Set(HeaderWebhookSignature, SignWebhook(s.secret, timestamp, body))

	resp, err := s.client.Do(req)
	if err != nil {
		return failure(classifyTransport(ctx, "webhook", err))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxWebhookResponse))
	resp.Body.Close()

	if de := classifyHTTP(resp, s.now()); de != nil {
		return failure(de)
	}
	return Outcome{Status: StatusDelivered, Detail: fmt.Sprintf("HTTP %d", resp.StatusCode)}, nil
}

// classifyHTTP returns nil for a 2xx answer and the matching DeliveryError
// otherwise. 408, 425 and 429 are the 4xx codes that mean "not now" rather
// than "never".
func classifyHTTP(resp *http.Response, now time.Time) *DeliveryError {
	code := resp.StatusCode
	var de *DeliveryError
	switch {
	case code >= 200 && code < 300:
		return nil
	case code == http.StatusRequestTimeout, code == http.StatusTooEarly,
		code == http.StatusTooManyRequests, code >= 500:
		de = retryable(nil, "webhook: HTTP %d", code)
		de.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), now)
	case code >= 300 && code < 400:
		de = permanent(nil, "webhook: HTTP %d (redirects are not followed)", code)
	default:
		de = permanent(nil, "webhook: HTTP %d", code)
	}
	de.Detail = fmt.Sprintf("HTTP %d", code)
	return de
}

// parseRetryAfter reads a Retry-After value, either delay-seconds or an
// HTTP date (RFC 9110 section 10.2.3). Anything unparsable, negative or in
// the past is 0, meaning "use your own backoff". No upper bound is applied
// here; the caller decides how long a page may wait.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		if secs > int64(math.MaxInt64/time.Second) {
			return time.Duration(math.MaxInt64)
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// Errors from VerifyWebhookSignature.
var (
	ErrWebhookSignature = errors.New("notify: webhook signature does not match")
	ErrWebhookTimestamp = errors.New("notify: webhook timestamp outside tolerance")
)

// SignWebhook returns the X-Callroom-Signature value for body signed at
// timestamp (unix seconds, as sent in X-Callroom-Timestamp):
// "sha256=" + hex(HMAC-SHA256(secret, timestamp + "." + body)).
func SignWebhook(secret []byte, timestamp string, body []byte) string {
	return "sha256=" + hex.EncodeToString(webhookMAC(secret, timestamp, body))
}

func webhookMAC(secret []byte, timestamp string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// VerifyWebhookSignature checks a received webhook: header is the
// X-Callroom-Signature value, timestamp the X-Callroom-Timestamp value, body
// the raw request body. It returns nil only if some "sha256=" value in
// header is the HMAC of timestamp + "." + body under secret (compared in
// constant time) and timestamp is within tolerance of now in either
// direction. tolerance must be positive; five minutes suits most gateways.
//
// A mismatch wraps ErrWebhookSignature; an authentic but stale or future
// timestamp wraps ErrWebhookTimestamp.
func VerifyWebhookSignature(secret []byte, timestamp string, body []byte, header string, now time.Time, tolerance time.Duration) error {
	if len(secret) == 0 {
		return errors.New("notify: webhook secret is empty")
	}
	if tolerance <= 0 {
		return errors.New("notify: webhook signature tolerance must be positive")
	}
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: malformed timestamp", ErrWebhookSignature)
	}
	want := webhookMAC(secret, timestamp, body)
	matched := false
	for _, part := range strings.Split(header, ",") {
		sig, ok := strings.CutPrefix(strings.TrimSpace(part), "sha256=")
		if !ok {
			continue
		}
		got, err := hex.DecodeString(sig)
		if err == nil && hmac.Equal(got, want) {
			matched = true
			break
		}
	}
	if !matched {
		return ErrWebhookSignature
	}
	// Compared as times, not as a subtracted duration, which would saturate
	// (and could wrap when negated) for absurd timestamps.
	if t := time.Unix(ts, 0); t.Before(now.Add(-tolerance)) || t.After(now.Add(tolerance)) {
		return ErrWebhookTimestamp
	}
	return nil
}

package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef")

// fixedNow is the sender's clock in these tests.
var fixedNow = time.Date(2026, 3, 1, 14, 5, 30, 0, time.UTC)

func newTestWebhookSender(t *testing.T, url string, timeout time.Duration) *WebhookSender {
	t.Helper()
	s, err := NewWebhookSender(WebhookConfig{URL: url, Secret: testSecret, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	s.now = func() time.Time { return fixedNow }
	return s
}

func TestWebhookSendDelivered(t *testing.T) {
	n := testNotice()
	var checked atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer r.Body.Close()
		body, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s with Content-Type %q", r.Method, r.Header.Get("Content-Type"))
		}
		if got := r.Header.Get("Idempotency-Key"); got != n.NotificationID.String() {
			t.Errorf("Idempotency-Key = %q", got)
		}
		ts := r.Header.Get("X-Callroom-Timestamp")
		if ts != "1772373930" {
			t.Errorf("timestamp = %q, want the sender's clock in unix seconds", ts)
		}
		sig := r.Header.Get("X-Callroom-Signature")
		if err := VerifyWebhookSignature(testSecret, ts, body, sig, fixedNow.Add(time.Minute), 5*time.Minute); err != nil {
			t.Errorf("signature %q does not verify: %v", sig, err)
		}

		// Exactly these keys, and nothing else.
		var fields map[string]any
		if err := json.Unmarshal(body, &fields); err != nil {
			t.Fatalf("body is not JSON: %v", err)
		}
		want := map[string]any{
			"event":           "page.notify",
			"notification_id": n.NotificationID.String(),
			"page_id":         n.PageID.String(),
			"priority":        "stat",
			"service":         "Cardiology",
			"link":            n.Link,
			"created_at":      "2026-03-01T14:05:09Z",
		}
		var keys []string
		for k := range fields {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		if len(fields) != len(want) {
			t.Errorf("body keys = %v, want exactly %d keys", keys, len(want))
		}
		for k, v := range want {
			if fields[k] != v {
				t.Errorf("body %s = %v, want %v", k, fields[k], v)
			}
		}
		if bytes.Contains(body, []byte(n.ReplyTo)) {
			t.Error("the email-only reply-to address leaked into the webhook")
		}
		checked.Store(true)
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()

	out, err := newTestWebhookSender(t, srv.URL+"/hook", time.Second).Send(context.Background(), n)
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if !checked.Load() {
		t.Fatal("handler did not run")
	}
	if want := (Outcome{Status: StatusDelivered, Detail: "HTTP 202"}); out != want {
		t.Errorf("outcome = %+v, want %+v", out, want)
	}
}

func TestWebhookStatusClassification(t *testing.T) {
	var otherHit atomic.Bool
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { otherHit.Store(true) }))
	defer other.Close()

	tests := []struct {
		name       string
		status     int
		header     map[string]string
		retryable  bool
		reason     string
		retryAfter time.Duration
	}{
		{"500", 500, nil, true, "webhook: HTTP 500", 0},
		{"503 with Retry-After seconds", 503, map[string]string{"Retry-After": "30"}, true, "webhook: HTTP 503", 30 * time.Second},
		{"429 with Retry-After seconds", 429, map[string]string{"Retry-After": "120"}, true, "webhook: HTTP 429", 2 * time.Minute},
		{"429 with Retry-After date", 429, map[string]string{"Retry-After": fixedNow.Add(90 * time.Second).Format(http.TimeFormat)}, true, "webhook: HTTP 429", 90 * time.Second},
		{"429 with garbage Retry-After", 429, map[string]string{"Retry-After": "soon"}, true, "webhook: HTTP 429", 0},
		{"408", 408, nil, true, "webhook: HTTP 408", 0},
		{"425", 425, nil, true, "webhook: HTTP 425", 0},
		{"400", 400, nil, false, "webhook: HTTP 400", 0},
		{"401", 401, nil, false, "webhook: HTTP 401", 0},
		{"404", 404, nil, false, "webhook: HTTP 404", 0},
		{"410", 410, nil, false, "webhook: HTTP 410", 0},
		{"302 is not followed", 302, map[string]string{"Location": other.URL}, false, "webhook: HTTP 302 (redirects are not followed)", 0},
		{"307 is not followed", 307, map[string]string{"Location": "/elsewhere"}, false, "webhook: HTTP 307 (redirects are not followed)", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tt.status)
				io.WriteString(w, `{"error":"details the sender ignores"}`)
			}))
			defer srv.Close()
			out, err := newTestWebhookSender(t, srv.URL, time.Second).Send(context.Background(), testNotice())
			de := asDeliveryError(t, err)
			if de.Retryable != tt.retryable || de.Reason != tt.reason || de.RetryAfter != tt.retryAfter {
				t.Errorf("got retryable=%v reason=%q retryAfter=%v, want %v %q %v", de.Retryable, de.Reason, de.RetryAfter, tt.retryable, tt.reason, tt.retryAfter)
			}
			if out != de.Outcome() {
				t.Errorf("outcome %+v does not mirror the error", out)
			}
			if d, ok := RetryAfter(err); ok != (tt.retryAfter > 0) || d != tt.retryAfter {
				t.Errorf("RetryAfter(err) = %v, %v", d, ok)
			}
		})
	}
	if otherHit.Load() {
		t.Error("a redirect to another host was followed")
	}
}

func TestWebhookTransportFailures(t *testing.T) {
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The server notices a closed connection only once the body is read.
		io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	defer hang.Close()

	t.Run("timeout", func(t *testing.T) {
		start := time.Now()
		_, err := newTestWebhookSender(t, hang.URL, 150*time.Millisecond).Send(context.Background(), testNotice())
		de := asDeliveryError(t, err)
		if !de.Retryable || de.Reason != "webhook: timeout" {
			t.Errorf("got %+v, want retryable webhook: timeout", de)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("Send took %v with a 150ms timeout", d)
		}
	})
	t.Run("caller cancels", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		_, err := newTestWebhookSender(t, hang.URL, time.Minute).Send(ctx, testNotice())
		de := asDeliveryError(t, err)
		if !de.Retryable || de.Reason != "webhook: canceled" {
			t.Errorf("got %+v, want retryable webhook: canceled", de)
		}
	})
	t.Run("connection refused", func(t *testing.T) {
		_, err := newTestWebhookSender(t, "http://"+closedAddr(t)+"/hook", time.Second).Send(context.Background(), testNotice())
		de := asDeliveryError(t, err)
		if !de.Retryable || de.Reason != "webhook: dial tcp: connection refused" {
			t.Errorf("got %+v, want retryable connection refused", de)
		}
	})
	t.Run("untrusted certificate", func(t *testing.T) {
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
		srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the expected handshake failure
		srv.StartTLS()
		defer srv.Close()
		_, err := newTestWebhookSender(t, srv.URL, time.Second).Send(context.Background(), testNotice())
		de := asDeliveryError(t, err)
		if de.Retryable || !strings.HasPrefix(de.Reason, "webhook: tls: ") {
			t.Errorf("got %+v, want a permanent TLS failure", de)
		}
	})
	t.Run("huge response body", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			chunk := bytes.Repeat([]byte("x"), 64<<10)
			for range 64 { // 4 MiB, of which at most 64 KiB are read
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		}))
		defer srv.Close()
		if _, err := newTestWebhookSender(t, srv.URL, 5*time.Second).Send(context.Background(), testNotice()); err != nil {
			t.Fatalf("Send: %v", err)
		}
	})
}

func TestWebhookTLSWithTrustedClient(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	client := srv.Client()
	s, err := NewWebhookSender(WebhookConfig{URL: srv.URL, Secret: testSecret, Client: client})
	if err != nil {
		t.Fatal(err)
	}
	if client.CheckRedirect != nil {
		t.Error("NewWebhookSender modified the caller's http.Client")
	}
	out, err := s.Send(context.Background(), testNotice())
	if err != nil || out.Detail != "HTTP 204" {
		t.Fatalf("Send = %+v, %v", out, err)
	}
}

func TestWebhookRefusesInvalidNotice(t *testing.T) {
	var hit atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hit.Store(true) }))
	defer srv.Close()
	n := testNotice()
	n.Link = "javascript:alert(1)"
	_, err := newTestWebhookSender(t, srv.URL, time.Second).Send(context.Background(), n)
	if de := asDeliveryError(t, err); de.Retryable || de.Reason != "invalid notice: link is not an absolute http(s) URL" {
		t.Errorf("got %+v", de)
	}
	if hit.Load() {
		t.Error("an invalid notice was sent")
	}
}

func TestNewWebhookSenderRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  WebhookConfig
	}{
		{"relative URL", WebhookConfig{URL: "/hook", Secret: testSecret}},
		{"ftp URL", WebhookConfig{URL: "ftp://gateway.example/hook", Secret: testSecret}},
		{"cleartext to a remote host", WebhookConfig{URL: "http://192.0.2.1/hook", Secret: testSecret}},
		{"cleartext to a remote name", WebhookConfig{URL: "http://gateway.example/hook", Secret: testSecret}},
		{"short secret", WebhookConfig{URL: "https://gateway.example/hook", Secret: []byte("short")}},
		{"negative timeout", WebhookConfig{URL: "https://gateway.example/hook", Secret: testSecret, Timeout: -1}},
	}
	for _, tt := range tests {
		if _, err := NewWebhookSender(tt.cfg); err == nil {
			t.Errorf("%s: NewWebhookSender accepted it", tt.name)
		}
	}
	for _, u := range []string{"https://gateway.example/hook", "http://127.0.0.1:8080/hook", "http://localhost/hook", "http://[::1]:9/hook"} {
		if _, err := NewWebhookSender(WebhookConfig{URL: u, Secret: testSecret}); err != nil {
			t.Errorf("NewWebhookSender(%s): %v", u, err)
		}
	}
}

func TestVerifyWebhookSignature(t *testing.T) {
	body := []byte(`{"event":"page.notify"}`)
	now := time.Unix(1772373930, 0)
	ts := "1772373930"
	good := SignWebhook(testSecret, ts, body)
	tests := []struct {
		name      string
		secret    []byte
		timestamp string
		body      []byte
		header    string
		now       time.Time
		tolerance time.Duration
		want      error // nil, a sentinel, or errAny
	}{
		{"valid", testSecret, ts, body, good, now, 5 * time.Minute, nil},
		{"valid at the edge of tolerance", testSecret, ts, body, good, now.Add(5 * time.Minute), 5 * time.Minute, nil},
		{"one of several values matches", testSecret, ts, body, "sha256=00ff, " + good, now, time.Minute, nil},
		{"wrong secret", []byte("another secret, quite long"), ts, body, good, now, time.Minute, ErrWebhookSignature},
		{"tampered body", testSecret, ts, []byte(`{"event":"page.notify","x":1}`), good, now, time.Minute, ErrWebhookSignature},
		{"tampered timestamp", testSecret, "1772373931", body, good, now, time.Minute, ErrWebhookSignature},
		{"missing prefix", testSecret, ts, body, strings.TrimPrefix(good, "sha256="), now, time.Minute, ErrWebhookSignature},
		{"not hex", testSecret, ts, body, "sha256=zz", now, time.Minute, ErrWebhookSignature},
		{"empty header", testSecret, ts, body, "", now, time.Minute, ErrWebhookSignature},
		{"malformed timestamp", testSecret, "yesterday", body, good, now, time.Minute, ErrWebhookSignature},
		{"stale", testSecret, ts, body, good, now.Add(6 * time.Minute), 5 * time.Minute, ErrWebhookTimestamp},
		{"from the future", testSecret, ts, body, good, now.Add(-6 * time.Minute), 5 * time.Minute, ErrWebhookTimestamp},
		{"absurd timestamp", testSecret, "9223372036854775807", body, SignWebhook(testSecret, "9223372036854775807", body), now, time.Hour, ErrWebhookTimestamp},
		{"zero tolerance", testSecret, ts, body, good, now, 0, errAny},
		{"empty secret", nil, ts, body, good, now, time.Minute, errAny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifyWebhookSignature(tt.secret, tt.timestamp, tt.body, tt.header, tt.now, tt.tolerance)
			switch {
			case tt.want == nil && err != nil:
				t.Errorf("err = %v, want nil", err)
			case tt.want == errAny && err == nil:
				t.Error("err = nil, want an error")
			case tt.want != nil && tt.want != errAny && !errors.Is(err, tt.want):
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

var errAny = errors.New("any error")

func TestParseRetryAfter(t *testing.T) {
	now := fixedNow
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"-5", 0},
		{" 45 ", 45 * time.Second},
		{"99999999999999999", time.Duration(1<<63 - 1)},
		{now.Add(time.Hour).Format(http.TimeFormat), time.Hour},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{"later", 0},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

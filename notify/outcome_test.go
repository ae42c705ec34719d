package notify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

func TestIsRetryableAndRetryAfter(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		retryable  bool
		retryAfter time.Duration
	}{
		{"nil", nil, false, 0},
		{"unknown error", errors.New("boom"), true, 0},
		{"permanent", &DeliveryError{Reason: "smtp 550"}, false, 0},
		{"retryable", &DeliveryError{Retryable: true, Reason: "smtp 451"}, true, 0},
		{"wrapped with delay", fmt.Errorf("job: %w", &DeliveryError{Retryable: true, RetryAfter: time.Minute}), true, time.Minute},
	}
	for _, tt := range tests {
		if got := IsRetryable(tt.err); got != tt.retryable {
			t.Errorf("%s: IsRetryable = %v", tt.name, got)
		}
		d, ok := RetryAfter(tt.err)
		if d != tt.retryAfter || ok != (tt.retryAfter > 0) {
			t.Errorf("%s: RetryAfter = %v, %v", tt.name, d, ok)
		}
	}
}

func TestDeliveryErrorMessage(t *testing.T) {
	cause := io.EOF
	de := &DeliveryError{Retryable: true, Reason: "smtp: connection closed by remote", Err: cause}
	if de.Error() != "notify: retryable: smtp: connection closed by remote" || !errors.Is(de, cause) {
		t.Errorf("Error() = %q, Is(EOF) = %v", de.Error(), errors.Is(de, cause))
	}
	if o := de.Outcome(); o.Status != StatusFailed || !o.Retryable || o.Delivered() {
		t.Errorf("Outcome() = %+v", o)
	}
}

func TestCleanRemoteText(t *testing.T) {
	long := strings.Repeat("é", 200) // 400 bytes
	tests := []struct{ in, want string }{
		{"  mailbox unavailable  ", "mailbox unavailable"},
		{"first\r\nsecond", "first"},
		{"bell\athere", "bellthere"},
		{long, strings.Repeat("é", maxReasonLen/2) + "…"},
	}
	for _, tt := range tests {
		if got := cleanRemoteText(tt.in); got != tt.want {
			t.Errorf("cleanRemoteText(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestClassifyTransport(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel2()
	live := context.Background()

	tests := []struct {
		name      string
		ctx       context.Context
		err       error
		retryable bool
		reason    string
	}{
		{"caller canceled", canceled, errors.New("use of closed network connection"), true, "x: canceled"},
		{"deadline passed", expired, errors.New("use of closed network connection"), true, "x: timeout"},
		{"eof", live, io.EOF, true, "x: connection closed by remote"},
		{"dns", live, &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "relay.invalid"}}, true, "x: dns: no such host"},
		{"other", live, errors.New("something\nodd"), true, "x: something"},
	}
	for _, tt := range tests {
		de := classifyTransport(tt.ctx, "x", tt.err)
		if de.Retryable != tt.retryable || de.Reason != tt.reason {
			t.Errorf("%s: got retryable=%v reason=%q, want %v %q", tt.name, de.Retryable, de.Reason, tt.retryable, tt.reason)
		}
	}
}

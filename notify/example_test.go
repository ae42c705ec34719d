package notify_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/callroom/callroom/notify"
	"github.com/google/uuid"
)

// A gateway verifies each webhook with VerifyWebhookSignature before acting
// on it, and the sender reports the gateway's answer as an Outcome.
func ExampleWebhookSender_Send() {
	secret := []byte("a-32-byte-secret-shared-with-gw!")

	gateway := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		err := notify.VerifyWebhookSignature(secret,
			r.Header.Get("X-Callroom-Timestamp"), body, r.Header.Get("X-Callroom-Signature"),
			time.Now(), 5*time.Minute)
		if err != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		fmt.Println("gateway: verified, idempotency key", r.Header.Get("Idempotency-Key"))
		w.WriteHeader(http.StatusAccepted)
	}))
	defer gateway.Close()

	sender, err := notify.NewWebhookSender(notify.WebhookConfig{URL: gateway.URL, Secret: secret})
	if err != nil {
		panic(err)
	}
	out, err := sender.Send(context.Background(), notify.Notice{
		NotificationID: uuid.MustParse("0b8e7c6d-5a4f-4321-9abc-def012345678"),
		PageID:         uuid.MustParse("6f1c2a9e-3b4d-4e5f-8a7b-9c0d1e2f3a4b"),
		Priority:       notify.PriorityStat,
		ServiceName:    "Cardiology",
		Link:           "https://callroom.example.org/pages/6f1c2a9e-3b4d-4e5f-8a7b-9c0d1e2f3a4b",
		CreatedAt:      time.Now(),
	})
	fmt.Println(out.Status, out.Detail, err)
	// Output:
	// gateway: verified, idempotency key 0b8e7c6d-5a4f-4321-9abc-def012345678
	// delivered HTTP 202 <nil>
}

// A job decides what to do with a failed attempt from the *DeliveryError
// alone: give up and escalate, wait as asked, or retry on its own schedule.
func ExampleDeliveryError() {
	gateway := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "30")
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	defer gateway.Close()

	sender, _ := notify.NewWebhookSender(notify.WebhookConfig{URL: gateway.URL, Secret: []byte("a-32-byte-secret-shared-with-gw!")})
	_, err := sender.Send(context.Background(), notify.Notice{
		NotificationID: uuid.New(),
		PageID:         uuid.New(),
		Priority:       notify.PriorityUrgent,
		Link:           "https://callroom.example.org/pages/1",
		CreatedAt:      time.Now(),
	})

	var de *notify.DeliveryError
	switch {
	case err == nil:
		fmt.Println("delivered")
	case !errors.As(err, &de) || de.Retryable && de.RetryAfter == 0:
		fmt.Println("retry with backoff:", err)
	case de.Retryable:
		fmt.Printf("snooze %v: %s\n", de.RetryAfter, de.Reason)
	default:
		fmt.Println("give up, escalate:", de.Reason)
	}
	// Output:
	// snooze 30s: webhook: HTTP 429
}

// Email goes through the hospital relay. STARTTLS is required unless the
// relay is on loopback; RootCAs is only needed for a private CA.
//
// This example has no Output section, so it is compiled but never run: it
// must not connect anywhere.
func ExampleNewEmailSender() {
	roots, _ := x509.SystemCertPool()
	sender, err := notify.NewEmailSender(notify.EmailConfig{
		Addr:      "smtp.hospital.example:587",
		Username:  "callroom",
		Password:  "from-the-secret-store",
		From:      "Callroom <callroom@hospital.example>",
		HeloName:  "callroom.hospital.example",
		Timeout:   20 * time.Second,
		TLSConfig: &tls.Config{RootCAs: roots},
	})
	if err != nil {
		panic(err)
	}
	out, err := sender.Send(context.Background(), "Dr Jane Doe <jane.doe@hospital.example>", notify.Notice{ /* ... */ })
	_, _ = out, err
}

package escalation_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callroom/callroom/internal/apitest"
	"github.com/callroom/callroom/internal/server"
)

// fastRetries makes a failing notification give up after 3 attempts 100 ms
// apart instead of 5 attempts over 52 s.
func fastRetries(s *server.Server) {
	s.Pages.DeliverAttempts = 3
	s.Pages.DeliverBackoff = []time.Duration{100 * time.Millisecond}
}

// An SMTP relay that is down and a gateway answering 500: both notifications
// are retried, then end failed with a reason, and the escalation reaches the
// next step regardless. The gateway sees the same signed, PHI-free request
// on every attempt.
func TestDeliveryFailuresDoNotStopEscalation(t *testing.T) {
	t.Parallel()
	hook := startWebhook(t, 500)
	h := newHarness(t, apitest.Options{SMTPRelay: closedAddr(t), Setup: fastRetries})
	a, b := h.user("Dr A"), h.user("Dr B")
	rule(a, contact(a, "email", "dr.a@hospital.test", ""), 0)
	rule(a, contact(a, "webhook", hook.URL, hookSecret), 0)
	svc := h.service("Cardiology", 0, nil, step{1, []any{userT(a)}}, step{3600, []any{userT(b)}})
	p := h.page(svc, "urgent", "chest pain Zorblax")

	h.expect(p, sent("Dr A", "in_app", 0, 0), note{"Dr A", "email", 0, 0, "failed"}, note{"Dr A", "webhook", 0, 0, "failed"},
		sent("Dr B", "in_app", 0, 1))
	h.settle()

	type failure struct {
		ID       uuid.UUID
		Channel  string
		Attempts int
		Reason   string
	}
	rows, _ := h.in.DB.Pool.Query(context.Background(), `SELECT id, channel, attempts, reason FROM notifications
		WHERE page_id = $1 AND status = 'failed' ORDER BY channel`, p)
	var fs []failure
	for rows.Next() {
		var f failure
		if err := rows.Scan(&f.ID, &f.Channel, &f.Attempts, &f.Reason); err != nil {
			t.Fatal(err)
		}
		fs = append(fs, f)
	}
	if rows.Err() != nil || len(fs) != 2 {
		t.Fatalf("failed notifications %+v: %v", fs, rows.Err())
	}
	for _, f := range fs {
		if f.Attempts != 3 || f.Reason == "" {
			t.Errorf("%s: %d attempts, reason %q; want 3 and a reason", f.Channel, f.Attempts, f.Reason)
		}
		if f.Channel == "webhook" && !strings.Contains(f.Reason, "500") {
			t.Errorf("webhook reason %q does not give the status", f.Reason)
		}
		var detail string
		if err := h.in.DB.Pool.QueryRow(context.Background(), `SELECT detail FROM page_events
			WHERE page_id = $1 AND kind = 'failed' AND notification_id = $2`, p, f.ID).Scan(&detail); err != nil || detail != f.Reason {
			t.Errorf("%s: timeline failure %q (%v), want the reason %q", f.Channel, detail, err, f.Reason)
		}
		if f.Channel == "webhook" {
			calls := hook.received()
			if len(calls) != 3 {
				t.Errorf("gateway received %d calls, want 3", len(calls))
			}
			for i, c := range calls {
				if c.IdempotencyKey != f.ID.String() {
					t.Errorf("call %d: idempotency key %q, want the notification id %s", i, c.IdempotencyKey, f.ID)
				}
			}
			checkHook(t, calls, p, phi...)
		}
	}
	if st := h.pageRow(p); st.Status != "open" || st.Step != 1 {
		t.Errorf("page %+v, want open at step 1", st)
	}
	if strings.Contains(h.in.LogText(), "Zorblax") {
		t.Error("the page's text was logged")
	}
}

// Without an SMTP relay configured, an email notification fails at once
// (one attempt, with the reason) and in-app still goes out.
func TestDeliveryEmailNotConfigured(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a := h.user("Dr A")
	rule(a, contact(a, "email", "dr.a@hospital.test", ""), 0)
	svc := h.service("Cardiology", 0, nil, step{3600, []any{userT(a)}})
	p := h.page(svc, "urgent", "chest pain Zorblax")
	h.expect(p, sent("Dr A", "in_app", 0, 0), note{"Dr A", "email", 0, 0, "failed"})
	var attempts int
	var reason string
	if err := h.in.DB.Pool.QueryRow(context.Background(), `SELECT attempts, reason FROM notifications WHERE page_id = $1 AND channel = 'email'`, p).
		Scan(&attempts, &reason); err != nil {
		t.Fatal(err)
	}
	if attempts != 1 || !strings.Contains(reason, "not configured") {
		t.Errorf("%d attempts, reason %q", attempts, reason)
	}
	h.settle()
}

// TestAcknowledgeWhileDelivering: a delivery job holds its notification row
// and adds a timeline entry to the page while the physician acknowledges.
// Acknowledge locks the page and then cancels the queued notifications, so
// it waits for the delivery; the delivery's timeline insert must not wait
// for acknowledge in turn (it once did, through the foreign key check on
// the page row, and PostgreSQL aborted one of them as a deadlock: a 500 to
// the physician or a retried delivery).
func TestAcknowledgeWhileDelivering(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a := h.user("Dr A")
	rule(a, contact(a, "email", "dr.a@hospital.test", ""), 600)
	svc := h.service("Cardiology", 0, nil, step{3600, []any{userT(a)}})
	p := h.page(svc, "urgent", "chest pain Zorblax")
	ctx := context.Background()
	var noteID, userID uuid.UUID
	eventually(t, "the email notification queued", func() (bool, string) {
		err := h.in.DB.Pool.QueryRow(ctx, `SELECT id, user_id FROM notifications WHERE page_id = $1 AND channel = 'email'`, p).Scan(&noteID, &userID)
		return err == nil, fmt.Sprint(err)
	})

	// The delivery: its notification row locked, as DeliverWorker does.
	tx, err := h.in.DB.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	if _, err := tx.Exec(ctx, `SELECT 1 FROM notifications WHERE id = $1 FOR UPDATE`, noteID); err != nil {
		t.Fatal(err)
	}
	acked := make(chan int, 1)
	go func() {
		req, err := newJSONRequest(a, "POST", "/api/v1/pages/"+p.String()+"/acknowledge", "")
		if err != nil {
			acked <- 0
			return
		}
		status, _ := doJSON(req, nil)
		acked <- status
	}()
	eventually(t, "acknowledge waiting for the notification row", func() (bool, string) {
		n := h.count(`SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`)
		return n > 0, fmt.Sprintf("%d waiting", n)
	})
	// The delivery goes on and records itself on the page's timeline.
	if _, err := tx.Exec(ctx, `INSERT INTO page_events (page_id, kind, user_id, notification_id, channel) VALUES ($1, 'delivered', $2, $3, 'email')`,
		p, userID, noteID); err != nil {
		t.Fatalf("the delivery's timeline entry: %v", err)
	}
	if _, err := tx.Exec(ctx, `UPDATE notifications SET status = 'delivered' WHERE id = $1`, noteID); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatalf("the delivery's commit: %v", err)
	}
	if status := <-acked; status != 200 {
		t.Fatalf("acknowledge answered %d, want 200", status)
	}
	h.expect(p, sent("Dr A", "in_app", 0, 0), note{"Dr A", "email", 0, 0, "delivered"})
}

// TestInAppDeliveredByStreams: an in-app notification written to the
// user's two open event streams (two devices) becomes delivered, recorded
// once on the page's timeline.
func TestInAppDeliveredByStreams(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a := h.user("Dr A")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	phone, desk := a.Follow(ctx), a.Follow(ctx)
	eventually(t, "both streams open", func() (bool, string) {
		n := h.in.Server.Events.Connections()
		return n == 2, fmt.Sprintf("%d open", n)
	})
	svc := h.service("Cardiology", 0, nil, step{3600, []any{userT(a)}})
	p := h.page(svc, "urgent", "chest pain Zorblax")
	for _, s := range []<-chan apitest.Event{phone, desk} {
		for e := range s {
			if e.Type == "page.notify" && e.Data["page_id"] == p.String() {
				break
			}
		}
	}
	h.expect(p, note{"Dr A", "in_app", 0, 0, "delivered"})
	if n := ofKind(h.timeline(p), "delivered"); n != 1 {
		t.Errorf("%d delivered entries on the timeline, want 1", n)
	}
}

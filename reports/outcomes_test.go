package reports_test

import (
	"context"
	"testing"

	"github.com/callroom/callroom/internal/pgtest"
)

// TestRecipientsFollowNotifications: the (page, person) row migration 0013's
// triggers keep appears with the first notification that is not cancelled,
// moves to an earlier one, goes when all are cancelled, and carries the
// response once that person acknowledges.
func TestRecipientsFollowNotifications(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.Pool.Exec(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	var user, page string
	if err := db.Pool.QueryRow(ctx, `INSERT INTO users (email, name, roles) VALUES ('a@example.org', 'Dr A', '{physician}') RETURNING id`).Scan(&user); err != nil {
		t.Fatal(err)
	}
	if err := db.Pool.QueryRow(ctx, `INSERT INTO pages (user_id, priority, summary, created_at) VALUES ($1, 'stat', 'x', '2026-01-01T00:00:00Z') RETURNING id`, user).Scan(&page); err != nil {
		t.Fatal(err)
	}
	recipient := func() (n int, first string, response *float64) {
		t.Helper()
		if err := db.Pool.QueryRow(ctx, `SELECT count(*), coalesce(min(first_at)::text, ''), min(response_seconds) FROM page_recipients WHERE page_id = $1 AND user_id = $2`, page, user).Scan(&n, &first, &response); err != nil {
			t.Fatal(err)
		}
		return n, first, response
	}
	notify := `INSERT INTO notifications (page_id, user_id, channel, round, step, status, due_at, created_at) VALUES ($1, $2, $3, 0, $6, $4, $5, $5)`
	exec(notify, page, user, "email", "queued", "2026-01-01T00:01:00Z", 0)
	if n, first, _ := recipient(); n != 1 || first != "2026-01-01 00:01:00+00" {
		t.Fatalf("after the first notification: %d %q", n, first)
	}
	exec(notify, page, user, "in_app", "cancelled", "2026-01-01T00:00:30Z", 1)
	if _, first, _ := recipient(); first != "2026-01-01 00:01:00+00" {
		t.Errorf("a cancelled notification counted: %q", first)
	}
	exec(`UPDATE notifications SET status = 'sent' WHERE page_id = $1 AND channel = 'in_app'`, page)
	if _, first, _ := recipient(); first != "2026-01-01 00:00:30+00" {
		t.Errorf("the earlier notification was not taken: %q", first)
	}
	exec(`UPDATE pages SET status = 'acknowledged', acknowledged_by = $2, acknowledged_at = '2026-01-01T00:02:00Z' WHERE id = $1`, page, user)
	if _, _, r := recipient(); r == nil || *r != 90 {
		t.Errorf("response: %v, want 90 s", r)
	}
	var ack float64
	if err := db.Pool.QueryRow(ctx, `SELECT ack_seconds FROM page_outcomes WHERE page_id = $1`, page).Scan(&ack); err != nil || ack != 120 {
		t.Errorf("ack_seconds: %v %v, want 120", ack, err)
	}
	exec(`UPDATE notifications SET status = 'cancelled' WHERE page_id = $1`, page)
	if n, _, _ := recipient(); n != 0 {
		t.Errorf("all notifications cancelled, the row stayed")
	}
}

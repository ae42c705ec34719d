package server_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/callroom/callroom/internal/apitest"
	"github.com/callroom/callroom/internal/pgtest"
)

// TestSeveralInstances runs three instances on one database, as behind a
// load balancer: two in this process (A, B) and one 'callroom serve'
// process (C). Pages and messages sent through A reach streams held on B
// and C live (LISTEN/NOTIFY); each step is escalated exactly once whichever
// instance's River runs it. Then C is killed with SIGKILL: the stream it
// held reconnects to A with Last-Event-ID and the next page's notification
// arrives exactly once, and nothing before it is delivered again.
func TestSeveralInstances(t *testing.T) {
	t.Parallel()
	db := pgtest.NewWithPoolSize(t, 20)
	a := apitest.Start(t, apitest.Options{DB: db})
	b := apitest.Start(t, apitest.Options{DB: db})
	c := apitest.Serve(t, db.URL, filepath.Join(t.TempDir(), "serve.log"), "CALLROOM_DB_MAX_CONNS=10", "CALLROOM_ESCALATION_POLL=20ms")
	cURL := c.URL
	admin, nurse := a.User("Avery Admin", "admin"), a.User("Nina Nurse", "nurse")
	docA, docB := a.User("Dr A", "physician"), a.User("Dr B", "physician")
	pol := admin.Must(201, "POST", "/api/v1/escalation-policies", map[string]any{"name": "Cardio", "steps": []any{
		map[string]any{"delay_seconds": 1, "targets": []any{map[string]any{"user_id": docA.User.ID}}},
		map[string]any{"delay_seconds": 600, "targets": []any{map[string]any{"user_id": docB.User.ID}}},
	}})
	svc := admin.Must(201, "POST", "/api/v1/services", map[string]any{"name": "Cardiology", "escalation_policy_id": pol["id"]})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	onB := docA.Follow(ctx, b.URL)       // A's stream is held by instance B
	onC := docB.Follow(ctx, cURL, a.URL) // B's by C, then (after C dies) by A
	next := func(ch <-chan apitest.Event, typ string, match func(apitest.Event) bool) apitest.Event {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for {
			select {
			case e := <-ch:
				if e.Type == typ && match(e) {
					return e
				}
			case <-deadline:
				// What River did, and what A and B logged, say whether the
				// step did not fire or its event did not reach the stream.
				rows, _ := db.Pool.Query(context.Background(), `SELECT id, kind, state, attempt, scheduled_at, coalesce(errors::text, '')
					FROM river_job WHERE queue = 'escalation' ORDER BY id`)
				jobs, _ := pgx.CollectRows(rows, pgx.RowToMap)
				t.Fatalf("no %s event within 30 s\nescalation jobs: %v\nA's log:\n%s\nB's log:\n%s", typ, jobs, a.LogText(), b.LogText())
			}
		}
	}
	pageIs := func(id string) func(apitest.Event) bool {
		return func(e apitest.Event) bool { return e.Data["page_id"] == id }
	}
	// Streams are open once they have seen an event: a thread message does it.
	thread := docA.Must(201, "POST", "/api/v1/threads", map[string]any{"kind": "direct", "member_ids": []any{docB.User.ID}})
	msg := docA.Must(201, "POST", "/api/v1/threads/"+thread["id"].(string)+"/messages", map[string]any{"text": "Zorblax"})
	next(onC, "message.created", func(e apitest.Event) bool { return e.Data["message_id"] == msg["id"] })

	// P1 sent through A: step 0 reaches Dr A on B's stream; step 1 (1 s
	// later, run by whichever River fetched it) reaches Dr B on C's.
	p1 := nurse.Must(201, "POST", "/api/v1/pages", map[string]any{"service_id": svc["id"], "priority": "stat", "summary": "Zorblax"})["id"].(string)
	next(onB, "page.notify", pageIs(p1))
	e1 := next(onC, "page.notify", pageIs(p1))
	if e1.Conn != 1 {
		t.Fatalf("C's stream reconnected before the kill: %+v", e1)
	}

	c.Kill()

	// P2, after the kill: Dr B's stream reconnects to A with Last-Event-ID.
	p2 := nurse.Must(201, "POST", "/api/v1/pages", map[string]any{"service_id": svc["id"], "priority": "stat", "summary": "Zorblax"})["id"].(string)
	e2 := next(onC, "page.notify", pageIs(p2))
	if e2.Conn < 2 {
		t.Errorf("P2's notification came on the first connection: %+v", e2)
	}
	// Nothing more on either stream for a moment: no duplicate notification
	// (e.g. P1's replayed after the reconnect).
	quiet := time.After(2 * time.Second)
	for done := false; !done; {
		select {
		case e := <-onC:
			if e.Type == "page.notify" || e.Type == "message.created" {
				t.Errorf("after the reconnect, again: %+v", e)
			}
		case e := <-onB:
			if e.Type == "page.notify" && e.Data["page_id"] == p1 {
				t.Errorf("P1 notified Dr A twice: %+v", e)
			}
		case <-quiet:
			done = true
		}
	}
	// In the database: each (page, step) fired once, one notification each.
	for _, p := range []string{p1, p2} {
		var steps, notes int
		if err := db.Pool.QueryRow(context.Background(), `SELECT
				(SELECT count(*) FROM page_events WHERE page_id = $1 AND kind = 'step'),
				(SELECT count(*) FROM notifications WHERE page_id = $1)`, p).Scan(&steps, &notes); err != nil {
			t.Fatal(err)
		}
		if steps != 2 || notes != 2 {
			t.Errorf("page %s: %d steps fired, %d notifications; want 2 and 2", p, steps, notes)
		}
	}
	for _, in := range []*apitest.Instance{a, b} {
		if strings.Contains(in.LogText(), "Zorblax") {
			t.Error("page or message text was logged")
		}
	}
}

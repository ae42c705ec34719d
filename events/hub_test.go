package events

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/callroom/callroom/internal/pg"
	"github.com/callroom/callroom/internal/pgtest"
)

// TestTwoInstances runs two hubs, as two callroom instances would, each with
// its own listener: an event reaches subscribers on both, whichever
// connection published it.
func TestTwoInstances(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	a, b := startHub(t, db.Pool), startHub(t, db.Pool)
	u := newUsers(t, db.Pool, 1)
	onA, onB := a.Subscribe(u[0], 0), b.Subscribe(u[0], 0)
	defer onA.Close()
	defer onB.Close()

	// Another process's connection, not from the hubs' pool.
	conn, err := pgx.Connect(ctx, db.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)

	for i, tc := range []struct {
		name string
		db   pg.Beginner
	}{
		{"pool", db.Pool},
		{"separate connection", conn},
	} {
		err := pg.InTx(ctx, tc.db, func(tx pgx.Tx) error { return Publish(ctx, tx, u, "page.updated", nil) })
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		want := ev(int64(i+1), "page.updated")
		expect(t, onA, want)
		expect(t, onB, want)
	}
	if a.ListenerPID() == 0 || b.ListenerPID() == 0 || a.ListenerPID() == b.ListenerPID() {
		t.Errorf("listener pids %d and %d: want two distinct listeners", a.ListenerPID(), b.ListenerPID())
	}
}

// TestListenerReconnects kills the hub's LISTEN backend, publishes while the
// hub cannot reconnect, then lets it: everything arrives once, in order.
func TestListenerReconnects(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	h := NewHub(db.Pool, nil)
	var g gate
	h.connect = func(ctx context.Context) (*pgx.Conn, error) {
		if err := g.pass(ctx); err != nil {
			return nil, err
		}
		return h.dial(ctx)
	}
	startGivenHub(t, h)
	u := newUsers(t, db.Pool, 1)
	sub := h.Subscribe(u[0], 0)
	defer sub.Close()
	publish(t, db.Pool, u, "page.notify", nil)
	expect(t, sub, ev(1, "page.notify"))

	for round := range 2 {
		waitFor(t, "the hub to listen", func() bool { return h.ListenerPID() != 0 })
		var pid uint32
		err := db.Pool.QueryRow(ctx, `SELECT pid FROM pg_stat_activity
			WHERE datname = current_database() AND application_name = $1 AND query LIKE 'LISTEN%'`,
			ListenerApplicationName).Scan(&pid)
		if err != nil {
			t.Fatalf("finding the listener backend: %v", err)
		}
		if pid != h.ListenerPID() {
			t.Fatalf("pg_stat_activity shows listener %d, the hub says %d", pid, h.ListenerPID())
		}
		g.close()
		var killed bool
		if err := db.Pool.QueryRow(ctx, "SELECT pg_terminate_backend($1)", pid).Scan(&killed); err != nil || !killed {
			t.Fatalf("pg_terminate_backend: %v, %v", killed, err)
		}
		waitFor(t, "the hub to notice", func() bool { return h.ListenerPID() == 0 })

		base := int64(1 + 3*round)
		publish(t, db.Pool, u, "page.updated", nil)
		publish(t, db.Pool, u, "message.created", nil)
		publish(t, db.Pool, u, "receipt.updated", nil)
		g.open()
		expect(t, sub, ev(base+1, "page.updated"), ev(base+2, "message.created"), ev(base+3, "receipt.updated"))
	}
	// Live delivery resumes, with no duplicate of the replayed events.
	publish(t, db.Pool, u, "page.updated", nil)
	expect(t, sub, ev(8, "page.updated"))
}

func TestSubscriptionLifecycle(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	h := NewHub(db.Pool, nil)
	runCtx, stop := context.WithCancel(ctx)
	stopped := make(chan error, 1)
	go func() { stopped <- h.Run(runCtx) }()
	u := newUsers(t, db.Pool, 1)

	a, b, c := h.Subscribe(u[0], 0), h.Subscribe(u[0], 0), h.Subscribe(u[0], 0)
	if n := h.Connections(); n != 3 {
		t.Fatalf("Connections() = %d, want 3", n)
	}
	a.Close()
	a.Close() // idempotent
	if n := h.Connections(); n != 2 {
		t.Fatalf("Connections() after a close = %d, want 2", n)
	}
	if _, err := a.Next(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Next after Close = %v, want ErrClosed", err)
	}
	if err := h.Run(ctx); err == nil {
		t.Fatal("a second Run succeeded")
	}

	// A cancelled context ends a wait without moving the position.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := b.Next(cctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Next with a cancelled context = %v", err)
	}
	publish(t, db.Pool, u, "page.updated", nil)
	expect(t, b, ev(1, "page.updated"))

	// Stopping the hub ends the streams that wait for more.
	stop()
	if err := <-stopped; err != nil {
		t.Fatalf("Run = %v", err)
	}
	if _, err := b.Next(ctx); !errors.Is(err, ErrHubStopped) {
		t.Fatalf("Next after the hub stopped = %v, want ErrHubStopped", err)
	}
	b.Close()
	c.Close()
	if n := h.Connections(); n != 0 {
		t.Fatalf("Connections() = %d after closing all", n)
	}
}

// TestResets covers positions the stream cannot serve: events purged by
// retention, and a Last-Event-ID beyond the stream's end.
func TestResets(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	h := startHub(t, db.Pool)
	u := newUsers(t, db.Pool, 1)
	for range 3 {
		publish(t, db.Pool, u, "page.updated", nil)
	}
	if _, err := db.Pool.Exec(ctx, "UPDATE user_events SET created_at = now() - interval '8 days' WHERE seq <= 2"); err != nil {
		t.Fatal(err)
	}
	w := &PurgeWorker{DB: db.Pool}
	if err := w.Work(ctx, nil); err != nil {
		t.Fatal(err)
	}
	left, err := h.Since(ctx, u[0], 0, 0)
	if err != nil || len(left) != 1 || left[0].Seq != 3 {
		t.Fatalf("after the purge: %+v, %v; want only seq 3", left, err)
	}
	if seq, err := h.CurrentSeq(ctx, u[0]); err != nil || seq != 3 {
		t.Fatalf("CurrentSeq after the purge = %d, %v; the counter must stay at 3", seq, err)
	}

	for _, tc := range []struct {
		name   string
		from   int64
		reset  int64 // seq of the reset event, 0 for none
		reason string
		replay int64 // the first event replayed, 0 when there is nothing to replay
	}{
		{"from the start", 0, 2, "expired", 3},
		{"from a purged event", 1, 2, "expired", 3},
		{"from the oldest kept", 2, 0, "", 3},
		{"up to date", 3, 0, "", 0},
		{"beyond the end", 99, 4, "unknown_position", 0}, // "up to date" published seq 4
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := h.Subscribe(u[0], tc.from)
			defer s.Close()
			if tc.reset != 0 {
				e := next(t, s)
				var d struct{ Reason string }
				if err := json.Unmarshal(e.Data, &d); err != nil || e.Type != TypeReset || e.Seq != tc.reset || d.Reason != tc.reason {
					t.Fatalf("got %s seq %d %s, want %s seq %d reason %s", e.Type, e.Seq, e.Data, TypeReset, tc.reset, tc.reason)
				}
			}
			if tc.replay != 0 {
				expect(t, s, ev(tc.replay, "page.updated"))
				return
			}
			cur, err := h.CurrentSeq(ctx, u[0])
			if err != nil {
				t.Fatal(err)
			}
			publish(t, db.Pool, u, "page.notify", nil)
			expect(t, s, ev(cur+1, "page.notify"))
		})
	}
}

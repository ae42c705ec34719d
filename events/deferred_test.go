package events

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callroom/callroom/internal/pgtest"
)

// streamOf is a user's stream as "seq:type:data.n ..." for comparison.
func streamOf(t *testing.T, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, user uuid.UUID) string {
	t.Helper()
	rows, err := q.Query(context.Background(), `SELECT seq, type, coalesce(data->>'n', '') FROM user_events WHERE user_id = $1 ORDER BY seq`, user)
	if err != nil {
		t.Fatal(err)
	}
	var parts []string
	for rows.Next() {
		var seq int64
		var typ, n string
		if err := rows.Scan(&seq, &typ, &n); err != nil {
			t.Fatal(err)
		}
		parts = append(parts, fmt.Sprintf("%d:%s:%s", seq, typ, n))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(parts, " ")
}

// Deferred events are written by Flush, not before: each recipient's events
// in the order they were published, numbered on from the recipient's
// counter, and those dropped with Truncate never.
func TestDeferredPublication(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	u := newUsers(t, db.Pool, 3)
	a, b, c := u[0], u[1], u[2]
	// a already has an event: its deferred ones continue at 2.
	if err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		return Publish(ctx, tx, []uuid.UUID{a}, "thread.updated", map[string]string{"n": "0"})
	}); err != nil {
		t.Fatal(err)
	}

	tx, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	dctx, d := Defer(ctx)
	if err := Publish(dctx, tx, []uuid.UUID{c, a}, "thread.updated", map[string]string{"n": "1"}); err != nil {
		t.Fatal(err)
	}
	if err := PublishAll(dctx, tx, []Publication{
		{UserIDs: []uuid.UUID{b, a}, Type: "message.created", Data: map[string]string{"n": "2"}},
		{UserIDs: []uuid.UUID{c}, Type: "page.notify", Data: map[string]string{"n": "3"}},
	}); err != nil {
		t.Fatal(err)
	}
	mark := d.Len()
	if err := Publish(dctx, tx, []uuid.UUID{b}, "thread.updated", map[string]string{"n": "rolled back"}); err != nil {
		t.Fatal(err)
	}
	d.Truncate(mark)
	// A malformed event is refused when published, deferred or not.
	if err := Publish(dctx, tx, []uuid.UUID{a}, "Bad Type", nil); err == nil {
		t.Error("a malformed deferred event was accepted")
	}
	if got := streamOf(t, tx, b); got != "" {
		t.Fatalf("before Flush, b's stream is %q: a deferred event was written early", got)
	}
	if err := d.Flush(dctx, tx); err != nil {
		t.Fatal(err)
	}
	if d.Len() != 0 {
		t.Errorf("Len after Flush = %d", d.Len())
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	want := map[uuid.UUID]string{
		a: "1:thread.updated:0 2:thread.updated:1 3:message.created:2",
		b: "1:message.created:2",
		c: "1:thread.updated:1 2:page.notify:3",
	}
	for user, w := range want {
		if got := streamOf(t, db.Pool, user); got != w {
			t.Errorf("stream of %s = %q, want %q", user, got, w)
		}
	}
	// An immediate publication after the flush continues each counter.
	if err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		return Publish(ctx, tx, []uuid.UUID{a, b}, "thread.updated", map[string]string{"n": "4"})
	}); err != nil {
		t.Fatal(err)
	}
	if got := streamOf(t, db.Pool, a); !strings.HasSuffix(got, " 4:thread.updated:4") {
		t.Errorf("a's stream after a later Publish = %q", got)
	}
}

// Two transactions flushing events for the same people queued in opposite
// orders do not deadlock: the second waits for the first and numbers its
// events after the first's, in commit order.
func TestDeferredFlushesLockInOneOrder(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	u := newUsers(t, db.Pool, 2)
	a, b := u[0], u[1]
	flush := func(tx pgx.Tx, n string, order ...uuid.UUID) error {
		dctx, d := Defer(ctx)
		for _, id := range order {
			if err := Publish(dctx, tx, []uuid.UUID{id}, "thread.updated", map[string]string{"n": n}); err != nil {
				return err
			}
		}
		return d.Flush(dctx, tx)
	}
	first, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Rollback(ctx) //nolint:errcheck
	if err := flush(first, "first", b, a); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '10s'`); err != nil {
				return err
			}
			return flush(tx, "second", a, b)
		})
	}()
	select {
	case err := <-done:
		t.Fatalf("the second flush finished (%v) while the first transaction held the counters", err)
	case <-time.After(200 * time.Millisecond):
	}
	if err := first.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(wait):
		t.Fatal("the second flush never finished")
	}
	for _, user := range []uuid.UUID{a, b} {
		if got, want := streamOf(t, db.Pool, user), "1:thread.updated:first 2:thread.updated:second"; got != want {
			t.Errorf("stream = %q, want %q", got, want)
		}
	}
}

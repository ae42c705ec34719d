package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callroom/callroom/internal/pg"
	"github.com/callroom/callroom/internal/pgtest"
)

func TestPublishRefusesMalformedEvents(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	users := newUsers(t, db.Pool, 1)
	for _, tc := range []struct {
		name string
		typ  string
		data any
	}{
		{"one word type", "page", nil},
		{"capitals", "Page.notify", nil},
		{"trailing dot", "page.", nil},
		{"leading dot", ".page", nil},
		{"digit", "page.v2", nil},
		{"hyphen", "page.re-notify", nil},
		{"space", "page notify", nil},
		{"empty type", "", nil},
		{"data over 4 KiB", "message.created", map[string]string{"ids": strings.Repeat("x", MaxDataBytes)}},
		{"data an array", "message.created", []string{"a"}},
		{"data a string", "message.created", "hello"},
		{"data null", "message.created", json.RawMessage("null")},
		{"data not JSON", "message.created", json.RawMessage("{nope")},
		{"data unmarshalable", "message.created", map[string]any{"f": func() {}}},
		{"reserved key seq", "message.created", map[string]int{"seq": 1}},
		{"reserved key type", "message.created", map[string]string{"type": "x"}},
		{"reserved key at", "message.created", map[string]string{"at": "x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Publish(ctx, db.Pool, users, tc.typ, tc.data)
			if !errors.Is(err, ErrInvalidEvent) {
				t.Fatalf("Publish(%q, %T) = %v, want ErrInvalidEvent", tc.typ, tc.data, err)
			}
		})
	}
	if err := Publish(ctx, db.Pool, []uuid.UUID{uuid.Nil}, "page.updated", nil); !errors.Is(err, ErrInvalidEvent) {
		t.Errorf("publishing to the nil user: %v, want ErrInvalidEvent", err)
	}
	var n int
	if err := db.Pool.QueryRow(ctx, "SELECT (SELECT count(*) FROM user_events) + (SELECT count(*) FROM user_event_counters)").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d rows written by refused events", n)
	}

	// The limit is on the encoded size: exactly MaxDataBytes is fine.
	pad := MaxDataBytes - len(`{"ids":""}`)
	if err := Publish(ctx, db.Pool, users, "message.created", map[string]string{"ids": strings.Repeat("x", pad)}); err != nil {
		t.Errorf("data of exactly %d bytes: %v", MaxDataBytes, err)
	}
	// Empty recipients is a no-op, not an error.
	if err := Publish(ctx, db.Pool, nil, "message.created", nil); err != nil {
		t.Errorf("no recipients: %v", err)
	}
}

func TestPublishInRolledBackTransactionAnnouncesNothing(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	h := startHub(t, db.Pool)
	u := newUsers(t, db.Pool, 1)
	sub := h.Subscribe(u[0], 0)
	defer sub.Close()

	rollback := errors.New("roll back")
	err := pg.InTx(ctx, db.Pool, func(tx pgx.Tx) error {
		if err := Publish(ctx, tx, u, "page.notify", map[string]string{"page_id": uuid.NewString()}); err != nil {
			return err
		}
		return rollback
	})
	if !errors.Is(err, rollback) {
		t.Fatal(err)
	}
	if seq, err := h.CurrentSeq(ctx, u[0]); err != nil || seq != 0 {
		t.Fatalf("CurrentSeq after rollback = %d, %v; want 0", seq, err)
	}
	if evs, err := h.Since(ctx, u[0], 0, 0); err != nil || len(evs) != 0 {
		t.Fatalf("Since after rollback = %v, %v; want nothing", evs, err)
	}
	// The rolled-back event is never delivered and gave its seq back: the
	// subscriber's first event is the next committed one, as seq 1.
	publish(t, db.Pool, u, "page.updated", nil)
	expect(t, sub, ev(1, "page.updated"))
}

func TestPublishToManyUsersAtOnce(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	h := startHub(t, db.Pool)
	users := newUsers(t, db.Pool, 50)
	subs := make([]*Subscription, len(users))
	for i, u := range users {
		subs[i] = h.Subscribe(u, 0)
		defer subs[i].Close()
	}
	// Unsorted, with duplicates: each user still gets exactly one event.
	recipients := append(append([]uuid.UUID{}, users...), users[:10]...)
	rand.Shuffle(len(recipients), func(i, j int) { recipients[i], recipients[j] = recipients[j], recipients[i] })
	thread := uuid.NewString()
	publish(t, db.Pool, recipients, "message.created", map[string]string{"thread_id": thread, "message_id": uuid.NewString()})
	publish(t, db.Pool, users, "receipt.updated", map[string]string{"thread_id": thread})
	for _, s := range subs {
		e := next(t, s)
		var d struct {
			ThreadID string `json:"thread_id"`
		}
		if err := json.Unmarshal(e.Data, &d); err != nil || e.Seq != 1 || e.Type != "message.created" || d.ThreadID != thread {
			t.Fatalf("user %s got %+v (%s), want seq 1 message.created for thread %s", s.UserID(), e, e.Data, thread)
		}
		expect(t, s, ev(2, "receipt.updated"))
	}
	if n := h.Connections(); n != 50 {
		t.Errorf("Connections() = %d, want 50", n)
	}
}

// TestConcurrentPublishersStayInCommitOrder is the case a global sequence
// gets wrong: two transactions publish to one user, and the one that started
// first commits last.
func TestConcurrentPublishersStayInCommitOrder(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	h := startHub(t, db.Pool)
	users := newUsers(t, db.Pool, 2)
	u, other := users[0], users[1]
	live := h.Subscribe(u, 0)
	defer live.Close()

	begin := func() pgx.Tx {
		tx, err := db.Pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tx.Rollback(context.Background()) }) //nolint:errcheck
		return tx
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}

	// 1. First starts first and does its work; second starts, publishes and
	// commits; first publishes and commits last. Seq follows commits.
	first := begin()
	must(Publish(ctx, first, []uuid.UUID{other}, "page.updated", nil))
	second := begin()
	must(Publish(ctx, second, []uuid.UUID{u}, "page.updated", map[string]string{"tx": "second"}))
	must(second.Commit(ctx))
	must(Publish(ctx, first, []uuid.UUID{u}, "page.notify", map[string]string{"tx": "first"}))
	must(first.Commit(ctx))
	expect(t, live, ev(1, "page.updated"), ev(2, "page.notify"))

	// The client drops here, after seq 2.
	live.Close()

	// 2. First publishes; second's publish to the same user has to wait for
	// first's transaction to end, then takes the next seq.
	first = begin()
	must(Publish(ctx, first, []uuid.UUID{u}, "message.created", nil))
	second = begin()
	var secondPID uint32
	must(second.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&secondPID))
	done := make(chan error, 1)
	go func() { done <- Publish(ctx, second, []uuid.UUID{u, other}, "receipt.updated", nil) }()
	waitFor(t, "the second publisher to wait for the first's lock", func() bool {
		var waiting bool
		db.Pool.QueryRow(ctx, "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", secondPID).Scan(&waiting) //nolint:errcheck
		return waiting
	})
	must(first.Commit(ctx))
	must(<-done)
	must(second.Commit(ctx))

	// Reconnecting with Last-Event-ID 2 replays exactly what was missed.
	back := h.Subscribe(u, 2)
	defer back.Close()
	expect(t, back, ev(3, "message.created"), ev(4, "receipt.updated"))
	publish(t, db.Pool, []uuid.UUID{u}, "page.updated", nil)
	expect(t, back, ev(5, "page.updated"))

	all, err := Since(ctx, db.Pool, u, 0, 0)
	must(err)
	for i, e := range all {
		if e.Seq != int64(i+1) {
			t.Fatalf("stored seqs: position %d holds %d", i, e.Seq)
		}
	}
	if len(all) != 5 {
		t.Fatalf("%d events stored, want 5", len(all))
	}
	replay, err := Since(ctx, db.Pool, u, 2, 2)
	must(err)
	if len(replay) != 2 || replay[0].Seq != 3 || replay[1].Seq != 4 {
		t.Fatalf("Since(2, limit 2) = %+v", replay)
	}
}

// TestManyConcurrentPublishers hammers a few users from many transactions
// with overlapping recipients in random order (which must not deadlock) while
// subscribers read: every subscriber sees 1..n exactly once, in order.
func TestManyConcurrentPublishers(t *testing.T) {
	t.Parallel()
	db := pgtest.NewWithPoolSize(t, 20)
	ctx := context.Background()
	h := startHub(t, db.Pool)
	users := newUsers(t, db.Pool, 4)
	const workers, each = 12, 10
	subs := make([]*Subscription, len(users))
	for i, u := range users {
		subs[i] = h.Subscribe(u, 0)
		defer subs[i].Close()
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				rcpt := append([]uuid.UUID{}, users...)
				rand.Shuffle(len(rcpt), func(i, j int) { rcpt[i], rcpt[j] = rcpt[j], rcpt[i] })
				err := pg.InTx(ctx, db.Pool, func(tx pgx.Tx) error {
					if _, err := tx.Exec(ctx, "SELECT pg_sleep(random() * 0.002)"); err != nil {
						return err
					}
					return Publish(ctx, tx, rcpt, "page.updated", map[string]string{"by": fmt.Sprintf("%d/%d", w, i)})
				})
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	total := int64(workers * each)
	var readers sync.WaitGroup
	for _, s := range subs {
		readers.Go(func() {
			for want := int64(1); want <= total; want++ {
				ctx, cancel := context.WithTimeout(context.Background(), wait)
				e, err := s.Next(ctx)
				cancel()
				if err != nil || e.Seq != want {
					errs <- fmt.Errorf("user %s: got seq %d (%v), want %d", s.UserID(), e.Seq, err, want)
					return
				}
			}
		})
	}
	wg.Wait()
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

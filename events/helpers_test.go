package events

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/callroom/callroom/internal/pg"
)

// wait bounds every wait in these tests. It is not a latency assertion: it
// only turns a hang into a failure.
const wait = 10 * time.Second

// newUsers inserts n users and returns their ids.
func newUsers(t testing.TB, pool *pgxpool.Pool, n int) []uuid.UUID {
	t.Helper()
	emails := make([]string, n)
	for i := range emails {
		emails[i] = fmt.Sprintf("u%d-%s@example.org", i, uuid.NewString()[:8])
	}
	rows, err := pool.Query(context.Background(), `INSERT INTO users (email, name)
		SELECT e, 'Test user' FROM unnest($1::text[]) AS e RETURNING id`, emails)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// startHub runs a hub until the test ends.
func startHub(t testing.TB, pool *pgxpool.Pool) *Hub {
	t.Helper()
	return startGivenHub(t, NewHub(pool, nil))
}

func startGivenHub(t testing.TB, h *Hub) *Hub {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- h.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("Hub.Run: %v", err)
		}
	})
	return h
}

// publish publishes in a transaction of its own.
func publish(t testing.TB, pool *pgxpool.Pool, users []uuid.UUID, typ string, data any) {
	t.Helper()
	err := pg.InTx(context.Background(), pool, func(tx pgx.Tx) error {
		return Publish(context.Background(), tx, users, typ, data)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// next returns the subscription's next event or fails the test.
func next(t testing.TB, s *Subscription) Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	e, err := s.Next(ctx)
	if err != nil {
		t.Fatalf("Next after seq %d: %v", s.LastSeq(), err)
	}
	return e
}

// expect reads len(want) events and checks their seqs and types.
func expect(t testing.TB, s *Subscription, want ...Event) {
	t.Helper()
	for _, w := range want {
		got := next(t, s)
		if got.Seq != w.Seq || got.Type != w.Type || got.UserID != s.UserID() {
			t.Fatalf("got seq %d %s for %s, want seq %d %s", got.Seq, got.Type, got.UserID, w.Seq, w.Type)
		}
	}
}

func ev(seq int64, typ string) Event { return Event{Seq: seq, Type: typ} }

// waitFor polls cond until it holds, failing after wait.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// gate holds a hub's reconnects while closed.
type gate struct {
	mu sync.Mutex
	ch chan struct{} // nil when open
}

func (g *gate) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ch == nil {
		g.ch = make(chan struct{})
	}
}

func (g *gate) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ch != nil {
		close(g.ch)
		g.ch = nil
	}
}

func (g *gate) pass(ctx context.Context) error {
	g.mu.Lock()
	ch := g.ch
	g.mu.Unlock()
	if ch == nil {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return errors.Join(errors.New("gate closed"), ctx.Err())
	}
}

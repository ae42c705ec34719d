package pg_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/callroom/callroom/internal/pg"
)

// groupMember is a Group member that reads whether row id exists, writes it
// and reads it back (3 round trips on its own, with BEGIN and COMMIT).
type groupMember struct {
	id      int
	readErr error // its read's Scan fails with it
	direct  bool  // uses its transaction directly, before writing
	failing bool  // fails after its write was sent
	before  int   // rows with its id when it read
	after   int   // ... after it wrote
}

func (m *groupMember) reads() []pg.Read {
	return []pg.Read{{SQL: `SELECT count(*)::int FROM pipelined WHERE id = $1`, Args: []any{m.id}, Scan: func(rows pgx.Rows) (err error) {
		m.before, err = pgx.CollectExactlyOneRow(rows, pgx.RowTo[int])
		if err == nil {
			err = m.readErr
		}
		return err
	}}}
}

func (m *groupMember) fn(tx pgx.Tx, w *pg.Writes) error {
	ctx := context.Background()
	if m.direct {
		if _, err := tx.Exec(ctx, `SELECT 1`); err != nil {
			return err
		}
	}
	w.Exec(`INSERT INTO pipelined (id) VALUES ($1)`, m.id)
	if err := w.FlushQuery(ctx, nil, func(rows pgx.Rows) (err error) {
		m.after, err = pgx.CollectExactlyOneRow(rows, pgx.RowTo[int])
		return err
	}, `SELECT count(*)::int FROM pipelined WHERE id = $1`, m.id); err != nil {
		return err
	}
	if m.failing {
		return errors.New("changed its mind")
	}
	return nil
}

// inGroup sends ms as one group of g: a first member holds the group's
// only transaction (a read that sleeps) until all of ms are waiting. It
// returns each member's error and the round trips ms's group took.
func inGroup(t *testing.T, pool *pgxpool.Pool, g *pg.Group[int], rt *roundTrips, ms []*groupMember) ([]error, int64) {
	t.Helper()
	ctx := context.Background()
	hold := make(chan error, 1)
	rt.n.Store(0)
	go func() {
		hold <- g.InTx(ctx, []pg.Read{{SQL: `SELECT pg_sleep(0.3)`, Scan: func(rows pgx.Rows) error { rows.Close(); return rows.Err() }}},
			func(pgx.Tx, *pg.Writes) error { return nil }, -1)
	}()
	for g.Waiting() > 0 || pool.Stat().AcquiredConns() == 0 { // the first one is being sent
		time.Sleep(time.Millisecond)
	}
	errs := make([]error, len(ms))
	var wg sync.WaitGroup
	for i, m := range ms {
		wg.Go(func() { errs[i] = g.InTx(ctx, m.reads(), m.fn, m.id) })
	}
	for g.Waiting() < len(ms) {
		time.Sleep(time.Millisecond)
	}
	if err := <-hold; err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	return errs, rt.n.Load() - 2 // the first one's: BEGIN with its read, COMMIT
}

func TestGroup(t *testing.T) {
	ctx := context.Background()
	boom := errors.New("boom")
	cases := []struct {
		name string
		ms   []*groupMember
		// committed are the ids written; left the members that left the
		// group (an error of their own), the others committing.
		committed  []int
		left       []int
		roundTrips int64
		lastFails  bool
	}{
		{name: "together", ms: []*groupMember{{id: 1}, {id: 2}, {id: 3}, {id: 4}, {id: 5}},
			committed: []int{1, 2, 3, 4, 5}, roundTrips: 3},
		{name: "a read fails: that member leaves", ms: []*groupMember{{id: 1}, {id: 2, readErr: boom}, {id: 3}},
			committed: []int{1, 3}, left: []int{2}, roundTrips: 3},
		{name: "direct use before writing: that member leaves", ms: []*groupMember{{id: 1}, {id: 2, direct: true}, {id: 3}},
			committed: []int{1, 3}, left: []int{2}, roundTrips: 3},
		{name: "a member fails after writing: all roll back", ms: []*groupMember{{id: 1}, {id: 2, failing: true}, {id: 3}},
			roundTrips: 3},
		{name: "a statement fails: all roll back", ms: []*groupMember{{id: 1}, {id: 2}, {id: 2}},
			roundTrips: 3},
		{name: "what they share fails: all roll back", ms: []*groupMember{{id: 1}, {id: 2}}, lastFails: true,
			roundTrips: 4}, // and the ROLLBACK
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pool, rt := tracedPool(t)
			var shared []int
			g := pg.NewGroup(pool, 100, 1, 1, func(w *pg.Writes, s []int) {
				if slices.Equal(s, []int{-1}) {
					return // inGroup's first member, alone
				}
				if c.lastFails {
					w.Exec(`INSERT INTO pipelined (id) VALUES (1)`) // a duplicate
				}
				shared = s
				w.Exec(`INSERT INTO pipelined (id, note) VALUES (1000, $1)`, fmt.Sprint(s))
			})
			errs, n := inGroup(t, pool, g, rt, c.ms)
			if n != c.roundTrips {
				t.Errorf("%d round trips, want %d", n, c.roundTrips)
			}
			var committed []int
			for i, m := range c.ms {
				switch err := errs[i]; {
				case slices.Contains(c.left, m.id):
					if !errors.Is(err, pg.ErrNotCommitted) || (m.readErr != nil && !errors.Is(err, m.readErr)) ||
						(m.direct && !errors.Is(err, pg.ErrLockstep)) {
						t.Errorf("member %d left with %v", m.id, err)
					}
				case len(c.committed) == 0:
					if !errors.Is(err, pg.ErrNotCommitted) {
						t.Errorf("member %d of a group rolled back: %v, want ErrNotCommitted", m.id, err)
					}
				case err != nil:
					t.Errorf("member %d: %v", m.id, err)
				default:
					committed = append(committed, m.id)
					if m.before != 0 || m.after != 1 {
						t.Errorf("member %d read its row %d times before writing it, %d after", m.id, m.before, m.after)
					}
				}
			}
			if !slices.Equal(committed, c.committed) {
				t.Errorf("committed %v, want %v", committed, c.committed)
			}
			rows, _ := pool.Query(ctx, `SELECT id FROM pipelined WHERE id < 1000 ORDER BY id`)
			written, err := pgx.CollectRows(rows, pgx.RowTo[int])
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(written, c.committed) {
				t.Errorf("rows %v, want %v", written, c.committed)
			}
			slices.Sort(shared) // in the order they came
			if len(c.committed) > 0 && !slices.Equal(shared, c.committed) {
				t.Errorf("last given %v, want what the committed members handed over: %v", shared, c.committed)
			}
		})
	}
}

// A group is at most size members; the others wait for the next.
func TestGroupSize(t *testing.T) {
	pool, rt := tracedPool(t)
	g := pg.NewGroup[int](pool, 4, 1, 1, nil)
	ms := make([]*groupMember, 10)
	for i := range ms {
		ms[i] = &groupMember{id: i}
	}
	errs, n := inGroup(t, pool, g, rt, ms)
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if n != 9 {
		t.Errorf("10 members in groups of 4: %d round trips, want 9 (3 groups of 3)", n)
	}
	if got := count(t, pool); got != 10 {
		t.Errorf("%d rows, want 10", got)
	}
}

// A panic while a group is sent (here in what its members share) is every
// member's error, not the end of the process, and the group rolls back.
func TestGroupPanic(t *testing.T) {
	pool, rt := tracedPool(t)
	panicking := true
	g := pg.NewGroup(pool, 100, 1, 1, func(w *pg.Writes, s []int) {
		if panicking && !slices.Equal(s, []int{-1}) {
			panic("boom")
		}
	})
	errs, _ := inGroup(t, pool, g, rt, []*groupMember{{id: 1}, {id: 2}})
	outcomeUnknown(t, errs)
	if n := count(t, pool); n != 0 {
		t.Errorf("%d rows after a panic before the commit, want 0", n)
	}
	// The group still sends.
	panicking = false
	errs, _ = inGroup(t, pool, g, rt, []*groupMember{{id: 3}})
	if errs[0] != nil {
		t.Error(errs[0])
	}
}

// A check on a result of what the members share fails after PostgreSQL ran
// the COMMIT: the members' work is committed, so their error must not say
// "not committed" (they would be sent again, twice).
func TestGroupCheckFailingAfterCommit(t *testing.T) {
	pool, rt := tracedPool(t)
	g := pg.NewGroup(pool, 100, 1, 1, func(w *pg.Writes, s []int) {
		if !slices.Equal(s, []int{-1}) {
			w.ExecCheck(func(pgconn.CommandTag) error { return errors.New("unexpected row count") }, `SELECT 1`)
		}
	})
	errs, _ := inGroup(t, pool, g, rt, []*groupMember{{id: 1}, {id: 2}})
	outcomeUnknown(t, errs)
	if n := count(t, pool); n != 2 {
		t.Errorf("%d rows, want 2: the COMMIT ran", n)
	}
}

// outcomeUnknown checks that every member got an error that does not say
// "not committed": whether its work committed is unknown (or it did), so it
// must not be sent again.
func outcomeUnknown(t *testing.T, errs []error) {
	t.Helper()
	for i, err := range errs {
		if err == nil || errors.Is(err, pg.ErrNotCommitted) {
			t.Errorf("member %d: %v, want an error that does not say not committed", i, err)
		}
	}
}

// Enter says "group" once as many callers as SetFrom says are in, and not
// after they leave; 0 never does.
func TestGroupEnter(t *testing.T) {
	g := pg.NewGroup[int](nil, 10, 1, 3, nil)
	var leaves []func()
	for i, want := range []bool{false, false, true, true} {
		group, leave := g.Enter()
		leaves = append(leaves, leave)
		if group != want {
			t.Errorf("caller %d in: group %v, want %v", i+1, group, want)
		}
	}
	for _, leave := range leaves[1:] {
		leave()
	}
	if group, leave := g.Enter(); group {
		t.Error("2 in, from 3: group")
	} else {
		leave()
	}
	g.SetFrom(0)
	for range 5 {
		if group, _ := g.Enter(); group {
			t.Error("from 0: group")
		}
	}
}

// TestGroupsTakeTurnsWithStatements: with two groups at once, one runs its
// members' statements while the other begins, reads or commits; never two
// groups' statements at once. Groups of 4: more than 4 functions running
// at a time would be two groups'.
func TestGroupsTakeTurnsWithStatements(t *testing.T) {
	pool, _ := tracedPool(t)
	ctx := context.Background()
	g := pg.NewGroup[int](pool, 4, 2, 1, nil)
	var mu sync.Mutex
	running, most := 0, 0
	var overlapped bool // a group began while another ran its statements
	var wg sync.WaitGroup
	errs := make([]error, 40)
	for i := range errs {
		wg.Go(func() {
			reads := []pg.Read{{SQL: `SELECT 1`, Scan: func(rows pgx.Rows) error {
				mu.Lock()
				overlapped = overlapped || running > 0
				mu.Unlock()
				rows.Close()
				return rows.Err()
			}}}
			errs[i] = g.InTx(ctx, reads, func(_ pgx.Tx, w *pg.Writes) error {
				mu.Lock()
				running++
				most = max(most, running)
				mu.Unlock()
				defer func() { mu.Lock(); running--; mu.Unlock() }()
				w.Exec(`INSERT INTO pipelined (id) VALUES ($1)`, i)
				if err := w.FlushQuery(ctx, nil, func(rows pgx.Rows) error { rows.Close(); return rows.Err() }, `SELECT pg_sleep(0.01)`); err != nil {
					return err
				}
				return nil
			}, i)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if most > 4 {
		t.Errorf("%d functions ran at once in groups of 4: two groups' statements at once", most)
	}
	if !overlapped {
		t.Log("no group began while another ran its statements (nothing overlapped this run)")
	}
	if n := count(t, pool); n != 40 {
		t.Errorf("%d rows, want 40", n)
	}
}

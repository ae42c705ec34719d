package pg

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Group commits transactions that arrive at once as one transaction (group
// commit): while a group's transaction runs, the transactions that arrive
// wait, and the next group takes them all. Each member's reads go with the
// BEGIN, its function runs in lockstep with the others' (Lockstep: one
// round trip per step for all of them), and the statements the members
// share (Last, with what each member handed over) go with the COMMIT.
//
// Why: sending a page is 3 round trips and a commit of its own. On a
// 2-core machine at a few hundred pages a second, most of PostgreSQL's
// time then goes to what surrounds the statements: process wake-ups,
// BEGIN and COMMIT, a WAL flush per page, and each recipient's event
// counter locked until that flush is done. A group of 30 pages costs 5
// round trips and one flush (docs/PERFORMANCE.md).
//
// A member is all or nothing, as its own transaction would be:
//   - a member whose reads or function fail before any of its statements
//     ran (its reads have no effect) leaves the group, which commits
//     without it; it gets an error wrapping ErrNotCommitted and its own;
//   - anything else that fails (a statement, a member that fails after
//     its statements ran, Last) rolls the whole group back, and every
//     member gets an error wrapping ErrNotCommitted;
//
// so a member that gets ErrNotCommitted may run again on its own. Only a
// lost connection during the COMMIT leaves the outcome unknown, as for any
// transaction; that error does not wrap ErrNotCommitted.
//
// A member's function gets a transaction that refuses direct use
// (ErrLockstep): it must do all its work through its Writes, and must not
// commit. Members must not depend on one another's effects (Lockstep).
//
// With more than one group at once (NewGroup's concurrency), only one runs
// its members' statements at a time: the others overlap it with their
// BEGIN and reads, or with their shared statements and COMMIT. Why: one
// group's statements keep one backend busy while the rest of the machine
// waits for it (pages: ~60 % of a group's time, and a third of two cores
// idle); two groups' statements at once contend for the same index pages
// and counters and cost 30-40 % more CPU per page for no more pages a
// second, where overlapping the other phases sent 9-21 % more pages a
// second (docs/PERFORMANCE.md). So a member's reads must take no locks: a
// group that holds them while it waits its turn could block the group
// whose turn it is.
type Group[S any] struct {
	// Failed, when set, hears of every group that could not commit (how
	// many members it had, and why): each member is then sent on its own,
	// which is correct but forgoes what the group saves. Set it before
	// the first InTx.
	Failed func(members int, err error)

	pool        *pgxpool.Pool
	size        int
	concurrency int
	last        func(w *Writes, shared []S)

	// from is how many callers must be in (Enter) for a group to pay: a
	// caller alone is faster on its own (one round trip, where a group of
	// one takes three). 0: never.
	from      atomic.Int64
	in        atomic.Int64 // callers between Enter and leave
	committed atomic.Int64 // members committed in a group

	mu      sync.Mutex
	queue   []*member[S]
	running int // groups being sent

	// statements is held by the group running its members' statements.
	statements sync.Mutex
}

// ErrNotCommitted is wrapped by the error of a Group member whose work was
// not committed: it may run again on its own.
var ErrNotCommitted = errors.New("pg: not committed with its group")

// groupTimeout bounds a group's transaction, which no member's context
// may cancel on its own.
const groupTimeout = 30 * time.Second

type member[S any] struct {
	reads  []Read
	fn     func(tx pgx.Tx, w *Writes) error
	shared S
	done   chan error
}

// NewGroup returns a Group that sends at most size members per
// transaction, in at most concurrency transactions at once, once from
// callers are in (Enter). last, if not nil, queues in its Writes what the
// committed members share (the shared values they handed to InTx, in their
// order), to go with the COMMIT.
func NewGroup[S any](pool *pgxpool.Pool, size, concurrency, from int, last func(w *Writes, shared []S)) *Group[S] {
	g := &Group[S]{pool: pool, size: max(size, 1), concurrency: max(concurrency, 1), last: last}
	g.SetFrom(from)
	return g
}

// Enter counts the caller in until it calls leave, and reports whether
// enough callers are in (SetFrom) for its transaction to go in a group
// (InTx) rather than on its own.
func (g *Group[S]) Enter() (group bool, leave func()) {
	n := g.in.Add(1)
	from := g.from.Load()
	return from > 0 && n >= from, func() { g.in.Add(-1) }
}

// SetFrom sets how many callers must be in for Enter to say "group" (1:
// always; 0: never).
func (g *Group[S]) SetFrom(n int) { g.from.Store(int64(n)) }

// Committed is how many members have committed in a group.
func (g *Group[S]) Committed() int64 { return g.committed.Load() }

// InTx runs reads (with the group's BEGIN: each Scan runs with the rows
// read) and then fn in the next group's transaction, and returns once that
// transaction has ended: nil if it committed with fn's work.
//
// ctx is not the transaction's: a member leaving does not cancel the
// others. fn keeps the caller's context for its own use.
func (g *Group[S]) InTx(ctx context.Context, reads []Read, fn func(tx pgx.Tx, w *Writes) error, shared S) error {
	if err := ctx.Err(); err != nil {
		return notCommitted(err)
	}
	m := &member[S]{reads: reads, fn: fn, shared: shared, done: make(chan error, 1)}
	g.mu.Lock()
	g.queue = append(g.queue, m)
	if g.running < g.concurrency {
		g.running++
		go g.lead()
	}
	g.mu.Unlock()
	return <-m.done
}

// Waiting is how many members wait for a group to take them.
func (g *Group[S]) Waiting() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.queue)
}

// lead sends groups until none is waiting.
func (g *Group[S]) lead() {
	for {
		g.mu.Lock()
		n := min(len(g.queue), g.size)
		if n == 0 {
			g.running--
			g.mu.Unlock()
			return
		}
		ms := make([]*member[S], n)
		copy(ms, g.queue)
		g.queue = append(g.queue[:0], g.queue[n:]...)
		g.mu.Unlock()

		errs := make([]error, n)
		err := g.sendSafely(ms, errs)
		if err != nil && g.Failed != nil {
			g.Failed(n, err)
		}
		for i, m := range ms {
			if err != nil {
				m.done <- err
				continue
			}
			if errs[i] == nil {
				g.committed.Add(1)
			}
			m.done <- errs[i]
		}
	}
}

// sendSafely is send, with a panic outside the members' functions (which
// Lockstep recovers) turned into every member's error: the goroutine
// sending groups is nobody's request, and its members wait for an answer.
// Whether the transaction committed is then unknown, so the error does not
// wrap ErrNotCommitted.
func (g *Group[S]) sendSafely(ms []*member[S], errs []error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("pg: group of %d: panic: %v", len(ms), r)
		}
	}()
	return g.send(ms, errs)
}

// send runs ms's transaction. Its error is every member's; nil leaves
// each member its own in errs (nil: committed).
func (g *Group[S]) send(ms []*member[S], errs []error) error {
	ctx, cancel := context.WithTimeout(context.Background(), groupTimeout)
	defer cancel()
	conn, err := g.pool.Acquire(ctx)
	if err != nil {
		return notCommitted(err)
	}
	defer conn.Release()

	sets := make([][]Read, len(ms))
	for i, m := range ms {
		sets[i] = m.reads
	}
	tx, readErrs, err := begin(ctx, conn, sets)
	defer rollbackOpen(ctx, conn, tx)
	if err != nil {
		return notCommitted(err)
	}
	copy(errs, readErrs)

	var fns []func(pgx.Tx, *Writes) error
	var in []int // the members fns are of
	for i, m := range ms {
		if errs[i] == nil {
			fns, in = append(fns, m.fn), append(in, i)
		} else {
			errs[i] = notCommitted(errs[i])
		}
	}
	var ferrs []error
	var sent []bool
	func() {
		g.statements.Lock()
		defer g.statements.Unlock() // also if it panics (sendSafely)
		ferrs, sent = lockstepEach(ctx, tx, fns)
	}()
	var shared []S
	for k, i := range in {
		switch {
		case ferrs[k] == nil:
			shared = append(shared, ms[i].shared)
		case sent[k]:
			return notCommitted(ferrs[k]) // its statements are in the transaction
		default:
			errs[i] = notCommitted(ferrs[k])
		}
	}
	if len(shared) == 0 {
		return nil // nobody's work to commit: rolled back
	}
	var w Writes
	if g.last != nil {
		g.last(&w, shared)
	}
	w.CommitOnFlush()
	if err := w.Flush(ctx, tx); err != nil {
		// A statement before the COMMIT failed (PostgreSQL skipped the
		// COMMIT) or the COMMIT did and rolled back: not committed. A
		// check on a statement's result (ExecCheck) fails after PostgreSQL
		// has run the COMMIT, and a connection lost meanwhile leaves the
		// outcome unknown: sending the members again could send them
		// twice.
		var pgErr *pgconn.PgError
		if conn.Conn().IsClosed() || !errors.As(err, &pgErr) {
			return fmt.Errorf("pg: group of %d: commit: %w", len(shared), err)
		}
		return notCommitted(err)
	}
	return nil
}

func notCommitted(err error) error {
	if errors.Is(err, ErrNotCommitted) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrNotCommitted, err)
}

package pg

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Lockstep runs fns at once in tx, each with a Writes of its own whose
// flushes wait for one another: each step sends what all of them flushed in
// one round trip and hands each its results. Each function's statements run
// in the order it queued them; those of functions whose statements are
// alike go statement by statement (the first of each, in the order of
// fns, then the second...), merged into one where ExecRows allows, and
// the others in the order of fns.
//
// Why: a burst from the EHR is applied in batches, one transaction each,
// and each notification of a batch reads and writes in a few steps (its
// source, its patient's threads, the thread and its members). One after the
// other, a batch of 30 took 120 round trips; in lockstep it takes 4, and
// PostgreSQL runs the same statements (docs/PERFORMANCE.md).
//
// Each fn must do all its work through its Writes (Exec, Queue, Flush,
// FlushQuery); the transaction it is given refuses to be used directly
// (ErrLockstep), since the connection is shared. fns must not depend on one
// another's effects: a step's statements interleave, so the caller keeps
// apart what touches the same rows. A statement that fails
// ends the transaction, so every fn waiting on that step gets the error; the
// caller rolls back (to a savepoint) and may retry them one by one.
func Lockstep(ctx context.Context, tx pgx.Tx, fns []func(tx pgx.Tx, w *Writes) error) error {
	errs, _ := lockstepEach(ctx, tx, fns)
	return errors.Join(errs...)
}

// lockstepEach is Lockstep with each fn's error, and whether any statement
// of fn's was sent (sent[i] false: fn left nothing in the transaction).
func lockstepEach(ctx context.Context, tx pgx.Tx, fns []func(tx pgx.Tx, w *Writes) error) (errs []error, sent []bool) {
	l := &lockstep{running: len(fns)}
	l.cond = sync.NewCond(&l.mu)
	errs, sent = make([]error, len(fns)), make([]bool, len(fns))
	for i, fn := range fns {
		go func() {
			defer func() {
				if r := recover(); r != nil {
					if err, ok := r.(error); ok {
						errs[i] = fmt.Errorf("pg: lockstep: %w", err)
					} else {
						errs[i] = fmt.Errorf("pg: lockstep: %v", r)
					}
				}
				l.mu.Lock()
				l.running--
				l.cond.Broadcast()
				l.mu.Unlock()
			}()
			w := &Writes{step: l, idx: i}
			errs[i] = fn(refusingTx{}, w)
		}()
	}
	for {
		l.mu.Lock()
		for l.running > 0 {
			l.cond.Wait()
		}
		waiting := l.waiting
		l.waiting = nil
		l.running = len(waiting)
		l.mu.Unlock()
		if len(waiting) == 0 {
			break
		}
		slices.SortFunc(waiting, func(a, b *stepFlush) int { return a.idx - b.idx })
		b := mergeStep(waiting)
		for _, f := range waiting {
			sent[f.idx] = true
		}
		err := tx.SendBatch(ctx, &b).Close()
		for _, f := range waiting {
			f.err = err
			close(f.done)
		}
	}
	return errs, sent
}

// ErrLockstep is the error of a transaction used directly by a function
// run by Lockstep.
var ErrLockstep = errors.New("pg: a function run in lockstep uses its transaction directly")

type lockstep struct {
	mu      sync.Mutex
	cond    *sync.Cond
	running int // fns neither waiting for a step nor done
	waiting []*stepFlush
}

type stepFlush struct {
	idx  int
	b    pgx.Batch
	rows map[*pgx.QueuedQuery]int // Writes.rows
	err  error
	done chan struct{}
}

// flush waits for the step that sends what w holds.
func (l *lockstep) flush(w *Writes) error {
	if w.commit {
		return errors.New("pg: a function run in lockstep cannot commit")
	}
	if w.b.Len() == 0 {
		return nil
	}
	f := &stepFlush{idx: w.idx, b: w.b, rows: w.rows, done: make(chan struct{})}
	w.b, w.rows = pgx.Batch{}, nil
	l.mu.Lock()
	l.waiting = append(l.waiting, f)
	l.running--
	l.cond.Broadcast()
	l.mu.Unlock()
	<-f.done
	return f.err
}

// refusingTx is the transaction Lockstep gives its functions: any direct
// use is ErrLockstep.
type refusingTx struct{ pgx.Tx }

func (refusingTx) Exec(context.Context, string, ...any) (pgconn.CommandTag, error) {
	return pgconn.CommandTag{}, ErrLockstep
}

func (refusingTx) Query(context.Context, string, ...any) (pgx.Rows, error) {
	return refusedRows{}, ErrLockstep
}

func (refusingTx) QueryRow(context.Context, string, ...any) pgx.Row { return refusedRow{} }

func (refusingTx) SendBatch(context.Context, *pgx.Batch) pgx.BatchResults {
	panic(ErrLockstep) // recovered by Lockstep: BatchResults has no error of its own to carry it
}

func (refusingTx) CopyFrom(context.Context, pgx.Identifier, []string, pgx.CopyFromSource) (int64, error) {
	return 0, ErrLockstep
}

func (refusingTx) Begin(context.Context) (pgx.Tx, error) { return nil, ErrLockstep }

type refusedRow struct{}

func (refusedRow) Scan(...any) error { return ErrLockstep }

// refusedRows are the rows of a refused query, for callers that read the
// error from the rows (pgx.CollectRows) rather than from Query. What it does
// not define (Conn, TypeMap, ...) panics, which Lockstep recovers.
type refusedRows struct{ pgx.Rows }

func (refusedRows) Close()                                       {}
func (refusedRows) Err() error                                   { return ErrLockstep }
func (refusedRows) CommandTag() pgconn.CommandTag                { return pgconn.CommandTag{} }
func (refusedRows) FieldDescriptions() []pgconn.FieldDescription { return nil }
func (refusedRows) Next() bool                                   { return false }
func (refusedRows) Scan(...any) error                            { return ErrLockstep }
func (refusedRows) Values() ([]any, error)                       { return nil, ErrLockstep }

package pg

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Writes holds statements a transaction must run but whose results nobody
// reads (a timeline entry, an audit row, an update whose effect is read
// later), to send them in one round trip instead of one each.
//
// They run in the order queued, when Flush is called, so queue a statement
// only if nothing reads its effect before the next Flush: flush before a
// statement that depends on a queued one (a foreign key to a queued insert,
// a read of a queued update), and always before commit. The first failing
// statement's error is Flush's; the transaction is then unusable, as after
// any failed statement.
//
// Each statement still costs PostgreSQL the same; what is saved is the round
// trip: a network write and read, two process wake-ups, and the latency, for
// every statement after the first. Sending a page runs about a dozen.
type Writes struct {
	b      pgx.Batch
	rows   map[*pgx.QueuedQuery]int // statements queued by ExecRows: rows each must affect (-1: any)
	commit bool
	step   *lockstep // flushes wait for Lockstep's next step
	idx    int       // the function's place in Lockstep
}

// CommitOnFlush makes the next Flush or FlushQuery end the transaction: its
// COMMIT goes last in the same round trip, after the query of FlushQuery.
// Only for a transaction begun by InTxPipelined, which then does not commit
// again, and only for the transaction's last statements: PostgreSQL
// commits before the caller has read their results, so anything the caller
// would check in them (a read-back, a row count) can no longer stop the
// commit. A failing statement still does: PostgreSQL skips what follows it
// in the round trip, the COMMIT included.
func (w *Writes) CommitOnFlush() { w.commit = true }

// Exec queues sql with args.
func (w *Writes) Exec(sql string, args ...any) { w.b.Queue(sql, args...) }

// ExecCheck queues sql with args, and check to run on its command tag when
// it has run (an error from check is the flush's).
func (w *Writes) ExecCheck(check func(pgconn.CommandTag) error, sql string, args ...any) {
	w.b.Queue(sql, args...).Exec(check)
}

// Queue queues sql with args and returns it, for a caller that reads its
// result with a callback (pgx.QueuedQuery's Query, QueryRow or Exec) when w
// is flushed: a read that goes in the same round trip as the writes around
// it. The callback runs while the round trip's results are read, so it may
// queue more statements in w (Flush sends them in a round trip after) but
// not use the connection.
func (w *Writes) Queue(sql string, args ...any) *pgx.QueuedQuery { return w.b.Queue(sql, args...) }

// Last is the statement queued last, or nil: a caller may widen it (more
// rows for the same insert) instead of queueing another statement, which
// costs PostgreSQL a whole executor start, constraint set-up and end.
func (w *Writes) Last() *pgx.QueuedQuery {
	if n := len(w.b.QueuedQueries); n > 0 {
		return w.b.QueuedQueries[n-1]
	}
	return nil
}

// Queued reports whether q is still queued (not yet flushed): only then may
// a caller change it.
func (w *Writes) Queued(q *pgx.QueuedQuery) bool {
	for _, qq := range w.b.QueuedQueries {
		if qq == q {
			return true
		}
	}
	return false
}

// Len is how many statements are queued.
func (w *Writes) Len() int { return w.b.Len() }

// Flush runs the queued statements in q, in one round trip, and empties w.
// Statements that their callbacks queued (Queue) go in a round trip after;
// after a COMMIT (CommitOnFlush) there must be none: they would run outside
// the transaction.
func (w *Writes) Flush(ctx context.Context, q Querier) error {
	if w.step != nil {
		for {
			// step.flush refuses a COMMIT asked for, and sends nothing
			// when nothing is queued.
			if err := w.step.flush(w); err != nil || w.b.Len() == 0 {
				return err
			}
		}
	}
	committing := w.commit
	if committing {
		w.b.Queue("commit")
		w.commit = false
	}
	for sent := false; w.b.Len() > 0; sent = true {
		if sent && committing {
			return errors.New("pg: a callback queued statements after the transaction's COMMIT")
		}
		b := w.b
		checkRows(w.rows)
		w.b, w.rows = pgx.Batch{}, nil
		if err := q.SendBatch(ctx, &b).Close(); err != nil {
			return err
		}
	}
	return nil
}

// FlushQuery runs the queued statements, then sql, in one round trip (with
// the COMMIT after it, if asked for), and hands sql's rows to scan (which
// must read or close them): the usual end of a transaction that queued its
// writes is to read back what they made.
func (w *Writes) FlushQuery(ctx context.Context, q Querier, scan func(pgx.Rows) error, sql string, args ...any) error {
	if w.step == nil && w.b.Len() == 0 && !w.commit {
		rows, _ := q.Query(ctx, sql, args...)
		return scan(rows)
	}
	w.b.Queue(sql, args...).Query(scan)
	return w.Flush(ctx, q)
}

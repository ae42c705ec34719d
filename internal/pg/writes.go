package pg

import (
	"context"

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
// queue more statements in w (they go with the next flush) but not use the
// connection.
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
// Statements that their callbacks queued (Queue) go in a round trip after.
func (w *Writes) Flush(ctx context.Context, q Querier) error {
	if w.step != nil {
		for w.b.Len() > 0 {
			if err := w.step.flush(w); err != nil {
				return err
			}
		}
		return w.step.flush(w) // a COMMIT asked for is refused
	}
	if w.commit {
		w.b.Queue("commit")
		w.commit = false
	}
	for w.b.Len() > 0 {
		b := w.b
		w.b = pgx.Batch{}
		if err := q.SendBatch(ctx, &b).Close(); err != nil {
			return err
		}
	}
	return nil
}

// FlushQuery runs the queued statements, then sql, in one round trip, and
// hands sql's rows to scan (which must read or close them): the usual end
// of a transaction that queued its writes is to read back what they made.
func (w *Writes) FlushQuery(ctx context.Context, q Querier, scan func(pgx.Rows) error, sql string, args ...any) error {
	if w.step != nil {
		w.b.Queue(sql, args...).Query(scan)
		return w.step.flush(w)
	}
	commit := w.commit
	w.commit = false
	if w.b.Len() == 0 && !commit {
		rows, _ := q.Query(ctx, sql, args...)
		return scan(rows)
	}
	b := w.b
	w.b = pgx.Batch{}
	n := b.Len()
	b.Queue(sql, args...)
	if commit {
		b.Queue("commit") // its result is read by Close
	}
	br := q.SendBatch(ctx, &b)
	for i := range n {
		var err error
		if f := b.QueuedQueries[i].Fn; f != nil { // ExecCheck's
			err = f(br)
		} else {
			_, err = br.Exec()
		}
		if err != nil {
			br.Close()
			return err
		}
	}
	rows, _ := br.Query()
	err := scan(rows)
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return err
}

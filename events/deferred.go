package events

import (
	"context"
	"fmt"
	"sync"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/callroom/callroom/internal/pg"
)

// Deferred holds the events of a transaction that makes many unrelated
// changes (a batch of EHR notifications, each opening a thread): instead of
// one publication per change, each locking its recipients' counters as it
// goes, the events are written together by Flush just before commit.
//
// Why: a recipient's counter row stays locked from the first publication to
// that recipient until the transaction ends. Publishing as the changes are
// made locks counters in the order of the changes, which differs between
// two concurrent batches, so they can deadlock (PostgreSQL breaks that only
// after deadlock_timeout, a second). Flush locks each recipient once, in the
// same sorted order as Publish, whatever the number of events.
//
// A Deferred may be added to from several goroutines at once (changes
// applied in lockstep, pg.Lockstep).
type Deferred struct {
	mu          sync.Mutex
	users       []uuid.UUID
	types, data []string
}

type deferredKey struct{}

// Defer returns a context under which Publish and PublishAll queue their
// events in the returned Deferred instead of writing them. The caller must
// Flush it in the same transaction before committing: an unflushed event is
// never written.
func Defer(ctx context.Context) (context.Context, *Deferred) {
	d := &Deferred{}
	return context.WithValue(ctx, deferredKey{}, d), d
}

func deferredFrom(ctx context.Context) *Deferred {
	d, _ := ctx.Value(deferredKey{}).(*Deferred)
	return d
}

// add queues an event checked by prepare (ids sorted, without repeats).
func (d *Deferred) add(ids []uuid.UUID, typ string, data []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, id := range ids {
		d.users = append(d.users, id)
		d.types = append(d.types, typ)
		d.data = append(d.data, string(data))
	}
}

// addAll queues the events of a publication statement (PublishAll's).
func (d *Deferred) addAll(st statement) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.users = append(d.users, st.users...)
	d.types = append(d.types, st.types...)
	d.data = append(d.data, st.data...)
}

// Len is how many events (one per recipient) are queued.
func (d *Deferred) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.users)
}

// Truncate drops the events queued after the first n, for a change rolled
// back to a savepoint: what it announced did not happen.
func (d *Deferred) Truncate(n int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.users, d.types, d.data = d.users[:n], d.types[:n], d.data[:n]
}

// Flush writes every queued event in one statement (PublishAll's, which
// bumps each recipient's counter once, in sorted order) and empties d.
func (d *Deferred) Flush(ctx context.Context, q pg.Querier) error {
	st := take(d)
	if st.n == 0 {
		return nil
	}
	tag, err := q.Exec(ctx, st.sql, st.args...)
	if err != nil {
		return fmt.Errorf("publish %d deferred events: %w", st.n, err)
	}
	return checkWritten("deferred events", tag.RowsAffected(), st.n)
}

// QueueDeferred queues in w the events of every d, in the order given, as
// one statement (Flush's), and empties them: transactions sent together as
// one (pg.Group) lock each recipient's counter once, in sorted order, as one
// transaction of their own would.
func QueueDeferred(w *pg.Writes, ds []*Deferred) {
	st := take(ds...)
	if st.n == 0 {
		return
	}
	w.ExecCheck(func(tag pgconn.CommandTag) error { return checkWritten("deferred events", tag.RowsAffected(), st.n) }, st.sql, st.args...)
}

// take empties ds into one publishAllSQL statement.
func take(ds ...*Deferred) statement {
	var st statement
	for _, d := range ds {
		d.mu.Lock()
		st.users, st.types, st.data = append(st.users, d.users...), append(st.types, d.types...), append(st.data, d.data...)
		d.users, d.types, d.data = nil, nil, nil
		d.mu.Unlock()
	}
	st.n, st.sql, st.args = len(st.users), publishAllSQL, []any{st.users, st.types, st.data}
	return st
}

package inbox

import (
	"context"
	"errors"
	"log/slog"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/events"
	"github.com/callroom/callroom/internal/pg"
)

// Store keeps threads, messages, receipts and attachments.
type Store struct {
	db     *pgxpool.Pool
	sealer Sealer
	log    *slog.Logger
}

// NewStore returns a Store that seals text and attachments with sealer. A
// nil sealer is a wiring mistake, refused at start-up rather than at the
// first message.
func NewStore(db *pgxpool.Pool, sealer Sealer, log *slog.Logger) *Store {
	if sealer == nil {
		panic("inbox.NewStore: nil Sealer: message text must be encrypted at rest")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Store{db: db, sealer: sealer, log: log}
}

// inTx runs fn in a transaction. When fn refuses (returns a *denial), the
// transaction rolls back, so nothing it did is kept, and the refusal is then
// written to the audit trail on its own: a refused attempt changes nothing,
// but a security officer must still see it.
func (s *Store) inTx(ctx context.Context, who audit.Actor, fn func(tx pgx.Tx) error) error {
	err := pg.InTx(ctx, s.db, fn)
	var d *denial
	if errors.As(err, &d) {
		if aerr := audit.Record(ctx, s.db, who, d.entry()); aerr != nil {
			return aerr
		}
	}
	return err
}

// refuse records d at once, for refusals decided before any transaction.
func (s *Store) refuse(ctx context.Context, who audit.Actor, d *denial) error {
	if err := audit.Record(ctx, s.db, who, d.entry()); err != nil {
		return err
	}
	return d
}

// currentMemberIDs returns who is in the thread now: the people every
// change to it is announced to.
func currentMemberIDs(ctx context.Context, q pg.Querier, threadID uuid.UUID) ([]uuid.UUID, error) {
	rows, err := q.Query(ctx, currentMembersSQL, threadID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
}

const currentMembersSQL = `SELECT user_id FROM thread_members WHERE thread_id = $1 AND left_at IS NULL`

// announce publishes one event to the thread's current members (plus extra),
// in tx. It is the only publication of each transaction, so the recipients'
// counter rows are locked once, in sorted order.
func announce(ctx context.Context, tx pgx.Tx, threadID uuid.UUID, typ string, data any, extra ...uuid.UUID) error {
	users, err := currentMemberIDs(ctx, tx, threadID)
	if err != nil {
		return err
	}
	users = append(users, extra...)
	if len(users) == 0 {
		return nil
	}
	return events.Publish(ctx, tx, users, typ, data)
}

// announceLater is announce for a change queued in w: the members are
// read in w's next round trip, after the change, and the event is then
// queued in w (or in the Deferred of events.Defer) for the flush after.
func announceLater(ctx context.Context, w *pg.Writes, threadID uuid.UUID, typ string, data any, extra ...uuid.UUID) {
	w.Queue(currentMembersSQL, threadID).Query(func(rows pgx.Rows) error {
		users, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
		if err != nil {
			return err
		}
		users = append(users, extra...)
		if len(users) == 0 {
			return nil
		}
		return events.QueueAll(ctx, w, []events.Publication{{UserIDs: users, Type: typ, Data: data}})
	})
}

// Event types published by this package. Data is ids only.
const (
	EventMessageCreated = "message.created" // {thread_id, message_id}
	EventMessageUpdated = "message.updated" // {thread_id, message_id}: edited, recalled
	EventReceiptUpdated = "receipt.updated" // {thread_id, message_id, user_id}: read up to, acknowledged
	EventThreadUpdated  = "thread.updated"  // {thread_id}: created, members, legal hold
)

type messageEvent struct {
	ThreadID  uuid.UUID `json:"thread_id"`
	MessageID uuid.UUID `json:"message_id"`
}

type receiptEvent struct {
	ThreadID  uuid.UUID `json:"thread_id"`
	MessageID uuid.UUID `json:"message_id"`
	UserID    uuid.UUID `json:"user_id"`
}

type threadEvent struct {
	ThreadID uuid.UUID `json:"thread_id"`
}

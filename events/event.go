// Package events gives every user one ordered stream of "something changed"
// events, delivered live to the user's open clients on any callroom instance
// and replayable after a reconnect.
//
// Events carry ids and codes only ("page 7f… now needs you, priority stat"),
// never text or patient data: a client that receives one fetches what changed
// through the ordinary, permission-checked API. That keeps PHI out of NOTIFY
// payloads, out of this table, and out of any proxy that buffers the stream.
//
// How it fits together:
//
//   - Publish writes one user_events row per recipient in the caller's
//     transaction, numbered by a per-user counter, and queues a NOTIFY that
//     PostgreSQL delivers only if and when that transaction commits.
//   - Each instance runs one Hub, which LISTENs on one dedicated connection
//     and wakes the local subscriptions of the user named in a notification.
//   - A Subscription reads the rows it has not yet returned from user_events,
//     so the table, not the notification, is the source of truth: a missed or
//     coalesced notification can delay an event but never lose it.
//
// The per-user sequence is what makes replay gap-free. A global bigserial is
// assigned before commit, so 11 can become visible before 10 and a reader who
// has seen 11 would skip 10 for ever. The per-user counter row is locked by
// the publishing transaction until it ends, so the next publisher for that
// user waits and gets the next number only after the previous one committed
// (or rolled back and gave its number back). Per-user sequence order is
// therefore commit order, with no holes.
package events

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callroom/callroom/internal/pg"
)

// Channel is the NOTIFY channel. Payloads are "<user uuid>:<seq>".
const Channel = "callroom_events"

// TypeReset is the type of the event a Subscription makes up when events the
// client asked for no longer exist (they are older than Retention, or the
// client's Last-Event-ID is ahead of the stream, e.g. after a database
// restore). The client cannot replay what it missed and must reload its state
// from the API; the stream then continues from the reset's Seq.
const TypeReset = "stream.reset"

// Event is one entry of a user's stream.
type Event struct {
	UserID uuid.UUID       `json:"user_id" db:"user_id"`
	Seq    int64           `json:"seq" db:"seq"`
	Type   string          `json:"type" db:"type"`
	Data   json.RawMessage `json:"data" db:"data"` // a JSON object of ids and codes
	At     time.Time       `json:"at" db:"at"`
}

// ErrClosed is returned by Subscription.Next after Close.
var ErrClosed = errors.New("events: subscription closed")

// ErrHubStopped is returned by Subscription.Next once the hub's Run has
// returned: this instance no longer hears about new events, so a stream
// should end and let its client reconnect (to another instance, with its
// Last-Event-ID).
var ErrHubStopped = errors.New("events: hub stopped")

// MaxBatch bounds how many events one read of the table returns.
const MaxBatch = 500

// Since returns the user's events after afterSeq, oldest first, at most limit
// (MaxBatch when limit is out of range). It is the replay primitive: an event
// with seq s is returned only once every event before it for that user has
// committed, so "everything after my last seq" has no holes.
func Since(ctx context.Context, q pg.Querier, userID uuid.UUID, afterSeq int64, limit int) ([]Event, error) {
	if limit <= 0 || limit > MaxBatch {
		limit = MaxBatch
	}
	rows, err := q.Query(ctx, `SELECT user_id, seq, type, data, created_at AS at
		FROM user_events WHERE user_id = $1 AND seq > $2
		ORDER BY seq LIMIT $3`, userID, afterSeq, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByName[Event])
}

// CurrentSeq returns the seq of the user's newest event (0 if none ever). A
// client that has no Last-Event-ID starts here, receiving only new events:
// its initial state comes from the API, not from replaying history.
func CurrentSeq(ctx context.Context, q pg.Querier, userID uuid.UUID) (int64, error) {
	var seq int64
	err := q.QueryRow(ctx, `SELECT seq FROM user_event_counters WHERE user_id = $1`, userID).Scan(&seq)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return seq, err
}

package escalation

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callroom/callroom/internal/pg"
)

// TimelineEntry is one thing that happened to a page: created, step fired,
// notified, delivered, read, acknowledged, escalated, resolved... The
// timeline is append-only.
type TimelineEntry struct {
	ID             int64      `json:"id" db:"id"`
	At             time.Time  `json:"at" db:"at"`
	Kind           string     `json:"kind" db:"kind"`
	Round          *int       `json:"round,omitempty" db:"round"`
	Step           *int       `json:"step,omitempty" db:"step"`
	UserID         *uuid.UUID `json:"user_id,omitempty" db:"user_id"`
	NotificationID *uuid.UUID `json:"notification_id,omitempty" db:"notification_id"`
	Channel        *string    `json:"channel,omitempty" db:"channel"`
	DueAt          *time.Time `json:"due_at,omitempty" db:"due_at"`
	Detail         string     `json:"detail,omitempty" db:"detail"`
}

func addTimeline(ctx context.Context, q pg.Querier, pageID uuid.UUID, e TimelineEntry) error {
	_, err := q.Exec(ctx, timelineSQL, timelineArgs(pageID, e)...)
	return err
}

const timelineSQL = `INSERT INTO page_events (page_id, kind, round, step, user_id, notification_id, channel, due_at, detail)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`

func timelineArgs(pageID uuid.UUID, e TimelineEntry) []any {
	return []any{pageID, e.Kind, e.Round, e.Step, e.UserID, e.NotificationID, e.Channel, e.DueAt, e.Detail}
}

// timelineRowsSQL is timelineSQL for several entries, as parallel arrays in
// timelineSQL's column order; rows are inserted, and numbered, in array
// order.
const timelineRowsSQL = `INSERT INTO page_events (page_id, kind, round, step, user_id, notification_id, channel, due_at, detail)
	SELECT * FROM unnest($1::uuid[], $2::text[], $3::int[], $4::int[], $5::uuid[], $6::uuid[], $7::text[], $8::timestamptz[], $9::text[])`

// timelineRows are e's arguments for timelineRowsSQL.
func timelineRows(pageID uuid.UUID, e TimelineEntry) []any {
	return []any{[]uuid.UUID{pageID}, []string{e.Kind}, []*int{e.Round}, []*int{e.Step}, []*uuid.UUID{e.UserID},
		[]*uuid.UUID{e.NotificationID}, []*string{e.Channel}, []*time.Time{e.DueAt}, []string{e.Detail}}
}

func timeline(ctx context.Context, q pg.Querier, pageID uuid.UUID) ([]TimelineEntry, error) {
	rows, _ := q.Query(ctx, `SELECT id, at, kind, round, step, user_id, notification_id, channel, due_at, detail
		FROM page_events WHERE page_id = $1 ORDER BY id`, pageID)
	return pgx.CollectRows(rows, pgx.RowToStructByName[TimelineEntry])
}

func ptr[T any](v T) *T { return &v }

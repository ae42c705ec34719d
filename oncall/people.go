package oncall

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callroom/callroom"
	"github.com/callroom/callroom/internal/pg"
)

// People returns a schedule's name and everyone on it: its rotations'
// participants, the people its rules name, and the people overrides add
// that have not ended by now. It is who a message "to everyone on the
// schedule" (e.g. "need a nurse for the 19:00 shift") is for, whether or
// not they are on call at the moment; ordered by first appearance
// (rotations, then rules, then overrides), without duplicates. An unknown
// schedule is callroom.ErrNotFound. It takes a Querier so that a caller
// can read it in its own transaction.
func People(ctx context.Context, q pg.Querier, scheduleID uuid.UUID, now time.Time) (string, []uuid.UUID, error) {
	var name string
	err := q.QueryRow(ctx, `SELECT name FROM schedules WHERE id = $1`, scheduleID).Scan(&name)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil, fmt.Errorf("schedule: %w", callroom.ErrNotFound)
	}
	if err != nil {
		return "", nil, err
	}
	rows, _ := q.Query(ctx, `SELECT user_id FROM (
			SELECT u.user_id, 1 AS src, r.created_at AS at, r.id AS tie, u.n
			FROM rotations r CROSS JOIN LATERAL unnest(r.participants) WITH ORDINALITY AS u (user_id, n)
			WHERE r.schedule_id = $1
			UNION ALL
			SELECT user_id, 2, created_at, id, 0 FROM schedule_rules WHERE schedule_id = $1 AND user_id IS NOT NULL
			UNION ALL
			SELECT add_user_id, 3, start_at, id, 0 FROM schedule_overrides
			WHERE schedule_id = $1 AND add_user_id IS NOT NULL AND end_at > $2
		) p ORDER BY src, at, tie, n`, scheduleID, now)
	all, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return "", nil, err
	}
	seen := map[uuid.UUID]bool{}
	people := []uuid.UUID{}
	for _, id := range all {
		if !seen[id] {
			seen[id] = true
			people = append(people, id)
		}
	}
	return name, people, nil
}

package oncall

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callroom/callroom"
	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/auth"
	"github.com/callroom/callroom/internal/pg"
)

// A calendar feed is an iCalendar document at a URL whose secret part is the
// only credential: calendar apps cannot sign in. The URL is shown once; only
// its hash is stored, and a feed can be revoked when the URL leaks.
const feedPrefix = "crf_"

// Feed is a calendar feed of one schedule or of one user's shifts.
type Feed struct {
	ID         uuid.UUID  `json:"id" db:"id"`
	ScheduleID *uuid.UUID `json:"schedule_id,omitempty" db:"schedule_id"`
	UserID     *uuid.UUID `json:"user_id,omitempty" db:"user_id"`
	CreatedBy  *uuid.UUID `json:"created_by,omitempty" db:"created_by"`
	CreatedAt  time.Time  `json:"created_at" db:"created_at"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty" db:"revoked_at"`
}

// Feed windows: what a subscribed calendar shows around today.
const (
	FeedPast   = 30 * 24 * time.Hour
	FeedFuture = 180 * 24 * time.Hour
)

const feedColumns = `id, schedule_id, user_id, created_by, created_at, revoked_at`

// CreateFeed makes a feed for a schedule (scheduleID set) or a user's shifts
// (userID set) and returns it with its secret.
func (s *Store) CreateFeed(ctx context.Context, by audit.Actor, scheduleID, userID *uuid.UUID) (Feed, string, error) {
	secret, hash := auth.NewSecret(feedPrefix)
	var f Feed
	err := pg.InTx(ctx, s.db, func(tx pgx.Tx) error {
		if scheduleID != nil {
			if _, err := scheduleInfo(ctx, tx, *scheduleID, false); err != nil {
				return err
			}
		}
		rows, _ := tx.Query(ctx, `INSERT INTO calendar_feeds (token_hash, schedule_id, user_id, created_by)
			VALUES ($1, $2, $3, $4) RETURNING `+feedColumns, hash, scheduleID, userID, nullUser(by.UserID))
		var err error
		if f, err = pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[Feed]); err != nil {
			return err
		}
		return audit.Record(ctx, tx, by, audit.Entry{Action: "calendar_feed.create", ObjectType: "calendar_feed", ObjectID: f.ID.String()})
	})
	return f, secret, err
}

// Feeds lists the feeds of a schedule.
func (s *Store) Feeds(ctx context.Context, scheduleID uuid.UUID) ([]Feed, error) {
	rows, _ := s.db.Query(ctx, `SELECT `+feedColumns+` FROM calendar_feeds WHERE schedule_id = $1 ORDER BY created_at`, scheduleID)
	return pgx.CollectRows(rows, pgx.RowToStructByName[Feed])
}

// Feed returns one feed.
func (s *Store) Feed(ctx context.Context, id uuid.UUID) (Feed, error) {
	rows, _ := s.db.Query(ctx, `SELECT `+feedColumns+` FROM calendar_feeds WHERE id = $1`, id)
	f, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[Feed])
	if errors.Is(err, pgx.ErrNoRows) {
		return f, fmt.Errorf("calendar feed: %w", callroom.ErrNotFound)
	}
	return f, err
}

// RevokeFeed stops a feed's URL from working.
func (s *Store) RevokeFeed(ctx context.Context, by audit.Actor, id uuid.UUID) error {
	return pg.InTx(ctx, s.db, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE calendar_feeds SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL`, id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("calendar feed: %w", callroom.ErrNotFound)
		}
		return audit.Record(ctx, tx, by, audit.Entry{Action: "calendar_feed.revoke", ObjectType: "calendar_feed", ObjectID: id.String()})
	})
}

// WriteFeed writes the iCalendar document for the feed whose secret is
// given. An unknown or revoked secret is ErrNotFound.
func (s *Store) WriteFeed(ctx context.Context, secret string, now time.Time, w io.Writer) error {
	rows, _ := s.db.Query(ctx, `SELECT `+feedColumns+` FROM calendar_feeds WHERE token_hash = $1 AND revoked_at IS NULL`,
		auth.HashSecret(secret))
	f, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[Feed])
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("calendar feed: %w", callroom.ErrNotFound)
	}
	if err != nil {
		return err
	}
	from, to := now.Add(-FeedPast), now.Add(FeedFuture)
	var cal ICalendar
	err = pg.InTx(ctx, s.db, func(tx pgx.Tx) error {
		var ids []uuid.UUID
		if f.ScheduleID != nil {
			ids = []uuid.UUID{*f.ScheduleID}
		} else {
			// Every schedule the user could appear on.
			rows, _ := tx.Query(ctx, `SELECT id FROM schedules s WHERE
				EXISTS (SELECT 1 FROM rotations r WHERE r.schedule_id = s.id AND $1 = ANY (r.participants))
				OR EXISTS (SELECT 1 FROM schedule_rules r WHERE r.schedule_id = s.id AND r.user_id = $1)
				OR EXISTS (SELECT 1 FROM schedule_overrides o WHERE o.schedule_id = s.id AND o.add_user_id = $1 AND o.end_at > $2)
				ORDER BY name`, *f.UserID, from)
			if ids, err = pgx.CollectRows(rows, pgx.RowTo[uuid.UUID]); err != nil {
				return err
			}
			var name string
			if err := tx.QueryRow(ctx, `SELECT name FROM users WHERE id = $1`, *f.UserID).Scan(&name); err != nil {
				return err
			}
			cal = ICalendar{Name: name + " — on call", TimeZone: "UTC", Parts: []ICalendarPart{}}
		}
		users := map[uuid.UUID]bool{}
		for _, id := range ids {
			c, info, err := compileTx(ctx, tx, id, span{from, to}, nil)
			if err != nil {
				return err
			}
			shifts, err := c.Shifts(from, to)
			if err != nil {
				return err
			}
			part := ICalendarPart{ScheduleID: info.ID, Name: info.Name}
			for _, sh := range shifts {
				if f.UserID == nil || sh.UserID == *f.UserID {
					part.Shifts = append(part.Shifts, sh)
					users[sh.UserID] = true
				}
			}
			if f.ScheduleID != nil {
				cal = ICalendar{ScheduleID: info.ID, Name: info.Name, TimeZone: info.TimeZone, Shifts: part.Shifts}
			} else {
				cal.Parts = append(cal.Parts, part)
			}
		}
		names, err := namesOf(ctx, tx, users)
		cal.UserName = func(id uuid.UUID) string { return names[id] }
		return err
	})
	if err != nil {
		return err
	}
	cal.Stamp = now
	return WriteICalendar(w, cal)
}

func namesOf(ctx context.Context, q pg.Querier, set map[uuid.UUID]bool) (map[uuid.UUID]string, error) {
	ids := make([]uuid.UUID, 0, len(set))
	for id := range set {
		ids = append(ids, id)
	}
	out := map[uuid.UUID]string{}
	rows, _ := q.Query(ctx, `SELECT id, name FROM users WHERE id = ANY ($1)`, ids)
	var id uuid.UUID
	var name string
	_, err := pgx.ForEachRow(rows, []any{&id, &name}, func() error { out[id] = name; return nil })
	return out, err
}

// UserNames returns the names of the given users, for answers that show
// who is on call.
func (s *Store) UserNames(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]string, error) {
	set := make(map[uuid.UUID]bool, len(ids))
	for _, id := range ids {
		set[id] = true
	}
	return namesOf(ctx, s.db, set)
}

package escalation

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/callroom/callroom/internal/pg"
	"github.com/callroom/callroom/notify"
	"github.com/callroom/callroom/worker"
)

// Notification is one attempt to reach one person over one channel for one
// step of a page. Its status moves queued -> sent -> delivered -> read, or
// ends failed (with a reason) or cancelled (the page was answered first).
type Notification struct {
	ID              uuid.UUID  `json:"id" db:"id"`
	UserID          uuid.UUID  `json:"user_id" db:"user_id"`
	ContactMethodID *uuid.UUID `json:"contact_method_id,omitempty" db:"contact_method_id"`
	Channel         string     `json:"channel" db:"channel"`
	Round           int        `json:"round" db:"round"`
	Step            int        `json:"step" db:"step"`
	Status          string     `json:"status" db:"status"`
	Reason          string     `json:"reason,omitempty" db:"reason"`
	DueAt           time.Time  `json:"due_at" db:"due_at"`
	CreatedAt       time.Time  `json:"created_at" db:"created_at"`
	UpdatedAt       time.Time  `json:"updated_at" db:"updated_at"`
	Attempts        int        `json:"attempts" db:"attempts"`
}

// Steps used on notifications that are not part of the policy's ladder.
const (
	stepFallback = -1 // the fallback target's alarm
	stepDirect   = -2 // a page sent straight to a person
)

// blindKey is a notification's unique key within its page (the database's
// notifications_once_key): what notifyUsers queued for a new page.
type blindKey struct {
	round, step int
	user        uuid.UUID
	method      uuid.UUID // uuid.Nil: none (in-app)
}

func notifications(ctx context.Context, q pg.Querier, pageID uuid.UUID) ([]Notification, error) {
	rows, _ := q.Query(ctx, `SELECT id, user_id, contact_method_id, channel, round, step, status, reason, due_at, created_at, updated_at, attempts
		FROM notifications WHERE page_id = $1 ORDER BY created_at, due_at, id`, pageID)
	return pgx.CollectRows(rows, pgx.RowToStructByName[Notification])
}

// insertNotification adds a notification for (page, round, step), unless
// that step already has it; insertNotified also puts a sent one on the
// page's timeline as notified, in the same statement. The id ($9) is made
// here, so a statement whose row cannot conflict needs no answer.
const (
	insertNotificationRow = `INSERT INTO notifications (id, page_id, user_id, contact_method_id, channel, round, step, due_at, status)
		VALUES ($9, $1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING`
	insertNotification = insertNotificationRow + ` RETURNING id`
	insertNotified     = `WITH n AS (` + insertNotificationRow + ` RETURNING id), t AS (
		INSERT INTO page_events (page_id, kind, user_id, notification_id, channel) SELECT $1, 'notified', $2, n.id, $4 FROM n)
		SELECT id FROM n`
)

// The notifications of a page sent in this transaction, which nothing
// else can have written (announcement.blind), are queued as rows
// (pg.Writes.ExecRows): a group's pages write theirs with one statement.
// Their parameters are insertNotificationRow's, as arrays.
const (
	insertNotificationRows = `INSERT INTO notifications (id, page_id, user_id, contact_method_id, channel, round, step, due_at, status)
		SELECT n.id, n.page_id, n.user_id, n.method, n.channel, n.round, n.step, n.due_at, n.status
		FROM unnest($9::uuid[], $1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::int[], $6::int[], $7::timestamptz[], $8::text[])
			AS n (id, page_id, user_id, method, channel, round, step, due_at, status)
		ON CONFLICT DO NOTHING`
	insertNotifiedRows = `WITH n AS (` + insertNotificationRows + ` RETURNING id, page_id, user_id, channel), t AS (
		INSERT INTO page_events (page_id, kind, user_id, notification_id, channel) SELECT page_id, 'notified', user_id, id, channel FROM n)
		SELECT id FROM n`
)

// notifyUsers plans and queues notifications to users for (round, step):
// one row and one delivery job per contact method, due after the rule's
// delay. A second call for the same step and contact method does nothing,
// so two rules on one method, or a retried step, never notify twice.
//
// The notifications of a page sent in this transaction cannot be there
// already, except those this transaction queued (announcement.blind): they
// are queued with the transaction's other writes (announce sends them)
// instead of each costing a round trip to learn whether it was inserted.
// So are their delivery jobs (worker.JobInStatement; one due now wakes a
// worker of its queue).
func (s *Store) notifyUsers(ctx context.Context, tx pgx.Tx, p Page, a *announcement, round, step int, users []uuid.UUID, now time.Time) (int, error) {
	plan, err := notify.PlanWith(ctx, tx, &a.methods, users, p.Priority.urgent())
	if err != nil {
		return 0, err
	}
	blind := a.newPageID == p.ID
	sent := 0
	for _, pl := range plan {
		due := now.Add(pl.Delay)
		// An in-app notification due now is sent here: publishing page.notify
		// in this transaction is sending it (announce does, at the end), so
		// it needs no delivery job and its River pickup. It is "sent" and on
		// the timeline as notified exactly when the step commits; the stream
		// marks it delivered when it writes it to a live client (Delivered).
		inApp := pl.Channel == notify.KindInApp && pl.Delay <= 0
		status := "queued"
		insert, insertRows := insertNotification, insertNotificationRows
		if inApp {
			status, insert, insertRows = "sent", insertNotified, insertNotifiedRows
		}
		id := uuid.New()
		args := []any{p.ID, pl.UserID, pl.ContactMethodID, pl.Channel, round, step, due, status, id}
		if blind {
			// Only this transaction can have notified for the new page:
			// what it queued already is skipped here, as the database's
			// unique key skips it otherwise (the fallback alarmed by two
			// vacant steps and by the chain's end, all in the page's first
			// transaction).
			key := blindKey{round: round, step: step, user: pl.UserID}
			if pl.ContactMethodID != nil {
				key.method = *pl.ContactMethodID
			}
			if slices.Contains(a.blind, key) {
				continue
			}
			a.blind = append(a.blind, key)
			a.writes.ExecRows(insertRows, 1, []uuid.UUID{p.ID}, []uuid.UUID{pl.UserID}, []*uuid.UUID{pl.ContactMethodID},
				[]string{pl.Channel}, []int{round}, []int{step}, []time.Time{due}, []string{status}, []uuid.UUID{id})
		} else {
			// A notification's row refers to its page's, which may be
			// queued: the queued writes go first, in the same round trip.
			err := a.writes.FlushQuery(ctx, tx, func(rows pgx.Rows) error {
				var err error
				id, err = pgx.CollectExactlyOneRow(rows, pgx.RowTo[uuid.UUID])
				return err
			}, insert, args...)
			if errors.Is(err, pgx.ErrNoRows) {
				continue // already queued for this step
			}
			if err != nil {
				return 0, err
			}
		}
		a.reached = append(a.reached, pl.UserID)
		if inApp {
			a.notices = append(a.notices, notice{UserID: pl.UserID, NotificationID: id})
			sent++
			continue
		}
		// The delivery job is one more queued statement; one due now wakes
		// a worker of its queue as River's insert would (worker.JobInStatement).
		opts := river.InsertOpts{Queue: worker.QueueNotify, ScheduledAt: due, MaxAttempts: s.deliverAttempts()}
		job, err := worker.NewJobInStatement(DeliverArgs{NotificationID: id}, opts, 1, time.Now())
		if err != nil {
			return 0, err
		}
		a.writes.Exec(job.SQL, job.Args...)
		sent++
	}
	// Whoever is paged about a patient joins the patient's thread, where the
	// page was filed, so they can read the conversation, reply (also by
	// email) and acknowledge there. The page is already posted, so this
	// only adds members; the summary is not needed.
	if s.FilePage != nil && p.PatientRef != nil && len(users) > 0 {
		// The thread's statements run now: what is queued (a new page, its
		// notifications) goes first.
		if err := a.writes.Flush(ctx, tx); err != nil {
			return 0, err
		}
		fp := FiledPage{PageID: p.ID, PatientRef: *p.PatientRef, Priority: string(p.Priority), RecipientIDs: users}
		if p.EncounterRef != nil {
			fp.EncounterRef = *p.EncounterRef
		}
		if err := s.FilePage(ctx, tx, fp); err != nil {
			return 0, err
		}
	}
	return sent, nil
}

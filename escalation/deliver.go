package escalation

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/callroom/callroom"
	"github.com/callroom/callroom/events"
	"github.com/callroom/callroom/internal/pg"
	"github.com/callroom/callroom/notify"
)

// deliverAttempts bounds how often one notification is tried. A page cannot
// wait for an email relay that is down for an hour: after the last attempt the
// notification is failed with its reason, and the escalation, which never
// waits for delivery, has long moved on.
const deliverAttempts = 5

// deliverBackoff is the wait before attempt n+1 (index n-1).
var deliverBackoff = []time.Duration{2 * time.Second, 5 * time.Second, 15 * time.Second, 30 * time.Second}

// DeliverArgs sends one notification.
type DeliverArgs struct {
	NotificationID uuid.UUID `json:"notification_id"`
}

func (DeliverArgs) Kind() string { return "escalation.deliver" }

// DeliverWorker runs DeliverArgs jobs.
type DeliverWorker struct {
	river.WorkerDefaults[DeliverArgs]
	Store *Store
}

// NextRetry retries quickly: seconds, not River's default minutes.
func (w *DeliverWorker) NextRetry(job *river.Job[DeliverArgs]) time.Time {
	backoff := w.Store.deliverBackoff()
	i := min(job.Attempt-1, len(backoff)-1)
	return time.Now().Add(backoff[max(i, 0)])
}

// Timeout bounds one attempt, network included.
func (w *DeliverWorker) Timeout(*river.Job[DeliverArgs]) time.Duration { return 45 * time.Second }

type delivery struct {
	ID          uuid.UUID  `db:"id"`
	PageID      uuid.UUID  `db:"page_id"`
	UserID      uuid.UUID  `db:"user_id"`
	Channel     string     `db:"channel"`
	Step        int        `db:"step"`
	Status      string     `db:"status"`
	CreatedAt   time.Time  `db:"created_at"`
	PageStatus  Status     `db:"page_status"`
	Priority    Priority   `db:"priority"`
	ServiceName *string    `db:"service_name"`
	Address     *string    `db:"address"`
	MethodID    *uuid.UUID `db:"contact_method_id"`
}

// Work delivers the notification unless the page no longer needs it.
func (w *DeliverWorker) Work(ctx context.Context, job *river.Job[DeliverArgs]) error {
	s := w.Store
	var d delivery
	send := false
	settled := ""
	defer func() {
		if settled != "" {
			s.observe().NotificationSettled(d.Channel, settled)
		}
	}()
	err := pg.InTx(ctx, s.db, func(tx pgx.Tx) error {
		rows, _ := tx.Query(ctx, `SELECT n.id, n.page_id, n.user_id, n.channel, n.step, n.status, n.created_at,
				p.status AS page_status, p.priority, (SELECT name FROM services WHERE id = p.service_id) AS service_name,
				c.address, n.contact_method_id
			FROM notifications n JOIN pages p ON p.id = n.page_id LEFT JOIN contact_methods c ON c.id = n.contact_method_id
			WHERE n.id = $1 FOR UPDATE OF n`, job.Args.NotificationID)
		var err error
		d, err = pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[delivery])
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // the page was deleted
		}
		if err != nil {
			return err
		}
		if d.Status != "queued" {
			return nil // already sent, or cancelled when the page was answered
		}
		// An unanswered page still needs reaching: its last step's delayed
		// notifications and the fallback alarm go out until someone answers.
		if d.PageStatus != Open && d.PageStatus != Unanswered {
			_, err := tx.Exec(ctx, `UPDATE notifications SET status = 'cancelled', updated_at = now() WHERE id = $1`, d.ID)
			return err
		}
		if d.Channel == "in_app" {
			// In-app is the user's event stream: publishing is sending, and
			// the stream marks it delivered when it writes it to a live client.
			// setStatus publishes nothing for "sent", so this transaction
			// locks only d.UserID's event counter and cannot deadlock with
			// another delivery for the same page.
			if err := s.setStatus(ctx, tx, d, "sent", "", "notified"); err != nil {
				return err
			}
			settled = "sent"
			return events.Publish(ctx, tx, []uuid.UUID{d.UserID}, EventPageNotify, map[string]any{
				"page_id": d.PageID, "notification_id": d.ID, "priority": d.Priority})
		}
		_, err = tx.Exec(ctx, `UPDATE notifications SET attempts = attempts + 1, updated_at = now() WHERE id = $1`, d.ID)
		send = err == nil
		return err
	})
	if err != nil || !send {
		if err != nil {
			settled = ""
		}
		return err
	}

	outcome, sendErr := s.send(ctx, d)
	result := ""
	err = pg.InTx(context.WithoutCancel(ctx), s.db, func(tx pgx.Tx) error {
		if sendErr == nil {
			if err := s.setStatus(ctx, tx, d, "delivered", outcome.Detail, "notified"); err != nil {
				return err
			}
			result = "delivered"
			return addTimeline(ctx, tx, d.PageID, TimelineEntry{Kind: "delivered", UserID: &d.UserID, NotificationID: &d.ID, Channel: &d.Channel})
		}
		final := !notify.IsRetryable(sendErr) || job.Attempt >= job.MaxAttempts
		reason := outcome.Reason
		if reason == "" {
			reason = sendErr.Error()
		}
		if final {
			s.log.Warn("notification failed", "notification_id", d.ID, "channel", d.Channel, "reason", reason)
			if err := s.setStatus(ctx, tx, d, "failed", reason, "failed"); err != nil {
				return err
			}
			result = "failed"
			return nil
		}
		if _, err := tx.Exec(ctx, `UPDATE notifications SET reason = $2, updated_at = now() WHERE id = $1`, d.ID, reason); err != nil {
			return err
		}
		if after, ok := notify.RetryAfter(sendErr); ok && after > 0 {
			return river.JobSnooze(min(after, time.Minute))
		}
		return sendErr
	})
	if err == nil {
		settled = result
	}
	return err
}

func (s *Store) setStatus(ctx context.Context, tx pgx.Tx, d delivery, status, reason, kind string) error {
	if _, err := tx.Exec(ctx, `UPDATE notifications SET status = $2, reason = $3, updated_at = now() WHERE id = $1`, d.ID, status, reason); err != nil {
		return err
	}
	e := TimelineEntry{Kind: kind, UserID: &d.UserID, NotificationID: &d.ID, Channel: &d.Channel}
	if status == "failed" {
		e.Detail = reason
	}
	if err := addTimeline(ctx, tx, d.PageID, e); err != nil {
		return err
	}
	// Sent and delivered are progress the sender reads on the page's
	// timeline; announcing each of them made every page publish to its
	// sender several times, and all of one nurse's pages queued on her
	// event counter (docs/PERFORMANCE.md). A failure is worth a live event.
	if status != "failed" {
		return nil
	}
	p, err := getPage(ctx, tx, d.PageID, false)
	if err != nil {
		return err
	}
	return s.publish(ctx, tx, p, nil)
}

// send makes one attempt over email or webhook. The notice says only the
// priority, the service, the page id and a link: never the page's text or
// anything about the patient.
func (s *Store) send(ctx context.Context, d delivery) (notify.Outcome, error) {
	n := notify.Notice{
		NotificationID: d.ID, PageID: d.PageID, Priority: string(d.Priority),
		Link: strings.TrimRight(s.PublicURL, "/") + "/pages/" + d.PageID.String(), CreatedAt: d.CreatedAt,
	}
	if d.ServiceName != nil {
		n.ServiceName = *d.ServiceName
	}
	fail := func(reason string) (notify.Outcome, error) {
		e := &notify.DeliveryError{Reason: reason}
		return e.Outcome(), e
	}
	if d.Address == nil || d.MethodID == nil {
		return fail("the contact method was deleted")
	}
	switch d.Channel {
	case "email":
		if s.Email == nil {
			return fail("email is not configured (set CALLROOM_SMTP_RELAY)")
		}
		if s.ReplyAddress != nil {
			n.ReplyTo = s.ReplyAddress(d.ID)
		}
		return s.Email.Send(ctx, *d.Address, n)
	case "webhook":
		secret, err := notify.WebhookSecret(ctx, s.db, *d.MethodID)
		if errors.Is(err, callroom.ErrNotFound) {
			return fail("the contact method was deleted")
		}
		if err != nil {
			return notify.Outcome{Status: notify.StatusFailed, Retryable: true, Reason: "reading the webhook secret"}, err
		}
		sender, err := notify.NewWebhookSender(notify.WebhookConfig{URL: *d.Address, Secret: secret, Timeout: s.WebhookTimeout})
		if err != nil {
			return fail(err.Error())
		}
		return sender.Send(ctx, n)
	}
	return fail("unknown channel " + d.Channel)
}

// InAppDelivery is an in-app notification written to one of its user's
// live event streams.
type InAppDelivery struct {
	UserID         uuid.UUID
	NotificationID uuid.UUID
}

// Delivered records in-app deliveries, all in one statement (the server
// collects a few milliseconds' worth from every stream): each notification
// still only sent becomes delivered and its page's timeline says so, at the
// time it is recorded. One already delivered on another stream, or read,
// or someone else's, is left alone, so recording twice is harmless.
func (s *Store) Delivered(ctx context.Context, ds ...InAppDelivery) error {
	if len(ds) == 0 {
		return nil
	}
	ids, users := make([]uuid.UUID, len(ds)), make([]uuid.UUID, len(ds))
	for i, d := range ds {
		ids[i], users[i] = d.NotificationID, d.UserID
	}
	// Recorded on the timeline, not announced: see setStatus. A
	// notification listed twice (two devices) is updated once.
	_, err := s.db.Exec(ctx, `WITH d AS (
			UPDATE notifications n SET status = 'delivered', updated_at = now()
			FROM (SELECT DISTINCT id, user_id FROM unnest($1::uuid[], $2::uuid[]) AS x (id, user_id)) x
			WHERE n.id = x.id AND n.user_id = x.user_id AND n.status = 'sent'
			RETURNING n.page_id, n.id, n.user_id, n.channel)
		INSERT INTO page_events (page_id, kind, user_id, notification_id, channel)
		SELECT page_id, 'delivered', user_id, id, channel FROM d ORDER BY page_id, id`, ids, users)
	return err
}

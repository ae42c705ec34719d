package escalation

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callroom/callroom"
	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/auth"
	"github.com/callroom/callroom/internal/pg"
)

// involvement says how a user relates to a page.
type involvement struct {
	sender, notified, target bool
	// threadMember: a member of the patient thread the page was filed in,
	// who may acknowledge it from the thread (but not resolve or cancel it).
	threadMember bool
}

func (s *Store) involved(ctx context.Context, tx pgx.Tx, p Page, user uuid.UUID) (involvement, error) {
	var in involvement
	in.sender = p.CreatedBy != nil && *p.CreatedBy == user
	in.target = p.UserID != nil && *p.UserID == user
	err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM notifications WHERE page_id = $1 AND user_id = $2)`, p.ID, user).Scan(&in.notified)
	if err == nil && !in.notified && s.ThreadMember != nil {
		in.threadMember, err = s.ThreadMember(ctx, tx, p.ID, user)
	}
	return in, err
}

// change runs fn on the locked page after checking that who may act on it.
func (s *Store) change(ctx context.Context, who auth.Principal, id uuid.UUID, allowed func(involvement) bool,
	fn func(tx pgx.Tx, p *Page, a *announcement) (changed bool, err error)) (Page, error) {
	var out Page
	var a announcement
	err := pg.InTx(ctx, s.db, func(tx pgx.Tx) error {
		p, err := getPage(ctx, tx, id, true)
		if err != nil {
			return err
		}
		inv, err := s.involved(ctx, tx, p, who.User.ID)
		if err != nil {
			return err
		}
		if !allowed(inv) && !who.User.Has(auth.Admin) {
			return fmt.Errorf("only people this page reached, its sender or an administrator may do this: %w", callroom.ErrForbidden)
		}
		changed, err := fn(tx, &p, &a)
		if err != nil {
			return err
		}
		if changed {
			if p, err = s.announce(ctx, tx, id, &a, false); err != nil {
				return err
			}
		}
		out = p
		return nil
	})
	if err == nil {
		s.observeSent(a)
	}
	return out, err
}

// cancelPending cancels the page's pending step job in the caller's
// transaction, so it can never fire after this transaction commits.
func (s *Store) cancelPending(ctx context.Context, tx pgx.Tx, p *Page) error {
	if p.nextJobID != nil {
		if _, err := s.river.JobCancelTx(ctx, tx, *p.nextJobID); err != nil {
			return err
		}
	}
	_, err := tx.Exec(ctx, `UPDATE pages SET next_job_id = NULL, next_step_at = NULL WHERE id = $1`, p.ID)
	return err
}

// Acknowledge records that a person has taken the page and stops its
// escalation. Any person the page reached may acknowledge, also after it went
// unanswered. Acknowledging twice is harmless.
func (s *Store) Acknowledge(ctx context.Context, who auth.Principal, id uuid.UUID) (Page, error) {
	acked := false
	p, err := s.change(ctx, who, id, func(i involvement) bool { return i.notified || i.target || i.threadMember },
		func(tx pgx.Tx, p *Page, a *announcement) (bool, error) {
			switch p.Status {
			case Acknowledged:
				return false, nil
			case Resolved, Cancelled:
				return false, callroom.Conflict("status", "the page is already %s", p.Status)
			}
			if err := s.cancelPending(ctx, tx, p); err != nil {
				return false, err
			}
			if _, err := tx.Exec(ctx, `UPDATE pages SET status = 'acknowledged', acknowledged_by = $2, acknowledged_at = now(), updated_at = now()
				WHERE id = $1`, p.ID, who.User.ID); err != nil {
				return false, err
			}
			if err := s.cancelQueued(ctx, tx, p.ID); err != nil {
				return false, err
			}
			acked = true
			return true, s.record(ctx, tx, who, p, "acknowledged", "page.acknowledge")
		})
	if err == nil && acked && p.AcknowledgedAt != nil {
		s.observe().PageAcknowledged(string(p.Priority), p.AcknowledgedAt.Sub(p.CreatedAt))
	}
	return p, err
}

// Resolve closes the page and cancels everything not yet sent.
func (s *Store) Resolve(ctx context.Context, who auth.Principal, id uuid.UUID) (Page, error) {
	return s.change(ctx, who, id, func(i involvement) bool { return i.notified || i.target || i.sender },
		func(tx pgx.Tx, p *Page, a *announcement) (bool, error) {
			switch p.Status {
			case Resolved:
				return false, nil
			case Cancelled:
				return false, callroom.Conflict("status", "the page was cancelled")
			}
			if err := s.cancelPending(ctx, tx, p); err != nil {
				return false, err
			}
			if _, err := tx.Exec(ctx, `UPDATE pages SET status = 'resolved', resolved_by = $2, resolved_at = now(), updated_at = now()
				WHERE id = $1`, p.ID, who.User.ID); err != nil {
				return false, err
			}
			if err := s.cancelQueued(ctx, tx, p.ID); err != nil {
				return false, err
			}
			return true, s.record(ctx, tx, who, p, "resolved", "page.resolve")
		})
}

// Cancel withdraws a page nobody has taken yet (sent in error).
func (s *Store) Cancel(ctx context.Context, who auth.Principal, id uuid.UUID) (Page, error) {
	return s.change(ctx, who, id, func(i involvement) bool { return i.sender },
		func(tx pgx.Tx, p *Page, a *announcement) (bool, error) {
			switch p.Status {
			case Cancelled:
				return false, nil
			case Acknowledged, Resolved:
				return false, callroom.Conflict("status", "the page is %s; resolve it instead", p.Status)
			}
			if err := s.cancelPending(ctx, tx, p); err != nil {
				return false, err
			}
			if _, err := tx.Exec(ctx, `UPDATE pages SET status = 'cancelled', resolved_by = $2, resolved_at = now(), updated_at = now()
				WHERE id = $1`, p.ID, who.User.ID); err != nil {
				return false, err
			}
			if err := s.cancelQueued(ctx, tx, p.ID); err != nil {
				return false, err
			}
			return true, s.record(ctx, tx, who, p, "cancelled", "page.cancel")
		})
}

// Escalate jumps to the next step now. It is idempotent: the caller says
// which step they saw (fromRound, fromStep); if the page has moved on since,
// because someone else pressed escalate first or the step fired, nothing
// happens. Two people pressing it at once escalate once.
func (s *Store) Escalate(ctx context.Context, who auth.Principal, id uuid.UUID, fromRound, fromStep *int) (Page, error) {
	if fromRound == nil || fromStep == nil {
		// Without an explicit step, "the step the page was at when the
		// request arrived": read before taking the row lock.
		p, err := getPage(ctx, s.db, id, false)
		if err != nil {
			return Page{}, err
		}
		fromRound, fromStep = &p.Round, &p.Step
	}
	return s.change(ctx, who, id, func(i involvement) bool { return i.notified || i.target || i.sender },
		func(tx pgx.Tx, p *Page, a *announcement) (bool, error) {
			if p.Status != Open {
				return false, callroom.Conflict("status", "only an open page can be escalated; it is %s", p.Status)
			}
			if p.Round != *fromRound || p.Step != *fromStep {
				return false, nil // someone else escalated first
			}
			if err := s.cancelPending(ctx, tx, p); err != nil {
				return false, err
			}
			if err := s.record(ctx, tx, who, p, "escalated", "page.escalate"); err != nil {
				return false, err
			}
			now := s.now()
			return true, s.fire(ctx, tx, *p, a, p.Round, p.Step+1, now, now)
		})
}

// cancelQueued marks notifications that were not sent yet as cancelled; their
// delivery jobs find them so and do nothing.
func (s *Store) cancelQueued(ctx context.Context, tx pgx.Tx, pageID uuid.UUID) error {
	_, err := tx.Exec(ctx, `UPDATE notifications SET status = 'cancelled', updated_at = now() WHERE page_id = $1 AND status = 'queued'`, pageID)
	return err
}

func (s *Store) record(ctx context.Context, tx pgx.Tx, who auth.Principal, p *Page, kind, action string) error {
	if err := addTimeline(ctx, tx, p.ID, TimelineEntry{Kind: kind, UserID: &who.User.ID, Round: &p.Round, Step: &p.Step}); err != nil {
		return err
	}
	ref := ""
	if p.PatientRef != nil {
		ref = *p.PatientRef
	}
	return audit.Record(ctx, tx, who.Actor(), audit.Entry{Action: action, ObjectType: "page", ObjectID: p.ID.String(), PatientRef: ref})
}

// MarkRead records that user opened the page: their sent or delivered
// notifications become read. It returns whether anything changed.
func (s *Store) MarkRead(ctx context.Context, user, pageID uuid.UUID) error {
	return pg.InTx(ctx, s.db, func(tx pgx.Tx) error {
		rows, _ := tx.Query(ctx, `UPDATE notifications SET status = 'read', updated_at = now()
			WHERE page_id = $1 AND user_id = $2 AND status IN ('sent', 'delivered') RETURNING id, channel`, pageID, user)
		type read struct {
			ID      uuid.UUID
			Channel string
		}
		reads, err := pgx.CollectRows(rows, pgx.RowToStructByPos[read])
		if err != nil || len(reads) == 0 {
			return err
		}
		for _, r := range reads {
			if err := addTimeline(ctx, tx, pageID, TimelineEntry{Kind: "read", UserID: &user, NotificationID: &r.ID, Channel: &r.Channel}); err != nil {
				return err
			}
		}
		p, err := getPage(ctx, tx, pageID, false)
		if err != nil {
			return err
		}
		return s.publish(ctx, tx, p, nil)
	})
}

package escalation

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/callroom/callroom/internal/pg"
	"github.com/callroom/callroom/oncall"
	"github.com/callroom/callroom/worker"
)

// DirectPageTimeout is how long a page sent straight to a person waits for
// an acknowledgement before it is marked unanswered and the sender is told.
const DirectPageTimeout = 10 * time.Minute

// StepArgs fires one step of one page's escalation. Jobs are unique by
// (page, round, step): a step can be scheduled once.
type StepArgs struct {
	PageID uuid.UUID `json:"page_id"`
	Round  int       `json:"round"`
	Step   int       `json:"step"`
}

func (StepArgs) Kind() string { return "escalation.step" }

// StepWorker runs StepArgs jobs.
type StepWorker struct {
	river.WorkerDefaults[StepArgs]
	Store *Store
}

// Work fires the step unless it has become moot. The page row is locked and
// the job must still be the page's pending job: an acknowledgement, a
// resolution or a manual escalation that committed first has replaced or
// cancelled it. The job completes in the same transaction as the step's
// effects, so a crash re-runs either both or neither.
func (w *StepWorker) Work(ctx context.Context, job *river.Job[StepArgs]) error {
	s := w.Store
	defer s.paging()()
	var late time.Duration
	fired := false
	var a announcement
	var p Page
	// The page's read goes with the BEGIN, and the COMMIT with the events
	// (pg.InTxPipelined): every step of every page passes here.
	first := pg.Read{SQL: pageSQL(true), Args: []any{job.Args.PageID}, Scan: func(rows pgx.Rows) (err error) {
		p, err = collectPage(rows)
		return err
	}}
	err := pg.InTxPipelined(ctx, s.db, first, func(tx pgx.Tx) error {
		due := p.Status == Open && p.nextJobID != nil && *p.nextJobID == job.ID
		if due {
			now := s.now()
			if err := s.fire(ctx, tx, p, &a, job.Args.Round, job.Args.Step, job.ScheduledAt, now); err != nil {
				return err
			}
			fired, late = true, now.Sub(job.ScheduledAt)
		}
		if _, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job); err != nil || !due {
			return err
		}
		// Last, so the recipients' event counters are locked only for the
		// commit (events.Publish), which goes in the same round trip.
		_, err := s.announce(ctx, tx, p.ID, &a, true)
		return err
	})
	if err == nil && fired {
		s.observe().StepFired(late)
		s.observeSent(a)
	}
	return err
}

// fire runs step (round, step) of p's policy at now. A step whose targets
// resolve to nobody is recorded, alarms the fallback, and is skipped at once
// rather than waited out. Past the last step the chain repeats, or the page
// becomes unanswered and the fallback is alarmed.
func (s *Store) fire(ctx context.Context, tx pgx.Tx, p Page, a *announcement, round, step int, due, now time.Time) error {
	if p.UserID != nil {
		return s.fireDirect(ctx, tx, p, a, step, due, now)
	}
	policy, err := loadPolicy(ctx, tx, *p.policyID)
	if err != nil {
		return err
	}
	return s.fireStep(ctx, tx, p, policy, a, round, step, due, now)
}

// fireStep is fire with p's policy already read (sending a page reads it
// anyway, to check the service).
func (s *Store) fireStep(ctx context.Context, tx pgx.Tx, p Page, policy Policy, a *announcement, round, step int, due, now time.Time) error {
	for guard := 0; guard <= (len(policy.Steps)+1)*(policy.Repeat+1); guard++ {
		if step >= len(policy.Steps) {
			if round < policy.Repeat {
				round, step = round+1, 0
				a.timeline(p.ID, TimelineEntry{Kind: "repeated", Round: ptr(round)})
				continue
			}
			return s.unanswered(ctx, tx, p, a, round, policy.Fallback, now)
		}
		users, empty, err := s.resolve(ctx, tx, policy.Steps[step].Targets, policy.activeUsers, now)
		if err != nil {
			return err
		}
		a.timeline(p.ID, TimelineEntry{Kind: "step", Round: ptr(round), Step: ptr(step), DueAt: ptr(due)})
		if len(users) == 0 {
			detail := "no one on call for " + strings.Join(empty, ", ")
			s.log.Warn("escalation step reached nobody", "page_id", p.ID, "step", step, "round", round)
			a.timeline(p.ID, TimelineEntry{Kind: "no_one_on_call", Round: ptr(round), Step: ptr(step), Detail: detail})
			if err := s.alarmFallback(ctx, tx, p, a, round, policy.Fallback, now, detail); err != nil {
				return err
			}
			step, due = step+1, now
			continue
		}
		// advance first: a new page's queued insert takes the step's job
		// before notifying flushes it.
		next := now.Add(time.Duration(policy.Steps[step].DelaySeconds) * time.Second)
		if err := s.advance(ctx, tx, a, p.ID, round, step, next); err != nil {
			return err
		}
		_, err = s.notifyUsers(ctx, tx, p, a, round, step, users, now)
		return err
	}
	return fmt.Errorf("page %s: escalation did not settle", p.ID)
}

// fireDirect handles a page sent to one person: notify them at step 0; if
// they have not answered by DirectPageTimeout, the page is unanswered and
// the sender hears so through their event stream.
func (s *Store) fireDirect(ctx context.Context, tx pgx.Tx, p Page, a *announcement, step int, due, now time.Time) error {
	if step == 0 {
		a.timeline(p.ID, TimelineEntry{Kind: "step", Round: ptr(0), Step: ptr(0), DueAt: ptr(due)})
		if err := s.advance(ctx, tx, a, p.ID, 0, 0, now.Add(DirectPageTimeout)); err != nil { // first: see fireStep
			return err
		}
		_, err := s.notifyUsers(ctx, tx, p, a, 0, stepDirect, []uuid.UUID{*p.UserID}, now)
		return err
	}
	return s.unanswered(ctx, tx, p, a, 0, nil, now)
}

// resolve turns a step's targets into active users, in target order without
// repeats. empty names the schedules with nobody on call, for the timeline.
//
// known holds users already known to be active or not (read with the
// policy); others are read.
func (s *Store) resolve(ctx context.Context, tx pgx.Tx, targets []Target, known map[uuid.UUID]bool, now time.Time) (users []uuid.UUID, empty []string, err error) {
	seen := map[uuid.UUID]bool{}
	add := func(id uuid.UUID) {
		if !seen[id] {
			seen[id] = true
			users = append(users, id)
		}
	}
	for _, t := range targets {
		if t.UserID != nil {
			active, ok := known[*t.UserID]
			if !ok {
				if err := tx.QueryRow(ctx, `SELECT active FROM users WHERE id = $1`, *t.UserID).Scan(&active); err != nil {
					return nil, nil, err
				}
			}
			if active {
				add(*t.UserID)
			} else {
				empty = append(empty, "a deactivated user")
			}
			continue
		}
		// Who is on call and not deactivated, in one round trip.
		ids, name, err := oncall.ReachableAtTx(ctx, tx, *t.ScheduleID, now)
		if err != nil {
			return nil, nil, err
		}
		for _, id := range ids {
			add(id)
		}
		if len(ids) == 0 {
			empty = append(empty, name)
		}
	}
	return users, empty, nil
}

// alarmFallback notifies the policy's fallback target, once per round.
func (s *Store) alarmFallback(ctx context.Context, tx pgx.Tx, p Page, a *announcement, round int, fb *Target, now time.Time, why string) error {
	if fb == nil {
		a.timeline(p.ID, TimelineEntry{Kind: "no_fallback", Round: ptr(round), Detail: "the policy has no fallback to alarm"})
		return nil
	}
	users, _, err := s.resolve(ctx, tx, []Target{*fb}, nil, now)
	if err != nil {
		return err
	}
	if len(users) == 0 {
		s.log.Error("fallback reached nobody", "page_id", p.ID)
		a.timeline(p.ID, TimelineEntry{Kind: "no_fallback", Round: ptr(round), Detail: "no one on call for the fallback"})
		return nil
	}
	n, err := s.notifyUsers(ctx, tx, p, a, round, stepFallback, users, now)
	if err != nil || n == 0 {
		return err
	}
	a.timeline(p.ID, TimelineEntry{Kind: "fallback", Round: ptr(round), Detail: why})
	return nil
}

// unanswered ends the escalation: nobody acknowledged through every step and
// repeat. The page stays acknowledgeable.
func (s *Store) unanswered(ctx context.Context, tx pgx.Tx, p Page, a *announcement, round int, fb *Target, now time.Time) error {
	a.fresh = nil // no longer open: announce reads it back
	a.writes.Exec(`UPDATE pages SET status = 'unanswered', round = $2, next_job_id = NULL, next_step_at = NULL, updated_at = now()
		WHERE id = $1`, p.ID, round)
	a.timeline(p.ID, TimelineEntry{Kind: "unanswered", Round: ptr(round)})
	if p.UserID == nil {
		return s.alarmFallback(ctx, tx, p, a, round, fb, now, "escalation exhausted without acknowledgement")
	}
	return nil
}

// escalationQueue is re-exported for tests and the benchmark.
const escalationQueue = worker.QueueEscalation

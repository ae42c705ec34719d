package fhir

import (
	"context"
	"crypto/rand"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/callroom/callroom/internal/pg"
	"github.com/callroom/callroom/worker"
)

// TickArgs is the periodic job that polls subscriptions of flavor Poll when
// due and notes Backport subscriptions whose heartbeats stopped.
type TickArgs struct{}

// Kind implements river.JobArgs.
func (TickArgs) Kind() string { return "fhir.tick" }

// InsertOpts: the fhir queue.
func (TickArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{Queue: worker.QueueFHIR} }

// TickPeriodic schedules TickArgs every cfg.Tick (default 10 s). River runs
// periodic jobs on its leader only, so instances do not poll twice.
func TickPeriodic(cfg Config) *river.PeriodicJob {
	every := cfg.Tick
	if every <= 0 {
		every = 10 * time.Second
	}
	return river.NewPeriodicJob(river.PeriodicInterval(every),
		func() (river.JobArgs, *river.InsertOpts) { return TickArgs{}, nil },
		&river.PeriodicJobOpts{RunOnStart: true})
}

// TickWorker runs TickArgs.
type TickWorker struct {
	river.WorkerDefaults[TickArgs]
	Store *Store
}

// Work queues a search of changes for each poll that is due, and for each
// Backport subscription silent for more than two heartbeats (its events may
// have been lost with the heartbeats); and a job for notifications left
// waiting with none (see sweep).
func (w *TickWorker) Work(ctx context.Context, job *river.Job[TickArgs]) error {
	s := w.Store
	if err := s.sweep(ctx); err != nil {
		return err
	}
	for _, sub := range s.cfg.Subscriptions {
		var due bool
		switch {
		case sub.Flavor == Poll:
			every := sub.Interval
			if every <= 0 {
				every = time.Minute
			}
			var last *time.Time
			err := s.db.QueryRow(ctx, `SELECT last_read_at FROM fhir_subscription_state WHERE subscription = $1`, sub.Name).Scan(&last)
			if err != nil && err != pgx.ErrNoRows {
				return err
			}
			due = last == nil || s.now().Sub(*last) >= every
		case sub.Flavor == Backport && sub.Heartbeat > 0:
			var missed bool
			err := s.db.QueryRow(ctx, `UPDATE fhir_subscription_state SET missed_heartbeats = missed_heartbeats + 1, updated_at = now()
				WHERE subscription = $1 AND last_heartbeat_at < $2 AND updated_at < $2 RETURNING true`,
				sub.Name, s.now().Add(-2*sub.Heartbeat)).Scan(&missed)
			if err != nil && err != pgx.ErrNoRows {
				return err
			}
			if missed {
				s.log.Warn("fhir subscription missed its heartbeats; searching changes", "subscription", sub.Name)
				due = true
			}
		}
		if due {
			if err := s.queueSearch(ctx, sub); err != nil {
				return err
			}
		}
	}
	return nil
}

// queueSearch records a "search what changed" notification for sub, unless
// one is already waiting.
func (s *Store) queueSearch(ctx context.Context, sub Subscription) error {
	return pg.InTx(ctx, s.db, func(tx pgx.Tx) error {
		var waiting bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM fhir_notifications WHERE subscription = $1 AND processed_at IS NULL
			AND resource_type = '' AND body IS NULL)`, sub.Name).Scan(&waiting); err != nil || waiting {
			return err
		}
		digest := make([]byte, 32)
		rand.Read(digest)
		id := uuid.New()
		flavor := sub.Flavor
		if flavor == Backport {
			flavor = RestHookEmpty // processed as a plain search of changes
		}
		if _, err := tx.Exec(ctx, `INSERT INTO fhir_notifications (id, subscription, flavor, digest) VALUES ($1, $2, $3, $4)`,
			id, sub.Name, flavor, digest); err != nil {
			return err
		}
		_, err := worker.InsertTx(ctx, s.river, tx, ProcessArgs{NotificationID: id}, nil)
		return err
	})
}

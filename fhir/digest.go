package fhir

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/callroom/callroom/internal/pg"
	"github.com/callroom/callroom/worker"
)

// DigestArgs is the periodic job that queues the daily digest of each
// patient thread that had messages the day before (UTC).
type DigestArgs struct{}

// Kind implements river.JobArgs.
func (DigestArgs) Kind() string { return "fhir.digest" }

// InsertOpts: the fhir queue.
func (DigestArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{Queue: worker.QueueFHIR} }

// DigestPeriodic runs DigestArgs hourly: queuing is idempotent (one digest
// per thread and day), so a missed or repeated run changes nothing.
func DigestPeriodic() *river.PeriodicJob {
	return river.NewPeriodicJob(river.PeriodicInterval(time.Hour),
		func() (river.JobArgs, *river.InsertOpts) { return DigestArgs{}, nil },
		&river.PeriodicJobOpts{RunOnStart: true})
}

// DigestWorker runs DigestArgs when Config.DailyDigest is on.
type DigestWorker struct {
	river.WorkerDefaults[DigestArgs]
	Store *Store
}

// Work queues yesterday's digests.
func (w *DigestWorker) Work(ctx context.Context, job *river.Job[DigestArgs]) error {
	if !w.Store.cfg.DailyDigest {
		return nil
	}
	_, err := w.Store.QueueDigests(ctx, w.Store.now().UTC().AddDate(0, 0, -1))
	return err
}

// QueueDigests queues a digest Communication for each patient thread (filed
// under a FHIR Patient) with messages on day (UTC), and says how many were
// new.
func (s *Store) QueueDigests(ctx context.Context, day time.Time) (int, error) {
	from := time.Date(day.Year(), day.Month(), day.Day(), 0, 0, 0, 0, time.UTC)
	rows, _ := s.db.Query(ctx, `SELECT DISTINCT m.thread_id FROM messages m JOIN threads t ON t.id = m.thread_id
		WHERE t.kind = 'patient' AND t.patient_ref LIKE 'Patient/%' AND m.created_at >= $1 AND m.created_at < $2`,
		from, from.Add(24*time.Hour))
	threads, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return 0, err
	}
	n := 0
	for _, id := range threads {
		err := pg.InTx(ctx, s.db, func(tx pgx.Tx) error {
			var exists bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM fhir_writebacks WHERE kind = 'digest' AND object_id = $1 AND event = $2)`,
				id, from.Format(time.DateOnly)).Scan(&exists); err != nil || exists {
				return err
			}
			n++
			var w pg.Writes
			if err := queueWriteBack(&w, "digest", id, from.Format(time.DateOnly)); err != nil {
				return err
			}
			return w.Flush(ctx, tx)
		})
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

package escalation

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
)

// SweepArgs looks for notifications whose delivery job is gone. A delivery
// job that fails on the database in its last attempt is discarded by River
// and its notification would stay queued for ever, silently. The sweep marks
// such notifications failed, so the page's timeline says what happened.
type SweepArgs struct{}

func (SweepArgs) Kind() string { return "escalation.sweep" }

// SweepWorker runs SweepArgs jobs.
type SweepWorker struct {
	river.WorkerDefaults[SweepArgs]
	DB *pgxpool.Pool
}

// lostAfter is how long past due a queued notification must be, with no live
// delivery job, before it is declared lost. Deliveries retry for under a
// minute, so ten minutes leaves no doubt.
const lostAfter = 10 * time.Minute

func (w *SweepWorker) Work(ctx context.Context, _ *river.Job[SweepArgs]) error {
	_, err := w.DB.Exec(ctx, `WITH lost AS (
			UPDATE notifications n SET status = 'failed', reason = 'the delivery job was lost', updated_at = now()
			WHERE n.status = 'queued' AND n.due_at < now() - $1::interval
			  AND NOT EXISTS (SELECT 1 FROM river_job j WHERE j.kind = 'escalation.deliver'
			      AND j.args->>'notification_id' = n.id::text
			      AND j.state IN ('available', 'scheduled', 'running', 'retryable', 'pending'))
			RETURNING n.id, n.page_id, n.user_id, n.channel)
		INSERT INTO page_events (page_id, kind, user_id, notification_id, channel, detail)
		SELECT page_id, 'failed', user_id, id, channel, 'the delivery job was lost' FROM lost`, lostAfter)
	return err
}

// SweepPeriodic runs the sweep every five minutes on the elected leader.
func SweepPeriodic() *river.PeriodicJob {
	return river.NewPeriodicJob(river.PeriodicInterval(5*time.Minute),
		func() (river.JobArgs, *river.InsertOpts) { return SweepArgs{}, nil }, nil)
}

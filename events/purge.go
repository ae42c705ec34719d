package events

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/callroom/callroom/internal/pg"
)

// Retention is how long events stay replayable. Streams exist to bridge a
// client's reconnect, not to be a history (the API and the audit trail are
// that), so a week covers a phone left off over a long weekend with room to
// spare. A client whose Last-Event-ID is older gets a TypeReset event and
// reloads its state.
const Retention = 7 * 24 * time.Hour

// purgeBatch bounds each DELETE so the job never holds many row locks or
// writes one huge WAL burst while publishers are working.
const purgeBatch = 10000

// PurgeArgs asks for events older than Retention to be deleted.
type PurgeArgs struct{}

func (PurgeArgs) Kind() string { return "events.purge" }

// PurgeWorker deletes expired events. It keeps user_event_counters: a
// user's seq must never go backwards, or a client holding an old
// Last-Event-ID would take new events for ones it has already seen.
type PurgeWorker struct {
	river.WorkerDefaults[PurgeArgs]
	DB *pgxpool.Pool
}

func (w *PurgeWorker) Work(ctx context.Context, _ *river.Job[PurgeArgs]) error {
	_, err := Purge(ctx, w.DB, time.Now().Add(-Retention))
	return err
}

// Purge deletes the events created before cutoff, in batches, and returns
// how many it deleted.
func Purge(ctx context.Context, db pg.Querier, cutoff time.Time) (int64, error) {
	var total int64
	for {
		tag, err := db.Exec(ctx, `DELETE FROM user_events WHERE (user_id, seq) IN (
			SELECT user_id, seq FROM user_events WHERE created_at < $1 LIMIT $2)`, cutoff, purgeBatch)
		if err != nil {
			return total, err
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < purgeBatch {
			return total, nil
		}
	}
}

// PurgePeriodic runs the purge hourly on the elected leader.
func PurgePeriodic() *river.PeriodicJob {
	return river.NewPeriodicJob(river.PeriodicInterval(time.Hour),
		func() (river.JobArgs, *river.InsertOpts) { return PurgeArgs{}, nil },
		&river.PeriodicJobOpts{RunOnStart: true})
}

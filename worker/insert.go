package worker

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/callroom/callroom/internal/pg"
)

// InsertTx inserts a job in tx so that it runs when due, within its queue's
// poll interval.
//
// River inserts any job with a ScheduledAt as `scheduled`, and only its
// scheduler, which runs every 5 s, turns scheduled jobs into `available`: a
// notification due now could wait 5 s, and a step due in 2 s could fire 5 s
// late. River's fetch query only takes available jobs whose scheduled_at has
// passed, so marking the job available at once (as River's own scheduler
// does, 5 s ahead) runs it on time and never early. A job due now is inserted
// without ScheduledAt, so River wakes a worker at once.
func InsertTx(ctx context.Context, c *Client, tx pgx.Tx, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error) {
	res, err := InsertManyTx(ctx, c, tx, []river.InsertManyParams{{Args: args, InsertOpts: opts}})
	if err != nil {
		return nil, err
	}
	return res[0], nil
}

// InsertManyTx is InsertTx for several jobs.
func InsertManyTx(ctx context.Context, c *Client, tx pgx.Tx, params []river.InsertManyParams) ([]*rivertype.JobInsertResult, error) {
	return InsertManyTxLater(ctx, c, tx, nil, params)
}

// InsertTxLater is InsertTx that queues the update marking a scheduled job
// available in w, to go with the caller's other writes (pg.Writes), instead
// of running it. Until w is flushed the job is still scheduled: flush before
// commit, as always.
func InsertTxLater(ctx context.Context, c *Client, tx pgx.Tx, w *pg.Writes, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error) {
	res, err := InsertManyTxLater(ctx, c, tx, w, []river.InsertManyParams{{Args: args, InsertOpts: opts}})
	if err != nil {
		return nil, err
	}
	return res[0], nil
}

// InsertManyTxLater is InsertTxLater for several jobs; a nil w runs the
// update at once (InsertManyTx).
func InsertManyTxLater(ctx context.Context, c *Client, tx pgx.Tx, w *pg.Writes, params []river.InsertManyParams) ([]*rivertype.JobInsertResult, error) {
	now := time.Now()
	for i := range params {
		if o := params[i].InsertOpts; o != nil && !o.ScheduledAt.IsZero() && !o.ScheduledAt.After(now) {
			cp := *o
			cp.ScheduledAt = time.Time{}
			params[i].InsertOpts = &cp
		}
	}
	res, err := c.InsertManyTx(ctx, tx, params)
	if err != nil {
		return nil, err
	}
	var scheduled []int64
	for _, r := range res {
		if r.Job.State == rivertype.JobStateScheduled && !r.UniqueSkippedAsDuplicate {
			scheduled = append(scheduled, r.Job.ID)
		}
	}
	if len(scheduled) > 0 {
		// One job (the usual case) by id = $1: PostgreSQL planned the
		// = ANY ($1) form afresh on every execution (a custom plan each
		// time, pg_stat_statements: ~90 µs of planning per page sent).
		available, arg := `UPDATE river_job SET state = 'available' WHERE id = $1 AND state = 'scheduled'`, any(scheduled[0])
		if len(scheduled) > 1 {
			available, arg = `UPDATE river_job SET state = 'available' WHERE id = ANY ($1) AND state = 'scheduled'`, scheduled
		}
		if w != nil {
			w.Exec(available, arg)
		} else if _, err := tx.Exec(ctx, available, arg); err != nil {
			return nil, err
		}
	}
	return res, nil
}

package auth

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
)

// SweepSessionsArgs asks for ended sessions to be forgotten. Their sign-ins
// and sign-outs stay in the audit trail; the rows themselves only serve the
// session list, so keeping them for 30 days after they end is enough.
type SweepSessionsArgs struct{}

func (SweepSessionsArgs) Kind() string { return "auth.sweep_sessions" }

// SweepSessionsWorker deletes sessions that ended over 30 days ago.
type SweepSessionsWorker struct {
	river.WorkerDefaults[SweepSessionsArgs]
	DB *pgxpool.Pool
}

func (w *SweepSessionsWorker) Work(ctx context.Context, _ *river.Job[SweepSessionsArgs]) error {
	_, err := w.DB.Exec(ctx, `DELETE FROM sessions
		WHERE coalesce(revoked_at, expires_at) < now() - interval '30 days'`)
	if err != nil {
		return err
	}
	// Single sign-ons that were begun and never finished.
	_, err = w.DB.Exec(ctx, `DELETE FROM oidc_logins WHERE created_at < now() - interval '1 hour'`)
	return err
}

// SweepSessionsPeriodic runs the sweep hourly on the elected leader.
func SweepSessionsPeriodic() *river.PeriodicJob {
	return river.NewPeriodicJob(river.PeriodicInterval(time.Hour),
		func() (river.JobArgs, *river.InsertOpts) { return SweepSessionsArgs{}, nil },
		&river.PeriodicJobOpts{RunOnStart: true})
}

// Package ratelimit counts requests per key (an address, an email, a token)
// in PostgreSQL, so a limit holds across every instance behind the load
// balancer: an attacker spreading login attempts over instances gets no more
// tries than one hitting a single instance. An in-memory token bucket would
// be cheaper but multiply the limit by the number of instances and forget it
// on every restart.
//
// The count is a sliding-window estimate (as in Cloudflare's and nginx's
// limiters): fixed windows are counted exactly, and the previous window's
// count is weighted by how much of it still overlaps the sliding window.
// That costs one row per key and window and one round trip per check.
package ratelimit

import (
	"context"
	"math"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
)

// Rule allows Limit requests per Window. A zero Limit allows everything.
type Rule struct {
	Limit  int
	Window time.Duration
}

// Decision is the limiter's answer to one request.
type Decision struct {
	Allowed bool
	// RetryAfter is how long a refused caller should wait.
	RetryAfter time.Duration
}

// Limiter checks rules against counts kept in PostgreSQL.
type Limiter struct {
	db *pgxpool.Pool
}

// New returns a limiter on db.
func New(db *pgxpool.Pool) *Limiter { return &Limiter{db: db} }

// Allow counts one request for bucket and decides whether it is within r.
// Refused requests count too, so a caller that keeps hammering stays
// refused until it slows down.
func (l *Limiter) Allow(ctx context.Context, bucket string, r Rule) (Decision, error) {
	if r.Limit <= 0 || r.Window <= 0 {
		return Decision{Allowed: true}, nil
	}
	w := r.Window.Seconds()
	var cur, prev int
	var elapsed float64
	// The database clock decides the window, so instances agree on it.
	err := l.db.QueryRow(ctx, `WITH t AS (
			SELECT to_timestamp(floor(extract(epoch FROM now()) / $2) * $2) AS start,
			       extract(epoch FROM now()) - floor(extract(epoch FROM now()) / $2) * $2 AS elapsed
		), cur AS (
			INSERT INTO rate_limits AS r (bucket, window_start, hits) SELECT $1, t.start, 1 FROM t
			ON CONFLICT (bucket, window_start) DO UPDATE SET hits = r.hits + 1
			RETURNING r.hits
		)
		SELECT cur.hits,
		       coalesce((SELECT hits FROM rate_limits p, t WHERE p.bucket = $1 AND p.window_start = t.start - make_interval(secs => $2)), 0),
		       (SELECT elapsed FROM t)::float8
		FROM cur`, bucket, w).Scan(&cur, &prev, &elapsed)
	if err != nil {
		return Decision{}, err
	}
	estimate := float64(prev)*(1-elapsed/w) + float64(cur)
	if estimate <= float64(r.Limit) {
		return Decision{Allowed: true}, nil
	}
	// Waiting out the current window always suffices: the next one starts
	// empty, with this one weighted down from there.
	wait := time.Duration(math.Ceil(w-elapsed)) * time.Second
	return Decision{Allowed: false, RetryAfter: max(wait, time.Second)}, nil
}

// SweepArgs asks for old rate limit windows to be deleted.
type SweepArgs struct{}

func (SweepArgs) Kind() string { return "ratelimit.sweep" }

// SweepWorker deletes windows more than a day old; no rule is longer.
type SweepWorker struct {
	river.WorkerDefaults[SweepArgs]
	DB *pgxpool.Pool
}

func (w *SweepWorker) Work(ctx context.Context, _ *river.Job[SweepArgs]) error {
	_, err := w.DB.Exec(ctx, `DELETE FROM rate_limits WHERE window_start < now() - interval '1 day'`)
	return err
}

// SweepPeriodic runs the sweep hourly on the elected leader.
func SweepPeriodic() *river.PeriodicJob {
	return river.NewPeriodicJob(river.PeriodicInterval(time.Hour),
		func() (river.JobArgs, *river.InsertOpts) { return SweepArgs{}, nil },
		&river.PeriodicJobOpts{RunOnStart: true})
}

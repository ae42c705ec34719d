package escalation_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/callroom/callroom/escalation"
	"github.com/callroom/callroom/internal/benchutil"
	"github.com/callroom/callroom/worker"
)

const (
	// latenessLead is how far ahead of the setup's end the first step is
	// due, and latenessWindow how long the due steps are spread over.
	latenessLead   = 10 * time.Second
	latenessWindow = 10 * time.Second
	// latenessWait bounds the wait for late steps after the window.
	latenessWait = 15 * time.Second
)

// BenchmarkEscalationLateness measures how late escalation steps fire
// (page_events.at - due_at of each kind='step' entry: when the step worker
// recorded the step, minus when it was due) with 10,000 open pages pending.
// Targets: p99 <= 250 ms, max <= 1 s.
//
// Setup, in SQL for speed: 10,000 open pages on a service whose policy has
// three steps (one physician each, an hour apart), each already past step 0
// (an in-app notification to the first physician), each with its step-1 job
// inserted the way production inserts it (worker.InsertManyTx). The step-1
// jobs of `due` of the pages are due spread evenly over a 10 s window that
// starts 10 s after the setup; the others are due an hour later, so they
// only sit in the queue. Then the benchmark waits for the window to pass
// (and at most 15 s more) and reads the lateness of every step that was due.
//
//   - pending=10000/due=10000: every page's step falls due within 10 s, an
//     offered 1,000 steps/s, the brief's stress case, all on one service
//     (three physicians, so every step publishes to the same two users);
//   - pending=10000/due=1000: a realistic 100 steps/s among 10,000 pending.
//
// BenchmarkEscalationLatenessSpread is the stress case spread over 50
// services with their own physicians, to tell contention on those users'
// event counter rows from the cost of a step. `make bench` skips it (it
// takes a minute a run); run it with
// go test -run '^$' -bench EscalationLatenessSpread -count 3 ./escalation/
//
// Metrics: p50/p99/max-ms lateness; steps/s (steps fired over the time from
// the first due step to the last firing); missing (due steps not fired by
// the end of the wait; they count in the percentiles at the time waited);
// other-cores (processor time other processes on this shared machine took).
func BenchmarkEscalationLateness(b *testing.B) {
	for _, c := range []struct{ pending, due int }{{10000, 10000}, {10000, 1000}} {
		b.Run(fmt.Sprintf("pending=%d/due=%d", c.pending, c.due), func(b *testing.B) { benchLateness(b, c.pending, c.due, 1) })
	}
}

// BenchmarkEscalationLatenessSpread: see BenchmarkEscalationLateness.
func BenchmarkEscalationLatenessSpread(b *testing.B) {
	b.Run("pending=10000/due=10000/services=50", func(b *testing.B) { benchLateness(b, 10000, 10000, 50) })
}

func benchLateness(b *testing.B, pending, due, services int) {
	ctx := context.Background()
	in := benchutil.Start(b, benchutil.Options{})
	type svc struct{ id, policy, first uuid.UUID }
	var svcs []svc
	for i := range services {
		var docs []uuid.UUID
		for j := range 3 {
			docs = append(docs, in.User(fmt.Sprintf("Dr %d.%d", i, j), "physician").User.ID)
		}
		s := svc{id: in.Service(fmt.Sprintf("Rapid response %d", i), time.Hour, docs...), first: docs[0]}
		if err := in.DB.Pool.QueryRow(ctx, `SELECT escalation_policy_id FROM services WHERE id = $1`, s.id).Scan(&s.policy); err != nil {
			b.Fatal(err)
		}
		svcs = append(svcs, s)
	}

	var lat benchutil.Latencies
	var missing, fired int
	var firing, others, span time.Duration
	for b.Loop() {
		setup := time.Now()
		// Pages are spread evenly over the services, interleaved, so that
		// the steps due at any moment belong to every service alike.
		per := make([][]uuid.UUID, services)
		for j, s := range svcs {
			n := pending / services
			if j < pending%services {
				n++
			}
			got, err := benchPendingPages(ctx, in, s.id, s.policy, s.first, n)
			if err != nil {
				b.Fatal(err)
			}
			per[j] = got
		}
		ids := make([]uuid.UUID, 0, pending)
		for i := 0; len(ids) < pending; i++ {
			for j := range per {
				if i < len(per[j]) {
					ids = append(ids, per[j][i])
				}
			}
		}
		start := time.Now().Add(latenessLead)
		dueAt := make([]time.Time, pending)
		for i := range dueAt {
			if i < due {
				dueAt[i] = start.Add(time.Duration(i) * latenessWindow / time.Duration(due))
			} else {
				dueAt[i] = start.Add(time.Hour + time.Duration(i)*time.Millisecond)
			}
		}
		if err := benchScheduleSteps(ctx, in, ids, dueAt); err != nil {
			b.Fatal(err)
		}
		if time.Now().After(start) {
			b.Fatalf("setup took %s, longer than the %s lead: the first steps were due before it ended", time.Since(setup), latenessLead)
		}
		cpu0 := in.CPU()
		end := start.Add(latenessWindow)
		deadline := end.Add(latenessWait)
		time.Sleep(time.Until(end))
		for {
			var n int
			if err := in.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM page_events WHERE kind = 'step' AND step = 1`).Scan(&n); err != nil {
				b.Fatal(err)
			}
			if n >= due || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		waited := time.Now()
		cpu := in.CPU().Sub(cpu0)
		others += cpu.Others()
		span += waited.Sub(cpu0.At)

		rows, err := in.DB.Pool.Query(ctx, `SELECT page_id, min(at) FROM page_events WHERE kind = 'step' AND step = 1 GROUP BY page_id`)
		if err != nil {
			b.Fatal(err)
		}
		at := map[uuid.UUID]time.Time{}
		for rows.Next() {
			var id uuid.UUID
			var t time.Time
			if err := rows.Scan(&id, &t); err != nil {
				b.Fatal(err)
			}
			at[id] = t
		}
		if err := rows.Err(); err != nil {
			b.Fatal(err)
		}
		var last time.Time
		var run benchutil.Latencies
		for i := range due {
			t, ok := at[ids[i]]
			if !ok {
				missing++
				lat.Add(waited.Sub(dueAt[i]))
				run.Add(waited.Sub(dueAt[i]))
				continue
			}
			fired++
			lat.Add(t.Sub(dueAt[i]))
			run.Add(t.Sub(dueAt[i]))
			if t.After(last) {
				last = t
			}
		}
		if len(at) > due {
			b.Errorf("%d steps fired that were not due yet", len(at)-due)
		}
		if !last.IsZero() {
			firing += last.Sub(start)
		}
		b.Logf("pending=%d due=%d over %s: lateness %s; %d not fired by %s after the window\n%s\nriver jobs at the end: %s",
			pending, due, latenessWindow, run.String(), due-len(at), latenessWait, cpu.String(waited.Sub(cpu0.At)),
			in.RiverJobStates())
	}
	lat.Report(b, "")
	if firing > 0 {
		b.ReportMetric(float64(fired)/firing.Seconds(), "steps/s")
	}
	b.ReportMetric(float64(missing), "missing")
	if span > 0 {
		b.ReportMetric(others.Seconds()/span.Seconds(), "other-cores")
	}
}

// benchPendingPages inserts n open pages of service that have fired step 0
// to first, and returns their ids.
func benchPendingPages(ctx context.Context, in *benchutil.Instance, service, policy, first uuid.UUID, n int) ([]uuid.UUID, error) {
	var ids []uuid.UUID
	err := pgx.BeginFunc(ctx, in.DB.Pool, func(tx pgx.Tx) error {
		rows, _ := tx.Query(ctx, `INSERT INTO pages (service_id, policy_id, priority, summary, status, step, round)
			SELECT $1, $2, 'stat', 'bench page ' || g, 'open', 0, 0 FROM generate_series(1, $3) AS g RETURNING id`,
			service, policy, n)
		var err error
		if ids, err = pgx.CollectRows(rows, pgx.RowTo[uuid.UUID]); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO page_events (page_id, kind, round, step, due_at)
			SELECT id, 'step', 0, 0, now() FROM unnest($1::uuid[]) AS id`, ids); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO notifications (page_id, user_id, channel, round, step, status, due_at)
			SELECT id, $2, 'in_app', 0, 0, 'delivered', now() FROM unnest($1::uuid[]) AS id`, ids, first)
		return err
	})
	return ids, err
}

// benchScheduleSteps inserts each page's step-1 job due at dueAt[i], as
// production schedules a step, and records it on the page.
func benchScheduleSteps(ctx context.Context, in *benchutil.Instance, ids []uuid.UUID, dueAt []time.Time) error {
	return pgx.BeginFunc(ctx, in.DB.Pool, func(tx pgx.Tx) error {
		params := make([]river.InsertManyParams, len(ids))
		for i, id := range ids {
			params[i] = river.InsertManyParams{Args: escalation.StepArgs{PageID: id, Round: 0, Step: 1}, InsertOpts: &river.InsertOpts{
				Queue: worker.QueueEscalation, ScheduledAt: dueAt[i], MaxAttempts: 25, UniqueOpts: river.UniqueOpts{ByArgs: true}}}
		}
		res, err := worker.InsertManyTx(ctx, in.Server.River, tx, params)
		if err != nil {
			return err
		}
		jobs := make([]int64, len(res))
		for i, r := range res {
			jobs[i] = r.Job.ID
		}
		_, err = tx.Exec(ctx, `UPDATE pages SET next_job_id = x.job, next_step_at = x.due, updated_at = now()
			FROM unnest($1::uuid[], $2::bigint[], $3::timestamptz[]) AS x (id, job, due) WHERE pages.id = x.id`, ids, jobs, dueAt)
		return err
	})
}

package worker_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/callroom/callroom/internal/pgtest"
	"github.com/callroom/callroom/worker"
)

// stepLike has its fields out of alphabetical order, as River's unique key
// sorts them.
type stepLike struct {
	Step   int       `json:"step"`
	PageID uuid.UUID `json:"page_id"`
	Note   string    `json:"note,omitempty"`
}

func (stepLike) Kind() string { return "test.step_like" }

type plain struct {
	N int `json:"n"`
}

func (plain) Kind() string { return "test.plain" }

// jobRow is what River's fetch and uniqueness read of a job.
type jobRow struct {
	ID           int64
	Kind         string
	Queue        string
	State        string
	MaxAttempts  int16
	Priority     int16
	Args         string
	Metadata     string
	Tags         []string
	UniqueKey    []byte
	UniqueStates *string
	ScheduledAt  time.Time
}

func readJob(t *testing.T, q pgx.Tx, id int64) jobRow {
	t.Helper()
	rows, _ := q.Query(context.Background(), `SELECT id, kind, queue, state::text, max_attempts, priority, args::text, metadata::text,
		tags::text[], unique_key, unique_states::text, scheduled_at FROM river_job WHERE id = $1`, id)
	r, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByPos[jobRow])
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// insertInStatement runs the job's insert the way callers do, as a CTE.
func insertInStatement(t *testing.T, tx pgx.Tx, args river.JobArgs, opts river.InsertOpts) int64 {
	t.Helper()
	// Parameter $1 is the caller's own, to check the numbering.
	job, err := worker.NewJobInStatement(args, opts, 2, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var id int64
	var own string
	if err := tx.QueryRow(context.Background(), `WITH job AS (`+job.SQL+`) SELECT id, $1::text FROM job`,
		append([]any{"own"}, job.Args...)...).Scan(&id, &own); err != nil {
		t.Fatal(err)
	}
	if own != "own" {
		t.Fatalf("the statement's own parameter came back as %q", own)
	}
	return id
}

// The job a statement writes is the row River writes for the same arguments
// and options, but available at once (see worker.InsertTx), and its unique
// key is River's: whichever inserts second finds the first's job.
func TestJobInStatementIsRiversJob(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	client, err := worker.New(worker.Config{Pool: db.Pool, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), InsertOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	due := time.Now().Add(time.Hour).Truncate(time.Microsecond)
	page := uuid.New()
	cases := []struct {
		name string
		args river.JobArgs
		opts river.InsertOpts
	}{
		{"unique by args, queue and attempts", stepLike{Step: 2, PageID: page}, river.InsertOpts{Queue: worker.QueueEscalation, MaxAttempts: 25, ScheduledAt: due, UniqueOpts: river.UniqueOpts{ByArgs: true}}},
		{"unique, an optional field set", stepLike{Step: 2, PageID: page, Note: "x"}, river.InsertOpts{ScheduledAt: due, UniqueOpts: river.UniqueOpts{ByArgs: true}}},
		{"not unique, defaults", plain{N: 7}, river.InsertOpts{ScheduledAt: due}},
		{"priority", plain{N: 8}, river.InsertOpts{ScheduledAt: due, Priority: 3}},
		{"due now", plain{N: 9}, river.InsertOpts{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, riverFirst := range []bool{true, false} {
				tx, err := db.Pool.Begin(ctx)
				if err != nil {
					t.Fatal(err)
				}
				defer tx.Rollback(ctx)
				var first, second int64
				var skipped bool
				if riverFirst {
					res, err := worker.InsertTx(ctx, client, tx, c.args, &c.opts)
					if err != nil {
						t.Fatal(err)
					}
					first = res.Job.ID
					second = insertInStatement(t, tx, c.args, c.opts)
				} else {
					first = insertInStatement(t, tx, c.args, c.opts)
					res, err := worker.InsertTx(ctx, client, tx, c.args, &c.opts)
					if err != nil {
						t.Fatal(err)
					}
					second, skipped = res.Job.ID, res.UniqueSkippedAsDuplicate
				}
				unique := c.opts.UniqueOpts.ByArgs
				if unique != (first == second) {
					t.Fatalf("river first %v: jobs %d and %d; unique %v", riverFirst, first, second, unique)
				}
				if !riverFirst && unique != skipped {
					t.Fatalf("River's insert after ours: skipped as duplicate %v, want %v", skipped, unique)
				}
				if unique {
					tx.Rollback(ctx)
					continue
				}
				// Two rows: they must agree on everything but the id.
				a, b := readJob(t, tx, first), readJob(t, tx, second)
				a.ID, b.ID = 0, 0
				if a.Args != b.Args || a.Kind != b.Kind || a.Queue != b.Queue || a.State != b.State || a.MaxAttempts != b.MaxAttempts ||
					a.Priority != b.Priority || a.Metadata != b.Metadata || len(a.Tags) != len(b.Tags) || !sameDue(c.opts, a.ScheduledAt, b.ScheduledAt) ||
					(a.UniqueStates == nil) != (b.UniqueStates == nil) || a.UniqueKey != nil || b.UniqueKey != nil {
					t.Fatalf("rows differ:\n%+v\n%+v", a, b)
				}
				if a.State != "available" {
					t.Fatalf("state %s, want available (fetched when due)", a.State)
				}
				tx.Rollback(ctx)
			}
		})
	}

	// A unique job: the state bitmask and key are River's own.
	tx, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	opts := river.InsertOpts{ScheduledAt: due, UniqueOpts: river.UniqueOpts{ByArgs: true}}
	ours := readJob(t, tx, insertInStatement(t, tx, stepLike{Step: 1, PageID: page}, opts))
	res, err := worker.InsertTx(ctx, client, tx, stepLike{Step: 1, PageID: uuid.New()}, &opts)
	if err != nil {
		t.Fatal(err)
	}
	theirs := readJob(t, tx, res.Job.ID)
	if ours.UniqueStates == nil || theirs.UniqueStates == nil || *ours.UniqueStates != *theirs.UniqueStates {
		t.Fatalf("unique states: ours %v, River's %v", ours.UniqueStates, theirs.UniqueStates)
	}
	if len(ours.UniqueKey) != 32 || string(ours.UniqueKey) == string(theirs.UniqueKey) {
		t.Fatalf("unique keys: ours %x, River's for other arguments %x", ours.UniqueKey, theirs.UniqueKey)
	}
}

// sameDue: a job due later is due at its time in both rows; one due now is
// due at River's clock in River's row and at the database's (the
// transaction's start) in ours.
func sameDue(opts river.InsertOpts, a, b time.Time) bool {
	if opts.ScheduledAt.IsZero() {
		return a.Sub(b).Abs() < time.Second
	}
	return a.Equal(b)
}

// What a statement cannot write the way River would is refused.
func TestJobInStatementRefuses(t *testing.T) {
	now := time.Now()
	later := now.Add(time.Minute)
	cases := []struct {
		name string
		opts river.InsertOpts
	}{
		{"tags", river.InsertOpts{ScheduledAt: later, Tags: []string{"a"}}},
		{"metadata", river.InsertOpts{ScheduledAt: later, Metadata: []byte(`{"a":1}`)}},
		{"pending", river.InsertOpts{ScheduledAt: later, Pending: true}},
		{"unique by period", river.InsertOpts{ScheduledAt: later, UniqueOpts: river.UniqueOpts{ByArgs: true, ByPeriod: time.Hour}}},
		{"unique by queue", river.InsertOpts{ScheduledAt: later, UniqueOpts: river.UniqueOpts{ByQueue: true}}},
	}
	for _, c := range cases {
		if _, err := worker.NewJobInStatement(plain{N: 1}, c.opts, 1, now); err == nil {
			t.Errorf("%s: accepted", c.name)
		}
	}
}

type wake struct {
	N int `json:"n"`
}

func (wake) Kind() string { return "test.wake" }

type wakeWorker struct {
	river.WorkerDefaults[wake]
	done chan int
}

func (w *wakeWorker) Work(_ context.Context, j *river.Job[wake]) error {
	w.done <- j.Args.N
	return nil
}

// A job due now that a statement writes wakes its queue's workers, as
// River's own insert does: with a poll interval of a minute, only River's
// insert notification, sent by the statement, can get it worked at once.
// And a job written from a CTE with no rows is not written.
func TestJobInStatementDueNowWakesAWorker(t *testing.T) {
	db := pgtest.NewWithPoolSize(t, 8)
	ctx := context.Background()
	ww := &wakeWorker{done: make(chan int, 10)}
	workers := river.NewWorkers()
	river.AddWorker(workers, ww)
	client, err := river.NewClient(riverpgxv5.New(db.Pool), &river.Config{
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		Workers: workers,
		Queues:  map[string]river.QueueConfig{"wake": {MaxWorkers: 2, FetchPollInterval: time.Minute}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer client.Stop(ctx) //nolint:errcheck
	worked := func(n int) {
		t.Helper()
		select {
		case got := <-ww.done:
			if got != n {
				t.Fatalf("worked job %d, want %d", got, n)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("job %d not worked: nothing woke the queue", n)
		}
	}
	// River's own insert first: its producer is then listening.
	if _, err := client.Insert(ctx, wake{N: 0}, &river.InsertOpts{Queue: "wake"}); err != nil {
		t.Fatal(err)
	}
	worked(0)
	for n := 1; n <= 3; n++ {
		job, err := worker.NewJobInStatementFrom("ok", wake{N: n}, river.InsertOpts{Queue: "wake"}, 2, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		// $1 decides whether the CTE the job is written from has a row.
		for _, write := range []bool{false, true} {
			var jobs int
			if err := db.Pool.QueryRow(ctx, `WITH ok AS (SELECT 1 WHERE $1::bool), job AS (`+job.SQL+`) SELECT count(*) FROM job`,
				append([]any{write}, job.Args...)...).Scan(&jobs); err != nil {
				t.Fatal(err)
			}
			if want := map[bool]int{false: 0, true: 1}[write]; jobs != want {
				t.Fatalf("CTE with a row %v: %d jobs written, want %d", write, jobs, want)
			}
		}
		worked(n)
	}
}

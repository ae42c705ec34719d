package fhir_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/callroom/callroom/fhir"
	"github.com/callroom/callroom/internal/apitest"
	"github.com/callroom/callroom/internal/benchutil"
	"github.com/callroom/callroom/internal/fhirtest"
)

// BenchmarkNotifications offers Medplum-style notifications (a new
// in-progress Encounter each, one participant to match, read from the real
// engine) at a fixed rate and measures acceptance (2xx, the HTTP round trip)
// and notification received -> patient thread updated (received_at ->
// processed_at, both PostgreSQL clock), split into waiting to be claimed by
// a job and being applied in its batch. Targets (docs/PERFORMANCE.md): 500
// notifications/s accepted with processing keeping up; p99 <= 250 ms. The
// figures leave out a second of warm-up at the same rate, whose p99 is
// reported apart (warm-up-thread-p99-ms).
func BenchmarkNotifications(b *testing.B) { benchNotifications(b, false) }

// BenchmarkNotificationsWithMRN is BenchmarkNotifications with each
// Encounter's subject carrying the patient's MRN beside its reference, as
// some EHRs send it: each notification also links an identifier (and
// audits it), in the same batch.
func BenchmarkNotificationsWithMRN(b *testing.B) { benchNotifications(b, true) }

func benchNotifications(b *testing.B, mrns bool) {
	const rate = 500
	ehr := fhirtest.Start(b)
	in := apitest.Start(b, apitest.Options{FHIR: &fhir.Config{BaseURL: ehr.URL, Timeout: 5 * time.Second,
		Subscriptions: []fhir.Subscription{{Name: "enc", Flavor: fhir.Medplum, Criteria: "Encounter", Secret: secret}}}})
	doc := in.User("Dr Bench", "physician")
	npi := "1234567893"
	if _, err := in.DB.Pool.Exec(context.Background(), `UPDATE users SET npi = $1 WHERE id = $2`, npi, doc.User.ID); err != nil {
		b.Fatal(err)
	}
	prac := ehr.Create(map[string]any{"resourceType": "Practitioner", "identifier": []any{map[string]any{"system": fhir.NPISystem, "value": npi}}})
	pracRef := "Practitioner/" + prac["id"].(string)
	client := benchutil.NewHTTPClient()
	// offer sends n notifications at rate, each a new encounter, named by
	// run so that no two are alike.
	offer := func(run string, n int) *benchutil.Paced {
		return benchutil.SendPaced(n, rate, 4*rate, func(i int) error {
			enc := encounter(fmt.Sprintf("Patient/bench-%s-%d", run, i), "in-progress", "IMP", pracRef)
			enc["id"] = fmt.Sprintf("bench-%s-%d", run, i)
			if mrns {
				withMRN(enc, fmt.Sprintf("MRN-%s-%d", run, i))
			}
			body, _ := json.Marshal(enc)
			req, _ := http.NewRequest("POST", in.URL+"/fhir/hooks/enc", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/fhir+json")
			req.Header.Set("X-Signature", sign(body))
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			drain(resp)
			if resp.StatusCode != 200 {
				return fmt.Errorf("status %d", resp.StatusCode)
			}
			return nil
		})
	}
	pending := func() int { return unprocessed(in.DB.Pool) }
	// Warm up at the rate for a second, and leave those notifications out
	// of the figures: the first second after start-up is slower (connections
	// opened, each backend's first run of each statement, the FHIR engine's
	// JIT), and the target is about a connection that runs for months.
	warmRun := fmt.Sprint(time.Now().UnixNano())
	if warm := offer(warmRun, rate); warm.Fails > 0 {
		b.Fatalf("%d warm-up notifications refused", warm.Fails)
	}
	for deadline := time.Now().Add(30 * time.Second); pending() > 0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	var measuredFrom time.Time
	if err := in.DB.Pool.QueryRow(context.Background(), `SELECT clock_timestamp()`).Scan(&measuredFrom); err != nil {
		b.Fatal(err)
	}
	pool0 := in.DB.Pool.Stat()
	b.ResetTimer()
	start := time.Now()
	sent := offer(fmt.Sprint(start.UnixNano()), b.N)
	accept := &sent.Accept
	offered := time.Since(start)
	// Processing keeps up if it finishes soon after the last notification.
	deadline := time.Now().Add(30 * time.Second)
	left := pending()
	for left > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		left = pending()
	}
	drained := time.Since(start) - offered
	b.StopTimer()
	if left > 0 {
		rows, _ := in.DB.Pool.Query(context.Background(), `SELECT state || ' attempt ' || attempt || ': ' || coalesce(errors[array_length(errors, 1)]->>'error', '')
			FROM river_job WHERE kind = 'fhir.process' AND state <> 'completed' LIMIT 5`)
		for rows.Next() {
			var s string
			rows.Scan(&s) //nolint:errcheck
			b.Logf("unfinished job: %s", s)
		}
		rows.Close()
	}
	var e2e benchutil.Latencies
	for _, d := range threadLatencies(b, in.DB.Pool, measuredFrom) {
		e2e.Add(d)
	}
	// The warm-up's, reported apart: what a service just started does.
	var warmP99 float64
	in.DB.Pool.QueryRow(context.Background(), `SELECT percentile_disc(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM processed_at - received_at))
		FROM fhir_notifications WHERE received_at < $1`, measuredFrom).Scan(&warmP99) //nolint:errcheck
	// Where the time goes: waiting to be claimed by a job (River's pickup
	// and the jobs ahead), then applied in a batch. claimed_until stays
	// claimFor (30 s) after the claim that processed the notification.
	var claimWait, apply benchutil.Latencies
	rows, err := in.DB.Pool.Query(context.Background(), `SELECT claimed_until - interval '30 seconds' - received_at, processed_at - (claimed_until - interval '30 seconds')
		FROM fhir_notifications WHERE processed_at IS NOT NULL AND claimed_until IS NOT NULL AND received_at >= $1`, measuredFrom)
	if err != nil {
		b.Fatal(err)
	}
	for rows.Next() {
		var c, a time.Duration
		rows.Scan(&c, &a) //nolint:errcheck
		claimWait.Add(c)
		apply.Add(a)
	}
	rows.Close()
	// How many notifications a batch applied (processed_at is the now() of
	// its transaction), and how many jobs ran for them: the jobs whose
	// notification another job's batch took cost a claim each.
	var batches, jobs int
	in.DB.Pool.QueryRow(context.Background(), `SELECT (SELECT count(DISTINCT processed_at) FROM fhir_notifications WHERE received_at >= $1),
		(SELECT count(*) FROM river_job WHERE kind = 'fhir.process' AND state = 'completed' AND created_at >= $1)`, measuredFrom).Scan(&batches, &jobs) //nolint:errcheck
	b.ReportMetric(float64(b.N)/float64(max(batches, 1)), "batch-mean")
	b.ReportMetric(float64(jobs)/float64(b.N), "jobs/notification")
	// Waiting for one of the pool's connections (the server's pool, 20):
	// what accepts and batches compete for besides the CPU.
	st := in.DB.Pool.Stat()
	if acquired := st.AcquireCount() - pool0.AcquireCount(); acquired > 0 {
		waited := st.EmptyAcquireCount() - pool0.EmptyAcquireCount()
		b.ReportMetric(float64(waited)/float64(acquired), "pool-waited-fraction")
		b.ReportMetric(benchutil.Ms((st.EmptyAcquireWaitTime()-pool0.EmptyAcquireWaitTime())/time.Duration(max(waited, 1))), "pool-wait-mean-ms")
	}
	b.ReportMetric(benchutil.Ms(claimWait.Quantile(0.5)), "claim-wait-p50-ms")
	b.ReportMetric(benchutil.Ms(claimWait.Quantile(0.99)), "claim-wait-p99-ms")
	b.ReportMetric(benchutil.Ms(apply.Quantile(0.5)), "apply-p50-ms")
	b.ReportMetric(benchutil.Ms(apply.Quantile(0.99)), "apply-p99-ms")
	b.ReportMetric(float64(b.N)/offered.Seconds(), "accepted/s")
	b.ReportMetric(benchutil.Ms(accept.Quantile(0.5)), "accept-p50-ms")
	b.ReportMetric(benchutil.Ms(accept.Quantile(0.99)), "accept-p99-ms")
	b.ReportMetric(benchutil.Ms(e2e.Quantile(0.5)), "thread-p50-ms")
	b.ReportMetric(benchutil.Ms(e2e.Quantile(0.99)), "thread-p99-ms")
	b.ReportMetric(warmP99*1000, "warm-up-thread-p99-ms")
	b.ReportMetric(float64(sent.Fails), "failed")
	b.ReportMetric(float64(left), "unprocessed")
	b.ReportMetric(drained.Seconds(), "drain-s")
}

// BenchmarkPagingDuringEHRBurst measures what an EHR burst does to paging on
// the same instance (one pool, one River client, two cores): page ->
// page.notify on the physician's open stream, 20 nurse/physician pairs at
// 200 pages/s for 4 s, alone ("quiet") and while Medplum-style
// notifications arrive at 500/s ("burst"). Paging's own target
// (docs/PERFORMANCE.md): p50 <= 5 ms, p99 <= 25 ms.
func BenchmarkPagingDuringEHRBurst(b *testing.B) {
	const pageRate, ehrRate, pairs = 200, 500, 20
	const window = 4 * time.Second
	ctx := context.Background()
	ehr := fhirtest.Start(b)
	in := benchutil.Start(b, benchutil.Options{FHIR: &fhir.Config{BaseURL: ehr.URL, Timeout: 5 * time.Second,
		Subscriptions: []fhir.Subscription{{Name: "enc", Flavor: fhir.Medplum, Criteria: "Encounter", Secret: secret}}}})
	attending := in.User("Dr Attending", "physician")
	npi := "1234567893"
	if _, err := in.DB.Pool.Exec(ctx, `UPDATE users SET npi = $1 WHERE id = $2`, npi, attending.User.ID); err != nil {
		b.Fatal(err)
	}
	prac := ehr.Create(map[string]any{"resourceType": "Practitioner", "identifier": []any{map[string]any{"system": fhir.NPISystem, "value": npi}}})
	pracRef := "Practitioner/" + prac["id"].(string)
	notices := benchutil.NewNotices()
	nurses := make([]*benchutil.Client, pairs)
	bodies := make([][]byte, pairs)
	for i := range pairs {
		nurses[i] = in.User(fmt.Sprintf("Nurse %d", i), "nurse")
		doctor := in.User(fmt.Sprintf("Dr %d", i), "physician")
		bodies[i] = fmt.Appendf(nil, `{"service_id":%q,"priority":"stat","summary":"bench page"}`,
			in.Service(fmt.Sprintf("Cardiology %d", i), 10*time.Minute, doctor.User.ID))
		stream, err := doctor.Stream(ctx)
		if err != nil {
			b.Fatal(err)
		}
		defer stream.Close() //nolint:errcheck
		notices.Watch(stream)
	}
	client := benchutil.NewHTTPClient()
	sent := 0
	burst := func(stop <-chan struct{}) {
		start := time.Now()
		for i := 0; ; i++ {
			if d := time.Until(start.Add(time.Duration(i) * time.Second / ehrRate)); d > 0 {
				select {
				case <-stop:
					return
				case <-time.After(d):
				}
			}
			enc := encounter(fmt.Sprintf("Patient/burst-%d-%d", sent, i), "in-progress", "IMP", pracRef)
			enc["id"] = fmt.Sprintf("burst-%d-%d", sent, i)
			body, _ := json.Marshal(enc)
			go func() {
				req, _ := http.NewRequest("POST", in.URL+"/fhir/hooks/enc", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/fhir+json")
				req.Header.Set("X-Signature", sign(body))
				if resp, err := client.Do(req); err == nil {
					drain(resp)
				}
			}()
		}
	}
	sendPage := benchutil.PageSender(ctx, nurses, bodies)
	pending := func() int { return unprocessed(in.DB.Pool) }
	// Warm up for a second with both, as BenchmarkNotifications does, so
	// that the first run does not measure the service's first second.
	stop := make(chan struct{})
	go burst(stop)
	warm := make([]uuid.UUID, pageRate)
	benchutil.SendPaced(len(warm), pageRate, 4*pageRate, sendPage(warm))
	close(stop)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if pending() == 0 && notices.Count(warm) == len(warm) {
			break
		}
	}
	sent++
	for _, withBurst := range []bool{false, true} {
		b.Run(map[bool]string{false: "quiet", true: "burst"}[withBurst], func(b *testing.B) {
			var lat, ehrLat benchutil.Latencies
			var drained []time.Duration
			missing := 0
			for b.Loop() {
				stop := make(chan struct{})
				var burstFrom time.Time
				if withBurst {
					if err := in.DB.Pool.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&burstFrom); err != nil {
						b.Fatal(err)
					}
					go burst(stop)
					time.Sleep(500 * time.Millisecond) // the burst under way
				}
				n := pageRate * int(window/time.Second)
				ids := make([]uuid.UUID, n)
				cpu0 := in.CPU()
				due := benchutil.SendPaced(n, pageRate, 4*pageRate, sendPage(ids)).Due
				cpu := in.CPU().Sub(cpu0)
				close(stop)
				if withBurst {
					// The EHR's side of putting pages first: how long its
					// notifications took meanwhile, and how long the backlog
					// took to clear once the burst stopped.
					stopped := time.Now()
					for deadline := stopped.Add(30 * time.Second); pending() > 0 && time.Now().Before(deadline); {
						time.Sleep(10 * time.Millisecond)
					}
					drained = append(drained, time.Since(stopped))
					for _, d := range threadLatencies(b, in.DB.Pool, burstFrom) {
						ehrLat.Add(d)
					}
				}
				deadline := time.Now().Add(10 * time.Second)
				for notices.Count(ids) < n && time.Now().Before(deadline) {
					time.Sleep(20 * time.Millisecond)
				}
				received := make([]time.Time, n)
				for i, id := range ids {
					if at, ok := notices.At(id); ok && id != uuid.Nil {
						lat.Add(at.Sub(due[i]))
						received[i] = at
					} else {
						missing++
					}
				}
				if st, err := in.PageStages(ids, due, received); err == nil {
					b.Logf("stages (from the page timelines):\n%s\n%s", st, cpu.String(window))
				}
				sent++
			}
			b.ReportMetric(benchutil.Ms(lat.Quantile(0.5)), "notify-p50-ms")
			b.ReportMetric(benchutil.Ms(lat.Quantile(0.99)), "notify-p99-ms")
			b.ReportMetric(float64(missing), "missing")
			if withBurst {
				b.ReportMetric(benchutil.Ms(ehrLat.Quantile(0.5)), "ehr-thread-p50-ms")
				b.ReportMetric(benchutil.Ms(ehrLat.Quantile(0.99)), "ehr-thread-p99-ms")
				b.ReportMetric(slices.Max(drained).Seconds(), "ehr-drain-s")
			}
		})
	}
}

// threadLatencies is, for each notification received since from and
// processed, received -> patient thread updated (both PostgreSQL clock).
func threadLatencies(b *testing.B, db *pgxpool.Pool, from time.Time) []time.Duration {
	rows, _ := db.Query(context.Background(), `SELECT processed_at - received_at FROM fhir_notifications WHERE processed_at IS NOT NULL AND received_at >= $1`, from)
	ds, err := pgx.CollectRows(rows, pgx.RowTo[time.Duration])
	if err != nil {
		b.Fatal(err)
	}
	return ds
}

// unprocessed is how many notifications db holds not yet processed.
func unprocessed(db *pgxpool.Pool) (n int) {
	db.QueryRow(context.Background(), `SELECT count(*) FROM fhir_notifications WHERE processed_at IS NULL`).Scan(&n) //nolint:errcheck
	return n
}

// drain reads resp's body to its end before closing it, as an EHR's HTTP
// client does, so that the connection is used again: one closed unread is
// not, and a new connection for every notification cost the benchmark's
// process a twelfth of its CPU in dialling (perf), on the cores the server
// shares.
func drain(resp *http.Response) {
	io.Copy(io.Discard, resp.Body) //nolint:errcheck // only to reuse the connection
	resp.Body.Close()
}

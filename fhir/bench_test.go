package fhir_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callroom/callroom/fhir"
	"github.com/callroom/callroom/internal/apitest"
	"github.com/callroom/callroom/internal/benchutil"
	"github.com/callroom/callroom/internal/fhirtest"
)

// BenchmarkNotifications offers Medplum-style notifications (a new
// in-progress Encounter each, one participant to match, read from the real
// engine) at a fixed rate and measures acceptance (2xx, the HTTP round trip)
// and notification received -> patient thread updated (received_at ->
// processed_at, both PostgreSQL clock). Targets (docs/PERFORMANCE.md): 500
// notifications/s accepted with processing keeping up; p99 <= 250 ms.
func BenchmarkNotifications(b *testing.B) {
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
	var accept benchutil.Latencies
	var failed atomic.Int64
	b.ResetTimer()
	start := time.Now()
	tick := time.NewTicker(time.Second / rate)
	defer tick.Stop()
	var wg sync.WaitGroup
	for i := 0; i < b.N; i++ {
		<-tick.C
		enc := encounter(fmt.Sprintf("Patient/bench-%d-%d", start.UnixNano(), i), "in-progress", "IMP", pracRef)
		enc["id"] = fmt.Sprintf("bench-%d-%d", start.UnixNano(), i)
		body, _ := json.Marshal(enc)
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("POST", in.URL+"/fhir/hooks/enc", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/fhir+json")
			req.Header.Set("X-Signature", sign(body))
			t0 := time.Now()
			resp, err := client.Do(req)
			if err != nil || resp.StatusCode != 200 {
				failed.Add(1)
				if resp != nil {
					resp.Body.Close()
				}
				return
			}
			resp.Body.Close()
			accept.Add(time.Since(t0))
		}()
	}
	wg.Wait()
	offered := time.Since(start)
	// Processing keeps up if it finishes soon after the last notification.
	deadline := time.Now().Add(30 * time.Second)
	var pending int
	for {
		in.DB.Pool.QueryRow(context.Background(), `SELECT count(*) FROM fhir_notifications WHERE processed_at IS NULL`).Scan(&pending) //nolint:errcheck
		if pending == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	drained := time.Since(start) - offered
	b.StopTimer()
	rows, err := in.DB.Pool.Query(context.Background(), `SELECT processed_at - received_at FROM fhir_notifications WHERE processed_at IS NOT NULL`)
	if err != nil {
		b.Fatal(err)
	}
	var e2e benchutil.Latencies
	for rows.Next() {
		var d time.Duration
		rows.Scan(&d) //nolint:errcheck
		e2e.Add(d)
	}
	rows.Close()
	b.ReportMetric(float64(b.N)/offered.Seconds(), "accepted/s")
	b.ReportMetric(benchutil.Ms(accept.Quantile(0.5)), "accept-p50-ms")
	b.ReportMetric(benchutil.Ms(accept.Quantile(0.99)), "accept-p99-ms")
	b.ReportMetric(benchutil.Ms(e2e.Quantile(0.5)), "thread-p50-ms")
	b.ReportMetric(benchutil.Ms(e2e.Quantile(0.99)), "thread-p99-ms")
	b.ReportMetric(float64(failed.Load()), "failed")
	b.ReportMetric(float64(pending), "unprocessed")
	b.ReportMetric(drained.Seconds(), "drain-s")
}

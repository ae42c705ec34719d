package httpapi_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callroom/callroom/internal/benchutil"
)

// Paging benchmarks. They need PostgreSQL and mean something only on a
// durable cluster (fsync on): run them with `make bench`. Each run is a fixed
// experiment that takes longer than -benchtime 2s, so b.Loop runs it once;
// the custom metrics are the result (ns/op is the experiment's length).
// Targets and results: docs/PERFORMANCE.md.

const (
	// notifySend is how long pages are sent for, at the sub-benchmark's rate.
	notifySend = 8 * time.Second
	// notifyWarm is how long pages are sent for, at the rate, before the
	// measured run.
	notifyWarm = 1 * time.Second
	// notifyWait bounds the wait for the last events after the last send.
	notifyWait = 15 * time.Second
	// maxInFlight bounds the open-loop sender's concurrent requests; if it is
	// ever reached the sender falls behind, which shows in the latencies,
	// since they are measured from each page's scheduled send time.
	maxInFlight = 512
)

// BenchmarkPageToNotify is the physician's wait: a nurse POSTs a stat page
// to a service whose step 0 pages one physician, whose event stream
// (GET /api/v1/events) is open; the latency is from the moment the page was
// due to be sent to the moment its page.notify event is read from the
// stream. Pages are sent open-loop at a fixed 200 pages/s, so a slow answer
// does not slow the offered load, after a second of warm-up at the same
// rate. Targets: p50 <= 5 ms, p99 <= 25 ms.
//
// Sub-benchmarks: pairs=1 is the brief's case: one nurse sends every page
// to one service that pages one physician (one stream; two users whose
// event counter rows every publish about these pages locks). pairs=20
// spreads the same 200 pages/s over 20 nurses, each paging their own
// service and physician, each physician with their own stream. rate=20 is
// that at a tenth of the load: the latency of the path itself, without
// queueing.
//
// Metrics: p50/p99/max-ms (send -> page.notify on the stream), accept-p50/
// p99-ms (the POST's answer), missing (pages whose event had not arrived
// notifyWait after the last send; they count in the percentiles at the
// time waited), other-cores (processor time other processes on this shared
// machine took meanwhile). The log splits the latency into stages from each
// page's timeline and has the SQL wall time by statement.
func BenchmarkPageToNotify(b *testing.B) {
	for _, c := range []struct{ rate, pairs int }{{200, 1}, {200, 20}, {20, 20}} {
		b.Run(fmt.Sprintf("rate=%d/pairs=%d", c.rate, c.pairs), func(b *testing.B) { pageToNotify(b, c.rate, c.pairs) })
	}
}

func pageToNotify(b *testing.B, notifyRate, pairs int) {
	notifyPages := notifyRate * int(notifySend/time.Second)
	ctx := context.Background()
	in := benchutil.Start(b, benchutil.Options{TraceSQL: true})

	// One event reader per physician: page_id -> when its page.notify was read.
	notices := benchutil.NewNotices()
	bodies := make([][]byte, pairs)
	nurses := make([]*benchutil.Client, pairs)
	for i := range pairs {
		nurses[i] = in.User(fmt.Sprintf("Nurse %d", i), "nurse")
		doctor := in.User(fmt.Sprintf("Dr %d", i), "physician")
		service := in.Service(fmt.Sprintf("Cardiology %d", i), 10*time.Minute, doctor.User.ID)
		bodies[i] = fmt.Appendf(nil, `{"service_id":%q,"priority":"stat","summary":"bench page"}`, service)
		stream, err := doctor.Stream(ctx)
		if err != nil {
			b.Fatal(err)
		}
		defer stream.Close() //nolint:errcheck
		notices.Watch(stream)
	}
	send := benchutil.PageSender(ctx, nurses, bodies)
	// Warm up at the measured rate, so that the pool has opened the
	// connections the load needs and each backend has run each statement:
	// a backend's first run of a statement loads the catalog (tens of ms
	// here), a cost a running service paid long ago. Pages sent one by one
	// opened one connection.
	warmIDs := make([]uuid.UUID, notifyRate*int(notifyWarm/time.Second))
	warm := benchutil.SendPaced(len(warmIDs), notifyRate, maxInFlight, send(warmIDs))
	if warm.Fails > 0 {
		b.Fatalf("%d warm-up pages were refused", warm.Fails)
	}
	for notices.Count(warmIDs) < len(warmIDs) && time.Since(warm.Last) < notifyWait {
		select {
		case <-notices.Arrived():
		case <-time.After(100 * time.Millisecond):
		}
	}
	time.Sleep(200 * time.Millisecond)

	var lat, accept benchutil.Latencies
	var missing, failed int
	var others, span time.Duration
	for b.Loop() {
		in.SQL.Reset()
		cpu0 := in.CPU()
		ids := make([]uuid.UUID, notifyPages)
		sent := benchutil.SendPaced(notifyPages, notifyRate, maxInFlight, send(ids))
		due := sent.Due
		for _, d := range sent.Accept.Values() {
			accept.Add(d)
		}
		// Wait for every page's event, or notifyWait.
		for {
			n := notices.Count(ids)
			if n == notifyPages-sent.Fails || time.Since(sent.Last) > notifyWait {
				break
			}
			select {
			case <-notices.Arrived():
			case <-time.After(100 * time.Millisecond):
			}
		}
		waited := time.Now()
		cpu := in.CPU().Sub(cpu0)
		others += cpu.Others()
		span += waited.Sub(cpu0.At)
		received := make([]time.Time, notifyPages)
		var run benchutil.Latencies
		for i, id := range ids {
			if id == uuid.Nil {
				continue
			}
			if at, ok := notices.At(id); ok {
				received[i] = at
				run.Add(at.Sub(due[i]))
			} else {
				missing++
				run.Add(waited.Sub(due[i]))
			}
		}
		for _, d := range run.Values() {
			lat.Add(d)
		}
		failed += sent.Fails
		st, err := in.PageStages(ids, due, received)
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("page -> page.notify, %d pages/s, %d nurse/physician pairs: %s\nstages (from the page timelines):\n%s\n%s\nriver jobs at the end: %s\n%s",
			notifyRate, pairs, run.String(), st, cpu.String(waited.Sub(cpu0.At)), in.RiverJobStates(), in.SQL.Top(12))
	}
	b.ReportMetric(float64(notifyRate), "offered-pages/s")
	lat.Report(b, "")
	b.ReportMetric(benchutil.Ms(accept.Quantile(0.5)), "accept-p50-ms")
	b.ReportMetric(benchutil.Ms(accept.Quantile(0.99)), "accept-p99-ms")
	b.ReportMetric(float64(missing), "missing")
	if span > 0 {
		b.ReportMetric(others.Seconds()/span.Seconds(), "other-cores")
	}
	if failed > 0 {
		b.Errorf("%d pages were refused", failed)
	}
}

// throughputRun and throughputWarm: each client count runs 1 s of warm-up,
// then 8 s measured.
const (
	throughputWarm = 1 * time.Second
	throughputRun  = 8 * time.Second
)

// BenchmarkPageCreateThroughput is the sustained rate at which the API
// accepts pages (201 from POST /api/v1/pages) from concurrent clients in a
// closed loop, while the same instance's River workers fire the pages'
// steps and deliver their in-app notifications, as they would in
// production. Target >= 1,000 pages/s.
//
// Sub-benchmarks: clients=N has each of N nurses page their own service,
// whose step 0 pages its own physician (pages spread over N recipients, as
// in a hospital); clients=N/one-recipient has every page go to one service
// and one physician, the worst case for the per-user event counter row that
// every publish to that physician locks until commit.
//
// Metrics: pages/s; steps/s and deliveries/s (step and in-app delivery jobs
// the workers completed meanwhile: below pages/s, escalation falls behind
// and the backlog grows); p50/p99-ms of the POST; cpu-cores (this process plus
// PostgreSQL, out of nproc); go-cpu-ms/page and pg-cpu-ms/page;
// sql-stmts/page (statements run by the server per accepted page, API and
// workers); pool-wait-ms (mean wait for a database connection per acquire);
// other-cores (processor time other processes on this shared machine took).
// The log has SQL wall time by statement and River's backlog. Set
// CALLROOM_BENCH_CPUPROFILE=dir to write a CPU profile of the measured phase.
func BenchmarkPageCreateThroughput(b *testing.B) {
	for _, c := range []struct {
		clients   int
		oneTarget bool
	}{{16, false}, {32, false}, {32, true}} {
		name := fmt.Sprintf("clients=%d", c.clients)
		if c.oneTarget {
			name += "/one-recipient"
		}
		b.Run(name, func(b *testing.B) { pageThroughput(b, c.clients, c.oneTarget) })
	}
}

func pageThroughput(b *testing.B, clients int, oneTarget bool) {
	ctx := context.Background()
	in := benchutil.Start(b, benchutil.Options{TraceSQL: true})
	nurses := make([]*benchutil.Client, clients)
	bodies := make([][]byte, clients)
	var service uuid.UUID
	for i := range nurses {
		nurses[i] = in.User(fmt.Sprintf("Nurse %d", i), "nurse")
		if i == 0 || !oneTarget {
			doctor := in.User(fmt.Sprintf("Dr %d", i), "physician")
			service = in.Service(fmt.Sprintf("Service %d", i), 10*time.Minute, doctor.User.ID)
		}
		bodies[i] = fmt.Appendf(nil, `{"service_id":%q,"priority":"stat","summary":"bench page"}`, service)
	}

	var lat benchutil.Latencies
	var pages, fails int64
	var stmts, steps, deliveries int
	var elapsed, others time.Duration
	var cpu benchutil.CPU
	var wait benchutil.PoolWait
	for b.Loop() {
		var ok, bad atomic.Int64
		var measuring atomic.Bool
		var wg sync.WaitGroup
		stop := time.Now().Add(throughputWarm + throughputRun)
		for i, c := range nurses {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(stop) {
					t := time.Now()
					status, _, err := c.Do(ctx, "POST", "/api/v1/pages", bodies[i])
					if !measuring.Load() {
						continue
					}
					if err != nil || status != 201 {
						bad.Add(1)
						continue
					}
					lat.Add(time.Since(t))
					ok.Add(1)
				}
			}()
		}
		time.Sleep(throughputWarm)
		in.SQL.Reset()
		cpu0, wait0 := in.CPU(), in.PoolWait()
		stopProfile := benchutil.Profile(b, fmt.Sprintf("page-create-%d-%v", clients, oneTarget))
		measuring.Store(true)
		t0 := time.Now()
		wg.Wait()
		measuring.Store(false)
		t1 := time.Now()
		d := t1.Sub(t0)
		stopProfile()
		steps += in.JobsDone("escalation.step", t0, t1)
		deliveries += in.JobsDone("escalation.deliver", t0, t1)
		dc, dw := in.CPU().Sub(cpu0), in.PoolWait().Sub(wait0)
		elapsed += d
		cpu.Go, cpu.Postgres = cpu.Go+dc.Go, cpu.Postgres+dc.Postgres
		others += dc.Others()
		wait.Acquires, wait.Waited, wait.WaitTime = wait.Acquires+dw.Acquires, wait.Waited+dw.Waited, wait.WaitTime+dw.WaitTime
		pages += ok.Load()
		fails += bad.Load()
		stmts += in.SQL.Calls()
		b.Logf("%d pages in %s (%.0f/s); POST %s\n%s\npool: %d acquires, %d waited, %s waiting\nriver jobs at the end: %s\n%s",
			ok.Load(), d.Round(time.Millisecond), float64(ok.Load())/d.Seconds(), lat.String(), dc.String(d),
			dw.Acquires, dw.Waited, dw.WaitTime.Round(time.Millisecond), in.RiverJobStates(), in.SQL.Top(20))
	}
	b.ReportMetric(float64(pages)/elapsed.Seconds(), "pages/s")
	b.ReportMetric(float64(steps)/elapsed.Seconds(), "steps/s")
	b.ReportMetric(float64(deliveries)/elapsed.Seconds(), "deliveries/s")
	b.ReportMetric(benchutil.Ms(lat.Quantile(0.5)), "p50-ms")
	b.ReportMetric(benchutil.Ms(lat.Quantile(0.99)), "p99-ms")
	b.ReportMetric((cpu.Go+cpu.Postgres).Seconds()/elapsed.Seconds(), "cpu-cores")
	b.ReportMetric(others.Seconds()/elapsed.Seconds(), "other-cores")
	if pages > 0 {
		b.ReportMetric(benchutil.Ms(cpu.Go)/float64(pages), "go-cpu-ms/page")
		b.ReportMetric(benchutil.Ms(cpu.Postgres)/float64(pages), "pg-cpu-ms/page")
		b.ReportMetric(float64(stmts)/float64(pages), "sql-stmts/page")
	}
	if wait.Acquires > 0 {
		b.ReportMetric(benchutil.Ms(wait.WaitTime)/float64(wait.Acquires), "pool-wait-ms")
	}
	if fails > 0 {
		b.Errorf("%d requests failed", fails)
	}
}

package httpapi_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/auth"
	"github.com/callroom/callroom/internal/benchutil"
	"github.com/callroom/callroom/oncall"
)

// BenchmarkOnCallLookup answers "who is on call" for a schedule with 50
// participants, 10 rotations, 20 rules and 1,000 overrides over a year, at
// random instants of that year, three ways:
//
//   - engine: the compiled schedule in memory (oncall.Compiled.OnCallAt);
//     target p99 < 1 ms.
//   - store: oncall.Store.OnCallAt, which loads the schedule from PostgreSQL
//     and compiles it for each question (what an escalation step does).
//   - http: GET /api/v1/schedules/{id}/on-call?at=... through the real API
//     (authentication, routing, the store, user names, JSON, logging), one
//     request at a time over a kept-alive connection; target p99 < 5 ms.
//
// Each call is timed on its own; p50/p99/max are reported in milliseconds,
// with other-cores, the processor time other processes on this shared
// machine took meanwhile.
// Targets and results: docs/PERFORMANCE.md.
func BenchmarkOnCallLookup(b *testing.B) {
	ctx := context.Background()
	in := benchutil.Start(b, benchutil.Options{})
	people := make([]uuid.UUID, benchutil.ScheduleParticipants)
	for i := range people {
		u, err := in.Server.Auth.CreateUser(ctx, audit.System, auth.NewUser{
			Email: fmt.Sprintf("oncall-%d-%s@example.org", i, uuid.NewString()[:8]), Name: fmt.Sprintf("Dr %d", i),
			Roles: []string{"physician"}, TimeZone: "America/Chicago"})
		if err != nil {
			b.Fatal(err)
		}
		people[i] = u.ID
	}
	sched, year := benchutil.BigSchedule(people, 7)
	id, err := benchutil.StoreSchedule(ctx, in.Server.OnCall, audit.System, sched)
	if err != nil {
		b.Fatal(err)
	}
	instants := benchutil.Instants(year, 4096, 9)

	b.Run("engine", func(b *testing.B) {
		c, err := oncall.Compile(sched)
		if err != nil {
			b.Fatal(err)
		}
		var lat benchutil.Latencies
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			start := time.Now()
			c.OnCallAt(instants[i&4095])
			lat.Add(time.Since(start))
			i++
		}
		lat.Report(b, "")
	})

	b.Run("store", func(b *testing.B) {
		for i := range 20 { // warm the pool and the plan cache
			if _, err := in.Server.OnCall.OnCallAt(ctx, id, instants[i]); err != nil {
				b.Fatal(err)
			}
		}
		var lat benchutil.Latencies
		cpu0 := in.CPU()
		i := 0
		for b.Loop() {
			start := time.Now()
			if _, err := in.Server.OnCall.OnCallAt(ctx, id, instants[i&4095]); err != nil {
				b.Fatal(err)
			}
			lat.Add(time.Since(start))
			i++
		}
		reportOthers(b, cpu0, in.CPU())
		lat.Report(b, "")
	})

	b.Run("http", func(b *testing.B) {
		nurse := in.User("Nina Nurse", "nurse")
		path := func(i int) string {
			return "/api/v1/schedules/" + id.String() + "/on-call?at=" + instants[i&4095].UTC().Format(time.RFC3339)
		}
		for i := range 20 {
			if err := nurse.JSON(ctx, 200, "GET", path(i), nil, nil); err != nil {
				b.Fatal(err)
			}
		}
		var lat benchutil.Latencies
		cpu0 := in.CPU()
		i := 0
		for b.Loop() {
			start := time.Now()
			status, body, err := nurse.Do(ctx, "GET", path(i), nil)
			if err != nil || status != 200 {
				b.Fatalf("on-call: %d %v %s", status, err, body)
			}
			lat.Add(time.Since(start))
			i++
		}
		reportOthers(b, cpu0, in.CPU())
		lat.Report(b, "")
	})
}

// reportOthers reports the processor time that other processes on this
// shared machine took during the measurement, in cores.
func reportOthers(b *testing.B, before, after benchutil.CPU) {
	if span := after.At.Sub(before.At); span > 0 {
		b.ReportMetric(after.Sub(before).Others().Seconds()/span.Seconds(), "other-cores")
	}
}

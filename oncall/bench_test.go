package oncall

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
)

// benchSchedule is the size the service must handle quickly: 50
// participants, 10 rotations, 20 rules and 1,000 overrides over a year, in a
// zone with DST.
func benchSchedule() (Schedule, time.Time) {
	rng := rand.New(rand.NewPCG(7, 8))
	chi, err := time.LoadLocation("America/Chicago")
	if err != nil {
		panic(err)
	}
	year := time.Date(2026, 1, 1, 0, 0, 0, 0, chi)
	people := make([]uuid.UUID, 50)
	for i := range people {
		people[i] = uuid.New()
	}
	s := Schedule{ID: uuid.New(), Name: "Bench", TimeZone: "America/Chicago"}
	units := []struct {
		unit   ShiftUnit
		length int
	}{{ShiftUnitHours, 12}, {ShiftUnitDays, 1}, {ShiftUnitWeeks, 1}, {ShiftUnitHours, 8}, {ShiftUnitDays, 2}}
	for i := 0; i < 10; i++ {
		u := units[i%len(units)]
		s.Rotations = append(s.Rotations, Rotation{
			ID: uuid.New(), Name: "rotation", Participants: people[i*5 : i*5+5],
			ShiftLength: u.length, ShiftUnit: u.unit, Start: year.AddDate(-1, 0, i).Add(7 * time.Hour),
		})
	}
	for i := 0; i < 20; i++ {
		w := []Window{
			{Weekdays: []time.Weekday{time.Monday, time.Wednesday, time.Friday}, Start: TimeOfDay{19, 0}, End: TimeOfDay{7, 0}},
			{Weekdays: []time.Weekday{time.Saturday, time.Sunday}, Start: TimeOfDay{8, 0}, End: TimeOfDay{20, 0}},
		}
		if i < 10 {
			s.Rules = append(s.Rules, Rule{ID: uuid.New(), RotationID: &s.Rotations[i].ID, Windows: w})
		} else {
			s.Rules = append(s.Rules, Rule{ID: uuid.New(), UserID: &people[rng.IntN(50)], Windows: w[:1]})
		}
	}
	for i := 0; i < 1000; i++ {
		start := year.Add(time.Duration(rng.Int64N(int64(365 * 24 * time.Hour)))).Truncate(time.Minute)
		o := Override{ID: uuid.New(), Start: start, End: start.Add(time.Duration(1+rng.IntN(48)) * time.Hour)}
		a, b := people[rng.IntN(50)], people[rng.IntN(50)]
		switch {
		case i%3 == 0:
			o.Kind, o.AddUserID = OverrideAdd, &a
		case i%3 == 1:
			o.Kind, o.RemoveUserID = OverrideRemove, &a
		case a != b:
			o.Kind, o.AddUserID, o.RemoveUserID = OverrideReplace, &a, &b
		default:
			o.Kind, o.AddUserID = OverrideAdd, &a
		}
		s.Overrides = append(s.Overrides, o)
	}
	return s, year
}

func benchInstants(year time.Time, n int) []time.Time {
	rng := rand.New(rand.NewPCG(9, 10))
	ts := make([]time.Time, n)
	for i := range ts {
		ts[i] = year.Add(time.Duration(rng.Int64N(int64(365 * 24 * time.Hour))))
	}
	return ts
}

func BenchmarkOnCallAt(b *testing.B) {
	s, year := benchSchedule()
	c, err := Compile(s)
	if err != nil {
		b.Fatal(err)
	}
	ts := benchInstants(year, 4096)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		c.OnCallAt(ts[i&4095])
		i++
	}
}

func BenchmarkShifts30Days(b *testing.B) {
	s, year := benchSchedule()
	c, err := Compile(s)
	if err != nil {
		b.Fatal(err)
	}
	from := year.AddDate(0, 2, 20) // includes the March DST change
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Shifts(from, from.AddDate(0, 0, 30)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCompile matters because the store compiles a schedule for every
// on-call question it answers. The store reads overrides ordered by start,
// which Compile detects; the unsorted case is the worst one.
func BenchmarkCompile(b *testing.B) {
	s, _ := benchSchedule()
	b.Run("overrides_unsorted", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Compile(s); err != nil {
				b.Fatal(err)
			}
		}
	})
	sorted := s
	sorted.Overrides = slices.Clone(s.Overrides)
	slices.SortFunc(sorted.Overrides, func(a, b Override) int { return a.Start.Compare(b.Start) })
	b.Run("overrides_by_start", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Compile(sorted); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestOnCallAtLatency checks the p99 target directly: OnCallAt on the
// benchmark schedule must stay well under a millisecond. The bound is loose
// (typical p99 is a few microseconds) so that a loaded CI machine does not
// make it flaky.
func TestOnCallAtLatency(t *testing.T) {
	if testing.Short() {
		t.Skip("timing test")
	}
	s, year := benchSchedule()
	c := mustCompile(t, s)
	ts := benchInstants(year, 20000)
	durs := make([]time.Duration, len(ts))
	for i, at := range ts {
		start := time.Now()
		c.OnCallAt(at)
		durs[i] = time.Since(start)
	}
	slices.Sort(durs)
	p50, p99 := durs[len(durs)/2], durs[len(durs)*99/100]
	t.Logf("OnCallAt on 50 participants, 10 rotations, 20 rules, 1000 overrides: p50 %s, p99 %s, max %s", p50, p99, durs[len(durs)-1])
	if p99 > time.Millisecond {
		t.Errorf("p99 = %s, want well under 1ms", p99)
	}
}

package oncall

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/uuid"
)

func rotationSchedule(zone string, r Rotation) Schedule {
	if r.ID == uuid.Nil {
		r.ID = uuid.New()
	}
	return Schedule{ID: uuid.New(), Name: "Test", TimeZone: zone, Rotations: []Rotation{r}}
}

// TestDailyHandOffAfterDST: a daily rotation keeps its wall clock hand-off on
// the days after a DST change, whether it starts just after the change or
// runs through it.
func TestDailyHandOffAfterDST(t *testing.T) {
	chi := mustLoc(t, "America/Chicago")
	cases := []struct {
		name  string
		start time.Time
		// Wall clock time of every later hand-off in Chicago, one a day;
		// expected ends are built with time.Date, except ambiguousEnds.
		hour, minute int
		// Expected real length of each of the first shifts.
		lengths []time.Duration
		// Ends that time.Date cannot name unambiguously, by shift number.
		ambiguousEnds map[int]time.Time
	}{
		{
			name:  "starts 03:05 CDT, five minutes after spring forward",
			start: time.Date(2026, 3, 8, 3, 5, 0, 0, chi),
			hour:  3, minute: 5,
			lengths: []time.Duration{24 * time.Hour, 24 * time.Hour, 24 * time.Hour, 24 * time.Hour},
		},
		{
			name:  "runs through spring forward",
			start: time.Date(2026, 3, 6, 3, 5, 0, 0, chi),
			hour:  3, minute: 5,
			lengths: []time.Duration{24 * time.Hour, 23 * time.Hour, 24 * time.Hour, 24 * time.Hour},
		},
		{
			// 01:05 occurs twice on 2026-11-01; the start is an instant,
			// the second (CST) one, five minutes after the fall back.
			name:  "starts 01:05 CST, five minutes after fall back",
			start: time.Date(2026, 11, 1, 7, 5, 0, 0, time.UTC),
			hour:  1, minute: 5,
			lengths: []time.Duration{24 * time.Hour, 24 * time.Hour, 24 * time.Hour, 24 * time.Hour},
		},
		{
			// The hand-off at 01:05 on the fall-back day happens at the
			// first occurrence (CDT), so the shift before it is 24h and
			// the one after it 25h.
			name:  "runs through fall back at an ambiguous hand-off time",
			start: time.Date(2026, 10, 30, 1, 5, 0, 0, chi),
			hour:  1, minute: 5,
			lengths: []time.Duration{24 * time.Hour, 24 * time.Hour, 25 * time.Hour, 24 * time.Hour},
			// 01:05 CDT, the first of the two 01:05s.
			ambiguousEnds: map[int]time.Time{1: time.Date(2026, 11, 1, 6, 5, 0, 0, time.UTC)},
		},
		{
			name:  "starts 05:00 CST, after fall back",
			start: time.Date(2026, 11, 1, 5, 0, 0, 0, chi),
			hour:  5, minute: 0,
			lengths: []time.Duration{24 * time.Hour, 24 * time.Hour, 24 * time.Hour},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			parts := []uuid.UUID{u1, u2, u3}
			c := mustCompile(t, rotationSchedule("America/Chicago", Rotation{
				Participants: parts, ShiftLength: 1, ShiftUnit: ShiftUnitDays, Start: tc.start,
			}))
			shifts, err := c.Shifts(tc.start, tc.start.Add(20*24*time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if len(shifts) < 19 {
				t.Fatalf("got %d shifts:\n%s", len(shifts), fmtShifts(shifts, chi))
			}
			if !shifts[0].Start.Equal(tc.start) {
				t.Errorf("first shift starts %s, want %s", shifts[0].Start, tc.start)
			}
			y, m, d := tc.start.In(chi).Date()
			for k, s := range shifts[:len(shifts)-1] {
				if s.UserID != parts[k%3] {
					t.Errorf("shift %d is %s's, want %s's", k, userNames([]uuid.UUID{s.UserID}), userNames(parts[k%3:k%3+1]))
				}
				want := time.Date(y, m, d+k+1, tc.hour, tc.minute, 0, 0, chi)
				if end, ok := tc.ambiguousEnds[k]; ok {
					want = end
				}
				if !s.End.Equal(want) {
					t.Errorf("shift %d ends %s, want %s", k, s.End.In(chi), want)
				}
				if k < len(tc.lengths) && s.End.Sub(s.Start) != tc.lengths[k] {
					t.Errorf("shift %d lasts %s, want %s", k, s.End.Sub(s.Start), tc.lengths[k])
				}
				if k >= len(tc.lengths) && s.End.Sub(s.Start) != 24*time.Hour {
					t.Errorf("shift %d lasts %s, want 24h", k, s.End.Sub(s.Start))
				}
				// The hand-off instant itself belongs to the next shift.
				assertSet(t, c.OnCallAt(s.End.Add(-time.Nanosecond)), parts[k%3])
				assertSet(t, c.OnCallAt(s.End), parts[(k+1)%3])
			}
		})
	}
}

// TestTwelveHourRotationAcrossDST: hand-offs stay at 07:00 and 19:00 local,
// so the night shift spanning the change lasts 11h (spring) or 13h (autumn).
func TestTwelveHourRotationAcrossDST(t *testing.T) {
	cases := []struct {
		zone      string
		firstDay  time.Time // 07:00 local, two days before the change night
		changeIdx int       // index of the shift spanning the change
		want      time.Duration
	}{
		{"Europe/Berlin", time.Date(2026, 3, 27, 7, 0, 0, 0, time.UTC), 3, 11 * time.Hour},
		{"Europe/Berlin", time.Date(2026, 10, 23, 7, 0, 0, 0, time.UTC), 3, 13 * time.Hour},
		{"America/Chicago", time.Date(2026, 3, 6, 7, 0, 0, 0, time.UTC), 3, 11 * time.Hour},
		{"America/Chicago", time.Date(2026, 10, 30, 7, 0, 0, 0, time.UTC), 3, 13 * time.Hour},
	}
	for _, tc := range cases {
		t.Run(tc.zone+"/"+tc.firstDay.Format("2006-01"), func(t *testing.T) {
			l := mustLoc(t, tc.zone)
			y, m, d := tc.firstDay.Date()
			start := time.Date(y, m, d, 7, 0, 0, 0, l)
			c := mustCompile(t, rotationSchedule(tc.zone, Rotation{
				Participants: []uuid.UUID{u1, u2}, ShiftLength: 12, ShiftUnit: ShiftUnitHours, Start: start,
			}))
			shifts, err := c.Shifts(start, start.Add(6*24*time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			for k, s := range shifts[:len(shifts)-1] {
				hour := 7 + 12*(k%2)
				want := time.Date(y, m, d+k/2, hour, 0, 0, 0, l)
				if !s.Start.Equal(want) {
					t.Errorf("shift %d starts %s, want %s", k, s.Start.In(l), want)
				}
				length := 12 * time.Hour
				if k == tc.changeIdx {
					length = tc.want
				}
				if got := s.End.Sub(s.Start); got != length {
					t.Errorf("shift %d (%s) lasts %s, want %s", k, s.Start.In(l), got, length)
				}
				if lt := s.End.In(l); lt.Minute() != 0 || (lt.Hour() != 7 && lt.Hour() != 19) {
					t.Errorf("shift %d hands off at %s local", k, lt)
				}
			}
		})
	}
}

// TestHandOffInGap: a hand-off time that does not exist happens at the end of
// the gap; with hourly shifts the skipped hour's shift is empty and the
// repeated hour's lasts two hours.
func TestHandOffInGap(t *testing.T) {
	chi := mustLoc(t, "America/Chicago")
	t.Run("daily at 02:30", func(t *testing.T) {
		start := time.Date(2026, 3, 7, 2, 30, 0, 0, chi)
		c := mustCompile(t, rotationSchedule("America/Chicago", Rotation{
			Participants: []uuid.UUID{u1, u2, u3}, ShiftLength: 1, ShiftUnit: ShiftUnitDays, Start: start,
		}))
		gapEnd := time.Date(2026, 3, 8, 8, 0, 0, 0, time.UTC) // 03:00 CDT
		assertSet(t, c.OnCallAt(gapEnd.Add(-time.Second)), u1)
		assertSet(t, c.OnCallAt(gapEnd), u2)
		next := time.Date(2026, 3, 9, 2, 30, 0, 0, chi)
		assertSet(t, c.OnCallAt(next.Add(-time.Second)), u2)
		assertSet(t, c.OnCallAt(next), u3)
	})
	t.Run("hourly", func(t *testing.T) {
		start := time.Date(2026, 3, 8, 0, 0, 0, 0, chi)
		parts := []uuid.UUID{u1, u2, u3, u4, u5}
		c := mustCompile(t, rotationSchedule("America/Chicago", Rotation{
			Participants: parts, ShiftLength: 1, ShiftUnit: ShiftUnitHours, Start: start,
		}))
		shifts, err := c.Shifts(start, start.Add(4*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		// 00:00 u1, 01:00 u2, 02:00 (skipped: u3), 03:00 CDT u4, 04:00 u5.
		want := []Shift{
			{u1, start, start.Add(time.Hour)},
			{u2, start.Add(time.Hour), start.Add(2 * time.Hour)},
			{u4, start.Add(2 * time.Hour), start.Add(3 * time.Hour)},
			{u5, start.Add(3 * time.Hour), start.Add(4 * time.Hour)},
		}
		if !equalShifts(shifts, want) {
			t.Errorf("got\n%swant\n%s", fmtShifts(shifts, chi), fmtShifts(want, chi))
		}

		fall := time.Date(2026, 11, 1, 0, 0, 0, 0, chi)
		c = mustCompile(t, rotationSchedule("America/Chicago", Rotation{
			Participants: parts, ShiftLength: 1, ShiftUnit: ShiftUnitHours, Start: fall,
		}))
		shifts, err = c.Shifts(fall, fall.Add(4*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		// 00:00 u1, 01:00 CDT u2 (two hours, through 01:00 CST), 02:00 CST u3.
		want = []Shift{
			{u1, fall, fall.Add(time.Hour)},
			{u2, fall.Add(time.Hour), fall.Add(3 * time.Hour)},
			{u3, fall.Add(3 * time.Hour), fall.Add(4 * time.Hour)},
		}
		if !equalShifts(shifts, want) {
			t.Errorf("got\n%swant\n%s", fmtShifts(shifts, chi), fmtShifts(want, chi))
		}
	})
}

func TestBeforeStartNobody(t *testing.T) {
	start := time.Date(2026, 6, 1, 8, 0, 0, 0, time.UTC)
	c := mustCompile(t, rotationSchedule("UTC", Rotation{
		Participants: []uuid.UUID{u1}, ShiftLength: 1, ShiftUnit: ShiftUnitWeeks, Start: start,
	}))
	assertSet(t, c.OnCallAt(start.Add(-time.Nanosecond)))
	assertSet(t, c.OnCallAt(start), u1)
	assertSet(t, c.OnCallAt(start.AddDate(5, 0, 0)), u1)
}

// TestShiftAtMatchesCounting compares the O(1) shift lookup with counting
// hand-offs one by one from the start, for many units, zones and instants.
func TestShiftAtMatchesCounting(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	zones := []string{"America/Chicago", "Europe/Berlin", "Australia/Lord_Howe", "Pacific/Apia", "Asia/Kolkata", "UTC"}
	units := []struct {
		unit ShiftUnit
		max  int
	}{{ShiftUnitHours, 30}, {ShiftUnitDays, 4}, {ShiftUnitWeeks, 2}}
	for i := 0; i < 200; i++ {
		zone := zones[rng.IntN(len(zones))]
		u := units[rng.IntN(len(units))]
		start := time.Date(2010, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(rng.Int64N(int64(16 * 365 * 24 * time.Hour))))
		start = start.Truncate(time.Minute)
		r := Rotation{ID: uuid.New(), Participants: []uuid.UUID{u1, u2, u3}, ShiftLength: 1 + rng.IntN(u.max), ShiftUnit: u.unit, Start: start}
		z, err := loadZone(zone)
		if err != nil {
			t.Fatal(err)
		}
		cr := compileRotation(r, z)
		c := cursor{z: z}
		// Walk hand-offs from the start; at each, probe instants around it.
		var k int64
		prev := cr.shiftStart(0, &c)
		for n := 0; n < 60; n++ {
			next := cr.shiftStart(k+1, &c)
			if next.Before(prev) {
				t.Fatalf("%s %+v: shift %d starts %s before shift %d at %s", zone, r, k+1, next, k, prev)
			}
			if next.After(prev) {
				for _, probe := range []time.Time{prev, prev.Add(time.Duration(rng.Int64N(int64(next.Sub(prev))))), next.Add(-time.Nanosecond)} {
					c2 := cursor{z: z}
					got, ok := cr.shiftAt(probe, &c2)
					if !ok || got != k {
						t.Fatalf("%s %+v: shiftAt(%s) = %d, want %d", zone, r, probe, got, k)
					}
				}
			}
			k++
			prev = next
		}
	}
}

func equalShifts(a, b []Shift) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].UserID != b[i].UserID || !a[i].Start.Equal(b[i].Start) || !a[i].End.Equal(b[i].End) {
			return false
		}
	}
	return true
}

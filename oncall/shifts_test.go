package oncall

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
)

// weekSchedule: u1 works weekdays 08:00-18:00; a rotation of u2 and u3 covers
// every night 18:00-08:00, starting Monday evening; u2 is removed on
// Wednesday 23:00 to Thursday 01:00. Nobody covers weekend days, nor Monday
// before the rotation starts.
func weekSchedule(t *testing.T) (*Compiled, func(day, hour int) time.Time) {
	lon := mustLoc(t, "Europe/London")
	at := func(day, hour int) time.Time { return time.Date(2026, 6, day, hour, 0, 0, 0, lon) } // June 1 is a Monday
	rot := uuid.New()
	c := mustCompile(t, Schedule{
		ID: uuid.New(), TimeZone: "Europe/London",
		Rotations: []Rotation{{ID: rot, Participants: []uuid.UUID{u2, u3}, ShiftLength: 1, ShiftUnit: ShiftUnitDays, Start: at(1, 18)}},
		Rules: []Rule{
			userRule(u1, window("08:00", "18:00", time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday)),
			rotationRule(rot, window("18:00", "08:00")),
		},
		Overrides: []Override{{ID: uuid.New(), Kind: OverrideRemove, RemoveUserID: refOf(u2), Start: at(3, 23), End: at(4, 1)}},
	})
	return c, at
}

func TestShiftsAndGapsOverAWeek(t *testing.T) {
	c, at := weekSchedule(t)
	from, to := at(1, 0), at(8, 0)
	shifts, err := c.Shifts(from, to)
	if err != nil {
		t.Fatal(err)
	}
	want := []Shift{
		{u1, at(1, 8), at(1, 18)},
		{u2, at(1, 18), at(2, 8)},
		{u1, at(2, 8), at(2, 18)},
		{u3, at(2, 18), at(3, 8)},
		{u1, at(3, 8), at(3, 18)},
		{u2, at(3, 18), at(3, 23)},
		{u2, at(4, 1), at(4, 8)},
		{u1, at(4, 8), at(4, 18)},
		{u3, at(4, 18), at(5, 8)},
		{u1, at(5, 8), at(5, 18)},
		{u2, at(5, 18), at(6, 8)},
		{u3, at(6, 18), at(7, 8)},
		{u2, at(7, 18), at(8, 0)}, // clipped to the range
	}
	lon := c.Location()
	if !equalShifts(shifts, want) {
		t.Errorf("shifts:\n%swant:\n%s", fmtShifts(shifts, lon), fmtShifts(want, lon))
	}
	gaps, err := c.Gaps(from, to)
	if err != nil {
		t.Fatal(err)
	}
	wantGaps := []Gap{{at(1, 0), at(1, 8)}, {at(3, 23), at(4, 1)}, {at(6, 8), at(6, 18)}, {at(7, 8), at(7, 18)}}
	if !slices.EqualFunc(gaps, wantGaps, func(a, b Gap) bool { return a.Start.Equal(b.Start) && a.End.Equal(b.End) }) {
		t.Errorf("gaps = %v\nwant %v", gaps, wantGaps)
	}

	// Clipping on both ends, and a range inside one gap.
	shifts, err = c.Shifts(at(2, 12), at(2, 20))
	if err != nil {
		t.Fatal(err)
	}
	if want := []Shift{{u1, at(2, 12), at(2, 18)}, {u3, at(2, 18), at(2, 20)}}; !equalShifts(shifts, want) {
		t.Errorf("clipped shifts:\n%swant:\n%s", fmtShifts(shifts, lon), fmtShifts(want, lon))
	}
	gaps, err = c.Gaps(at(6, 9), at(6, 10))
	if err != nil || len(gaps) != 1 || !gaps[0].Start.Equal(at(6, 9)) || !gaps[0].End.Equal(at(6, 10)) {
		t.Errorf("gaps inside a hole = %v, %v", gaps, err)
	}
	if gaps, err := c.Gaps(at(2, 0), at(3, 0)); err != nil || len(gaps) != 0 {
		t.Errorf("covered day has gaps %v, %v", gaps, err)
	}
}

func TestShiftsMergeAdjacent(t *testing.T) {
	start := time.Date(2026, 1, 1, 7, 0, 0, 0, time.UTC)
	rot := uuid.New()
	c := mustCompile(t, Schedule{
		TimeZone: "UTC",
		Rotations: []Rotation{
			// One participant: every hand-off is to themselves.
			{ID: rot, Participants: []uuid.UUID{u1}, ShiftLength: 12, ShiftUnit: ShiftUnitHours, Start: start},
			{ID: uuid.New(), Participants: []uuid.UUID{u2, u2, u3}, ShiftLength: 1, ShiftUnit: ShiftUnitDays, Start: start},
		},
		// u3 is also on by rule right after their rotation shift ends.
		Rules: []Rule{userRule(u3, window("07:00", "12:00", time.Sunday))},
	})
	shifts, err := c.Shifts(start, start.AddDate(0, 0, 4))
	if err != nil {
		t.Fatal(err)
	}
	// 2026-01-01 is a Thursday: u2 Thu+Fri, u3 Sat 07:00 to Sun 12:00 (rotation then rule), u2 Sun 07:00.
	want := []Shift{
		{u1, start, start.AddDate(0, 0, 4)},
		{u2, start, start.AddDate(0, 0, 2)},
		{u3, start.AddDate(0, 0, 2), start.AddDate(0, 0, 3).Add(5 * time.Hour)},
		{u2, start.AddDate(0, 0, 3), start.AddDate(0, 0, 4)},
	}
	if !equalShifts(shifts, want) {
		t.Errorf("got\n%swant\n%s", fmtShifts(shifts, time.UTC), fmtShifts(want, time.UTC))
	}
}

func TestRangeLimits(t *testing.T) {
	c, at := weekSchedule(t)
	from := at(1, 0)
	cases := []struct {
		name  string
		to    time.Time
		field string
	}{
		{"empty", from, "to"},
		{"inverted", from.Add(-time.Hour), "to"},
		{"longer than 366 days", from.Add(MaxRange + time.Nanosecond), "to"},
		{"exactly 366 days", from.Add(MaxRange), ""},
		{"one nanosecond", from.Add(time.Nanosecond), ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Shifts(from, tc.to)
			assertField(t, err, tc.field)
			_, err = c.Gaps(from, tc.to)
			assertField(t, err, tc.field)
		})
	}
}

// TestShiftsAgreeWithOnCallAt builds random schedules in zones with DST and
// checks that the users Shifts reports at random instants are exactly those
// OnCallAt returns. A boundary missing from the range computation would show
// up as a disagreement.
func TestShiftsAgreeWithOnCallAt(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	zones := []string{"America/Chicago", "Europe/Berlin", "Australia/Lord_Howe", "UTC"}
	users := []uuid.UUID{u1, u2, u3, u4, u5}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	randTime := func(span time.Duration) time.Time {
		return base.Add(time.Duration(rng.Int64N(int64(span)))).Truncate(time.Minute)
	}
	randWindow := func() Window {
		w := Window{Start: TimeOfDay{rng.IntN(24), rng.IntN(4) * 15}, End: TimeOfDay{rng.IntN(24), rng.IntN(4) * 15}}
		for d := time.Sunday; d <= time.Saturday; d++ {
			if rng.IntN(3) == 0 {
				w.Weekdays = append(w.Weekdays, d)
			}
		}
		return w
	}
	for i := 0; i < 30; i++ {
		s := Schedule{ID: uuid.New(), TimeZone: zones[i%len(zones)]}
		for r := 0; r < 1+rng.IntN(3); r++ {
			units := []ShiftUnit{ShiftUnitHours, ShiftUnitDays, ShiftUnitWeeks}
			rot := Rotation{ID: uuid.New(), ShiftLength: 1 + rng.IntN(12), ShiftUnit: units[rng.IntN(3)], Start: randTime(300 * 24 * time.Hour)}
			for p := 0; p < 1+rng.IntN(4); p++ {
				rot.Participants = append(rot.Participants, users[rng.IntN(len(users))])
			}
			s.Rotations = append(s.Rotations, rot)
			if rng.IntN(2) == 0 {
				s.Rules = append(s.Rules, rotationRule(rot.ID, randWindow(), randWindow()))
			}
		}
		for r := 0; r < rng.IntN(3); r++ {
			s.Rules = append(s.Rules, userRule(users[rng.IntN(len(users))], randWindow()))
		}
		for o := 0; o < 20; o++ {
			start := randTime(365 * 24 * time.Hour)
			ov := Override{ID: uuid.New(), Start: start, End: start.Add(time.Duration(1+rng.IntN(72)) * time.Hour)}
			a, b := users[rng.IntN(5)], users[rng.IntN(5)]
			switch rng.IntN(3) {
			case 0:
				ov.Kind, ov.AddUserID = OverrideAdd, &a
			case 1:
				ov.Kind, ov.RemoveUserID = OverrideRemove, &a
			default:
				if a == b {
					continue
				}
				ov.Kind, ov.AddUserID, ov.RemoveUserID = OverrideReplace, &a, &b
			}
			s.Overrides = append(s.Overrides, ov)
		}
		c := mustCompile(t, s)
		from := randTime(200 * 24 * time.Hour)
		to := from.Add(time.Duration(1+rng.IntN(60*24)) * time.Hour)
		shifts, err := c.Shifts(from, to)
		if err != nil {
			t.Fatal(err)
		}
		gaps, err := c.Gaps(from, to)
		if err != nil {
			t.Fatal(err)
		}
		// Probe random instants, and every shift edge and its neighbours.
		var probes []time.Time
		for p := 0; p < 300; p++ {
			probes = append(probes, from.Add(time.Duration(rng.Int64N(int64(to.Sub(from))))))
		}
		for _, sh := range shifts {
			probes = append(probes, sh.Start, sh.End.Add(-time.Nanosecond))
			if sh.Start.After(from) {
				probes = append(probes, sh.Start.Add(-time.Nanosecond))
			}
			if sh.End.Before(to) {
				probes = append(probes, sh.End)
			}
		}
		for _, p := range probes {
			var fromShifts []uuid.UUID
			for _, sh := range shifts {
				if !p.Before(sh.Start) && p.Before(sh.End) {
					fromShifts = append(fromShifts, sh.UserID)
				}
			}
			fromShifts = fromShifts[:sortUnique(fromShifts)]
			if got := c.OnCallAt(p); !slices.Equal(got, fromShifts) && !(len(got) == 0 && len(fromShifts) == 0) {
				t.Fatalf("schedule %d (%s) at %s: OnCallAt = %s, Shifts say %s", i, s.TimeZone, p, userNames(got), userNames(fromShifts))
			}
			inGap := false
			for _, g := range gaps {
				inGap = inGap || (!p.Before(g.Start) && p.Before(g.End))
			}
			if inGap != (len(fromShifts) == 0) {
				t.Fatalf("schedule %d at %s: in gap = %v but on call = %s", i, p, inGap, userNames(fromShifts))
			}
		}
		// Shifts of one user never touch or overlap.
		for a := range shifts {
			for b := range shifts {
				if a != b && shifts[a].UserID == shifts[b].UserID &&
					!shifts[a].Start.After(shifts[b].End) && !shifts[b].Start.After(shifts[a].End) {
					t.Fatalf("unmerged or overlapping shifts %v and %v", shifts[a], shifts[b])
				}
			}
		}
	}
}

func TestShiftTimesInScheduleZone(t *testing.T) {
	c, at := weekSchedule(t)
	shifts, err := c.Shifts(at(1, 0).UTC(), at(3, 0).UTC())
	if err != nil {
		t.Fatal(err)
	}
	gaps, err := c.Gaps(at(1, 0).UTC(), at(8, 0).UTC())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range shifts {
		if s.Start.Location() != c.Location() || s.End.Location() != c.Location() {
			t.Errorf("shift %v not in %s", s, c.Location())
		}
	}
	for _, g := range gaps {
		if g.Start.Location() != c.Location() || g.End.Location() != c.Location() {
			t.Errorf("gap %v not in %s", g, c.Location())
		}
	}
}

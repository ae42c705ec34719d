package oncall

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
)

// TestAcceptance is the scenario from the product brief: user 1 is allTheTime on,
// user 2 is on 09:00-21:00 every day, and user 3 replaces user 2 from day 2
// 00:00 to day 7 00:00 local.
func TestAcceptance(t *testing.T) {
	ny := mustLoc(t, "America/New_York")
	day := func(n, hour, minute int) time.Time { return time.Date(2026, 6, n, hour, minute, 0, 0, ny) }
	s := Schedule{
		ID: uuid.New(), Name: "Cardiology", TimeZone: "America/New_York",
		Rules: []Rule{
			userRule(u1, allTheTime),
			userRule(u2, window("09:00", "21:00")),
		},
		Overrides: []Override{{
			ID: uuid.New(), Kind: OverrideReplace, AddUserID: refOf(u3), RemoveUserID: refOf(u2),
			Start: day(2, 0, 0), End: day(7, 0, 0),
		}},
	}
	c := mustCompile(t, s)
	cases := []struct {
		at   time.Time
		want []uuid.UUID
	}{
		{day(1, 0, 0), []uuid.UUID{u1}},
		{day(1, 8, 59), []uuid.UUID{u1}},
		{day(1, 9, 0), []uuid.UUID{u1, u2}},
		{day(1, 20, 59), []uuid.UUID{u1, u2}},
		{day(1, 21, 0).Add(-time.Nanosecond), []uuid.UUID{u1, u2}},
		{day(1, 21, 0), []uuid.UUID{u1}}, // the window's end is exclusive
		{day(2, 0, 0), []uuid.UUID{u1}},  // override starts, but user 2 is off anyway
		{day(2, 9, 0), []uuid.UUID{u1, u3}},
		{day(3, 0, 0), []uuid.UUID{u1}},
		{day(3, 9, 0), []uuid.UUID{u1, u3}},
		{day(3, 21, 0), []uuid.UUID{u1}},
		{day(6, 20, 59), []uuid.UUID{u1, u3}},
		{day(7, 0, 0), []uuid.UUID{u1}}, // override's end is exclusive
		{day(7, 9, 0), []uuid.UUID{u1, u2}},
		{day(8, 0, 0), []uuid.UUID{u1}},
		{day(8, 9, 0), []uuid.UUID{u1, u2}},
		{day(8, 21, 0), []uuid.UUID{u1}},
	}
	for _, tc := range cases {
		t.Run(tc.at.Format("Jan 2 15:04:05.000"), func(t *testing.T) {
			assertSet(t, c.OnCallAt(tc.at), tc.want...)
		})
	}

	shifts, err := c.Shifts(day(1, 0, 0), day(9, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	want := []Shift{{u1, day(1, 0, 0), day(9, 0, 0)}}
	for d := 1; d <= 8; d++ {
		who := u2
		if d >= 2 && d <= 6 {
			who = u3
		}
		want = append(want, Shift{who, day(d, 9, 0), day(d, 21, 0)})
	}
	if !equalShifts(shifts, want) {
		t.Errorf("shifts:\n%swant:\n%s", fmtShifts(shifts, ny), fmtShifts(want, ny))
	}
}

func TestOverrides(t *testing.T) {
	base := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	h := func(n int) time.Time { return base.Add(time.Duration(n) * time.Hour) }
	// u1 and u2 are on call all the time (u2 through a rotation).
	rot := uuid.New()
	mk := func(os ...Override) *Compiled {
		for i := range os {
			os[i].ID = uuid.New()
		}
		return mustCompile(t, Schedule{
			ID: uuid.New(), TimeZone: "UTC",
			Rotations: []Rotation{{ID: rot, Participants: []uuid.UUID{u2}, ShiftLength: 1, ShiftUnit: ShiftUnitDays, Start: base}},
			Rules:     []Rule{userRule(u1, allTheTime)},
			Overrides: os,
		})
	}
	add := func(u uuid.UUID, from, to int) Override {
		return Override{Kind: OverrideAdd, AddUserID: refOf(u), Start: h(from), End: h(to)}
	}
	remove := func(u uuid.UUID, from, to int) Override {
		return Override{Kind: OverrideRemove, RemoveUserID: refOf(u), Start: h(from), End: h(to)}
	}
	replace := func(out, in uuid.UUID, from, to int) Override {
		return Override{Kind: OverrideReplace, RemoveUserID: refOf(out), AddUserID: refOf(in), Start: h(from), End: h(to)}
	}
	cases := []struct {
		name string
		os   []Override
		at   int
		want []uuid.UUID
	}{
		{"none", nil, 5, []uuid.UUID{u1, u2}},
		{"add", []Override{add(u3, 1, 3)}, 1, []uuid.UUID{u1, u2, u3}},
		{"add ended", []Override{add(u3, 1, 3)}, 3, []uuid.UUID{u1, u2}},
		{"add not started", []Override{add(u3, 1, 3)}, 0, []uuid.UUID{u1, u2}},
		{"add someone already on", []Override{add(u1, 1, 3)}, 2, []uuid.UUID{u1, u2}},
		{"remove rule user", []Override{remove(u1, 1, 3)}, 2, []uuid.UUID{u2}},
		{"remove rotation user", []Override{remove(u2, 1, 3)}, 2, []uuid.UUID{u1}},
		{"remove everyone", []Override{remove(u1, 1, 3), remove(u2, 0, 9)}, 2, []uuid.UUID{}},
		{"remove someone off", []Override{remove(u4, 1, 3)}, 2, []uuid.UUID{u1, u2}},
		{"replace", []Override{replace(u2, u3, 1, 3)}, 2, []uuid.UUID{u1, u3}},
		{"replace someone off does nothing", []Override{replace(u4, u3, 1, 3)}, 2, []uuid.UUID{u1, u2}},
		{"replace with someone on", []Override{replace(u2, u1, 1, 3)}, 2, []uuid.UUID{u1}},
		{"replaces do not chain", []Override{replace(u2, u3, 1, 3), replace(u3, u4, 1, 3)}, 2, []uuid.UUID{u1, u3}},
		{"swap", []Override{replace(u1, u2, 1, 3), replace(u2, u1, 1, 3)}, 2, []uuid.UUID{u1, u2}},
		{"add wins over remove", []Override{add(u3, 1, 3), remove(u3, 1, 3)}, 2, []uuid.UUID{u1, u2, u3}},
		{"many overlapping", []Override{add(u3, 0, 100), add(u4, 10, 20), remove(u1, 15, 16), add(u5, 1, 2)}, 15, []uuid.UUID{u2, u3, u4}},
		{"long override found behind short ones", []Override{add(u3, 0, 100), add(u4, 1, 2), add(u5, 3, 4)}, 50, []uuid.UUID{u1, u2, u3}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assertSet(t, mk(tc.os...).OnCallAt(h(tc.at)), tc.want...)
		})
	}
}

func TestOnCallAtSortedAndDeduplicated(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := mustCompile(t, Schedule{
		TimeZone: "UTC",
		Rotations: []Rotation{
			{ID: uuid.New(), Participants: []uuid.UUID{u5}, ShiftLength: 1, ShiftUnit: ShiftUnitDays, Start: start},
			{ID: uuid.New(), Participants: []uuid.UUID{u3}, ShiftLength: 1, ShiftUnit: ShiftUnitDays, Start: start},
			{ID: uuid.New(), Participants: []uuid.UUID{u1}, ShiftLength: 1, ShiftUnit: ShiftUnitDays, Start: start},
		},
		Rules: []Rule{userRule(u3, allTheTime), userRule(u5, allTheTime), userRule(u2, allTheTime)},
	})
	got := c.OnCallAt(start)
	assertSet(t, got, u1, u2, u3, u5)
	got[0] = u4 // the caller owns the result
	assertSet(t, c.OnCallAt(start), u1, u2, u3, u5)
	if got := mustCompile(t, Schedule{TimeZone: "UTC"}).OnCallAt(start); got == nil || len(got) != 0 {
		t.Errorf("empty schedule: %v, want empty non-nil", got)
	}
}

func TestCompileCopies(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	parts := []uuid.UUID{u1, u2}
	s := Schedule{TimeZone: "UTC", Rotations: []Rotation{{ID: uuid.New(), Participants: parts, ShiftLength: 1, ShiftUnit: ShiftUnitDays, Start: start}}}
	c := mustCompile(t, s)
	parts[0] = u3
	assertSet(t, c.OnCallAt(start), u1)
}

func TestCompileRejectsInvalid(t *testing.T) {
	_, err := Compile(Schedule{TimeZone: "Nowhere/Special"})
	assertField(t, err, "time_zone")
}

// TestConcurrentUse: a Compiled schedule is shared by request handlers, and
// zones are loaded into a process-wide cache. Run with -race.
func TestConcurrentUse(t *testing.T) {
	s, year := benchSchedule()
	c := mustCompile(t, s)
	want := c.OnCallAt(year.Add(100 * time.Hour))
	zones := []string{"Asia/Tokyo", "Africa/Nairobi", "America/Denver", "Europe/Paris"}
	done := make(chan error)
	for g := 0; g < 8; g++ {
		go func() {
			var err error
			for i := 0; i < 50 && err == nil; i++ {
				if got := c.OnCallAt(year.Add(100 * time.Hour)); userNames(got) != userNames(want) {
					err = fmt.Errorf("OnCallAt changed: %s vs %s", userNames(got), userNames(want))
				}
				_, err = c.Shifts(year, year.Add(48*time.Hour))
				if err == nil {
					_, err = Compile(Schedule{TimeZone: zones[(g+i)%len(zones)]})
				}
			}
			done <- err
		}()
	}
	for g := 0; g < 8; g++ {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

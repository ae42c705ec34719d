package oncall

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestOvernightWindowsWithWeekdays(t *testing.T) {
	lon := mustLoc(t, "Europe/London")
	// 2026-06-05 is a Friday.
	at := func(day, hour, minute int) time.Time { return time.Date(2026, 6, day, hour, minute, 0, 0, lon) }
	rot := uuid.New()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, lon)
	c := mustCompile(t, Schedule{
		ID: uuid.New(), TimeZone: "Europe/London",
		Rotations: []Rotation{{ID: rot, Participants: []uuid.UUID{u1}, ShiftLength: 1, ShiftUnit: ShiftUnitWeeks, Start: start}},
		Rules: []Rule{
			// The rotation covers Friday night only...
			rotationRule(rot, window("19:00", "07:00", time.Friday)),
			// ...and a second rule adds Sunday day time: the union counts.
			rotationRule(rot, window("09:00", "17:00", time.Sunday)),
			// u2 covers Monday and Wednesday nights.
			userRule(u2, window("22:00", "06:00", time.Monday, time.Wednesday)),
			// u3 covers the whole of Saturday (an all-day window).
			userRule(u3, window("00:00", "00:00", time.Saturday)),
			// u4 covers 24 hours from Tuesday 08:00.
			userRule(u4, window("08:00", "08:00", time.Tuesday)),
		},
	})
	cases := []struct {
		name string
		at   time.Time
		want []uuid.UUID
	}{
		{"Thu night is not Fri night", at(4, 20, 0), nil},
		{"Fri before window", at(5, 18, 59), nil},
		{"Fri window start", at(5, 19, 0), []uuid.UUID{u1}},
		{"Fri midnight", at(6, 0, 0), []uuid.UUID{u1, u3}},
		{"Sat morning, last ns", at(6, 7, 0).Add(-time.Nanosecond), []uuid.UUID{u1, u3}},
		{"Sat 07:00 window ends", at(6, 7, 0), []uuid.UUID{u3}},
		{"Sat night not covered", at(6, 20, 0), []uuid.UUID{u3}},
		{"Sun 00:00 all-day window over", at(7, 0, 0), nil},
		{"Sun day", at(7, 9, 0), []uuid.UUID{u1}},
		{"Sun 17:00", at(7, 17, 0), nil},
		{"Mon 22:00", at(8, 22, 0), []uuid.UUID{u2}},
		{"Tue 05:59", at(9, 5, 59), []uuid.UUID{u2}},
		{"Tue 06:00", at(9, 6, 0), nil},
		{"Tue 08:00", at(9, 8, 0), []uuid.UUID{u4}},
		{"Tue 22:00 not a u2 night", at(9, 22, 0), []uuid.UUID{u4}},
		{"Wed 07:59", at(10, 7, 59), []uuid.UUID{u4}},
		{"Wed 08:00", at(10, 8, 0), nil},
		{"Wed 23:00", at(10, 23, 0), []uuid.UUID{u2}},
		{"Thu 03:00", at(11, 3, 0), []uuid.UUID{u2}},
		{"next Fri 19:30", at(12, 19, 30), []uuid.UUID{u1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assertSet(t, c.OnCallAt(tc.at), tc.want...)
		})
	}
}

// TestWindowAcrossDSTNight: a 19:00-07:00 window lasts 11h on the spring
// forward night and 13h on the fall back night; a window inside the gap is
// empty that day, and one starting in it starts at the end of the gap.
func TestWindowAcrossDSTNight(t *testing.T) {
	chi := mustLoc(t, "America/Chicago")
	cases := []struct {
		name     string
		window   Window
		from, to time.Time
		want     []Shift
	}{
		{
			name:   "spring: Saturday night 19:00-07:00",
			window: window("19:00", "07:00", time.Saturday),
			from:   time.Date(2026, 3, 7, 0, 0, 0, 0, chi), to: time.Date(2026, 3, 9, 0, 0, 0, 0, chi),
			want: []Shift{{u1, time.Date(2026, 3, 7, 19, 0, 0, 0, chi), time.Date(2026, 3, 8, 7, 0, 0, 0, chi)}},
		},
		{
			name:   "autumn: Saturday night 19:00-07:00",
			window: window("19:00", "07:00", time.Saturday),
			from:   time.Date(2026, 10, 31, 0, 0, 0, 0, chi), to: time.Date(2026, 11, 2, 0, 0, 0, 0, chi),
			want: []Shift{{u1, time.Date(2026, 10, 31, 19, 0, 0, 0, chi), time.Date(2026, 11, 1, 7, 0, 0, 0, chi)}},
		},
		{
			name:   "window inside the gap is empty that day",
			window: window("02:10", "02:40"),
			from:   time.Date(2026, 3, 7, 0, 0, 0, 0, chi), to: time.Date(2026, 3, 10, 0, 0, 0, 0, chi),
			want: []Shift{
				{u1, time.Date(2026, 3, 7, 2, 10, 0, 0, chi), time.Date(2026, 3, 7, 2, 40, 0, 0, chi)},
				{u1, time.Date(2026, 3, 9, 2, 10, 0, 0, chi), time.Date(2026, 3, 9, 2, 40, 0, 0, chi)},
			},
		},
		{
			name:   "window starting in the gap starts at its end",
			window: window("02:30", "04:00", time.Sunday),
			from:   time.Date(2026, 3, 7, 0, 0, 0, 0, chi), to: time.Date(2026, 3, 10, 0, 0, 0, 0, chi),
			want: []Shift{{u1, time.Date(2026, 3, 8, 8, 0, 0, 0, time.UTC), time.Date(2026, 3, 8, 4, 0, 0, 0, chi)}},
		},
		{
			name:   "window starting in the overlap starts at its first occurrence",
			window: window("01:30", "03:00", time.Sunday),
			from:   time.Date(2026, 10, 31, 0, 0, 0, 0, chi), to: time.Date(2026, 11, 2, 0, 0, 0, 0, chi),
			want: []Shift{{u1, time.Date(2026, 11, 1, 6, 30, 0, 0, time.UTC), time.Date(2026, 11, 1, 3, 0, 0, 0, chi)}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := mustCompile(t, Schedule{ID: uuid.New(), TimeZone: "America/Chicago", Rules: []Rule{userRule(u1, tc.window)}})
			got, err := c.Shifts(tc.from, tc.to)
			if err != nil {
				t.Fatal(err)
			}
			if !equalShifts(got, tc.want) {
				t.Errorf("got\n%swant\n%s", fmtShifts(got, chi), fmtShifts(tc.want, chi))
			}
			for _, s := range tc.want {
				assertSet(t, c.OnCallAt(s.Start.Add(-time.Nanosecond)))
				assertSet(t, c.OnCallAt(s.Start), u1)
				assertSet(t, c.OnCallAt(s.End.Add(-time.Nanosecond)), u1)
				assertSet(t, c.OnCallAt(s.End))
			}
		})
	}
	// The lengths the brief asks about, spelled out.
	if d := time.Date(2026, 3, 8, 7, 0, 0, 0, chi).Sub(time.Date(2026, 3, 7, 19, 0, 0, 0, chi)); d != 11*time.Hour {
		t.Errorf("spring night = %s", d)
	}
	if d := time.Date(2026, 11, 1, 7, 0, 0, 0, chi).Sub(time.Date(2026, 10, 31, 19, 0, 0, 0, chi)); d != 13*time.Hour {
		t.Errorf("autumn night = %s", d)
	}
}

func TestParseTimeOfDay(t *testing.T) {
	good := map[string]TimeOfDay{"00:00": {0, 0}, "07:05": {7, 5}, "7:05": {7, 5}, "19:00": {19, 0}, "23:59": {23, 59}}
	for s, want := range good {
		got, err := ParseTimeOfDay(s)
		if err != nil || got != want {
			t.Errorf("ParseTimeOfDay(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "24:00", "12:60", "7:5", "007:00", "12:00:00", "+1:00", "-1:00", "ab:cd", "1200", " 12:00", "12:0a"} {
		if got, err := ParseTimeOfDay(s); err == nil {
			t.Errorf("ParseTimeOfDay(%q) = %v, want error", s, got)
		}
	}
	if s := (TimeOfDay{7, 5}).String(); s != "07:05" {
		t.Errorf("String = %q", s)
	}
	var w Window
	if err := json.Unmarshal([]byte(`{"weekdays":[5],"start":"19:00","end":"07:00"}`), &w); err != nil {
		t.Fatal(err)
	}
	if w.Start != (TimeOfDay{19, 0}) || w.End != (TimeOfDay{7, 0}) || w.Weekdays[0] != time.Friday {
		t.Errorf("unmarshal: %+v", w)
	}
	b, err := json.Marshal(w)
	if err != nil || string(b) != `{"weekdays":[5],"start":"19:00","end":"07:00"}` {
		t.Errorf("marshal: %s, %v", b, err)
	}
}

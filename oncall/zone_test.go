package oncall

import (
	"math/rand/v2"
	"testing"
	"time"
)

// wallOf is the reference wall reading of an instant, computed with the time
// package's calendar fields rather than our offset tables.
func wallOf(t time.Time, l *time.Location) int64 {
	lt := t.In(l)
	return time.Date(lt.Year(), lt.Month(), lt.Day(), lt.Hour(), lt.Minute(), lt.Second(), 0, time.UTC).Unix()
}

// referenceInstant is the documented rule stated the naive way: a wall
// reading names the first instant at which the wall clock shows it or a later
// time. For a time that occurs once or twice that is its (first) occurrence;
// for a time inside a gap it is the end of the gap. Transitions and test
// readings are whole minutes, so a minute scan is exact.
func referenceInstant(w int64, l *time.Location) int64 {
	for sec := w - 17*3600; sec <= w+17*3600; sec += 60 {
		if wallOf(time.Unix(sec, 0), l) >= w {
			return sec
		}
	}
	panic("no instant found")
}

func TestInstantMatchesReference(t *testing.T) {
	cases := []struct {
		zone string
		day  string // local date of a transition
	}{
		{"America/Chicago", "2026-03-08"},
		{"America/Chicago", "2026-11-01"},
		{"Europe/Berlin", "2026-03-29"},
		{"Europe/Berlin", "2026-10-25"},
		{"Australia/Lord_Howe", "2026-04-05"}, // 30-minute DST
		{"Australia/Lord_Howe", "2026-10-04"},
		{"Pacific/Apia", "2011-12-30"}, // a whole day skipped
		{"America/St_Johns", "2026-11-01"},
		{"America/Santiago", "2026-04-05"}, // transition at midnight
		{"America/Santiago", "2026-09-06"},
		{"Asia/Kolkata", "2026-03-08"},
		{"UTC", "2026-03-08"},
		{"America/Chicago", "2250-03-10"}, // past the precomputed table
		{"America/Chicago", "1890-01-01"}, // before it, local mean time
	}
	for _, tc := range cases {
		t.Run(tc.zone+"/"+tc.day, func(t *testing.T) {
			l := mustLoc(t, tc.zone)
			z, err := loadZone(tc.zone)
			if err != nil {
				t.Fatal(err)
			}
			d, err := time.Parse("2006-01-02", tc.day)
			if err != nil {
				t.Fatal(err)
			}
			first := d.Unix() - 2*secPerDay
			var walls []int64
			for w := first; w < first+5*secPerDay; w += 15 * 60 {
				walls = append(walls, w)
			}
			// Shuffled, so the cursor's cached period is often a wrong
			// one and both paths get exercised.
			rng := rand.New(rand.NewPCG(1, 2))
			rng.Shuffle(len(walls), func(i, j int) { walls[i], walls[j] = walls[j], walls[i] })
			c := cursor{z: z}
			for _, w := range walls {
				got, exact := c.instant(w)
				want := referenceInstant(w, l)
				if got != want {
					t.Fatalf("instant(%s) = %s, want %s", time.Unix(w, 0).UTC().Format("2006-01-02 15:04"),
						time.Unix(got, 0).In(l), time.Unix(want, 0).In(l))
				}
				if exact != (wallOf(time.Unix(got, 0), l) == w) {
					t.Fatalf("instant(%s): exact = %v, wrong", time.Unix(w, 0).UTC(), exact)
				}
				if cw := c.wall(time.Unix(got, 0)); exact && cw != w {
					t.Fatalf("wall(instant(w)) = %d, want %d", cw, w)
				}
			}
		})
	}
}

// TestDSTRules spells the two rules out on the cases people ask about.
func TestDSTRules(t *testing.T) {
	chi := mustLoc(t, "America/Chicago")
	z, _ := loadZone("America/Chicago")
	wall := func(s string) int64 {
		w, err := time.Parse("2006-01-02 15:04", s)
		if err != nil {
			t.Fatal(err)
		}
		return w.Unix()
	}
	cases := []struct {
		name, wall string
		want       time.Time
		exact      bool
	}{
		{"gap maps to the end of the gap", "2026-03-08 02:30", time.Date(2026, 3, 8, 8, 0, 0, 0, time.UTC), false},
		{"start of gap", "2026-03-08 02:00", time.Date(2026, 3, 8, 8, 0, 0, 0, time.UTC), false},
		{"first time after the gap", "2026-03-08 03:00", time.Date(2026, 3, 8, 8, 0, 0, 0, time.UTC), true},
		{"overlap maps to first occurrence (CDT)", "2026-11-01 01:30", time.Date(2026, 11, 1, 6, 30, 0, 0, time.UTC), true},
		{"end of overlap is CST", "2026-11-01 02:00", time.Date(2026, 11, 1, 8, 0, 0, 0, time.UTC), true},
		{"ordinary", "2026-07-01 07:00", time.Date(2026, 7, 1, 7, 0, 0, 0, chi), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := cursor{z: z}
			got, exact := c.instant(wall(tc.wall))
			if got != tc.want.Unix() || exact != tc.exact {
				t.Errorf("got %s exact=%v, want %s exact=%v", time.Unix(got, 0).In(chi), exact, tc.want.In(chi), tc.exact)
			}
		})
	}
}

func TestLoadZoneRejects(t *testing.T) {
	for _, name := range []string{"", "Local", "Mars/Olympus_Mons", "CDT"} {
		if _, err := loadZone(name); err == nil {
			t.Errorf("loadZone(%q) succeeded", name)
		}
	}
}

func TestFloorDivAndWeekday(t *testing.T) {
	cases := []struct{ a, b, want int64 }{{7, 2, 3}, {-7, 2, -4}, {-8, 2, -4}, {0, 5, 0}, {-1, 86400, -1}}
	for _, c := range cases {
		if got := floorDiv(c.a, c.b); got != c.want {
			t.Errorf("floorDiv(%d, %d) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
	for _, d := range []time.Time{
		time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC),
		time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 3, 8, 0, 0, 0, 0, time.UTC),
		time.Date(1850, 6, 1, 0, 0, 0, 0, time.UTC),
	} {
		if got := weekdayOf(floorDiv(d.Unix(), secPerDay)); got != d.Weekday() {
			t.Errorf("weekdayOf(%s) = %s, want %s", d, got, d.Weekday())
		}
	}
}

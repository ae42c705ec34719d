package oncall_test

import (
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/callroom/callroom/oncall"
)

// A cardiology schedule: Dr Adams and Dr Baker alternate 12-hour shifts
// handing off at 07:00 and 19:00, Dr Chen covers weekday days on top, and Dr
// Baker is replaced by Dr Diaz for one night.
func Example() {
	var (
		adams = uuid.MustParse("00000000-0000-4000-8000-00000000000a")
		baker = uuid.MustParse("00000000-0000-4000-8000-00000000000b")
		chen  = uuid.MustParse("00000000-0000-4000-8000-00000000000c")
		diaz  = uuid.MustParse("00000000-0000-4000-8000-00000000000d")
		name  = map[uuid.UUID]string{adams: "Dr Adams", baker: "Dr Baker", chen: "Dr Chen", diaz: "Dr Diaz"}
	)
	chicago, _ := time.LoadLocation("America/Chicago")
	day := func(d, h int) time.Time { return time.Date(2026, 3, d, h, 0, 0, 0, chicago) }

	nine, _ := oncall.ParseTimeOfDay("09:00")
	five, _ := oncall.ParseTimeOfDay("17:00")
	schedule := oncall.Schedule{
		ID:       uuid.MustParse("6f1c1ad2-3b7e-4f5e-9d3a-0c1c2f3e4d5a"),
		Name:     "Cardiology",
		TimeZone: "America/Chicago",
		Rotations: []oncall.Rotation{{
			ID:           uuid.New(),
			Name:         "Registrars",
			Participants: []uuid.UUID{adams, baker},
			ShiftLength:  12,
			ShiftUnit:    oncall.ShiftUnitHours,
			Start:        day(6, 7), // Friday 07:00, Dr Adams first
		}},
		Rules: []oncall.Rule{{
			ID:     uuid.New(),
			UserID: &chen,
			Windows: []oncall.Window{{
				Weekdays: []time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday},
				Start:    nine, End: five,
			}},
		}},
		Overrides: []oncall.Override{{
			ID: uuid.New(), Kind: oncall.OverrideReplace,
			RemoveUserID: &baker, AddUserID: &diaz,
			Start: day(7, 19), End: day(8, 7),
		}},
	}
	c, err := oncall.Compile(schedule)
	if err != nil {
		fmt.Println(err)
		return
	}

	who := func(ids []uuid.UUID) string {
		var ns []string
		for _, id := range ids {
			ns = append(ns, name[id])
		}
		return strings.Join(ns, ", ")
	}
	fmt.Println("Fri 10:00:", who(c.OnCallAt(day(6, 10))))

	// The night of the spring-forward change lasts 11 hours, and the
	// hand-off still happens at 07:00 on the wall clock.
	shifts, _ := c.Shifts(day(7, 7), day(9, 7))
	for _, s := range shifts {
		fmt.Printf("%-8s %s to %s (%s)\n", name[s.UserID],
			s.Start.Format("Mon 15:04 MST"), s.End.Format("Mon 15:04 MST"), s.End.Sub(s.Start))
	}

	// Before the rotation starts only Dr Chen's weekday hours are covered.
	gaps, _ := c.Gaps(day(5, 0), day(7, 0))
	for _, g := range gaps {
		fmt.Println("nobody on call:", g.Start.Format("Mon 15:04"), "to", g.End.Format("Mon 15:04"))
	}

	err = oncall.ValidateOverride(schedule.Overrides, oncall.Override{
		ID: uuid.New(), Kind: oncall.OverrideRemove, RemoveUserID: &diaz,
		Start: day(8, 0), End: day(8, 6),
	})
	fmt.Println(strings.SplitN(err.Error(), " override", 2)[0])

	var feed strings.Builder
	_ = oncall.WriteICalendar(&feed, oncall.ICalendar{
		ScheduleID: schedule.ID, Name: schedule.Name, TimeZone: schedule.TimeZone,
		Shifts:   shifts[:1],
		UserName: func(id uuid.UUID) string { return name[id] },
		Stamp:    time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC),
	})
	fmt.Print(strings.ReplaceAll(feed.String(), "\r\n", "\n")) // the feed has CRLF line ends
	// Output:
	// Fri 10:00: Dr Adams, Dr Chen
	// Dr Adams Sat 07:00 CST to Sat 19:00 CST (12h0m0s)
	// Dr Diaz  Sat 19:00 CST to Sun 07:00 CDT (11h0m0s)
	// Dr Adams Sun 07:00 CDT to Sun 19:00 CDT (12h0m0s)
	// Dr Baker Sun 19:00 CDT to Mon 07:00 CDT (12h0m0s)
	// nobody on call: Thu 00:00 to Thu 09:00
	// nobody on call: Thu 17:00 to Fri 07:00
	// start: overlaps replace
	// BEGIN:VCALENDAR
	// VERSION:2.0
	// PRODID:-//callroom//oncall//EN
	// CALSCALE:GREGORIAN
	// METHOD:PUBLISH
	// X-WR-CALNAME:Cardiology
	// X-WR-TIMEZONE:America/Chicago
	// BEGIN:VEVENT
	// UID:46c2d2c80632b36d0776245eaf36c8ff@callroom
	// DTSTAMP:20260301T000000Z
	// DTSTART:20260307T130000Z
	// DTEND:20260308T010000Z
	// SUMMARY:On call: Dr Adams — Cardiology
	// END:VEVENT
	// END:VCALENDAR
}

func ExampleParseTimeOfDay() {
	t, err := oncall.ParseTimeOfDay("19:00")
	fmt.Println(t.Hour, t.Minute, t, err)
	_, err = oncall.ParseTimeOfDay("24:00")
	fmt.Println(err)
	// Output:
	// 19 0 19:00 <nil>
	// time of day "24:00": want HH:MM between 00:00 and 23:59
}

package oncall

import (
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestScheduleValidate(t *testing.T) {
	start := time.Date(2026, 1, 1, 7, 0, 0, 0, time.UTC)
	rotID := uuid.New()
	valid := func() Schedule {
		return Schedule{
			ID: uuid.New(), Name: "Cardiology", TimeZone: "America/Chicago",
			Rotations: []Rotation{{ID: rotID, Participants: []uuid.UUID{u1, u2}, ShiftLength: 1, ShiftUnit: ShiftUnitWeeks, Start: start}},
			Rules:     []Rule{rotationRule(rotID, window("19:00", "07:00")), userRule(u3, allTheTime)},
			Overrides: []Override{{ID: uuid.New(), Kind: OverrideReplace, AddUserID: refOf(u4), RemoveUserID: refOf(u1), Start: start, End: start.Add(time.Hour)}},
		}
	}
	cases := []struct {
		name   string
		change func(*Schedule)
		field  string
	}{
		{"valid", func(*Schedule) {}, ""},
		{"valid without parts", func(s *Schedule) { *s = Schedule{TimeZone: "UTC"} }, ""},
		{"unknown time zone", func(s *Schedule) { s.TimeZone = "America/Springfield" }, "time_zone"},
		{"empty time zone", func(s *Schedule) { s.TimeZone = "" }, "time_zone"},
		{"Local time zone", func(s *Schedule) { s.TimeZone = "Local" }, "time_zone"},
		{"zero shift length", func(s *Schedule) { s.Rotations[0].ShiftLength = 0 }, "rotations.0.shift_length"},
		{"negative shift length", func(s *Schedule) { s.Rotations[0].ShiftLength = -1 }, "rotations.0.shift_length"},
		{"53 weeks", func(s *Schedule) { s.Rotations[0].ShiftLength = 53 }, "rotations.0.shift_length"},
		{"52 weeks", func(s *Schedule) { s.Rotations[0].ShiftLength = 52 }, ""},
		{"366 days", func(s *Schedule) { s.Rotations[0].ShiftLength, s.Rotations[0].ShiftUnit = 366, ShiftUnitDays }, "rotations.0.shift_length"},
		{"365 days", func(s *Schedule) { s.Rotations[0].ShiftLength, s.Rotations[0].ShiftUnit = 365, ShiftUnitDays }, ""},
		{"8761 hours", func(s *Schedule) { s.Rotations[0].ShiftLength, s.Rotations[0].ShiftUnit = 8761, ShiftUnitHours }, "rotations.0.shift_length"},
		{"8760 hours", func(s *Schedule) { s.Rotations[0].ShiftLength, s.Rotations[0].ShiftUnit = 8760, ShiftUnitHours }, ""},
		{"unknown unit", func(s *Schedule) { s.Rotations[0].ShiftUnit = "fortnights" }, "rotations.0.shift_unit"},
		{"empty unit", func(s *Schedule) { s.Rotations[0].ShiftUnit = "" }, "rotations.0.shift_unit"},
		{"no participants", func(s *Schedule) { s.Rotations[0].Participants = nil }, "rotations.0.participants"},
		{"nil participant", func(s *Schedule) { s.Rotations[0].Participants[1] = uuid.Nil }, "rotations.0.participants.1"},
		{"no start", func(s *Schedule) { s.Rotations[0].Start = time.Time{} }, "rotations.0.start"},
		{"duplicate rotation id", func(s *Schedule) { s.Rotations = append(s.Rotations, s.Rotations[0]) }, "rotations.1.id"},
		{"rotations without ids", func(s *Schedule) {
			s.Rules = s.Rules[1:]
			s.Rotations[0].ID = uuid.Nil
			s.Rotations = append(s.Rotations, s.Rotations[0])
		}, ""},
		{"rule with both targets", func(s *Schedule) { s.Rules[0].UserID = refOf(u1) }, "rules.0.rotation_id"},
		{"rule with neither target", func(s *Schedule) { s.Rules[1].UserID = nil }, "rules.1.rotation_id"},
		{"rule for unknown rotation", func(s *Schedule) { s.Rules[0].RotationID = refOf(uuid.New()) }, "rules.0.rotation_id"},
		{"rule for nil user", func(s *Schedule) { s.Rules[1].UserID = refOf(uuid.Nil) }, "rules.1.user_id"},
		{"rule without windows", func(s *Schedule) { s.Rules[0].Windows = nil }, "rules.0.windows"},
		{"hour 24", func(s *Schedule) { s.Rules[0].Windows[0].Start = TimeOfDay{24, 0} }, "rules.0.windows.0.start"},
		{"minute 60", func(s *Schedule) { s.Rules[0].Windows[0].End = TimeOfDay{7, 60} }, "rules.0.windows.0.end"},
		{"negative hour", func(s *Schedule) { s.Rules[0].Windows[0].End = TimeOfDay{-1, 0} }, "rules.0.windows.0.end"},
		{"weekday 7", func(s *Schedule) { s.Rules[0].Windows[0].Weekdays = []time.Weekday{1, 7} }, "rules.0.windows.0.weekdays.1"},
		{"override ends before start", func(s *Schedule) { s.Overrides[0].End = start.Add(-time.Hour) }, "overrides.0.end"},
		{"override ends at start", func(s *Schedule) { s.Overrides[0].End = start }, "overrides.0.end"},
		{"override without start", func(s *Schedule) { s.Overrides[0].Start = time.Time{} }, "overrides.0.start"},
		{"override kind unknown", func(s *Schedule) { s.Overrides[0].Kind = "swap" }, "overrides.0.kind"},
		{"replace without add user", func(s *Schedule) { s.Overrides[0].AddUserID = nil }, "overrides.0.add_user_id"},
		{"replace without remove user", func(s *Schedule) { s.Overrides[0].RemoveUserID = nil }, "overrides.0.remove_user_id"},
		{"replace with itself", func(s *Schedule) { s.Overrides[0].AddUserID = refOf(u1) }, "overrides.0.add_user_id"},
		{"add without user", func(s *Schedule) {
			s.Overrides[0].Kind, s.Overrides[0].AddUserID, s.Overrides[0].RemoveUserID = OverrideAdd, nil, nil
		}, "overrides.0.add_user_id"},
		{"add with nil user", func(s *Schedule) {
			s.Overrides[0].Kind, s.Overrides[0].AddUserID, s.Overrides[0].RemoveUserID = OverrideAdd, refOf(uuid.Nil), nil
		}, "overrides.0.add_user_id"},
		{"add with a remove user", func(s *Schedule) { s.Overrides[0].Kind = OverrideAdd }, "overrides.0.remove_user_id"},
		{"remove without user", func(s *Schedule) {
			s.Overrides[0].Kind, s.Overrides[0].AddUserID, s.Overrides[0].RemoveUserID = OverrideRemove, nil, nil
		}, "overrides.0.remove_user_id"},
		{"remove with an add user", func(s *Schedule) { s.Overrides[0].Kind = OverrideRemove }, "overrides.0.add_user_id"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := valid()
			tc.change(&s)
			assertField(t, s.Validate(), tc.field)
			_, err := Compile(s)
			assertField(t, err, tc.field)
		})
	}
}

// TestPartValidateFields: the parts report bare field names, for the API
// that creates one part at a time.
func TestPartValidateFields(t *testing.T) {
	start := time.Date(2026, 1, 1, 7, 0, 0, 0, time.UTC)
	assertField(t, Rotation{Participants: []uuid.UUID{u1}, ShiftLength: 0, ShiftUnit: ShiftUnitDays, Start: start}.Validate(), "shift_length")
	assertField(t, Rotation{Participants: []uuid.UUID{u1}, ShiftLength: 1, ShiftUnit: "days ", Start: start}.Validate(), "shift_unit")
	assertField(t, Rotation{ShiftLength: 1, ShiftUnit: ShiftUnitDays, Start: start}.Validate(), "participants")
	assertField(t, Rule{UserID: refOf(u1), Windows: []Window{{Start: TimeOfDay{25, 0}}}}.Validate(), "windows.0.start")
	assertField(t, Rule{Windows: []Window{allTheTime}}.Validate(), "rotation_id")
	assertField(t, Window{End: TimeOfDay{0, -1}}.Validate(), "end")
	assertField(t, Override{Kind: OverrideAdd, AddUserID: refOf(u1), Start: start, End: start}.Validate(), "end")
	if err := (&FieldError{Field: "end", Detail: "must be after start"}).Error(); err != "end: must be after start" {
		t.Errorf("Error() = %q", err)
	}
}

package oncall

import (
	"fmt"
	"time"

	"github.com/google/uuid"
)

// ShiftUnit is the unit of a rotation's shift length.
type ShiftUnit string

const (
	ShiftUnitHours ShiftUnit = "hours"
	ShiftUnitDays  ShiftUnit = "days"
	ShiftUnitWeeks ShiftUnit = "weeks"
)

// Longest accepted shift per unit: a year. Anything longer is a typo, and
// refusing it keeps the hand-off arithmetic far from overflow.
const (
	MaxShiftHours = 8760
	MaxShiftDays  = 365
	MaxShiftWeeks = 52
)

// seconds returns the number of wall clock seconds in one unit. Days and weeks
// are civil days: on the wall clock representation used by this package
// (see zone.go) a civil day is always 86400 seconds, even on a 23- or 25-hour
// DST day, which is exactly why hand-offs keep their time of day.
func (u ShiftUnit) seconds() int64 {
	switch u {
	case ShiftUnitHours:
		return 3600
	case ShiftUnitDays:
		return secPerDay
	case ShiftUnitWeeks:
		return 7 * secPerDay
	}
	return 0
}

// Rotation hands the on-call duty from one participant to the next, in order,
// wrapping around, every ShiftLength units.
//
// Hand-offs happen on the schedule's wall clock, for every unit, hours
// included: shift k starts at the wall clock reading of Start plus
// k*ShiftLength units, converted back to an instant in the schedule's zone.
// So a daily 07:00 hand-off stays at 07:00 local all year, and a 12-hour
// rotation handing off at 07:00 and 19:00 keeps doing so, the shift that
// spans the spring-forward night lasting 11 real hours and the one spanning
// the fall-back night 13. This is what a ward expects: the night doctor goes
// home at 07:00 by the clock on the wall.
//
// A hand-off time that does not exist (inside the spring-forward gap) happens
// at the first instant after the gap; one that occurs twice (fall back)
// happens at the first occurrence. With 1-hour shifts this means the shift
// whose wall clock hour is skipped lasts zero seconds (that participant's
// turn is skipped, the order is not shifted) and the shift starting at the
// repeated hour lasts two hours.
//
// Shift 0 starts exactly at Start, whatever its wall clock reading, and no
// later shift starts before Start. Before Start the rotation has nobody on
// call.
type Rotation struct {
	ID   uuid.UUID `json:"id"`
	Name string    `json:"name"`
	// Participants take shifts in this order, wrapping around. A user may
	// appear more than once to take more turns.
	Participants []uuid.UUID `json:"participants"`
	ShiftLength  int         `json:"shift_length"`
	ShiftUnit    ShiftUnit   `json:"shift_unit"`
	// Start is the instant the first participant's first shift begins.
	Start time.Time `json:"start"`
}

// Validate checks the rotation on its own and returns a *FieldError naming
// the bad field ("shift_length", "shift_unit", "participants", "start").
func (r Rotation) Validate() error {
	var max int
	switch r.ShiftUnit {
	case ShiftUnitHours:
		max = MaxShiftHours
	case ShiftUnitDays:
		max = MaxShiftDays
	case ShiftUnitWeeks:
		max = MaxShiftWeeks
	default:
		return &FieldError{Field: "shift_unit", Detail: `must be "hours", "days" or "weeks"`}
	}
	if r.ShiftLength <= 0 {
		return &FieldError{Field: "shift_length", Detail: "must be positive"}
	}
	if r.ShiftLength > max {
		return &FieldError{Field: "shift_length", Detail: fmt.Sprintf("must be at most %d %s", max, r.ShiftUnit)}
	}
	if len(r.Participants) == 0 {
		return &FieldError{Field: "participants", Detail: "at least one participant is required"}
	}
	for i, p := range r.Participants {
		if p == uuid.Nil {
			return &FieldError{Field: fmt.Sprintf("participants.%d", i), Detail: "must be a user id"}
		}
	}
	if r.Start.IsZero() {
		return &FieldError{Field: "start", Detail: "is required"}
	}
	return nil
}

// compiledRotation is a rotation prepared for O(1) queries.
type compiledRotation struct {
	id           uuid.UUID
	participants []uuid.UUID
	start        time.Time
	wallSec      int64 // wall clock reading of start, whole seconds
	wallNsec     int64 // and its sub-second part, kept by every hand-off
	step         int64 // wall seconds per shift

	// ruled is true when at least one rule targets the rotation; it is then
	// active only inside the union of windows.
	ruled   bool
	windows []compiledWindow
}

func compileRotation(r Rotation, z *zoneTable) compiledRotation {
	c := cursor{z: z}
	return compiledRotation{
		id:           r.ID,
		participants: append([]uuid.UUID(nil), r.Participants...),
		start:        r.Start,
		wallSec:      c.wall(r.Start),
		wallNsec:     int64(r.Start.Nanosecond()),
		step:         int64(r.ShiftLength) * r.ShiftUnit.seconds(),
	}
}

// shiftStart returns the instant shift k begins.
func (r *compiledRotation) shiftStart(k int64, c *cursor) time.Time {
	if k <= 0 {
		return r.start
	}
	t := c.instantTime(r.wallSec+k*r.step, r.wallNsec)
	if t.Before(r.start) {
		// Only possible when Start is the second occurrence of an
		// ambiguous wall time and a shift is shorter than the overlap.
		return r.start
	}
	return t
}

// shiftAt returns the number of the shift in progress at t, or false before
// Start. It estimates k from the wall clock reading of t, which is exact
// except within a DST change of a hand-off, and then corrects by a step or two
// with the exact conversion; it never loops from Start.
func (r *compiledRotation) shiftAt(t time.Time, c *cursor) (int64, bool) {
	if t.Before(r.start) {
		return 0, false
	}
	k := floorDiv(c.wall(t)-r.wallSec, r.step)
	if k < 0 {
		k = 0
	}
	for k > 0 && r.shiftStart(k, c).After(t) {
		k--
	}
	for !r.shiftStart(k+1, c).After(t) {
		k++ // also skips zero-length shifts, whose start equals the next one's
	}
	return k, true
}

// participant returns who takes shift k.
func (r *compiledRotation) participant(k int64) uuid.UUID {
	return r.participants[k%int64(len(r.participants))]
}

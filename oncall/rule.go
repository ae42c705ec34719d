package oncall

import (
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Rule puts a user on call, or restricts a rotation, to weekly windows on the
// schedule's wall clock. Exactly one of RotationID and UserID is set.
//
// A rotation that no rule targets is always active. A rotation targeted by
// one or more rules is active only inside the union of their windows ("the
// registrar rotation covers nights"). A rule with a UserID puts that user on
// call during its windows, whoever else is on call: "Dr A is always on" is a
// user rule with one all-day window for every day.
type Rule struct {
	ID         uuid.UUID  `json:"id"`
	RotationID *uuid.UUID `json:"rotation_id,omitempty"`
	UserID     *uuid.UUID `json:"user_id,omitempty"`
	Windows    []Window   `json:"windows"`
}

// Window is a weekly recurring interval of wall clock time.
//
// It starts at Start on each of Weekdays (every day if Weekdays is empty) and
// ends at End the same day, or the next day if End <= Start: 19:00-07:00 on
// Friday runs from Friday 19:00 to Saturday 07:00. Start == End means 24
// hours from Start, so a window with Start == End and no weekdays is always
// active.
//
// The ends are wall clock times converted to instants with the package's DST
// rules: a time inside the spring-forward gap means the first instant after
// the gap, a time that occurs twice means the first occurrence. A 19:00-07:00
// window therefore lasts 11 hours on the spring-forward night and 13 on the
// fall-back night, and a window lying entirely inside a gap is empty that day.
type Window struct {
	Weekdays []time.Weekday `json:"weekdays,omitempty"`
	Start    TimeOfDay      `json:"start"`
	End      TimeOfDay      `json:"end"`
}

// TimeOfDay is a wall clock time with minute precision. Its text form is
// "HH:MM", 24-hour clock.
type TimeOfDay struct {
	Hour   int // 0-23
	Minute int // 0-59
}

// ParseTimeOfDay parses "HH:MM" on the 24-hour clock; a one-digit hour
// ("7:05") is accepted too.
func ParseTimeOfDay(s string) (TimeOfDay, error) {
	bad := fmt.Errorf("time of day %q: want HH:MM between 00:00 and 23:59", s)
	i := strings.IndexByte(s, ':')
	if i < 1 || i > 2 || len(s)-i != 3 {
		return TimeOfDay{}, bad
	}
	digits := func(p string) (int, bool) {
		n := 0
		for _, r := range p {
			if r < '0' || r > '9' {
				return 0, false
			}
			n = n*10 + int(r-'0')
		}
		return n, true
	}
	h, ok1 := digits(s[:i])
	m, ok2 := digits(s[i+1:])
	t := TimeOfDay{Hour: h, Minute: m}
	if !ok1 || !ok2 || !t.valid() {
		return TimeOfDay{}, bad
	}
	return t, nil
}

func (t TimeOfDay) String() string { return fmt.Sprintf("%02d:%02d", t.Hour, t.Minute) }

// MarshalText implements encoding.TextMarshaler, so JSON carries "19:00".
func (t TimeOfDay) MarshalText() ([]byte, error) {
	if !t.valid() {
		return nil, fmt.Errorf("time of day %d:%d out of range", t.Hour, t.Minute)
	}
	return []byte(t.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (t *TimeOfDay) UnmarshalText(b []byte) error {
	v, err := ParseTimeOfDay(string(b))
	if err != nil {
		return err
	}
	*t = v
	return nil
}

func (t TimeOfDay) valid() bool {
	return t.Hour >= 0 && t.Hour <= 23 && t.Minute >= 0 && t.Minute <= 59
}

func (t TimeOfDay) seconds() int64 { return int64(t.Hour)*3600 + int64(t.Minute)*60 }

// Validate checks the window and returns a *FieldError naming "weekdays",
// "start" or "end".
func (w Window) Validate() error {
	for i, d := range w.Weekdays {
		if d < time.Sunday || d > time.Saturday {
			return &FieldError{Field: fmt.Sprintf("weekdays.%d", i), Detail: "must be 0 (Sunday) to 6 (Saturday)"}
		}
	}
	if !w.Start.valid() {
		return &FieldError{Field: "start", Detail: "must be a time of day between 00:00 and 23:59"}
	}
	if !w.End.valid() {
		return &FieldError{Field: "end", Detail: "must be a time of day between 00:00 and 23:59"}
	}
	return nil
}

// Validate checks the rule on its own. Setting both or neither target is
// reported on "rotation_id"; a nil user id on "user_id"; a rule without
// windows on "windows" (it would silently switch its rotation off).
func (r Rule) Validate() error {
	switch {
	case r.RotationID == nil && r.UserID == nil:
		return &FieldError{Field: "rotation_id", Detail: "one of rotation_id and user_id is required"}
	case r.RotationID != nil && r.UserID != nil:
		return &FieldError{Field: "rotation_id", Detail: "only one of rotation_id and user_id may be set"}
	case r.RotationID != nil && *r.RotationID == uuid.Nil:
		return &FieldError{Field: "rotation_id", Detail: "must be a rotation id"}
	case r.UserID != nil && *r.UserID == uuid.Nil:
		return &FieldError{Field: "user_id", Detail: "must be a user id"}
	}
	if len(r.Windows) == 0 {
		return &FieldError{Field: "windows", Detail: "at least one window is required"}
	}
	for i, w := range r.Windows {
		if err := w.Validate(); err != nil {
			return nest(fmt.Sprintf("windows.%d", i), err)
		}
	}
	return nil
}

// compiledWindow is a window in wall clock seconds.
type compiledWindow struct {
	days   uint8 // bit d set: the window starts on weekday d
	start  int64 // seconds after local midnight of its day
	end    int64 // seconds after local midnight of its start day; > start
	always bool  // every day and 24 hours long: no boundaries at all
}

func compileWindow(w Window) compiledWindow {
	cw := compiledWindow{start: w.Start.seconds(), end: w.End.seconds()}
	if cw.end <= cw.start {
		cw.end += secPerDay
	}
	for _, d := range w.Weekdays {
		cw.days |= 1 << d
	}
	if cw.days == 0 {
		cw.days = 0x7f
	}
	cw.always = cw.days == 0x7f && cw.end-cw.start == secPerDay
	return cw
}

func (w *compiledWindow) on(day int64) bool { return w.days&(1<<weekdayOf(day)) != 0 }

// activeAt reports whether the instant sec (whole seconds) lies in an
// occurrence of the window. day is the local civil day of sec. An occurrence
// starting on the previous day can still be running (overnight windows); one
// starting the next day can only matter when a fall-back overlap straddles
// midnight, but checking it is cheap.
func (w *compiledWindow) activeAt(sec, day int64, c *cursor) bool {
	if w.always {
		return true
	}
	for d := day - 1; d <= day+1; d++ {
		if !w.on(d) {
			continue
		}
		from, _ := c.instant(d*secPerDay + w.start)
		if from > sec {
			return false // later days start later still
		}
		if to, _ := c.instant(d*secPerDay + w.end); sec < to {
			return true
		}
	}
	return false
}

// anyActive reports whether sec is inside any of the windows.
func anyActive(ws []compiledWindow, sec, day int64, c *cursor) bool {
	for i := range ws {
		if ws[i].activeAt(sec, day, c) {
			return true
		}
	}
	return false
}

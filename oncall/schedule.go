package oncall

import (
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Schedule is everything needed to say who is on call for one service (a
// ward, a specialty, a team) at any instant. It is plain data, as stored;
// [Compile] turns it into something fast to query.
type Schedule struct {
	ID   uuid.UUID `json:"id"`
	Name string    `json:"name"`
	// TimeZone is the IANA name ("America/Chicago") of the wall clock on
	// which hand-offs and rule windows are defined. It is required: an
	// empty name or "Local" would make the meaning of the schedule depend on
	// the server that computes it.
	TimeZone  string     `json:"time_zone"`
	Rotations []Rotation `json:"rotations"`
	Rules     []Rule     `json:"rules"`
	Overrides []Override `json:"overrides"`
}

// Shift is one contiguous interval [Start, End) during which a user is on
// call. Adjacent intervals of the same user are always merged, so a user who
// is on call through a hand-off back to themselves has one shift.
type Shift struct {
	UserID uuid.UUID `json:"user_id"`
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
}

// Gap is an interval [Start, End) during which nobody is on call: a page sent
// then reaches no one, so gaps are what schedulers most need to see.
type Gap struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// Validate checks the whole schedule and returns the first problem as a
// *FieldError whose Field is the dotted JSON path of the offending input
// ("rotations.1.shift_length"). The parts' own Validate methods report bare
// field names; Validate prefixes them.
//
// Validate does not look for contradictory overrides: those are refused when
// an override is written, by [ValidateOverride], and the engine gives a
// defined answer even if some slipped in (see [Override]), because refusing
// to compute a schedule that is already stored would leave nobody paged.
func (s *Schedule) Validate() error {
	if _, err := loadZone(s.TimeZone); err != nil {
		return &FieldError{Field: "time_zone", Detail: err.Error()}
	}
	rotations := make(map[uuid.UUID]bool, len(s.Rotations))
	for i, r := range s.Rotations {
		if err := r.Validate(); err != nil {
			return nest(fmt.Sprintf("rotations.%d", i), err)
		}
		// Rules find rotations by id, so ids must be unique; a rotation
		// without one (built in code, not stored) simply cannot be ruled.
		if r.ID != uuid.Nil && rotations[r.ID] {
			return &FieldError{Field: fmt.Sprintf("rotations.%d.id", i), Detail: "duplicate rotation id"}
		}
		rotations[r.ID] = true
	}
	for i, r := range s.Rules {
		if err := r.Validate(); err != nil {
			return nest(fmt.Sprintf("rules.%d", i), err)
		}
		if r.RotationID != nil && !rotations[*r.RotationID] {
			return &FieldError{Field: fmt.Sprintf("rules.%d.rotation_id", i), Detail: "no such rotation in this schedule"}
		}
	}
	for i, o := range s.Overrides {
		if err := o.Validate(); err != nil {
			return nest(fmt.Sprintf("overrides.%d", i), err)
		}
	}
	return nil
}

// nest prefixes the field of a *FieldError with a path.
func nest(prefix string, err error) error {
	if fe, ok := err.(*FieldError); ok {
		if fe.Field == "" {
			return &FieldError{Field: prefix, Detail: fe.Detail}
		}
		return &FieldError{Field: prefix + "." + fe.Field, Detail: fe.Detail}
	}
	return err
}

package oncall

import (
	"bytes"
	"time"

	"github.com/google/uuid"
)

// Compiled is a validated schedule prepared for fast queries: its zone is
// loaded once, rules are attached to their rotations, and overrides are
// indexed by time. It is immutable and safe for concurrent use.
type Compiled struct {
	id       uuid.UUID
	name     string
	zone     *zoneTable
	rots     []compiledRotation
	users    []compiledUserRule
	override overrideIndex
}

type compiledUserRule struct {
	user    uuid.UUID
	windows []compiledWindow
}

// Compile validates s (see [Schedule.Validate]) and prepares it for queries.
// The result does not share memory with s.
func Compile(s Schedule) (*Compiled, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	z, err := loadZone(s.TimeZone)
	if err != nil {
		return nil, &FieldError{Field: "time_zone", Detail: err.Error()}
	}
	c := &Compiled{id: s.ID, name: s.Name, zone: z}
	byID := make(map[uuid.UUID]int, len(s.Rotations))
	for _, r := range s.Rotations {
		byID[r.ID] = len(c.rots)
		c.rots = append(c.rots, compileRotation(r, z))
	}
	for _, r := range s.Rules {
		ws := make([]compiledWindow, 0, len(r.Windows))
		for _, w := range r.Windows {
			ws = append(ws, compileWindow(w))
		}
		if r.RotationID != nil {
			rot := &c.rots[byID[*r.RotationID]]
			rot.ruled = true
			rot.windows = append(rot.windows, ws...)
			continue
		}
		c.users = append(c.users, compiledUserRule{user: *r.UserID, windows: ws})
	}
	c.override = newOverrideIndex(s.Overrides)
	return c, nil
}

// ID returns the schedule's id.
func (c *Compiled) ID() uuid.UUID { return c.id }

// Name returns the schedule's name.
func (c *Compiled) Name() string { return c.name }

// Location returns the schedule's time zone.
func (c *Compiled) Location() *time.Location { return c.zone.loc }

// OnCallAt returns the users on call at instant t, sorted by UUID, without
// duplicates. It never returns nil; an empty result means a page sent at t
// reaches nobody.
func (c *Compiled) OnCallAt(t time.Time) []uuid.UUID {
	cur := cursor{z: c.zone}
	var buf [16]uuid.UUID
	set := c.onCallAt(buf[:0], t, &cur, nil)
	out := make([]uuid.UUID, len(set))
	copy(out, set)
	return out
}

// onCallAt appends the sorted, deduplicated set at t to dst. ovBuf is scratch
// space for the active overrides and may be nil.
func (c *Compiled) onCallAt(dst []uuid.UUID, t time.Time, cur *cursor, ovBuf []*compiledOverride) []uuid.UUID {
	sec := t.Unix()
	day := floorDiv(cur.wall(t), secPerDay)

	var baseBuf [16]uuid.UUID
	base := baseBuf[:0]
	for i := range c.users {
		u := &c.users[i]
		if anyActive(u.windows, sec, day, cur) {
			base = append(base, u.user)
		}
	}
	for i := range c.rots {
		r := &c.rots[i]
		if r.ruled && !anyActive(r.windows, sec, day, cur) {
			continue
		}
		if k, ok := r.shiftAt(t, cur); ok {
			base = append(base, r.participant(k))
		}
	}

	var stack [8]*compiledOverride
	if ovBuf == nil {
		ovBuf = stack[:0]
	}
	active := c.override.active(ovBuf[:0], instant{sec: sec, nsec: int32(t.Nanosecond())})
	start := len(dst)
	dst = applyOverrides(dst, base, active)
	return dst[:start+sortUnique(dst[start:])]
}

// sortUnique sorts ids by byte order in place, removes duplicates and returns
// the new length. Sets are small, so insertion sort is the fastest choice.
func sortUnique(ids []uuid.UUID) int {
	for i := 1; i < len(ids); i++ {
		for j := i; j > 0 && bytes.Compare(ids[j-1][:], ids[j][:]) > 0; j-- {
			ids[j-1], ids[j] = ids[j], ids[j-1]
		}
	}
	n := 0
	for i := range ids {
		if n == 0 || ids[i] != ids[n-1] {
			ids[n] = ids[i]
			n++
		}
	}
	return n
}

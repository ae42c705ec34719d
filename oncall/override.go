package oncall

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/google/uuid"
)

// OverrideKind says what an override does.
type OverrideKind string

const (
	// OverrideAdd puts AddUserID on call (a second pair of hands).
	OverrideAdd OverrideKind = "add"
	// OverrideRemove takes RemoveUserID off call (sick leave).
	OverrideRemove OverrideKind = "remove"
	// OverrideReplace hands RemoveUserID's duty to AddUserID (a swap), but
	// only while RemoveUserID would otherwise be on call.
	OverrideReplace OverrideKind = "replace"
)

// Override changes who is on call for the instants in [Start, End), on top of
// what the rotations and rules say.
//
// All overrides active at an instant are applied at once, against the set
// computed from rotations and rules (the "base" set), so their order never
// matters:
//
//	removed = RemoveUserID of every active remove
//	        + RemoveUserID of every active replace whose RemoveUserID is in base
//	added   = AddUserID of every active add
//	        + AddUserID of every active replace whose RemoveUserID is in base
//	on call = (base - removed) + added
//
// So replaces do not chain (a replace of B fires only if B is on call by
// rotation or rule, not because another override put B on), and if a user is
// both removed and added, adding wins: when data is contradictory we would
// rather page one person too many than nobody. [ValidateOverride] refuses
// such contradictions when overrides are written.
type Override struct {
	ID           uuid.UUID    `json:"id"`
	Kind         OverrideKind `json:"kind"`
	AddUserID    *uuid.UUID   `json:"add_user_id,omitempty"`    // add, replace
	RemoveUserID *uuid.UUID   `json:"remove_user_id,omitempty"` // remove, replace
	Start        time.Time    `json:"start"`
	End          time.Time    `json:"end"`
}

// Validate checks the override on its own and returns a *FieldError naming
// "kind", "add_user_id", "remove_user_id", "start" or "end". A user id that
// the kind does not use must be absent, so that a client that picked the
// wrong kind hears about it instead of having half its request ignored.
func (o Override) Validate() error {
	needAdd, needRemove := false, false
	switch o.Kind {
	case OverrideAdd:
		needAdd = true
	case OverrideRemove:
		needRemove = true
	case OverrideReplace:
		needAdd, needRemove = true, true
	default:
		return &FieldError{Field: "kind", Detail: `must be "add", "remove" or "replace"`}
	}
	if err := checkUser("add_user_id", o.AddUserID, needAdd, o.Kind); err != nil {
		return err
	}
	if err := checkUser("remove_user_id", o.RemoveUserID, needRemove, o.Kind); err != nil {
		return err
	}
	if o.Kind == OverrideReplace && *o.AddUserID == *o.RemoveUserID {
		return &FieldError{Field: "add_user_id", Detail: "must differ from remove_user_id"}
	}
	if o.Start.IsZero() {
		return &FieldError{Field: "start", Detail: "is required"}
	}
	if !o.End.After(o.Start) {
		return &FieldError{Field: "end", Detail: "must be after start"}
	}
	return nil
}

func checkUser(field string, id *uuid.UUID, need bool, kind OverrideKind) error {
	switch {
	case need && (id == nil || *id == uuid.Nil):
		return &FieldError{Field: field, Detail: fmt.Sprintf("is required for a %s override", kind)}
	case !need && id != nil:
		return &FieldError{Field: field, Detail: fmt.Sprintf("must be empty for a %s override", kind)}
	}
	return nil
}

// users returns the users an override names, in any role.
func (o *Override) users() []uuid.UUID {
	var us []uuid.UUID
	if o.AddUserID != nil {
		us = append(us, *o.AddUserID)
	}
	if o.RemoveUserID != nil {
		us = append(us, *o.RemoveUserID)
	}
	return us
}

// ValidateOverride checks o on its own (see [Override.Validate]) and then
// against the overrides already stored for the schedule.
//
// Two overrides contradict each other when their intervals intersect (they
// share at least one instant; touching end to start is fine) and they name a
// common user in any role. That covers every case where the result would
// depend on which one the reader thinks "wins": two removes or replaces of
// the same user (who is the cover?), an add and a remove of the same user (on
// or off?), two adds of the same user (a duplicate, which also makes deleting
// one of them surprising), and a replace whose cover is removed or replaced
// by another (replaces do not chain). Such a request is reported on field
// "start" and must be split or the old override edited.
//
// An existing override with the same non-nil ID as o is ignored, so editing
// an override does not conflict with its own stored version.
func ValidateOverride(existing []Override, o Override) error {
	if err := o.Validate(); err != nil {
		return err
	}
	mine := o.users()
	for i := range existing {
		e := &existing[i]
		if o.ID != uuid.Nil && e.ID == o.ID {
			continue
		}
		if !(e.Start.Before(o.End) && o.Start.Before(e.End)) {
			continue
		}
		for _, u := range e.users() {
			if slices.Contains(mine, u) {
				return &FieldError{
					Field: "start",
					Detail: fmt.Sprintf("overlaps %s override %s (%s to %s) for the same user",
						e.Kind, e.ID, e.Start.UTC().Format(time.RFC3339), e.End.UTC().Format(time.RFC3339)),
				}
			}
		}
	}
	return nil
}

// instant is a time.Time reduced to what ordering needs. It has no pointer
// (time.Time carries its *Location), so sorting and scanning a thousand of
// them is cheap and free of GC write barriers.
type instant struct {
	sec  int64
	nsec int32
}

func instantOf(t time.Time) instant { return instant{sec: t.Unix(), nsec: int32(t.Nanosecond())} }

func (a instant) before(b instant) bool {
	return a.sec < b.sec || (a.sec == b.sec && a.nsec < b.nsec)
}

func (a instant) compare(b instant) int {
	return cmp.Or(cmp.Compare(a.sec, b.sec), cmp.Compare(a.nsec, b.nsec))
}

func (a instant) time() time.Time { return time.Unix(a.sec, int64(a.nsec)) }

type overrideOp uint8

const (
	opAdd overrideOp = iota
	opRemove
	opReplace
)

// compiledOverride is an override with its users resolved for the kind.
type compiledOverride struct {
	start, end  instant
	add, remove uuid.UUID
	op          overrideOp
}

// overrideIndex finds the overrides active at an instant in O(log n + k) for
// the usual case of mostly disjoint overrides: they are sorted by start, and
// maxEnd[i] is the latest end among the first i+1, so a backward scan from the
// last override that has started can stop as soon as nothing earlier can
// still be running.
type overrideIndex struct {
	list   []compiledOverride
	maxEnd []instant
}

func newOverrideIndex(os []Override) overrideIndex {
	x := overrideIndex{list: make([]compiledOverride, 0, len(os))}
	for _, o := range os {
		co := compiledOverride{start: instantOf(o.Start), end: instantOf(o.End)}
		switch o.Kind {
		case OverrideAdd:
			co.op = opAdd
		case OverrideRemove:
			co.op = opRemove
		default:
			co.op = opReplace
		}
		if o.AddUserID != nil {
			co.add = *o.AddUserID
		}
		if o.RemoveUserID != nil {
			co.remove = *o.RemoveUserID
		}
		x.list = append(x.list, co)
	}
	// The store reads overrides ordered by start already; checking is O(n).
	// Ties may land in any order: applying overrides is order independent.
	byStart := func(a, b compiledOverride) int { return a.start.compare(b.start) }
	if !slices.IsSortedFunc(x.list, byStart) {
		slices.SortFunc(x.list, byStart)
	}
	x.maxEnd = make([]instant, len(x.list))
	for i, o := range x.list {
		x.maxEnd[i] = o.end
		if i > 0 && o.end.before(x.maxEnd[i-1]) {
			x.maxEnd[i] = x.maxEnd[i-1]
		}
	}
	return x
}

// active appends to dst the overrides whose [start, end) contains t.
func (x *overrideIndex) active(dst []*compiledOverride, t instant) []*compiledOverride {
	n := sort.Search(len(x.list), func(i int) bool { return t.before(x.list[i].start) })
	for i := n - 1; i >= 0 && t.before(x.maxEnd[i]); i-- {
		if t.before(x.list[i].end) {
			dst = append(dst, &x.list[i])
		}
	}
	return dst
}

// apply turns the base set into the final set, as documented on Override.
// base is not modified; the result is appended to dst.
func applyOverrides(dst, base []uuid.UUID, active []*compiledOverride) []uuid.UUID {
	if len(active) == 0 {
		return append(dst, base...)
	}
	var removedBuf, addedBuf [8]uuid.UUID
	removed, added := removedBuf[:0], addedBuf[:0]
	for _, o := range active {
		switch o.op {
		case opAdd:
			added = append(added, o.add)
		case opRemove:
			removed = append(removed, o.remove)
		case opReplace:
			if slices.Contains(base, o.remove) {
				removed = append(removed, o.remove)
				added = append(added, o.add)
			}
		}
	}
	for _, u := range base {
		if !slices.Contains(removed, u) {
			dst = append(dst, u)
		}
	}
	return append(dst, added...)
}

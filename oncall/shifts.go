package oncall

import (
	"bytes"
	"cmp"
	"slices"
	"time"

	"github.com/google/uuid"
)

// MaxRange is the longest interval Shifts and Gaps accept: a leap year. It
// bounds the work one request can cause (an hourly rotation has 8,784
// hand-offs a year) while still covering any calendar view or a year's
// export.
const MaxRange = 366 * 24 * time.Hour

// checkQueryRange refuses empty, inverted and too long ranges.
func checkQueryRange(from, to time.Time) error {
	if !to.After(from) {
		return &FieldError{Field: "to", Detail: "must be after from"}
	}
	if to.Sub(from) > MaxRange {
		return &FieldError{Field: "to", Detail: "range must not exceed 366 days"}
	}
	return nil
}

// Shifts returns every user's contiguous on-call intervals within [from, to),
// clipped to it, with adjacent intervals of the same user merged. They are
// sorted by start, then by user UUID, and their times are in the schedule's
// time zone (without monotonic clock readings), so that they print and
// serialize as the ward's local time. The range may not exceed MaxRange.
//
// It works by cutting the range at every instant where the answer could
// change (rotation hand-offs, rule window starts and ends, override starts
// and ends) and asking OnCallAt once per piece. That is obviously correct
// given OnCallAt, and with the O(1) hand-off arithmetic fast enough: the
// number of pieces is the number of events, not the length of the range.
func (c *Compiled) Shifts(from, to time.Time) ([]Shift, error) {
	var shifts []Shift
	open := make(map[uuid.UUID]time.Time)
	err := c.walk(from, to, func(start time.Time, set []uuid.UUID) {
		for u, s := range open {
			if !slices.Contains(set, u) {
				shifts = append(shifts, Shift{UserID: u, Start: s, End: start})
				delete(open, u)
			}
		}
		for _, u := range set {
			if _, ok := open[u]; !ok {
				open[u] = start
			}
		}
	})
	if err != nil {
		return nil, err
	}
	for u, s := range open {
		shifts = append(shifts, Shift{UserID: u, Start: s, End: to.In(c.zone.loc)})
	}
	slices.SortFunc(shifts, func(a, b Shift) int {
		return cmp.Or(a.Start.Compare(b.Start), bytes.Compare(a.UserID[:], b.UserID[:]))
	})
	return shifts, nil
}

// Gaps returns the intervals within [from, to) during which nobody is on
// call, clipped to the range, merged, and sorted, in the schedule's time
// zone. The range may not exceed MaxRange.
func (c *Compiled) Gaps(from, to time.Time) ([]Gap, error) {
	var gaps []Gap
	inGap := false
	err := c.walk(from, to, func(start time.Time, set []uuid.UUID) {
		switch {
		case len(set) == 0 && !inGap:
			gaps = append(gaps, Gap{Start: start})
			inGap = true
		case len(set) > 0 && inGap:
			gaps[len(gaps)-1].End = start
			inGap = false
		}
	})
	if err != nil {
		return nil, err
	}
	if inGap {
		gaps[len(gaps)-1].End = to.In(c.zone.loc)
	}
	return gaps, nil
}

// walk calls fn for each piece of [from, to) within which the on-call set is
// constant, in order, with the piece's start and the set (valid only during
// the call). Consecutive pieces may have equal sets.
func (c *Compiled) walk(from, to time.Time, fn func(start time.Time, set []uuid.UUID)) error {
	if err := checkQueryRange(from, to); err != nil {
		return err
	}
	cur := cursor{z: c.zone}
	bounds := c.boundaries(from, to, &cur)
	var set []uuid.UUID
	var ovBuf []*compiledOverride
	for _, b := range bounds {
		set = c.onCallAt(set[:0], b, &cur, ovBuf)
		fn(b.In(c.zone.loc), set)
	}
	return nil
}

// boundaries returns, sorted and deduplicated, from and every instant in
// (from, to) at which the on-call set may change.
func (c *Compiled) boundaries(from, to time.Time, cur *cursor) []time.Time {
	bs := []time.Time{from}
	add := func(t time.Time) {
		if !t.Before(from) && t.Before(to) {
			bs = append(bs, t)
		}
	}
	addSec := func(sec int64) { add(time.Unix(sec, 0)) }

	// Rotation hand-offs.
	for i := range c.rots {
		r := &c.rots[i]
		if !r.start.Before(to) {
			continue
		}
		at := from
		if at.Before(r.start) {
			at = r.start
		}
		k, _ := r.shiftAt(at, cur)
		for ; ; k++ {
			s := r.shiftStart(k, cur)
			if !s.Before(to) {
				break
			}
			add(s)
		}
	}

	// Rule windows, on every local day that can touch the range. A window
	// that started the day before from may still be running, and a
	// fall-back overlap can put a day's start slightly before its wall
	// date suggests, hence the margins.
	firstDay := floorDiv(cur.wall(from), secPerDay) - 1
	lastDay := floorDiv(cur.wall(to), secPerDay) + 1
	windows := func(ws []compiledWindow) {
		for i := range ws {
			w := &ws[i]
			if w.always {
				continue
			}
			for d := firstDay; d <= lastDay; d++ {
				if !w.on(d) {
					continue
				}
				s, _ := cur.instant(d*secPerDay + w.start)
				e, _ := cur.instant(d*secPerDay + w.end)
				addSec(s)
				addSec(e)
			}
		}
	}
	for i := range c.users {
		windows(c.users[i].windows)
	}
	for i := range c.rots {
		windows(c.rots[i].windows)
	}

	// Overrides.
	for i := range c.override.list {
		o := &c.override.list[i]
		start := o.start.time()
		if !start.Before(to) {
			break // sorted by start
		}
		add(start)
		add(o.end.time())
	}

	slices.SortFunc(bs, func(a, b time.Time) int { return a.Compare(b) })
	return slices.CompactFunc(bs, func(a, b time.Time) bool { return a.Equal(b) })
}

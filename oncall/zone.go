package oncall

import (
	"errors"
	"math"
	"sort"
	"sync"
	"time"
)

// Wall clock arithmetic.
//
// Hand-offs and rule windows are defined on the schedule's wall clock: "07:00
// in Chicago", "seven days after the start, same time of day". We represent a
// wall clock reading as the number of seconds since 1970-01-01T00:00 of that
// wall clock (as if it were UTC), so that civil arithmetic is plain integer
// arithmetic: a civil day is always 86400 wall seconds, whatever the zone did
// that day. Converting such a reading back to an instant is where daylight
// saving time bites, and Go's time.Date explicitly does not promise which
// instant it picks for a time in a gap or an overlap, so we do the
// conversion ourselves:
//
//   - a wall time that occurs once maps to that instant;
//   - a wall time that occurs twice (fall back) maps to its FIRST occurrence,
//     because a hand-off "at 01:30" should happen the first time the clock on
//     the ward wall shows 01:30, not an hour later;
//   - a wall time that does not exist (spring forward) maps to the first
//     instant after the gap, i.e. the transition itself, because that is the
//     earliest moment at which the wall clock has passed the named time.
//
// Both rules are monotonic: a later wall time never maps to an earlier
// instant, so shifts and windows never run backwards.

const (
	minSec = math.MinInt64
	maxSec = math.MaxInt64

	secPerDay = 86400

	// maxOffset bounds the absolute UTC offset of any zone in the tz
	// database, local mean times included (Asia/Manila's LMT was 15:56).
	maxOffset = 16 * 3600
	// maxOffsetSpread bounds the difference between two offsets.
	maxOffsetSpread = 2 * maxOffset
)

// period is one interval [start, end) of instants (Unix seconds) during which
// a zone keeps the same UTC offset. minSec/maxSec stand for the beginning and
// end of time.
type period struct {
	start, end int64
	off        int64 // seconds east of UTC
}

func (p period) contains(sec int64) bool { return p.start <= sec && sec < p.end }

// zoneTable is a location plus its offset periods between tableFrom and
// tableTo, precomputed once per process and zone name. Looking an offset up
// through time.Location is not free for dates past the last transition in the
// zoneinfo file (Go parses the POSIX TZ rule string on every call, and
// "slim" zoneinfo files, the default since 2020, stop at the last rule
// change, which for the US was 2007), and the engine converts many times per
// query. A binary search over a few hundred periods is cheap and allocation
// free.
type zoneTable struct {
	name    string
	loc     *time.Location
	periods []period // contiguous and sorted
}

var (
	tableFrom = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	tableTo   = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
)

var zoneTables sync.Map // IANA name -> *zoneTable

var errZoneName = errors.New(`time zone must be an IANA name such as "America/Chicago"`)

// loadZone returns the table for an IANA zone name. The empty name and
// "Local" are refused: Go reads them as UTC and as the server's own zone, and
// a schedule whose meaning changes with the server it runs on is a paging
// incident waiting to happen.
func loadZone(name string) (*zoneTable, error) {
	if name == "" || name == "Local" {
		return nil, errZoneName
	}
	if z, ok := zoneTables.Load(name); ok {
		return z.(*zoneTable), nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, errZoneName
	}
	z := &zoneTable{name: name, loc: loc}
	for sec := tableFrom; ; {
		p := z.lookup(sec)
		z.periods = append(z.periods, p)
		if p.end == maxSec || p.end >= tableTo || p.end <= sec {
			break
		}
		sec = p.end
	}
	actual, _ := zoneTables.LoadOrStore(name, z)
	return actual.(*zoneTable), nil
}

// lookup asks the time package for the period containing the instant sec.
func (z *zoneTable) lookup(sec int64) period {
	t := time.Unix(sec, 0).In(z.loc)
	_, off := t.Zone()
	start, end := t.ZoneBounds()
	p := period{start: minSec, end: maxSec, off: int64(off)}
	if !start.IsZero() {
		p.start = start.Unix()
	}
	if !end.IsZero() {
		p.end = end.Unix()
	}
	return p
}

// periodAt returns the period containing the instant sec.
func (z *zoneTable) periodAt(sec int64) period {
	ps := z.periods
	if n := len(ps); n > 0 && ps[0].start <= sec && sec < ps[n-1].end {
		i := sort.Search(n, func(i int) bool { return ps[i].end > sec })
		return ps[i]
	}
	return z.lookup(sec)
}

// cursor remembers the last period used, so that the many conversions of one
// query, which are nearly always in the same period, cost a subtraction. It is
// not safe for concurrent use; each query makes its own.
type cursor struct {
	z     *zoneTable
	p     period
	valid bool
}

func (c *cursor) at(sec int64) period {
	if !c.valid || !c.p.contains(sec) {
		c.p = c.z.periodAt(sec)
		c.valid = true
	}
	return c.p
}

// wall returns the wall clock reading of t in whole seconds (floor), in the
// representation described at the top of this file.
func (c *cursor) wall(t time.Time) int64 {
	sec := t.Unix()
	return sec + c.at(sec).off
}

// instant converts a wall reading (whole seconds) to the instant it names,
// applying the first-occurrence and after-the-gap rules. exact is false when
// w fell in a gap and the transition instant was returned instead.
func (c *cursor) instant(w int64) (sec int64, exact bool) {
	if c.valid {
		// Fast path: if w-off lands well inside the cached period (further
		// from both ends than any two offsets can differ), no other period
		// can contain w, so this is the only, hence first, occurrence.
		cand := w - c.p.off
		if (c.p.start == minSec || cand-c.p.start >= maxOffsetSpread) &&
			(c.p.end == maxSec || c.p.end-cand >= maxOffsetSpread) {
			return cand, true
		}
	}
	// Slow path: walk the periods forward from an instant that is before
	// any instant w could name, and stop at the first period whose local
	// range reaches past w.
	p := c.at(w - maxOffset - 3600)
	for {
		if p.end == maxSec || w < p.end+p.off {
			c.p = p
			if p.start == minSec || w >= p.start+p.off {
				return w - p.off, true
			}
			return p.start, false // w is in the gap before p
		}
		p = c.z.periodAt(p.end)
	}
}

// instantTime is instant for a wall reading with a sub-second part. A reading
// in a gap maps to the transition, which is a whole second.
func (c *cursor) instantTime(w, nsec int64) time.Time {
	sec, exact := c.instant(w)
	if !exact {
		nsec = 0
	}
	return time.Unix(sec, nsec)
}

// floorDiv is integer division rounding toward negative infinity, so that
// wall readings before 1970 fall on the right day.
func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// weekdayOf returns the weekday of the civil day with number day (days since
// 1970-01-01, a Thursday).
func weekdayOf(day int64) time.Weekday {
	return time.Weekday(((day % 7) + 7 + int64(time.Thursday)) % 7)
}

package oncall

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// ProductID is the PRODID of every calendar we write.
const ProductID = "-//callroom//oncall//EN"

// ICalendar is an on-call calendar feed (RFC 5545) that clinicians subscribe
// to from their phone's calendar app.
type ICalendar struct {
	// ScheduleID goes into every event's UID, so that feeds of different
	// schedules never collide.
	ScheduleID uuid.UUID
	// Name is the calendar's display name (X-WR-CALNAME) and is appended to
	// every SUMMARY: "On call: Dr X — Cardiology".
	Name string
	// TimeZone is advertised as X-WR-TIMEZONE so that clients show the
	// schedule's local times; the events themselves are in UTC, which every
	// client understands and which needs no VTIMEZONE block.
	TimeZone string
	Shifts   []Shift
	// UserName returns the display name of a user for SUMMARY. When it is
	// nil or returns "", the user's UUID is shown instead.
	UserName func(uuid.UUID) string
	// Parts, when set, replaces ScheduleID, Name and Shifts: a person's own
	// feed mixes shifts of several schedules, and each event's UID and
	// SUMMARY must name the schedule it comes from.
	Parts []ICalendarPart
	// Stamp is the DTSTAMP of every event, the time the feed was generated.
	// The zero value means time.Now().
	Stamp time.Time
}

// WriteICalendar writes cal as an RFC 5545 VCALENDAR: CRLF line endings,
// lines folded at 75 octets without splitting UTF-8 sequences, TEXT values
// escaped, and every DATE-TIME in UTC ("...Z"). Each shift becomes a VEVENT
// whose UID is derived from the schedule, the user and the start instant, so
// it is stable across refreshes: a calendar app updates an extended shift
// instead of showing it twice. Shifts shorter than a second (after dropping
// sub-second parts, which iCalendar cannot express) are left out.
func WriteICalendar(w io.Writer, cal ICalendar) error {
	bw := bufio.NewWriter(w)
	line := func(name, value string) { bw.WriteString(foldLine(name + ":" + value)) }

	stamp := cal.Stamp
	if stamp.IsZero() {
		stamp = time.Now()
	}

	line("BEGIN", "VCALENDAR")
	line("VERSION", "2.0")
	line("PRODID", ProductID)
	line("CALSCALE", "GREGORIAN")
	line("METHOD", "PUBLISH")
	if cal.Name != "" {
		line("X-WR-CALNAME", escapeText(cal.Name))
	}
	if cal.TimeZone != "" {
		line("X-WR-TIMEZONE", escapeText(cal.TimeZone))
	}
	seen := make(map[string]bool, len(cal.Shifts))
	parts := cal.Parts
	if parts == nil {
		parts = []ICalendarPart{{ScheduleID: cal.ScheduleID, Name: cal.Name, Shifts: cal.Shifts}}
	}
	for _, part := range parts {
		for _, s := range part.Shifts {
			start, end := s.Start.Truncate(time.Second), s.End.Truncate(time.Second)
			if !end.After(start) {
				continue
			}
			name := ""
			if cal.UserName != nil {
				name = cal.UserName(s.UserID)
			}
			if name == "" {
				name = s.UserID.String()
			}
			summary := "On call: " + name
			if part.Name != "" {
				summary += " — " + part.Name
			}
			line("BEGIN", "VEVENT")
			// UIDs must be unique within a calendar. They can only collide
			// when one feed mixes schedules (a user's own feed) and the user
			// has two shifts starting at the same instant; the later one then
			// gets a counter, which is stable as long as the feed's order is.
			uid := eventUID(part.ScheduleID, s.UserID, s.Start, 0)
			for n := uint32(1); seen[uid]; n++ {
				uid = eventUID(part.ScheduleID, s.UserID, s.Start, n)
			}
			seen[uid] = true
			line("UID", uid)
			line("DTSTAMP", icalTime(stamp))
			line("DTSTART", icalTime(start))
			line("DTEND", icalTime(end))
			line("SUMMARY", escapeText(summary))
			line("END", "VEVENT")
		}
	}
	line("END", "VCALENDAR")
	return bw.Flush() // bufio keeps the first write error and returns it here
}

// icalTime formats a UTC DATE-TIME (RFC 5545 3.3.5, form #2).
func icalTime(t time.Time) string { return t.UTC().Format("20060102T150405Z") }

// eventUID hashes schedule, user and start instant. The hash keeps user ids
// out of the UID, which calendar apps show and sync to third parties.
func eventUID(schedule, user uuid.UUID, start time.Time, n uint32) string {
	h := sha256.New()
	h.Write(schedule[:])
	h.Write(user[:])
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(start.Unix()))
	binary.BigEndian.PutUint32(b[8:12], uint32(start.Nanosecond()))
	size := 12
	if n > 0 { // keeps the UIDs of ordinary events what they always were
		binary.BigEndian.PutUint32(b[12:], n)
		size = 16
	}
	h.Write(b[:size])
	return hex.EncodeToString(h.Sum(nil)[:16]) + "@callroom"
}

// escapeText escapes a TEXT value (RFC 5545 3.3.11): backslash, semicolon,
// comma and newlines. Other control characters are not allowed in TEXT and
// are dropped, and invalid UTF-8 is replaced, so that a stray byte in a name
// cannot break the whole feed.
func escapeText(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch ch := s[i]; ch {
		case '\\':
			b.WriteString(`\\`)
		case ';':
			b.WriteString(`\;`)
		case ',':
			b.WriteString(`\,`)
		case '\r':
			if i+1 < len(s) && s[i+1] == '\n' {
				i++
			}
			b.WriteString(`\n`)
		case '\n':
			b.WriteString(`\n`)
		default:
			if (ch < 0x20 && ch != '\t') || ch == 0x7f {
				continue
			}
			b.WriteByte(ch)
		}
	}
	return b.String()
}

// foldLine returns a content line with its CRLF, folded so that no physical
// line exceeds 75 octets (RFC 5545 3.1): continuation lines start with a
// space, which counts toward their 75. A fold never splits a UTF-8 sequence.
func foldLine(line string) string {
	const limit = 75
	if len(line) <= limit {
		return line + "\r\n"
	}
	var b strings.Builder
	max := limit
	for len(line) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(line[cut]) {
			cut--
		}
		b.WriteString(line[:cut])
		b.WriteString("\r\n ")
		line = line[cut:]
		max = limit - 1
	}
	b.WriteString(line)
	b.WriteString("\r\n")
	return b.String()
}

// ICalendarPart is the shifts of one schedule within a mixed calendar.
type ICalendarPart struct {
	ScheduleID uuid.UUID
	Name       string
	Shifts     []Shift
}

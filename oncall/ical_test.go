package oncall

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

func TestEscapeText(t *testing.T) {
	cases := []struct{ in, want string }{
		{"Dr X", "Dr X"},
		{`a\b`, `a\\b`},
		{"a;b,c", `a\;b\,c`},
		{"line1\nline2", `line1\nline2`},
		{"line1\r\nline2\rline3", `line1\nline2\nline3`},
		{"tab\tkept, bell\a dropped", `tab` + "\t" + `kept\, bell dropped`},
		{"Zoë — Cardiología", "Zoë — Cardiología"},
		{"bad \xff byte", "bad \uFFFD byte"},
		{`\n is not a newline`, `\\n is not a newline`},
	}
	for _, tc := range cases {
		if got := escapeText(tc.in); got != tc.want {
			t.Errorf("escapeText(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestFoldLine(t *testing.T) {
	cases := []struct {
		name string
		in   string
	}{
		{"short", "SUMMARY:hello"},
		{"exactly 75", "SUMMARY:" + strings.Repeat("a", 67)},
		{"76", "SUMMARY:" + strings.Repeat("a", 68)},
		{"long ascii", "SUMMARY:" + strings.Repeat("abcdefghij", 30)},
		{"two-byte runes", "SUMMARY:" + strings.Repeat("é", 100)},
		{"three-byte runes", "SUMMARY:" + strings.Repeat("—", 100)},
		{"four-byte runes", "SUMMARY:" + strings.Repeat("🩺", 100)},
		{"mixed", "SUMMARY:On call: Dr Zoë Ångström-Łukasiewicz — Cardiología pediátrica 🫀 " + strings.Repeat("x€", 40)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := foldLine(tc.in)
			if !strings.HasSuffix(got, "\r\n") {
				t.Fatalf("no CRLF at end: %q", got)
			}
			lines := strings.Split(strings.TrimSuffix(got, "\r\n"), "\r\n")
			for i, l := range lines {
				if len(l) > 75 {
					t.Errorf("line %d has %d octets", i, len(l))
				}
				if !utf8.ValidString(l) {
					t.Errorf("line %d splits a UTF-8 sequence: %q", i, l)
				}
				if i > 0 && !strings.HasPrefix(l, " ") {
					t.Errorf("continuation line %d does not start with a space", i)
				}
				if i < len(lines)-1 && len(l) < 72 {
					t.Errorf("line %d folded early at %d octets", i, len(l))
				}
			}
			if unfolded := strings.ReplaceAll(strings.TrimSuffix(got, "\r\n"), "\r\n ", ""); unfolded != tc.in {
				t.Errorf("unfolding does not give the input back:\n%q\n%q", unfolded, tc.in)
			}
			if len(tc.in) <= 75 && len(lines) != 1 {
				t.Errorf("short line folded")
			}
		})
	}
}

func sampleCalendar() ICalendar {
	start := time.Date(2026, 3, 7, 19, 0, 0, 0, time.UTC)
	return ICalendar{
		ScheduleID: uuid.MustParse("6f1c1ad2-3b7e-4f5e-9d3a-0c1c2f3e4d5a"),
		Name:       "Cardiology; nights, weekends \\ on-call\nteam — Zoë's ward",
		TimeZone:   "America/Chicago",
		Shifts: []Shift{
			{UserID: u1, Start: start, End: start.Add(12 * time.Hour)},
			{UserID: u2, Start: start.Add(12 * time.Hour), End: start.Add(24*time.Hour + 500*time.Millisecond)},
			{UserID: u3, Start: start.Add(24 * time.Hour), End: start.Add(24*time.Hour + 300*time.Millisecond)}, // < 1s: left out
			{UserID: u4, Start: start.Add(48 * time.Hour), End: start.Add(50 * time.Hour)},
		},
		UserName: func(id uuid.UUID) string {
			return map[uuid.UUID]string{
				u1: "Dr Ångström, Zoë",
				u2: "Dr " + strings.Repeat("Łukasiewicz-", 8) + "🩺",
				u4: "",
			}[id]
		},
		Stamp: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
	}
}

func TestWriteICalendar(t *testing.T) {
	cal := sampleCalendar()
	var buf bytes.Buffer
	if err := WriteICalendar(&buf, cal); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if !strings.HasPrefix(out, "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//callroom//oncall//EN\r\n") {
		t.Errorf("bad header:\n%s", out)
	}
	if !strings.HasSuffix(out, "END:VEVENT\r\nEND:VCALENDAR\r\n") {
		t.Errorf("bad trailer:\n%s", out)
	}
	if strings.Contains(strings.ReplaceAll(out, "\r\n", ""), "\n") || strings.Contains(strings.ReplaceAll(out, "\r\n", ""), "\r") {
		t.Errorf("bare LF or CR in output")
	}
	for i, l := range strings.Split(out, "\r\n") {
		if len(l) > 75 {
			t.Errorf("line %d has %d octets: %q", i, len(l), l)
		}
	}
	unfolded := strings.ReplaceAll(out, "\r\n ", "")
	for _, want := range []string{
		"X-WR-CALNAME:Cardiology\\; nights\\, weekends \\\\ on-call\\nteam — Zoë's ward\r\n",
		"X-WR-TIMEZONE:America/Chicago\r\n",
		"DTSTART:20260307T190000Z\r\nDTEND:20260308T070000Z\r\n",
		"DTEND:20260308T190000Z\r\n", // sub-second end truncated
		"SUMMARY:On call: Dr Ångström\\, Zoë — Cardiology\\; nights\\, weekends \\\\ on-call\\nteam — Zoë's ward\r\n",
		"SUMMARY:On call: " + u4.String() + " — ",
		"DTSTAMP:20260301T120000Z\r\n",
	} {
		if !strings.Contains(unfolded, want) {
			t.Errorf("output lacks %q:\n%s", want, unfolded)
		}
	}
	if n := strings.Count(out, "BEGIN:VEVENT"); n != 3 {
		t.Errorf("%d events, want 3 (the sub-second shift left out)", n)
	}

	// UIDs are stable and distinct.
	var again bytes.Buffer
	cal.Stamp = cal.Stamp.Add(time.Hour)
	cal.Shifts[0].End = cal.Shifts[0].End.Add(time.Hour) // an extended shift keeps its UID
	if err := WriteICalendar(&again, cal); err != nil {
		t.Fatal(err)
	}
	uids := func(s string) []string {
		var us []string
		for _, l := range strings.Split(strings.ReplaceAll(s, "\r\n ", ""), "\r\n") {
			if strings.HasPrefix(l, "UID:") {
				us = append(us, l)
			}
		}
		return us
	}
	a, b := uids(out), uids(again.String())
	if len(a) != 3 || strings.Join(a, ",") != strings.Join(b, ",") {
		t.Errorf("UIDs not stable: %v vs %v", a, b)
	}
	if a[0] == a[1] || a[1] == a[2] || !strings.HasSuffix(a[0], "@callroom") {
		t.Errorf("bad UIDs: %v", a)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, os.ErrClosed }

func TestWriteICalendarReportsWriteErrors(t *testing.T) {
	if err := WriteICalendar(failWriter{}, sampleCalendar()); err == nil {
		t.Error("write error not reported")
	}
}

// pythonWithICalendar finds a python3 that can import the icalendar module:
// the one on PATH (possibly a pyenv shim) or the system one.
func pythonWithICalendar() (string, bool) {
	for _, p := range []string{"python3", "/usr/bin/python3"} {
		path, err := exec.LookPath(p)
		if err != nil {
			continue
		}
		if exec.Command(path, "-c", "import icalendar").Run() == nil {
			return path, true
		}
	}
	return "", false
}

const parseICS = `
import json, sys, icalendar
data = open(sys.argv[1], 'rb').read()
cal = icalendar.Calendar.from_ical(data)
out = {
    'prodid': str(cal.get('prodid')),
    'version': str(cal.get('version')),
    'calname': str(cal.get('x-wr-calname')),
    'events': [],
}
for ev in cal.walk('VEVENT'):
    out['events'].append({
        'uid': str(ev.get('uid')),
        'summary': str(ev.get('summary')),
        'start': ev.decoded('dtstart').isoformat(),
        'end': ev.decoded('dtend').isoformat(),
        'stamp': ev.decoded('dtstamp').isoformat(),
    })
json.dump(out, sys.stdout)
`

// TestICalendarParsesWithPython has an independent implementation, the
// Python icalendar library (Debian package python3-icalendar), read our
// output back, and checks that names with every escaped character and long
// multi-byte lines survive the round trip.
func TestICalendarParsesWithPython(t *testing.T) {
	py, ok := pythonWithICalendar()
	if !ok {
		t.Skip("no python3 with the icalendar module (apt-get install python3-icalendar); skipping the independent parse check")
	}
	cal := sampleCalendar()
	var buf bytes.Buffer
	if err := WriteICalendar(&buf, cal); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "oncall.ics")
	if err := os.WriteFile(file, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, "-c", parseICS, file)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	raw, err := cmd.Output()
	if err != nil {
		t.Fatalf("python icalendar could not parse our output: %v\n%s\n%s", err, stderr.String(), buf.String())
	}
	var got struct {
		ProdID, Version, Calname string
		Events                   []struct{ UID, Summary, Start, End, Stamp string }
	}
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatalf("%v: %s", err, raw)
	}
	if got.ProdID != ProductID || got.Version != "2.0" || got.Calname != cal.Name {
		t.Errorf("calendar properties = %q %q %q", got.ProdID, got.Version, got.Calname)
	}
	names := cal.UserName
	wantEvents := []struct{ summary, start, end string }{
		{"On call: " + names(u1) + " — " + cal.Name, "2026-03-07T19:00:00+00:00", "2026-03-08T07:00:00+00:00"},
		{"On call: " + names(u2) + " — " + cal.Name, "2026-03-08T07:00:00+00:00", "2026-03-08T19:00:00+00:00"},
		{"On call: " + u4.String() + " — " + cal.Name, "2026-03-09T19:00:00+00:00", "2026-03-09T21:00:00+00:00"},
	}
	if len(got.Events) != len(wantEvents) {
		t.Fatalf("python saw %d events, want %d: %+v", len(got.Events), len(wantEvents), got.Events)
	}
	for i, w := range wantEvents {
		e := got.Events[i]
		if e.Summary != w.summary || e.Start != w.start || e.End != w.end || e.Stamp != "2026-03-01T12:00:00+00:00" {
			t.Errorf("event %d = %+v\nwant %+v", i, e, w)
		}
		if !strings.HasSuffix(e.UID, "@callroom") {
			t.Errorf("event %d UID %q", i, e.UID)
		}
	}
}

// TestICalendarUIDsUnique: a user's own feed mixes schedules, and the user
// may have two shifts starting at the same instant on two of them.
func TestICalendarUIDsUnique(t *testing.T) {
	start := time.Date(2026, 3, 7, 13, 0, 0, 0, time.UTC)
	cal := ICalendar{ScheduleID: u1, Name: "mine", Stamp: start, Shifts: []Shift{
		{UserID: u1, Start: start, End: start.Add(12 * time.Hour)},
		{UserID: u1, Start: start, End: start.Add(24 * time.Hour)},
		{UserID: u1, Start: start, End: start.Add(2 * time.Hour)},
	}}
	var buf bytes.Buffer
	if err := WriteICalendar(&buf, cal); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, l := range strings.Split(buf.String(), "\r\n") {
		if strings.HasPrefix(l, "UID:") {
			if seen[l] {
				t.Errorf("duplicate %s", l)
			}
			seen[l] = true
		}
	}
	if len(seen) != 3 {
		t.Errorf("%d UIDs, want 3", len(seen))
	}
}

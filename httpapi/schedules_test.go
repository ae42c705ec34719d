package httpapi_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/callroom/callroom/internal/apitest"
)

func names(t *testing.T, body map[string]any) []string {
	t.Helper()
	var out []string
	for _, u := range body["users"].([]any) {
		out = append(out, u.(map[string]any)["name"].(string))
	}
	sort.Strings(out)
	return out
}

// The foundation issue's acceptance scenario: user 1 always on; user 2 on
// 09:00-21:00; a replace override swaps user 2 for user 3 on days 2-6.
func TestOnCallAcceptanceScenario(t *testing.T) {
	t.Parallel()
	in := apitest.Start(t)
	sched := in.User("Sam Scheduler", "scheduler")
	nurse := in.User("Nina Nurse", "nurse")
	u1, u2, u3 := in.User("One", "physician"), in.User("Two", "physician"), in.User("Three", "physician")

	s := sched.Must(201, "POST", "/api/v1/schedules", map[string]any{"name": "Cardiology", "time_zone": "America/Chicago"})
	id := s["id"].(string)
	sched.Must(201, "POST", "/api/v1/schedules/"+id+"/rules", map[string]any{
		"user_id": u1.User.ID, "windows": []any{map[string]any{"start": "00:00", "end": "00:00"}}})
	sched.Must(201, "POST", "/api/v1/schedules/"+id+"/rules", map[string]any{
		"user_id": u2.User.ID, "windows": []any{map[string]any{"start": "09:00", "end": "21:00"}}})
	chicago, _ := time.LoadLocation("America/Chicago")
	day := func(d, hour int) time.Time { return time.Date(2026, 6, d, hour, 0, 0, 0, chicago) }
	sched.Must(201, "POST", "/api/v1/schedules/"+id+"/overrides", map[string]any{
		"kind": "replace", "remove_user_id": u2.User.ID, "add_user_id": u3.User.ID,
		"start": day(2, 0), "end": day(7, 0)})

	for _, tc := range []struct {
		at   time.Time
		want string
	}{
		{day(1, 0), "One"}, {day(1, 9), "One,Two"}, {day(1, 21), "One"},
		{day(3, 0), "One"}, {day(3, 9), "One,Three"}, {day(3, 21), "One"},
		{day(8, 0), "One"}, {day(8, 9), "One,Two"}, {day(8, 21), "One"},
		{day(1, 9).Add(-time.Second), "One"}, {day(1, 21).Add(-time.Second), "One,Two"},
	} {
		// Everyone may ask who is on call.
		got := nurse.Must(200, "GET", "/api/v1/schedules/"+id+"/on-call?at="+url.QueryEscape(tc.at.Format(time.RFC3339)), nil)
		if g := strings.Join(names(t, got), ","); g != tc.want {
			t.Errorf("on call at %s = %s, want %s", tc.at, g, tc.want)
		}
	}

	// Shifts and gaps over the week agree with the answers above.
	q := "?from=" + url.QueryEscape(day(1, 0).Format(time.RFC3339)) + "&to=" + url.QueryEscape(day(8, 0).Format(time.RFC3339))
	shifts := nurse.Must(200, "GET", "/api/v1/schedules/"+id+"/shifts"+q, nil)["shifts"].([]any)
	var threes int
	for _, sh := range shifts {
		if sh.(map[string]any)["user_id"] == u3.User.ID.String() {
			threes++
		}
	}
	if threes != 5 {
		t.Errorf("user 3 has %d shifts over days 2-6, want 5", threes)
	}
	if gaps := nurse.Must(200, "GET", "/api/v1/schedules/"+id+"/gaps"+q, nil)["gaps"].([]any); len(gaps) != 0 {
		t.Errorf("gaps = %v, want none (user 1 is always on)", gaps)
	}
}

func TestScheduleBadInputWritesNothing(t *testing.T) {
	t.Parallel()
	in := apitest.Start(t)
	sched := in.User("Sam Scheduler", "scheduler")
	doc := in.User("Doc", "physician")
	s := sched.Must(201, "POST", "/api/v1/schedules", map[string]any{"name": "ICU", "time_zone": "Europe/Berlin"})
	id := s["id"].(string)
	base := "/api/v1/schedules/" + id
	start := time.Date(2026, 3, 1, 7, 0, 0, 0, time.UTC)
	sched.Must(201, "POST", base+"/overrides", map[string]any{"kind": "remove", "remove_user_id": doc.User.ID,
		"start": start, "end": start.Add(48 * time.Hour)})

	for _, tc := range []struct {
		name, method, path string
		body               any
		status             int
		field              string
	}{
		{"unknown zone", "POST", "/api/v1/schedules", map[string]any{"name": "X", "time_zone": "Mars/Olympus"}, 422, "time_zone"},
		{"no name", "POST", "/api/v1/schedules", map[string]any{"time_zone": "UTC"}, 422, "name"},
		{"duplicate name", "POST", "/api/v1/schedules", map[string]any{"name": "ICU", "time_zone": "UTC"}, 409, "name"},
		{"malformed json", "POST", "/api/v1/schedules", `{"name": "X",`, 400, ""},
		{"unknown field", "POST", "/api/v1/schedules", `{"name": "X", "time_zone": "UTC", "colour": "red"}`, 400, "colour"},
		{"wrong type", "POST", "/api/v1/schedules", `{"name": 7, "time_zone": "UTC"}`, 400, "name"},
		{"trailing data", "POST", "/api/v1/schedules", `{"name": "X", "time_zone": "UTC"} {}`, 400, ""},
		{"too large", "POST", "/api/v1/schedules", `{"name": "` + strings.Repeat("x", 1<<20) + `", "time_zone": "UTC"}`, 413, ""},
		{"shift length zero", "POST", base + "/rotations", map[string]any{"participants": []any{doc.User.ID},
			"shift_length": 0, "shift_unit": "days", "start": start}, 422, "shift_length"},
		{"shift length absurd", "POST", base + "/rotations", map[string]any{"participants": []any{doc.User.ID},
			"shift_length": 9000, "shift_unit": "hours", "start": start}, 422, "shift_length"},
		{"unknown unit", "POST", base + "/rotations", map[string]any{"participants": []any{doc.User.ID},
			"shift_length": 1, "shift_unit": "fortnights", "start": start}, 422, "shift_unit"},
		{"unknown participant", "POST", base + "/rotations", map[string]any{"participants": []any{"6f0c5a52-4a6e-4c43-9d0c-3d1ad3c0a111"},
			"shift_length": 1, "shift_unit": "days", "start": start}, 422, "participants"},
		{"rule with both targets", "POST", base + "/rules", map[string]any{"user_id": doc.User.ID,
			"rotation_id": doc.User.ID, "windows": []any{map[string]any{"start": "19:00", "end": "07:00"}}}, 422, ""},
		{"bad time of day", "POST", base + "/rules", `{"user_id": "` + doc.User.ID.String() + `", "windows": [{"start": "25:00", "end": "07:00"}]}`, 400, ""},
		{"end before start", "POST", base + "/overrides", map[string]any{"kind": "add", "add_user_id": doc.User.ID,
			"start": start, "end": start.Add(-time.Hour)}, 422, "end"},
		{"unknown override user", "POST", base + "/overrides", map[string]any{"kind": "add", "add_user_id": "6f0c5a52-4a6e-4c43-9d0c-3d1ad3c0a111",
			"start": start, "end": start.Add(time.Hour)}, 422, "add_user_id"},
		{"contradictory override", "POST", base + "/overrides", map[string]any{"kind": "add", "add_user_id": doc.User.ID,
			"start": start.Add(time.Hour), "end": start.Add(3 * time.Hour)}, 422, "start"},
		{"range over 366 days", "GET", base + "/shifts?from=2026-01-01T00:00:00Z&to=2027-01-03T00:00:00Z", nil, 422, "to"},
		{"range inverted", "GET", base + "/gaps?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", nil, 422, "to"},
		{"range missing", "GET", base + "/shifts?from=2026-01-01T00:00:00Z", nil, 422, "to"},
		{"bad at", "GET", base + "/on-call?at=yesterday", nil, 400, "at"},
		{"bad id", "GET", "/api/v1/schedules/not-a-uuid", nil, 400, "id"},
		{"unknown schedule", "GET", "/api/v1/schedules/6f0c5a52-4a6e-4c43-9d0c-3d1ad3c0a111", nil, 404, ""},
	} {
		r := sched.Do(tc.method, tc.path, tc.body)
		if r.Status != tc.status || (tc.field != "" && r.Field() != tc.field) {
			t.Errorf("%s: status %d field %q, want %d %q: %s", tc.name, r.Status, r.Field(), tc.status, tc.field, r.Body)
		}
		if r.Status >= 400 && r.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: content type %q", tc.name, r.Header.Get("Content-Type"))
		}
	}
	var schedules, rotations, rules, overrides int
	in.DB.Pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM schedules), (SELECT count(*) FROM rotations),
		(SELECT count(*) FROM schedule_rules), (SELECT count(*) FROM schedule_overrides)`).Scan(&schedules, &rotations, &rules, &overrides)
	if schedules != 1 || rotations != 0 || rules != 0 || overrides != 1 {
		t.Errorf("rejected input wrote rows: %d schedules, %d rotations, %d rules, %d overrides", schedules, rotations, rules, overrides)
	}
}

func TestSchedulePermissions(t *testing.T) {
	t.Parallel()
	in := apitest.Start(t)
	nurse := in.User("Nina Nurse", "nurse")
	admin := in.User("Avery Admin", "admin")
	if r := in.Anonymous().Do("GET", "/api/v1/schedules", nil); r.Status != 401 || r.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("anonymous: %d", r.Status)
	}
	bad := *nurse
	bad.Token = "crt_forged"
	if r := bad.Do("GET", "/api/v1/schedules", nil); r.Status != 401 {
		t.Errorf("forged token: %d", r.Status)
	}
	if r := nurse.Do("POST", "/api/v1/schedules", map[string]any{"name": "X", "time_zone": "UTC"}); r.Status != 403 {
		t.Errorf("nurse creating a schedule: %d", r.Status)
	}
	var denied int
	in.DB.Pool.QueryRow(context.Background(), `SELECT count(*) FROM audit_events WHERE action = 'access.denied' AND actor_id = $1`, nurse.User.ID).Scan(&denied)
	if denied != 1 {
		t.Errorf("denied attempts audited: %d, want 1", denied)
	}
	s := admin.Must(201, "POST", "/api/v1/schedules", map[string]any{"name": "X", "time_zone": "UTC"})
	nurse.Must(200, "GET", "/api/v1/schedules/"+s["id"].(string), nil)
	if r := nurse.Do("DELETE", "/api/v1/schedules/"+s["id"].(string), nil); r.Status != 403 {
		t.Errorf("nurse deleting a schedule: %d", r.Status)
	}
	admin.Must(204, "DELETE", "/api/v1/schedules/"+s["id"].(string), nil)
	var audited int
	in.DB.Pool.QueryRow(context.Background(), `SELECT count(*) FROM audit_events WHERE object_id = $1 AND action IN ('schedule.create','schedule.delete') AND actor_id = $2`,
		s["id"], admin.User.ID).Scan(&audited)
	if audited != 2 {
		t.Errorf("schedule create+delete audited %d times, want 2", audited)
	}
}

// TestCalendarFeed checks the feed at its secret URL with a real iCalendar
// parser (Debian's python3-icalendar), and that revoking it ends it.
func TestCalendarFeed(t *testing.T) {
	t.Parallel()
	in := apitest.Start(t)
	sched := in.User("Sam Scheduler", "scheduler")
	doc := in.User("Dr. Zoë O'Brien, MD; FACC", "physician")
	s := sched.Must(201, "POST", "/api/v1/schedules", map[string]any{"name": "Cardiology, nights", "time_zone": "America/Chicago"})
	id := s["id"].(string)
	sched.Must(201, "POST", "/api/v1/schedules/"+id+"/rules", map[string]any{
		"user_id": doc.User.ID, "windows": []any{map[string]any{"start": "19:00", "end": "07:00"}}})
	feed := sched.Must(201, "POST", "/api/v1/schedules/"+id+"/feeds", nil)
	userFeed := doc.Must(201, "POST", "/api/v1/users/"+doc.User.ID.String()+"/feeds", nil)

	for _, f := range []map[string]any{feed, userFeed} {
		u := f["url"].(string)
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/calendar") {
			t.Fatalf("feed: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		events := parseICalendar(t, body)
		// 30 days back, 180 ahead: one night shift per night.
		if events < 200 || events > 215 {
			t.Errorf("feed has %d events, want ~210 nightly shifts", events)
		}
	}
	sched.Must(204, "DELETE", "/api/v1/feeds/"+feed["id"].(string), nil)
	resp, err := http.Get(feed["url"].(string))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("revoked feed answers %d", resp.StatusCode)
	}
}

// parseICalendar parses body with python3-icalendar and returns the number
// of VEVENTs, failing if the parser rejects it or any event lacks a field.
func parseICalendar(t *testing.T, body []byte) int {
	t.Helper()
	const script = `
import sys, icalendar
cal = icalendar.Calendar.from_ical(sys.stdin.buffer.read())
n = 0
for ev in cal.walk("VEVENT"):
    for k in ("UID", "DTSTART", "DTEND", "DTSTAMP", "SUMMARY"):
        if k not in ev: raise SystemExit("event without " + k)
    if ev.decoded("DTEND") <= ev.decoded("DTSTART"): raise SystemExit("event ends before it starts")
    n += 1
print(n)
`
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import icalendar").Run(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("python3-icalendar is missing (scripts/test-deps.sh installs it): %v", err)
		}
		t.Skipf("python3-icalendar not installed (run scripts/test-deps.sh): %v", err)
	}
	cmd := exec.Command(py, "-c", script)
	cmd.Stdin = strings.NewReader(string(body))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("icalendar rejected the feed: %v: %s", err, out)
	}
	var n int
	fmt.Sscan(string(out), &n)
	return n
}

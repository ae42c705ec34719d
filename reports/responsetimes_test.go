package reports_test

import (
	"context"
	"encoding/csv"
	"strings"
	"testing"
	"time"

	"github.com/callroom/callroom/internal/apitest"
)

// fixture pages through a real instance, then moves each page's times to
// known instants (the rows and timelines are the real ones the escalation
// wrote; only the clock readings are set), so the report's figures can be
// checked exactly.
type fixture struct {
	t                  *testing.T
	in                 *apitest.Instance
	admin, nurse, a, b *apitest.Client
	cardio, neuro      string
	base               time.Time
	n                  int
}

func newFixture(t *testing.T) *fixture {
	in := apitest.Start(t)
	f := &fixture{t: t, in: in, admin: in.User("Avery Admin", "admin"), nurse: in.User("Nina Nurse", "nurse"),
		a: in.User("Dr Ada", "physician"), b: in.User("Dr Bo", "physician")}
	f.base = time.Now().UTC().Truncate(time.Hour).Add(-10 * 24 * time.Hour)
	empty := f.admin.Must(201, "POST", "/api/v1/schedules", map[string]any{"name": "Night neuro", "time_zone": "America/Chicago"})
	cp := f.admin.Must(201, "POST", "/api/v1/escalation-policies", map[string]any{"name": "Cardio", "steps": []any{
		map[string]any{"delay_seconds": 600, "targets": []any{map[string]any{"user_id": f.a.User.ID}}},
		map[string]any{"delay_seconds": 600, "targets": []any{map[string]any{"user_id": f.b.User.ID}}},
	}})
	np := f.admin.Must(201, "POST", "/api/v1/escalation-policies", map[string]any{"name": "Neuro", "steps": []any{
		map[string]any{"delay_seconds": 600, "targets": []any{map[string]any{"schedule_id": empty["id"]}}},
		map[string]any{"delay_seconds": 600, "targets": []any{map[string]any{"user_id": f.b.User.ID}}},
	}})
	f.cardio = f.admin.Must(201, "POST", "/api/v1/services", map[string]any{"name": "Cardiology", "escalation_policy_id": cp["id"]})["id"].(string)
	f.neuro = f.admin.Must(201, "POST", "/api/v1/services", map[string]any{"name": "Neurology", "escalation_policy_id": np["id"]})["id"].(string)
	return f
}

// send pages and waits until its current step's notifications went out.
func (f *fixture) send(body map[string]any) string {
	f.t.Helper()
	body["summary"] = "Zorblax"
	body["patient_ref"] = "Patient/mrn-5550199"
	id := f.nurse.Must(201, "POST", "/api/v1/pages", body)["id"].(string)
	f.settle(id, 1)
	return id
}

// settle waits until the page has at least n notifications, none queued.
func (f *fixture) settle(id string, n int) {
	f.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		d := f.nurse.Must(200, "GET", "/api/v1/pages/"+id, nil)
		ns, _ := d["notifications"].([]any)
		queued := 0
		for _, x := range ns {
			if x.(map[string]any)["status"] == "queued" {
				queued++
			}
		}
		if len(ns) >= n && queued == 0 {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("page %s: notifications %v", id, ns)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// at moves page id to base + its own hour: created then, acknowledged ack
// later (if acknowledged), each person's notifications reached them when
// given in reached (default: when the page was created).
func (f *fixture) at(id string, ack time.Duration, reached map[*apitest.Client]time.Duration) {
	f.t.Helper()
	f.n++
	created := f.base.Add(time.Duration(f.n) * time.Hour)
	f.shift(id, created, ack, reached)
}

func (f *fixture) shift(id string, created time.Time, ack time.Duration, reached map[*apitest.Client]time.Duration) {
	f.t.Helper()
	ctx := context.Background()
	db := f.in.DB.Pool
	if _, err := db.Exec(ctx, `UPDATE pages SET created_at = $2, acknowledged_at = CASE WHEN acknowledged_at IS NULL THEN NULL ELSE $3::timestamptz END WHERE id = $1`,
		id, created, created.Add(ack)); err != nil {
		f.t.Fatal(err)
	}
	if _, err := db.Exec(ctx, `UPDATE notifications SET created_at = $2 WHERE page_id = $1`, id, created); err != nil {
		f.t.Fatal(err)
	}
	for c, d := range reached {
		if _, err := db.Exec(ctx, `UPDATE notifications SET created_at = $3 WHERE page_id = $1 AND user_id = $2`, id, c.User.ID, created.Add(d)); err != nil {
			f.t.Fatal(err)
		}
	}
}

func num(v any) float64 {
	f, _ := v.(float64)
	return f
}

func TestResponseTimesReport(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ack := func(c *apitest.Client, id string) { c.Must(200, "POST", "/api/v1/pages/"+id+"/acknowledge", nil) }

	// Cardiology, stat: A answers after 30 s and 90 s; the third goes on to B,
	// who answers 100 s after reached (300 s after the page).
	c1 := f.send(map[string]any{"service_id": f.cardio, "priority": "stat"})
	ack(f.a, c1)
	f.at(c1, 30*time.Second, nil)
	c2 := f.send(map[string]any{"service_id": f.cardio, "priority": "stat"})
	ack(f.a, c2)
	f.at(c2, 90*time.Second, nil)
	c3 := f.send(map[string]any{"service_id": f.cardio, "priority": "stat"})
	f.admin.Must(200, "POST", "/api/v1/pages/"+c3+"/escalate", nil)
	f.settle(c3, 2)
	ack(f.b, c3)
	f.at(c3, 300*time.Second, map[*apitest.Client]time.Duration{f.b: 200 * time.Second})
	// Cardiology, urgent: escalated past the last step, never answered.
	c4 := f.send(map[string]any{"service_id": f.cardio, "priority": "urgent"})
	f.admin.Must(200, "POST", "/api/v1/pages/"+c4+"/escalate", nil)
	f.settle(c4, 2)
	if p := f.admin.Must(200, "POST", "/api/v1/pages/"+c4+"/escalate", nil); p["status"] != "unanswered" {
		t.Fatalf("c4: %v", p["status"])
	}
	f.at(c4, 0, nil)
	// Neurology: the first step finds nobody on call, B answers in 60 s.
	n1 := f.send(map[string]any{"service_id": f.neuro, "priority": "urgent"})
	ack(f.b, n1)
	f.at(n1, 60*time.Second, nil)
	// A page straight to A, answered in 10 s.
	d1 := f.send(map[string]any{"user_id": f.a.User.ID, "priority": "routine"})
	ack(f.a, d1)
	f.at(d1, 10*time.Second, nil)
	// Before the period: not counted.
	old := f.send(map[string]any{"service_id": f.cardio, "priority": "stat"})
	ack(f.a, old)
	f.shift(old, f.base.Add(-30*24*time.Hour), time.Hour, nil)

	from, to := f.base.Format(time.RFC3339), f.base.Add(24*time.Hour).Format(time.RFC3339)
	auditor := f.in.User("Quinn Quality", "auditor")
	rep := auditor.Must(200, "GET", "/api/v1/reports/response-times?from="+from+"&to="+to, nil)

	type row struct {
		service, priority                  string
		sent, acked, escalated, unanswered float64
		median, p90                        any
	}
	want := []row{
		{"Cardiology", "stat", 3, 3, 1, 0, 90.0, 258.0},
		{"Cardiology", "urgent", 1, 0, 1, 1, nil, nil},
		{"Neurology", "urgent", 1, 1, 1, 0, 60.0, 60.0},
		{"(direct)", "routine", 1, 1, 0, 0, 10.0, 10.0},
	}
	services := rep["services"].([]any)
	if len(services) != len(want) {
		t.Fatalf("services: %v", services)
	}
	for i, w := range want {
		s := services[i].(map[string]any)
		got := row{s["service_name"].(string), s["priority"].(string), num(s["sent"]), num(s["acknowledged"]), num(s["escalated"]),
			num(s["unanswered"]), s["ack_median_seconds"], s["ack_p90_seconds"]}
		if got != w {
			t.Errorf("row %d: got %+v, want %+v", i, got, w)
		}
	}
	people := map[string]map[string]any{}
	for _, p := range rep["people"].([]any) {
		people[p.(map[string]any)["name"].(string)] = p.(map[string]any)
	}
	// A: c1, c2, c3, c4, d1 reached them; answered c1, c2, d1 in 30, 90, 10 s.
	// B: c3 (100 s after reached), c4, n1 (60 s).
	for name, w := range map[string][3]float64{"Dr Ada": {5, 3, 30}, "Dr Bo": {3, 2, 80}} {
		p := people[name]
		if got := [3]float64{num(p["received"]), num(p["acknowledged"]), num(p["median_response_seconds"])}; got != w {
			t.Errorf("%s: got %v, want %v", name, got, w)
		}
	}
	if len(people) != 2 {
		t.Errorf("people: %v", rep["people"])
	}
	gaps := rep["coverage_gaps"].([]any)
	if len(gaps) != 1 {
		t.Fatalf("gaps: %v", gaps)
	}
	g := gaps[0].(map[string]any)
	if g["service_name"] != "Neurology" || num(g["step"]) != 0 || num(g["pages"]) != 1 ||
		!strings.Contains(g["details"].([]any)[0].(string), "Night neuro") {
		t.Errorf("gap: %v", g)
	}

	// One service only.
	rep = auditor.Must(200, "GET", "/api/v1/reports/response-times?from="+from+"&to="+to+"&service="+f.neuro, nil)
	if s := rep["services"].([]any); len(s) != 1 || s[0].(map[string]any)["service_name"] != "Neurology" {
		t.Errorf("neurology only: %v", s)
	}
	if p := rep["people"].([]any); len(p) != 1 || p[0].(map[string]any)["name"] != "Dr Bo" {
		t.Errorf("neurology people: %v", p)
	}

	// A period longer than reports.ExactPeriod (32 days, still without the
	// old page) takes its percentiles from the histogram: the same counts,
	// and each percentile within one bucket (5.2 %) of the value at rank
	// ceil(1 + p·(n-1)), which percentile_cont would interpolate below.
	long := auditor.Must(200, "GET", "/api/v1/reports/response-times?from="+f.base.Add(-29*24*time.Hour).Format(time.RFC3339)+
		"&to="+f.base.Add(3*24*time.Hour).Format(time.RFC3339), nil)
	near := func(got any, want float64) bool {
		g, ok := got.(float64)
		return ok && g >= want/1.052 && g <= want*1.052
	}
	longServices := long["services"].([]any)
	if len(longServices) != len(want) {
		t.Fatalf("long period services: %v", longServices)
	}
	for i, w := range want {
		s := longServices[i].(map[string]any)
		got := [6]any{s["service_name"], s["priority"], num(s["sent"]), num(s["acknowledged"]), num(s["escalated"]), num(s["unanswered"])}
		if got != [6]any{w.service, w.priority, w.sent, w.acked, w.escalated, w.unanswered} {
			t.Errorf("long period row %d: got %v, want %+v", i, got, w)
		}
	}
	if s := longServices[0].(map[string]any); !near(s["ack_median_seconds"], 90) || !near(s["ack_p90_seconds"], 300) {
		t.Errorf("long period Cardiology stat: median %v, p90 %v", s["ack_median_seconds"], s["ack_p90_seconds"])
	}
	if s := longServices[1].(map[string]any); s["ack_median_seconds"] != nil || s["ack_p90_seconds"] != nil {
		t.Errorf("long period Cardiology urgent: %v", s)
	}
	for _, p := range long["people"].([]any) {
		p := p.(map[string]any)
		w := map[string][3]float64{"Dr Ada": {5, 3, 30}, "Dr Bo": {3, 2, 100}}[p["name"].(string)]
		if num(p["received"]) != w[0] || num(p["acknowledged"]) != w[1] || !near(p["median_response_seconds"], w[2]) {
			t.Errorf("long period %v: want %v", p, w)
		}
	}

	// The narrow rows the triggers kept (through the real escalation,
	// acknowledgements and the clock shifts above) equal a recomputation from
	// the page timelines.
	for name, q := range map[string]string{
		"page_outcomes": `WITH want AS (
			SELECT p.id AS page_id, p.created_at, p.service_id, p.priority,
				extract(epoch FROM p.acknowledged_at - p.created_at)::float8 AS ack_seconds, p.step > 0 OR p.round > 0 AS escalated,
				p.status = 'unanswered' OR EXISTS (SELECT 1 FROM page_events e WHERE e.page_id = p.id AND e.kind = 'unanswered') AS unanswered
			FROM pages p)
			SELECT count(*) FROM ((TABLE want EXCEPT TABLE page_outcomes) UNION ALL (TABLE page_outcomes EXCEPT TABLE want)) d`,
		"page_recipients": `WITH want AS (
			SELECT p.id AS page_id, n.user_id, p.created_at, p.service_id, min(n.created_at) AS first_at,
				CASE WHEN p.acknowledged_by = n.user_id
					THEN extract(epoch FROM greatest(p.acknowledged_at - min(n.created_at), interval '0'))::float8 END AS response_seconds
			FROM notifications n JOIN pages p ON p.id = n.page_id WHERE n.status <> 'cancelled' GROUP BY p.id, n.user_id)
			SELECT count(*) FROM ((TABLE want EXCEPT TABLE page_recipients) UNION ALL (TABLE page_recipients EXCEPT TABLE want)) d`,
	} {
		var drift, rows int
		if err := f.in.DB.Pool.QueryRow(context.Background(), q).Scan(&drift); err != nil {
			t.Fatal(err)
		}
		if err := f.in.DB.Pool.QueryRow(context.Background(), `SELECT count(*) FROM `+name).Scan(&rows); err != nil {
			t.Fatal(err)
		}
		if drift != 0 || rows == 0 {
			t.Errorf("%s: %d rows, %d differ from the timelines", name, rows, drift)
		}
	}

	// CSV, each part.
	r := auditor.Do("GET", "/api/v1/reports/response-times?format=csv&from="+from+"&to="+to, nil)
	recs, err := csv.NewReader(strings.NewReader(string(r.Body))).ReadAll()
	if err != nil || r.Status != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/csv") {
		t.Fatalf("csv: %d %v %s", r.Status, err, r.Body)
	}
	if len(recs) != 5 || recs[1][1] != "Cardiology" || recs[1][7] != "90.0" || recs[1][8] != "258.0" || recs[2][7] != "" {
		t.Errorf("csv: %v", recs)
	}
	r = auditor.Do("GET", "/api/v1/reports/response-times?format=csv&part=people&from="+from+"&to="+to, nil)
	if !strings.Contains(string(r.Body), "Dr Bo,3,2,80.0") {
		t.Errorf("people csv: %s", r.Body)
	}
	r = auditor.Do("GET", "/api/v1/reports/response-times?format=svg&from="+from+"&to="+to, nil)
	if r.Status != 200 || r.Header.Get("Content-Type") != "image/svg+xml" || !strings.Contains(string(r.Body), "Neurology · urgent") {
		t.Errorf("svg: %d %s", r.Status, r.Body)
	}
	// Nothing about patients, in any form.
	for _, path := range []string{"", "&format=csv", "&format=csv&part=people", "&format=csv&part=gaps", "&format=svg"} {
		body := string(auditor.Do("GET", "/api/v1/reports/response-times?from="+from+"&to="+to+path, nil).Body)
		if strings.Contains(body, "Zorblax") || strings.Contains(body, "mrn-5550199") {
			t.Errorf("%s: the report holds PHI", path)
		}
	}
}

func TestResponseTimesReportInput(t *testing.T) {
	t.Parallel()
	in := apitest.Start(t)
	admin, nurse := in.User("Avery Admin", "admin"), in.User("Nina Nurse", "nurse")
	for _, c := range []struct {
		query  string
		status int
		field  string
	}{
		{"from=yesterday", 400, "from"},
		{"to=2026-01-01", 400, "to"},
		{"service=cardiology", 400, "service"},
		{"from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z", 422, "to"},
		{"from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z", 422, "to"},
		{"format=xlsx", 422, "format"},
		{"format=csv&part=everything", 422, "part"},
	} {
		r := admin.Do("GET", "/api/v1/reports/response-times?"+c.query, nil)
		if r.Status != c.status || r.Field() != c.field {
			t.Errorf("%s: %d %q, want %d %q", c.query, r.Status, r.Field(), c.status, c.field)
		}
	}
	if r := nurse.Do("GET", "/api/v1/reports/response-times", nil); r.Status != 403 {
		t.Errorf("a nurse: %d", r.Status)
	}
	rep := admin.Must(200, "GET", "/api/v1/reports/response-times", nil)
	if s, ok := rep["services"].([]any); !ok || len(s) != 0 {
		t.Errorf("empty report: %v", rep)
	}
}

package web_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/callroom/callroom/internal/apitest"
)

// TestResponseTimesReport: Nephrology is paged twice STAT (both
// acknowledged) and once routine (left open), and a night service whose
// schedule is empty is paged once. The administrator opens Response times
// and sees each service and priority with its counts, Dr. Renal's share,
// the coverage gap, the chart the API draws (as an image: no CSP
// exception), and CSV links that download the same report; an auditor,
// who may not administer, sees it too.
func TestResponseTimesReport(t *testing.T) {
	t.Parallel()
	in := apitest.Start(t)
	browser := startBrowser(t)
	admin := newPerson(t, in, browser, "Ada Admin", 1280, 1000, "admin")
	auditor := newPerson(t, in, browser, "Audrey Auditor", 1024, 800, "auditor")
	doc := in.User("Dr. Rita Renal", "physician")
	nurse := in.User("Nora Nurse", "nurse")

	pol := admin.api.Must(http.StatusCreated, "POST", "/api/v1/escalation-policies", map[string]any{
		"name": "Nephrology", "repeat": 0,
		"steps": []map[string]any{{"delay_seconds": 300, "targets": []map[string]any{{"user_id": doc.User.ID}}}},
	})
	svc := admin.api.Must(http.StatusCreated, "POST", "/api/v1/services", map[string]any{"name": "Nephrology", "escalation_policy_id": pol["id"]})
	night := admin.api.Must(http.StatusCreated, "POST", "/api/v1/schedules", map[string]any{"name": "Night renal", "time_zone": "America/Chicago"})
	nightPol := admin.api.Must(http.StatusCreated, "POST", "/api/v1/escalation-policies", map[string]any{
		"name": "Night nephrology", "repeat": 0,
		"steps": []map[string]any{{"delay_seconds": 300, "targets": []map[string]any{{"schedule_id": night["id"]}}}},
	})
	nightSvc := admin.api.Must(http.StatusCreated, "POST", "/api/v1/services", map[string]any{"name": "Night nephrology", "escalation_policy_id": nightPol["id"]})

	for i, prio := range []string{"stat", "stat", "routine"} {
		p := nurse.Must(http.StatusCreated, "POST", "/api/v1/pages", map[string]any{
			"service_id": svc["id"], "priority": prio, "summary": fmt.Sprintf("Potassium 6.%d, 3 North room %d", i+1, i+1)})
		waitTimeline(t, admin.api, p["id"].(string), "notified")
		if prio == "stat" {
			doc.Must(http.StatusOK, "POST", "/api/v1/pages/"+p["id"].(string)+"/acknowledge", nil)
		}
	}
	gap := nurse.Must(http.StatusCreated, "POST", "/api/v1/pages", map[string]any{
		"service_id": nightSvc["id"], "priority": "urgent", "summary": "Dialysis line question, 3 North room 9"})
	waitTimeline(t, admin.api, gap["id"].(string), "no_one_on_call")

	admin.signIn(in.URL)
	admin.do("open the report", chromedp.Navigate(in.URL+"/#reports"))
	row := func(svcID, prio string) string {
		return fmt.Sprintf(`[...document.querySelectorAll("#rt-services tbody tr")].find(tr => tr.dataset.service === %q && tr.dataset.priority === %q)`, svcID, prio)
	}
	admin.waitFor("service rows", row(svc["id"].(string), "stat")+` && `+row(nightSvc["id"].(string), "urgent"))
	cells := func(p *person, tr string) []string {
		return eval[[]string](p, `[...`+tr+`.cells].map(c => c.textContent)`)
	}
	// Service, priority, sent, acknowledged, escalated, unanswered, median, p90.
	stat := cells(admin, row(svc["id"].(string), "stat"))
	if want := []string{"Nephrology", "stat", "2", "2", "0", "0"}; len(stat) != 8 || strings.Join(stat[:6], "|") != strings.Join(want, "|") ||
		!strings.HasSuffix(stat[6], " s") || !strings.HasSuffix(stat[7], " s") {
		t.Errorf("Nephrology STAT row = %q, want %q and two times", stat, want)
	}
	if got := strings.Join(cells(admin, row(svc["id"].(string), "routine"))[:4], "|"); got != "Nephrology|routine|1|0" {
		t.Errorf("Nephrology routine row starts %q, want sent 1, acknowledged 0", got)
	}
	if got := strings.Join(cells(admin, `document.querySelector("#rt-people tbody tr")`)[:3], "|"); got != "Dr. Rita Renal|3|2" {
		t.Errorf("people row starts %q, want Dr. Renal with 3 received, 2 acknowledged", got)
	}
	if got := cells(admin, `document.querySelector("#rt-gaps tbody tr")`); len(got) != 4 || got[0] != "Night nephrology" || got[1] != "1" || got[2] != "1" || !strings.Contains(got[3], "Night renal") {
		t.Errorf("coverage gap row = %q, want Night nephrology, step 1, 1 page, naming the Night renal schedule", got)
	}

	// The chart is the API's SVG, one 36-pixel row per service and priority
	// under a 40-pixel title, decoded as an image from a blob: URL.
	admin.waitFor("chart drawn", `(() => { const i = document.querySelector("#rt-chart");
		return !i.hidden && i.src.startsWith("blob:") && i.complete && i.naturalHeight === 40 + 36 * 3; })()`)

	// The CSV links download the same report with the session.
	csv := eval[string](admin, `fetch(document.querySelector("#rt-csv-services").href).then(async r => r.headers.get("Content-Type") + "\n" + await r.text())`, chromedp.EvalAwaitPromise)
	if !strings.HasPrefix(csv, "text/csv") || !strings.Contains(csv, "service_id,service,priority,sent") || !strings.Contains(csv, ",Nephrology,stat,2,2,0,0,") {
		t.Errorf("services CSV = %q", csv)
	}
	people := eval[string](admin, `fetch(document.querySelector("#rt-csv-people").href).then(r => r.text())`, chromedp.EvalAwaitPromise)
	if !strings.Contains(people, ",Dr. Rita Renal,3,2,") {
		t.Errorf("people CSV = %q", people)
	}
	if href := eval[string](admin, `document.querySelector("#rt-csv-gaps").getAttribute("href")`); !strings.Contains(href, "part=gaps") || !strings.Contains(href, "format=csv") {
		t.Errorf("gaps CSV link = %q", href)
	}
	admin.checkScreen()
	admin.screenshot("response-times")

	// A shorter period and one service: the night service drops out.
	admin.do("one service", choose("#rt-period", "7"), choose("#rt-service", svc["id"].(string)))
	admin.waitFor("filtered", `document.querySelectorAll("#rt-services tbody tr").length === 2 && `+row(svc["id"].(string), "routine")+
		` && document.querySelector("#rt-gaps tbody tr.empty") && document.querySelector("#rt-csv-services").href.includes("service=")`)
	admin.waitFor("chart redrawn", `(() => { const i = document.querySelector("#rt-chart"); return i.complete && i.naturalHeight === 40 + 36 * 2; })()`)
	admin.checkScreen()

	// An auditor has the screen (and no Admin).
	auditor.signIn(in.URL)
	if !eval[bool](auditor, `document.querySelector('nav a[data-screen=admin]').hidden && !document.querySelector('nav a[data-screen=reports]').hidden`) {
		t.Error("an auditor should see Response times and not Admin in the navigation")
	}
	auditor.do("open the report", chromedp.Click(chromedp.CSS(`nav a[data-screen=reports]`)))
	auditor.waitFor("auditor sees the rows", row(svc["id"].(string), "stat"))
	auditor.checkScreen()
}

// waitTimeline waits until page id's timeline has an entry of kind.
func waitTimeline(t *testing.T, c *apitest.Client, id, kind string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		p := c.Must(http.StatusOK, "GET", "/api/v1/pages/"+id, nil)
		for _, e := range p["timeline"].([]any) {
			if e.(map[string]any)["kind"] == kind {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("page %s: no %q on its timeline after 15 s: %v", id, kind, p["timeline"])
		}
		time.Sleep(100 * time.Millisecond)
	}
}

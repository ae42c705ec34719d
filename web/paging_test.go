package web_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/callroom/callroom/internal/apitest"
)

// TestNurseSeesStatPageAcknowledgedLive: a nurse, on a workstation, pages
// Cardiology STAT, sees who is on call before sending, and watches the page
// acknowledged by the physician, who acknowledges it from a phone-sized
// window in a second browser context; nobody reloads.
func TestNurseSeesStatPageAcknowledgedLive(t *testing.T) {
	t.Parallel()
	in := apitest.Start(t)
	browser := startBrowser(t)
	nurse := newPerson(t, in, browser, "Nora Nurse", 1280, 900, "nurse")
	doc := newPerson(t, in, browser, "Dr. Pat Cardio", 360, 740, "physician")

	admin := in.User("Ada Admin", "admin")
	pol := admin.Must(http.StatusCreated, "POST", "/api/v1/escalation-policies", map[string]any{
		"name": "Cardiology", "repeat": 0,
		"steps": []map[string]any{{"delay_seconds": 300, "targets": []map[string]any{{"user_id": doc.id}}}},
	})
	svc := admin.Must(http.StatusCreated, "POST", "/api/v1/services", map[string]any{
		"name": "Cardiology", "escalation_policy_id": pol["id"],
	})

	// A page to someone else is not in the physician's inbox.
	other := in.User("Dr. Other", "physician")
	nurse.api.Must(http.StatusCreated, "POST", "/api/v1/pages", map[string]any{
		"user_id": other.User.ID, "priority": "routine", "summary": "Someone else's page"})

	nurse.signIn(in.URL)
	doc.signIn(in.URL)
	doc.do("open inbox", chromedp.Navigate(in.URL+"/#inbox"))
	doc.waitFor("inbox shown", `!document.querySelector("#inbox").hidden && document.querySelector("#open-pages li")`)

	// The console opens by default for someone who may send pages.
	nurse.waitFor("console shown", `!document.querySelector("#console").hidden && document.querySelector("#page-service").options.length > 1`)
	nurse.do("choose Cardiology", choose("#page-service", svc["id"].(string)))
	nurse.waitFor("on call shown", fmt.Sprintf(`document.querySelector("#oncall-now").textContent.includes(%q)`, doc.name))
	nurse.do("write the page",
		chromedp.Click(chromedp.CSS(`input[name=priority][value=stat]`)),
		chromedp.SendKeys(chromedp.ID("page-summary"), "Chest pain, 4 West room 12, troponin rising"),
	)
	nurse.screenshot("paging-console")
	nurse.do("mark the window", chromedp.Evaluate[chromedp.Void](`window.notReloaded = true`))
	nurse.do("send", chromedp.Click(chromedp.ID("page-send")))
	nurse.waitFor("page open", `document.querySelector("#page-status").dataset.status === "open"`)
	// The in-app notification reaches the physician's open stream.
	nurse.waitFor("delivered shown", `[...document.querySelectorAll("#page-timeline li")].some(li => li.dataset.kind === "delivered" || li.dataset.kind === "notified")`)

	// The physician's inbox shows it without a reload, STAT badge first.
	doc.waitFor("page arrives", `[...document.querySelectorAll("#open-pages .page-item")].some(li => li.textContent.includes("troponin rising") && li.querySelector(".badge.stat"))`)
	if n := eval[int](doc, `document.querySelectorAll("#open-pages .page-item").length`); n != 1 {
		t.Errorf("the physician's inbox lists %d open pages, want only the one that notified them", n)
	}
	// Opening it tells the nurse it was read.
	doc.do("open details", chromedp.Evaluate[chromedp.Void](`document.querySelector("#open-pages .page-item button.details").click()`))
	doc.waitFor("details shown", `[...document.querySelectorAll("#open-pages .page-details li")].some(li => li.dataset.kind === "created")`)
	nurse.waitFor("read shown live", fmt.Sprintf(`[...document.querySelectorAll("#page-timeline li")].some(li => li.dataset.kind === "read" && li.textContent.includes(%q))`, doc.name))
	doc.screenshot("inbox-phone-page")
	doc.checkScreen()
	doc.do("acknowledge", chromedp.Evaluate[chromedp.Void](`document.querySelector("#open-pages .page-item button.ack").click()`))
	doc.waitFor("acknowledged on the phone", `document.querySelector("#notice").textContent === "Page acknowledged."`)

	nurse.waitFor("acknowledged live", fmt.Sprintf(
		`document.querySelector("#page-status").textContent === %q`, "Acknowledged by "+doc.name))
	nurse.waitFor("timeline says who", fmt.Sprintf(
		`[...document.querySelectorAll("#page-timeline li")].some(li => li.dataset.kind === "acknowledged" && li.textContent.includes(%q))`, doc.name))
	if !eval[bool](nurse, `window.notReloaded === true`) {
		t.Error("the nurse's window reloaded; the update should have arrived over the event stream")
	}
	if got := eval[string](nurse, `document.querySelector("#page-elapsed").textContent`); got == "" {
		t.Error("no elapsed time shown")
	}
	nurse.screenshot("paging-console-acknowledged")
	nurse.checkScreen()

	// Nothing the page said reached the logs.
	if logs := in.LogText(); strings.Contains(logs, "troponin") {
		t.Error("the page's summary appears in the logs")
	}
}

// TestConsoleShowsEscalation: unanswered, a page climbs to the policy's
// second step; the nurse's console shows whom it escalated to and who then
// acknowledged, and offers paging a person directly.
func TestConsoleShowsEscalation(t *testing.T) {
	t.Parallel()
	in := apitest.Start(t)
	browser := startBrowser(t)
	nurse := newPerson(t, in, browser, "Nico Nurse", 1024, 900, "nurse")
	first := newPerson(t, in, browser, "Dr. Fay First", 360, 740, "physician")
	second := newPerson(t, in, browser, "Dr. Sol Second", 360, 740, "physician")
	admin := in.User("Ada Admin", "admin")
	pol := admin.Must(http.StatusCreated, "POST", "/api/v1/escalation-policies", map[string]any{
		"name": "Hospitalist", "repeat": 0, "steps": []map[string]any{
			{"delay_seconds": 1, "targets": []map[string]any{{"user_id": first.id}}},
			{"delay_seconds": 300, "targets": []map[string]any{{"user_id": second.id}}},
		},
	})
	svc := admin.Must(http.StatusCreated, "POST", "/api/v1/services", map[string]any{"name": "Hospitalist", "escalation_policy_id": pol["id"]})

	nurse.signIn(in.URL)
	nurse.waitFor("console", `document.querySelector("#page-service").options.length > 1`)
	nurse.do("write",
		choose("#page-service", svc["id"].(string)),
		chromedp.Click(chromedp.CSS(`input[name=priority][value=urgent]`)),
		chromedp.SendKeys(chromedp.ID("page-summary"), "Fall in 5 East room 3, on anticoagulants"),
		chromedp.Click(chromedp.ID("page-send")),
	)
	nurse.waitFor("escalated", fmt.Sprintf(`[...document.querySelectorAll("#page-timeline li")].some(li => li.dataset.kind === "notified" && li.textContent.includes(%q))`, second.name))
	nurse.waitFor("step 2 shown", `[...document.querySelectorAll("#page-timeline li")].some(li => li.textContent.includes("escalation step 2"))`)
	var pageID string
	for _, p := range admin.Must(http.StatusOK, "GET", "/api/v1/pages?status=open", nil)["pages"].([]any) {
		pageID = p.(map[string]any)["id"].(string)
	}
	second.api.Must(http.StatusOK, "POST", "/api/v1/pages/"+pageID+"/acknowledge", nil)
	nurse.waitFor("acknowledged", fmt.Sprintf(`document.querySelector("#page-status").textContent === %q`, "Acknowledged by "+second.name))
	nurse.waitFor("elapsed frozen", `/^answered after \d+:\d\d$/.test(document.querySelector("#page-elapsed").textContent)`)
	nurse.screenshot("paging-console-escalated")

	// Paging a person says who it goes to.
	nurse.do("person", chromedp.Click(chromedp.CSS(`input[name=target][value=person]`)), choose("#page-person", first.id))
	nurse.waitFor("goes to", fmt.Sprintf(`document.querySelector("#oncall-now").textContent === %q && !document.querySelector("#page-person").hidden && document.querySelector("#page-service").hidden`, "Goes to "+first.name+"."))
	nurse.checkScreen()
}

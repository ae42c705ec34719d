package web_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/callroom/callroom/internal/apitest"
)

// TestSchedulerOverrideChangesCalendarAndOnCall: a scheduler sees who is on
// call for each service, the week's shifts and the gaps before the rotation
// began; adds an override putting a colleague on call; and the calendar, the
// schedule's on-call answer and the services' on-call list change. The feed
// link they copy serves the schedule as iCalendar.
func TestSchedulerOverrideChangesCalendarAndOnCall(t *testing.T) {
	t.Parallel()
	in := apitest.Start(t)
	browser := startBrowser(t)
	sched := newPerson(t, in, browser, "Sam Scheduler", 1280, 1000, "scheduler")
	a := newPerson(t, in, browser, "Dr. Alma Heart", 360, 740, "physician")
	b := newPerson(t, in, browser, "Dr. Ben Valve", 360, 740, "physician")

	admin := in.User("Ada Admin", "admin")
	s := admin.Must(http.StatusCreated, "POST", "/api/v1/schedules", map[string]any{"name": "Cardiology call", "time_zone": "America/Chicago"})
	sid := s["id"].(string)
	admin.Must(http.StatusCreated, "POST", "/api/v1/schedules/"+sid+"/rotations", map[string]any{
		"name": "Attendings", "participants": []string{a.id}, "shift_length": 1, "shift_unit": "weeks",
		"start": time.Now().Add(-time.Hour).UTC().Format(time.RFC3339),
	})
	pol := admin.Must(http.StatusCreated, "POST", "/api/v1/escalation-policies", map[string]any{
		"name": "Cardiology", "repeat": 0,
		"steps": []map[string]any{{"delay_seconds": 300, "targets": []map[string]any{{"schedule_id": sid}}}},
	})
	svc := admin.Must(http.StatusCreated, "POST", "/api/v1/services", map[string]any{"name": "Cardiology", "escalation_policy_id": pol["id"]})
	svcRow := fmt.Sprintf(`document.querySelector('#oncall-all li[data-service=%q]')`, svc["id"])
	today := `document.querySelector("#calendar .day.today")`

	sched.signIn(in.URL)
	sched.do("open schedules", chromedp.Navigate(in.URL+"/#schedules"))
	sched.waitFor("service on call", svcRow+` && `+svcRow+`.textContent === "Cardiology: Dr. Alma Heart"`)
	sched.waitFor("schedule on call", `document.querySelector("#sched-oncall").textContent === "On call now: Dr. Alma Heart."`)
	sched.waitFor("today's shift", today+` && [...`+today+`.querySelectorAll("li.shift")].some(li => li.textContent.endsWith("Dr. Alma Heart"))`)

	// The week before the rotation began is all gap, highlighted.
	sched.do("previous week", chromedp.Click(chromedp.ID("cal-prev")))
	sched.waitFor("gaps", `document.querySelectorAll("#calendar li.gap").length === 7 && !document.querySelector("#calendar li.shift")`)
	sched.do("back to today", chromedp.Click(chromedp.ID("cal-today")))
	sched.waitFor("today again", today+` && `+today+`.querySelector("li.shift")`)

	// Dr. Valve covers Dr. Heart from a minute ago for two hours.
	sched.do("fill the override",
		choose("#ov-kind", "replace"),
		choose("#ov-add", b.id),
		choose("#ov-remove", a.id),
		chromedp.Evaluate[chromedp.Void](`document.querySelector("#ov-start").value = localInput(new Date(Date.now() - 60000))`),
		chromedp.Evaluate[chromedp.Void](`document.querySelector("#ov-end").value = localInput(new Date(Date.now() + 2 * 3600000))`),
		chromedp.Click(chromedp.ID("ov-save")),
	)
	sched.waitFor("schedule on call changed", `document.querySelector("#sched-oncall").textContent === "On call now: Dr. Ben Valve."`)
	sched.waitFor("service on call changed", svcRow+`.textContent === "Cardiology: Dr. Ben Valve"`)
	sched.waitFor("calendar changed", `[...document.querySelectorAll("#calendar li.shift")].some(li => li.textContent.endsWith("Dr. Ben Valve"))`)
	sched.waitFor("override listed", `[...document.querySelectorAll("#sched-parts li.override")].some(li => li.textContent.startsWith("Override: Dr. Ben Valve replaces Dr. Alma Heart"))`)
	oc := admin.Must(http.StatusOK, "GET", "/api/v1/schedules/"+sid+"/on-call", nil)
	if users := oc["users"].([]any); len(users) != 1 || users[0].(map[string]any)["id"] != b.id {
		t.Errorf("on call after the override: %v, want only %s", users, b.name)
	}
	sched.screenshot("schedules-week")
	sched.checkScreen()

	sched.do("month view", chromedp.Click(chromedp.ID("cal-month")))
	sched.waitFor("month shown", `document.querySelectorAll("#calendar .day").length >= 28 && document.querySelector("#calendar").classList.contains("month")`)
	sched.screenshot("schedules-month")

	// The iCalendar feed link.
	sched.do("feed link", chromedp.Click(chromedp.ID("feed-create")))
	sched.waitFor("feed shown", `/\/calendar\/.+\.ics$/.test(document.querySelector("#feed-url").value)`)
	feed := eval[string](sched, `document.querySelector("#feed-url").value`)
	resp, err := http.Get(feed)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "BEGIN:VCALENDAR") {
		t.Errorf("feed %s: %d %.200s", feed, resp.StatusCode, body)
	}
}

// TestSchedulerBuildsASchedule: a scheduler creates a schedule, a daily
// rotation of two physicians and a rule limiting it to weekday days; the
// calendar shows their shifts and the nights and weekends as gaps; removing
// the rule brings the nights back.
func TestSchedulerBuildsASchedule(t *testing.T) {
	t.Parallel()
	in := apitest.Start(t)
	browser := startBrowser(t)
	sched := newPerson(t, in, browser, "Sue Scheduler", 1280, 1000, "scheduler")
	a := newPerson(t, in, browser, "Dr. Ann Day", 360, 740, "physician")
	b := newPerson(t, in, browser, "Dr. Bo Night", 360, 740, "physician")

	sched.signIn(in.URL)
	sched.do("open schedules", chromedp.Navigate(in.URL+"/#schedules"))
	// (An empty select's value is "" before the screen has loaded too.)
	sched.waitFor("empty", `document.querySelector("#sched-pick").options.length === 1 && document.querySelector("#sched-pick").value === ""`)
	sched.do("new schedule",
		chromedp.SendKeys(chromedp.ID("new-sched-name"), "Renal call"),
		chromedp.Click(chromedp.CSS(`#schedule-form button[type=submit]`)),
	)
	sched.waitFor("created", `(document.querySelector("#sched-pick").selectedOptions[0] || {}).textContent === "Renal call"`)

	// A daily rotation starting last Monday at 07:00 (the browser's time).
	sched.do("rotation",
		chromedp.SendKeys(chromedp.ID("rot-name"), "Renal attendings"),
		chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => { for (const o of document.querySelector("#rot-people").options) o.selected = [%q, %q].includes(o.value); })()`, a.id, b.id)),
		chromedp.SetValue(chromedp.ID("rot-length"), "1"),
		choose("#rot-unit", "days"),
		chromedp.Evaluate[chromedp.Void](`document.querySelector("#rot-start").value = localInput(new Date(monday(new Date()).getTime() - 7 * 86400000 + 7 * 3600000))`),
		chromedp.Click(chromedp.CSS(`#rotation-form button[type=submit]`)),
	)
	sched.waitFor("rotation listed", `[...document.querySelectorAll("#sched-parts li")].some(li => li.textContent.startsWith("Rotation Renal attendings: Dr. Ann Day → Dr. Bo Night, 1 days each"))`)
	sched.waitFor("always covered", `document.querySelectorAll("#calendar li.shift").length >= 7 && !document.querySelector("#calendar li.gap")`)

	// Weekdays 07:00-19:00 only.
	sched.do("rule",
		chromedp.Evaluate[chromedp.Void](`document.querySelector("#rule-who").value = [...document.querySelector("#rule-who").options].find(o => o.value.startsWith("rotation:")).value`),
		chromedp.Evaluate[chromedp.Void](`for (const c of document.querySelectorAll(".weekdays input")) c.checked = ["1","2","3","4","5"].includes(c.value)`),
		chromedp.SetValue(chromedp.ID("rule-start"), "07:00"),
		chromedp.SetValue(chromedp.ID("rule-end"), "19:00"),
		chromedp.Click(chromedp.CSS(`#rule-form button[type=submit]`)),
	)
	sched.waitFor("rule listed", `[...document.querySelectorAll("#sched-parts li")].some(li => li.textContent.startsWith("Rule: Renal attendings, Mon Tue Wed Thu Fri 07:00–19:00"))`)
	// The schedule is in America/Chicago; whatever the browser's zone, the
	// week now has gaps on every day and whole-day gaps at the weekend.
	sched.waitFor("gaps", `[...document.querySelectorAll("#calendar .day")].filter(d => d.querySelector("li.gap")).length === 7 &&
		[...document.querySelectorAll("#calendar li.shift")].every(li => /Dr\. (Ann Day|Bo Night)$/.test(li.textContent))`)
	sched.screenshot("schedules-rule")
	sched.checkScreen()

	sched.do("remove the rule", chromedp.Evaluate[chromedp.Void](`[...document.querySelectorAll("#sched-parts li")].find(li => li.textContent.startsWith("Rule:")).querySelector("button").click()`))
	sched.waitFor("covered again", `![...document.querySelectorAll("#sched-parts li")].some(li => li.textContent.startsWith("Rule:")) && !document.querySelector("#calendar li.gap")`)
}

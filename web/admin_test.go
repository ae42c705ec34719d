package web_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/callroom/callroom/internal/apitest"
)

// TestAdminUsersAndServices: an administrator adds a user, who signs in
// with the password they were given; deactivates them, which ends their
// session at their next request; and adds a service with a two-step
// escalation policy, which the services list then describes.
func TestAdminUsersAndServices(t *testing.T) {
	t.Parallel()
	in := apitest.Start(t)
	browser := startBrowser(t)
	admin := newPerson(t, in, browser, "Ada Admin", 1280, 1000, "admin")
	doc := newPerson(t, in, browser, "Dr. Rita Renal", 360, 740, "physician")

	admin.signIn(in.URL)
	admin.do("open admin", chromedp.Navigate(in.URL+"/#admin"))
	admin.waitFor("users listed", fmt.Sprintf(`document.querySelector('#admin-users li[data-user=%q]')`, doc.id))

	// A new user, with a password.
	admin.do("add user",
		chromedp.SendKeys(chromedp.ID("user-name"), "Paula Physician"),
		chromedp.SendKeys(chromedp.ID("user-email"), "paula.physician@example.org"),
		chromedp.Click(chromedp.CSS(`#user-form input[value=physician]`)),
		chromedp.SendKeys(chromedp.ID("user-password"), password),
		chromedp.Click(chromedp.ID("user-save")),
	)
	admin.waitFor("user added", `[...document.querySelectorAll("#admin-users li")].some(li => li.textContent.includes("paula.physician@example.org · physician"))`)
	paula := &person{t: t, name: "Paula Physician", email: "paula.physician@example.org", ctx: newWindow(t, browser, 1024, 768)}
	paula.signIn(in.URL)

	// The admin signs Paula out of her session; her window returns to
	// sign-in by itself (session.revoked on her event stream).
	paulaRow := `[...document.querySelectorAll("#admin-users li")].find(li => li.textContent.includes("paula.physician"))`
	admin.do("sessions", chromedp.Evaluate[chromedp.Void](paulaRow+`.querySelector("button.sessions").click()`))
	admin.waitFor("session listed", paulaRow+`.querySelectorAll(".sessions-box li[data-session]").length === 1 && `+paulaRow+`.querySelector(".sessions-box li").textContent.startsWith("password · ")`)
	admin.screenshot("admin-sessions")
	admin.do("revoke", chromedp.Evaluate[chromedp.Void](paulaRow+`.querySelector(".sessions-box button.revoke").click()`))
	admin.waitFor("none left", paulaRow+`.querySelector(".sessions-box li.empty")`)
	paula.waitFor("signed out live", `!document.querySelector("#signin").hidden && document.querySelector("#top").hidden`)
	if st := meStatus(paula); st != 401 {
		t.Errorf("a revoked session answers %d, want 401", st)
	}
	paula.signIn(in.URL)

	// Deactivated, Paula's next request signs her out.
	admin.do("deactivate", chromedp.Evaluate[chromedp.Void](`[...document.querySelectorAll("#admin-users li")].find(li => li.textContent.includes("paula.physician")).querySelector("button.toggle-active").click()`))
	admin.waitFor("shown deactivated", `[...document.querySelectorAll("#admin-users li.inactive")].some(li => li.textContent.includes("paula.physician@example.org") && li.textContent.includes("deactivated"))`)
	paula.do("next request", chromedp.Navigate(in.URL+"/#inbox"))
	paula.waitFor("signed out", `!document.querySelector("#signin").hidden && document.querySelector("#top").hidden`)
	if st := meStatus(paula); st != 401 {
		t.Errorf("a deactivated user's session answers %d, want 401", st)
	}

	// A service paging Dr. Renal, then Paula's replacement: here, the admin.
	admin.do("add service",
		chromedp.SendKeys(chromedp.ID("svc-name"), "Nephrology"),
		choose("#pol-first", "user:"+doc.id),
		chromedp.SetValue(chromedp.ID("pol-delay"), "10"),
		choose("#pol-second", "user:"+admin.id),
		chromedp.Click(chromedp.ID("svc-save")),
	)
	admin.waitFor("service listed", `[...document.querySelectorAll("#admin-services li")].some(li => li.textContent === "Nephrology policy Nephrology: 1. Dr. Rita Renal (10 min); 2. Ada Admin (10 min), repeated 1×")`)
	admin.checkScreen()
	admin.screenshot("admin")
}

// TestAdminChangesRoles: an administrator makes a physician a scheduler
// too; the change holds at the physician's next request (their schedules
// screen then offers editing), and the administrator is offered no way to
// change their own roles.
func TestAdminChangesRoles(t *testing.T) {
	t.Parallel()
	in := apitest.Start(t)
	browser := startBrowser(t)
	admin := newPerson(t, in, browser, "Ada Admin", 1280, 1000, "admin")
	doc := newPerson(t, in, browser, "Dr. Sam Surgeon", 360, 740, "physician")

	doc.signIn(in.URL)
	doc.do("open schedules", chromedp.Navigate(in.URL+"/#schedules"))
	doc.waitFor("read-only schedules", `!document.querySelector("#schedules").hidden && document.querySelector("#sched-edit").hidden`)

	admin.signIn(in.URL)
	admin.do("open admin", chromedp.Navigate(in.URL+"/#admin"))
	docRow := fmt.Sprintf(`document.querySelector('#admin-users li[data-user=%q]')`, doc.id)
	admin.waitFor("users listed", docRow)
	if eval[bool](admin, fmt.Sprintf(`!!document.querySelector('#admin-users li[data-user=%q] button.roles')`, admin.id)) {
		t.Error("the administrator is offered a change of their own roles")
	}
	admin.do("change roles", chromedp.Evaluate[chromedp.Void](docRow+`.querySelector("button.roles").click()`))
	admin.waitFor("roles shown", `(() => { const b = `+docRow+`.querySelector(".roles-box");
		return b && b.querySelector("input[value=physician]").checked && !b.querySelector("input[value=scheduler]").checked; })()`)
	admin.checkScreen()
	admin.do("add scheduler", chromedp.Evaluate[chromedp.Void](docRow+`.querySelector(".roles-box input[value=scheduler]").click()`))
	admin.screenshot("admin-roles")
	admin.do("save", chromedp.Evaluate[chromedp.Void](docRow+`.querySelector(".roles-box button.save-roles").click()`))
	admin.waitFor("saved", docRow+`.textContent.includes(" · physician, scheduler") && !`+docRow+`.querySelector(".roles-box") && document.querySelector("#notice").textContent.includes("physician, scheduler")`)

	me := doc.api.Must(http.StatusOK, "GET", "/api/v1/me", nil)
	if perms := fmt.Sprint(me["permissions"]); !strings.Contains(perms, "schedules.edit") {
		t.Errorf("after the change the physician's permissions are %s, want schedules.edit among them", perms)
	}
	doc.do("reload schedules", chromedp.Reload())
	doc.waitFor("schedules editable", `!document.querySelector("#schedules").hidden && !document.querySelector("#sched-edit").hidden`)
	doc.checkScreen()
	admin.checkScreen()
}

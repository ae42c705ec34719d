package web_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/callroom/callroom/internal/apitest"
)

// TestInboxStartsConversations: a physician starts a direct thread with a
// nurse from the inbox and writes in it, and the nurse reads it; asking for
// the same pair again opens that thread; a named group with two nurses is
// created and listed; the API's refusals (no group name, no colleague) are
// shown next to the form, on the control they are about.
func TestInboxStartsConversations(t *testing.T) {
	t.Parallel()
	in := apitest.Start(t)
	browser := startBrowser(t)
	doc := newPerson(t, in, browser, "Dr. Petra Lind", 1280, 900, "physician")
	nurse := newPerson(t, in, browser, "Nora Ward", 360, 740, "nurse")
	nights := in.User("Nils Night", "nurse")
	in.User("Sid Scheduler", "scheduler") // not a clinician: never offered

	doc.signIn(in.URL)
	doc.do("open inbox", chromedp.Navigate(in.URL+"/#inbox"))
	doc.waitFor("threads listed", `document.querySelector("#threads li")`)
	openForm := func(kind string) {
		doc.t.Helper()
		doc.do("open the form", chromedp.Click(chromedp.ID("nt-open")))
		doc.waitFor("form shown", `!document.querySelector("#nt-form").hidden && document.querySelector("#nt-open").getAttribute("aria-expanded") === "true"`)
		doc.do("choose "+kind, chromedp.Click(chromedp.CSS(`input[name=nt-kind][value=`+kind+`]`)))
	}

	// The colleagues offered: active nurses and physicians other than me.
	openForm("direct")
	offered := eval[[]string](doc, `[...document.querySelectorAll("#nt-person option")].filter(o => o.value).map(o => o.textContent)`)
	if fmt.Sprint(offered) != "[Nils Night (nurse) Nora Ward (nurse)]" {
		t.Errorf("colleagues offered: %q", offered)
	}

	// No colleague chosen: the API's refusal, on the picker.
	doc.do("start with no one", chromedp.Click(chromedp.ID("nt-start")))
	doc.waitFor("no colleague refused", `document.querySelector("#nt-error").textContent === "Colleague: a direct thread is between you and exactly one other person." && !document.querySelector("#nt-error").hidden`)
	if !eval[bool](doc, `document.querySelector("#nt-person").getAttribute("aria-invalid") === "true" && document.activeElement.id === "nt-person"`) {
		t.Error("the colleague picker is not marked invalid and focused")
	}

	// A direct thread with the nurse opens at once, as a click in the list would.
	doc.do("choose the nurse", choose("#nt-person", nurse.id), chromedp.Click(chromedp.ID("nt-start")))
	doc.waitFor("direct thread open", `state.openThread && !document.querySelector("#thread-view").hidden && document.querySelector("#thread-h").textContent === "Nora Ward" && document.querySelector("#nt-form").hidden`)
	tid := eval[string](doc, `state.openThread`)
	doc.waitFor("listed as current", fmt.Sprintf(`document.querySelector('#threads li.current[data-thread=%q]')`, tid))
	if n := eval[string](doc, `document.querySelector("#notice").textContent`); n != "Conversation started: Nora Ward." {
		t.Errorf("notice: %q", n)
	}
	th := nurse.api.Must(http.StatusOK, "GET", "/api/v1/threads/"+tid, nil)
	if th["kind"] != "direct" || len(th["members"].([]any)) != 2 {
		t.Errorf("thread started: %v", th)
	}
	doc.do("write",
		chromedp.SendKeys(chromedp.ID("reply-text"), "Can you check the heparin drip in 12?"),
		chromedp.Click(chromedp.ID("reply-send")),
	)
	doc.waitFor("sent", `[...document.querySelectorAll("#messages li.mine .msg-text")].some(p => p.textContent === "Can you check the heparin drip in 12?")`)

	nurse.signIn(in.URL)
	nurse.do("open inbox", chromedp.Navigate(in.URL+"/#inbox"))
	row := fmt.Sprintf(`document.querySelector('#threads li[data-thread=%q]')`, tid)
	nurse.waitFor("unread from the physician", row+` && `+row+`.textContent.includes("Dr. Petra Lind") && `+row+`.querySelector(".unread")`)
	nurse.do("open thread", chromedp.Click(chromedp.CSS(`#threads li[data-thread="`+tid+`"] button`)))
	nurse.waitFor("message read", `[...document.querySelectorAll("#messages .msg-text")].some(p => p.textContent === "Can you check the heparin drip in 12?")`)
	nurse.checkScreen()

	// Asking for the same pair again opens the same thread (the API's 200).
	openForm("direct")
	doc.do("ask again", choose("#nt-person", nurse.id), chromedp.Click(chromedp.ID("nt-start")))
	doc.waitFor("existing thread opened", `document.querySelector("#notice").textContent === "You already have a conversation with Nora Ward: it is open below."`)
	if got := eval[string](doc, `state.openThread`); got != tid {
		t.Errorf("asking again opened %s, want the thread %s", got, tid)
	}
	doc.waitFor("its messages shown", `[...document.querySelectorAll("#messages .msg-text")].some(p => p.textContent === "Can you check the heparin drip in 12?")`)
	if n := eval[int](doc, `document.querySelectorAll("#threads li[data-thread]").length`); n != 1 {
		t.Errorf("%d threads listed after asking again, want 1", n)
	}

	// A group without a name: the API's refusal, on the name.
	openForm("group")
	doc.do("tick a member", chromedp.Click(chromedp.CSS(`#nt-members input[value="`+nurse.id+`"]`)), chromedp.Click(chromedp.ID("nt-start")))
	doc.waitFor("nameless group refused", `document.querySelector("#nt-error").textContent === "Group name: is required for a group thread." && !document.querySelector("#nt-error").hidden`)
	if !eval[bool](doc, `document.querySelector("#nt-name").getAttribute("aria-invalid") === "true" && document.querySelector("#nt-name").getAttribute("aria-describedby") === "nt-error" && document.activeElement.id === "nt-name"`) {
		t.Error("the group name is not marked invalid, described by the error and focused")
	}
	doc.screenshot("inbox-new-thread-error")
	doc.checkScreen()

	// Named, with the second nurse found by the filter: created and listed.
	doc.do("search", chromedp.SendKeys(chromedp.ID("nt-filter"), "nils"))
	if eval[bool](doc, `document.querySelector("#nt-error").hidden`) {
		t.Error("searching for colleagues cleared the refusal")
	}
	doc.do("name", chromedp.SendKeys(chromedp.ID("nt-name"), "4 West nurses"))
	doc.waitFor("refusal cleared by naming", `document.querySelector("#nt-error").hidden && !document.querySelector("#nt-name").hasAttribute("aria-invalid")`)
	if shown := eval[[]string](doc, `[...document.querySelectorAll("#nt-members label")].filter(l => !l.hidden).map(l => l.textContent.trim())`); fmt.Sprint(shown) != "[Nils Night (nurse) Nora Ward (nurse)]" {
		t.Errorf("filtered members (Nora ticked, so kept): %q", shown)
	}
	doc.do("tick the second nurse", chromedp.Click(chromedp.CSS(`#nt-members input[value="`+nights.User.ID.String()+`"]`)))
	doc.screenshot("inbox-new-group")
	doc.checkScreen()
	doc.do("start the group", chromedp.Click(chromedp.ID("nt-start")))
	doc.waitFor("group open", `document.querySelector("#thread-h").textContent === "4 West nurses" && ["Dr. Petra Lind", "Nora Ward", "Nils Night"].every(n => document.querySelector("#thread-members").textContent.includes(n)) && document.querySelector("#nt-error").hidden`)
	gid := eval[string](doc, `state.openThread`)
	doc.waitFor("group listed", fmt.Sprintf(`[...document.querySelectorAll('#threads li[data-thread=%q] button')].some(b => b.textContent === "4 West nurses")`, gid))
	nurse.waitFor("group listed for the nurse", fmt.Sprintf(`document.querySelector('#threads li[data-thread=%q]')`, gid))
	groups := nights.Must(http.StatusOK, "GET", "/api/v1/threads?kind=group", nil)["threads"].([]any)
	if len(groups) != 1 || groups[0].(map[string]any)["name"] != "4 West nurses" || len(groups[0].(map[string]any)["members"].([]any)) != 3 {
		t.Errorf("group threads (the refused try must have made none): %v", groups)
	}
	doc.checkScreen()
}

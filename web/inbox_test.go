package web_test

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/callroom/callroom/internal/apitest"
)

// A 1x1 PNG, for the attachment.
const onePixelPNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="

// TestInboxUpdatesLive: a physician (phone-sized) and a nurse (workstation)
// have a thread open; messages, read receipts and acknowledgements arrive in
// the other's window over the event stream, without a reload.
func TestInboxUpdatesLive(t *testing.T) {
	t.Parallel()
	in := apitest.Start(t)
	browser := startBrowser(t)
	nurse := newPerson(t, in, browser, "Nell Nurse", 1280, 900, "nurse")
	doc := newPerson(t, in, browser, "Dr. Omar Hosp", 360, 740, "physician")

	th := nurse.api.Must(http.StatusCreated, "POST", "/api/v1/threads", map[string]any{
		"kind": "group", "name": "4 West huddle", "member_ids": []string{doc.id},
	})
	tid := th["id"].(string)
	nurse.api.Must(http.StatusCreated, "POST", "/api/v1/threads/"+tid+"/messages", map[string]any{
		"text": "Bed 12 needs a cardiology consult today", "priority": "urgent",
	})

	doc.signIn(in.URL)
	doc.do("open inbox", chromedp.Navigate(in.URL+"/#inbox"))
	row := fmt.Sprintf(`document.querySelector('#threads li[data-thread=%q]')`, tid)
	doc.waitFor("unread count", row+` && `+row+`.querySelector(".unread") && `+row+`.querySelector(".unread").textContent === "1 unread"`)
	doc.screenshot("inbox-threads-phone")

	nurse.signIn(in.URL)
	nurse.do("open inbox", chromedp.Navigate(in.URL+"/#inbox"))
	nurse.waitFor("thread listed", row)
	nurse.do("open thread", chromedp.Click(chromedp.CSS(`#threads li[data-thread="`+tid+`"] button`)))
	nurse.waitFor("not read yet", `document.querySelector("#messages .receipts") && document.querySelector("#messages .receipts").textContent === "read by 0 of 1"`)
	nurse.do("mark the window", chromedp.Evaluate[chromedp.Void](`window.notReloaded = true`))

	// The physician opens it: the nurse sees it read.
	doc.do("open thread", chromedp.Click(chromedp.CSS(`#threads li[data-thread="`+tid+`"] button`)))
	doc.waitFor("message shown", `[...document.querySelectorAll("#messages .msg-text")].some(p => p.textContent === "Bed 12 needs a cardiology consult today")`)
	doc.waitFor("unread cleared", row+` && !`+row+`.querySelector(".unread")`)
	nurse.waitFor("read receipt live", `document.querySelector("#messages .receipts").textContent === "read by 1 of 1"`)

	// The physician replies with an attachment; the nurse sees it arrive.
	png, _ := base64.StdEncoding.DecodeString(onePixelPNG)
	file := filepath.Join(t.TempDir(), "ecg-strip.png")
	if err := os.WriteFile(file, png, 0o600); err != nil {
		t.Fatal(err)
	}
	doc.do("reply",
		chromedp.SendKeys(chromedp.ID("reply-text"), "Seen. Will come by at 2pm."),
		chromedp.SetUploadFiles(chromedp.ID("reply-file"), []string{file}),
		chromedp.Click(chromedp.ID("reply-send")),
	)
	doc.waitFor("reply shown", `[...document.querySelectorAll("#messages li.mine .msg-text")].some(p => p.textContent === "Seen. Will come by at 2pm.")`)
	nurse.waitFor("reply arrives live", `[...document.querySelectorAll("#messages li")].some(li => li.textContent.includes("Will come by at 2pm") && li.textContent.includes("Attachment: ecg-strip.png"))`)
	// The nurse's window has it on screen, so it is read: the physician sees that.
	doc.waitFor("reply read live", `[...document.querySelectorAll("#messages li.mine")].some(li => li.textContent.includes("2pm") && li.querySelector(".receipts").textContent === "read by 1 of 1")`)

	// The nurse's stream fails for good (as after an error answer); a
	// message posted meanwhile still arrives once the client reopens it
	// from the last event it saw.
	nurse.do("stream fails", chromedp.Evaluate[chromedp.Void](`state.stream.close(); state.stream.dispatchEvent(new Event("error"))`))
	doc.api.Must(http.StatusCreated, "POST", "/api/v1/threads/"+tid+"/messages", map[string]any{"text": "Sent while your stream was down"})
	nurse.waitFor("missed message arrives", `[...document.querySelectorAll("#messages .msg-text")].some(p => p.textContent === "Sent while your stream was down") && document.body.dataset.stream === "open"`)

	// A broadcast that needs acknowledging.
	nurse.api.Must(http.StatusCreated, "POST", "/api/v1/threads/"+tid+"/messages", map[string]any{
		"text": "Code cart moved to room 14", "ack_required": true,
	})
	doc.waitFor("ack button", `document.querySelector("#messages button.ack")`)
	doc.screenshot("inbox-thread-phone")
	doc.checkScreen()
	doc.do("acknowledge", chromedp.Click(chromedp.CSS(`#messages button.ack`)))
	nurse.waitFor("acknowledged live", `[...document.querySelectorAll("#messages li")].some(li => li.textContent.includes("Code cart moved") && li.querySelector(".receipts").textContent.includes("acknowledged by 1 of 1"))`)
	if !eval[bool](nurse, `window.notReloaded === true`) {
		t.Error("the nurse's window reloaded; updates should arrive over the event stream")
	}
	nurse.screenshot("inbox-thread")
	nurse.checkScreen()

	// The attachment link downloads the image for a member.
	href := eval[string](nurse, `document.querySelector("#messages a[href*='/attachments/']").getAttribute("href")`)
	if got := eval[string](nurse, `fetch(`+fmt.Sprintf("%q", href)+`).then(r => r.status + " " + r.headers.get("Content-Type"))`, chromedp.EvalAwaitPromise); got != "200 image/png" {
		t.Errorf("attachment download: %s", got)
	}
	if logs := in.LogText(); strings.Contains(logs, "cardiology consult") || strings.Contains(logs, "ecg-strip") {
		t.Error("message text or a file name appears in the logs")
	}
}

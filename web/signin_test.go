package web_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/callroom/callroom/internal/apitest"
	"github.com/callroom/callroom/internal/server"
)

// TestSignInOutAndIdleLogoff: a wrong password is refused with a message;
// the right one opens the client; signing out ends the session on the
// server; and a session left idle is signed out by the client at the idle
// timeout, its screen cleared, and refused by the server too.
func TestSignInOutAndIdleLogoff(t *testing.T) {
	t.Parallel()
	const idle = 3 * time.Second
	in := apitest.Start(t, apitest.Options{Setup: func(s *server.Server) { s.Auth.SessionIdle = idle }})
	browser := startBrowser(t)
	nurse := newPerson(t, in, browser, "Nia Nurse", 1024, 768, "nurse")

	nurse.do("open", chromedp.Navigate(in.URL+"/"), chromedp.WaitVisible(chromedp.ID("signin-email")))
	nurse.screenshot("sign-in")
	nurse.checkScreen()
	nurse.do("wrong password",
		chromedp.SendKeys(chromedp.ID("signin-email"), nurse.email),
		chromedp.SendKeys(chromedp.ID("signin-pw"), "not the password"),
		chromedp.Click(chromedp.CSS(`#signin-password button[type=submit]`)),
	)
	nurse.waitFor("refused", `document.querySelector("#signin-message").textContent === "Email or password is wrong."`)
	if !eval[bool](nurse, `document.querySelector("#top").hidden`) {
		t.Fatal("the navigation shows before signing in")
	}

	// Sign in, then out.
	nurse.do("clear", chromedp.Evaluate[chromedp.Void](`document.querySelector("#signin-email").value = ""; document.querySelector("#signin-pw").value = ""`))
	nurse.signIn(in.URL)
	nurse.do("sign out", chromedp.Click(chromedp.ID("signout")))
	nurse.waitFor("signed out", `!document.querySelector("#signin").hidden && document.querySelector("#signin-message").textContent === "You have signed out."`)
	// At once, well before the idle timeout could have ended it.
	if st := meStatus(nurse); st != http.StatusUnauthorized {
		t.Errorf("after signing out, GET /api/v1/me answers %d, want 401", st)
	}

	// Idle logoff: sign in, do nothing.
	nurse.signIn(in.URL)
	start := time.Now()
	nurse.waitFor("idle logoff", `!document.querySelector("#signin").hidden && document.querySelector("#signin-message").textContent.startsWith("You were signed out after 3 seconds")`)
	if el := time.Since(start); el < idle-500*time.Millisecond {
		t.Errorf("signed out after %v, before the idle timeout %v", el, idle)
	}
	nurse.screenshot("signed-out-idle")
	if n := eval[int](nurse, `document.querySelectorAll("#recent-pages li, #open-pages li, #page-timeline li").length`); n != 0 {
		t.Errorf("%d items still on screen after idle logoff", n)
	}
	if st := meStatus(nurse); st != http.StatusUnauthorized {
		t.Errorf("after idle logoff, GET /api/v1/me answers %d, want 401", st)
	}
}

// meStatus asks the server, from the person's window, whether their
// session is still good.
func meStatus(p *person) int {
	p.t.Helper()
	return eval[int](p, `fetch("/api/v1/me").then(r => r.status)`, chromedp.EvalAwaitPromise)
}

// TestClientHeaders: the client is served with a strict
// Content-Security-Policy (no inline script, nothing from elsewhere, no
// framing), and API 404s stay problem+json.
func TestClientHeaders(t *testing.T) {
	t.Parallel()
	in := apitest.Start(t)
	for _, tc := range []struct {
		path, wantType string
		wantStatus     int
	}{
		{"/", "text/html", http.StatusOK},
		{"/pages/8f1d7f4e-8a55-4f52-9d4c-2f0f6b7a9c11", "text/html", http.StatusOK},
		{"/assets/app.js", "text/javascript", http.StatusOK},
		{"/assets/app.css", "text/css", http.StatusOK},
		{"/nothing-here", "text/plain", http.StatusNotFound},
		{"/api/v1/nothing", "application/problem+json", http.StatusNotFound},
	} {
		resp, err := http.Get(in.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.wantStatus || !strings.HasPrefix(resp.Header.Get("Content-Type"), tc.wantType) {
			t.Errorf("%s: %d %s, want %d %s", tc.path, resp.StatusCode, resp.Header.Get("Content-Type"), tc.wantStatus, tc.wantType)
		}
		if strings.HasPrefix(tc.path, "/api/") {
			continue
		}
		csp := resp.Header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "script-src 'self'", "frame-ancestors 'none'", "connect-src 'self'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: Content-Security-Policy %q lacks %q", tc.path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
			t.Errorf("%s: Content-Security-Policy allows unsafe sources: %q", tc.path, csp)
		}
	}
}

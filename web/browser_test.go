package web_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/auth"
	"github.com/callroom/callroom/internal/apitest"
)

// The end-to-end tests drive Debian's Chromium headless (installed by
// scripts/test-deps.sh) against a whole running callroom. Each person gets
// their own browser context, so cookies and storage are theirs alone.

const password = "correct horse battery staple"

// chromiumPath finds the browser; the test fails (it does not skip) when it
// is missing, so a CI machine without it cannot pass silently.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("CALLROOM_CHROMIUM"), "/usr/bin/chromium"} {
		if p == "" {
			continue
		}
		if _, err := exec.LookPath(p); err == nil {
			return p
		}
	}
	t.Fatal("Chromium is not installed: run scripts/test-deps.sh (Debian packages chromium and chromium-driver)")
	return ""
}

// One headless Chromium serves every test of the package (each person
// gets a browser context of their own, so they share nothing): starting
// one per test costs seconds of CPU on a small machine.
var (
	browserOnce sync.Once
	browserCtx  context.Context
	browserErr  error
	stopBrowser = func() {}
)

func TestMain(m *testing.M) {
	code := m.Run()
	stopBrowser()
	os.Exit(code)
}

// startBrowser returns the package's Chromium, starting it on first use.
func startBrowser(t *testing.T) context.Context {
	t.Helper()
	path := chromiumPath(t)
	browserOnce.Do(func() {
		dir, err := os.MkdirTemp("", "callroom-chromium-")
		if err != nil {
			browserErr = err
			return
		}
		opts := append(chromedp.DefaultExecAllocatorOptions[:],
			chromedp.ExecPath(path),
			chromedp.Flag("headless", true),
			chromedp.Flag("no-sandbox", true),
			chromedp.Flag("disable-gpu", true),
			chromedp.Flag("disable-quic", true),
			chromedp.Flag("no-first-run", true),
			chromedp.Flag("disable-background-networking", true),
			chromedp.Flag("disable-component-update", true),
			chromedp.Flag("disable-sync", true),
			chromedp.UserDataDir(dir),
		)
		actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
		bctx, cancelBrowser := chromedp.NewContext(actx)
		stopBrowser = func() { cancelBrowser(); cancelAlloc(); os.RemoveAll(dir) }
		browserCtx, browserErr = bctx, chromedp.Do(bctx)
	})
	if browserErr != nil {
		t.Fatalf("starting chromium: %v", browserErr)
	}
	return browserCtx
}

// person is one user at one browser window.
type person struct {
	t     *testing.T
	name  string
	email string
	id    string
	ctx   context.Context
	// api calls the API as this person with a token, to set the scene.
	api *apitest.Client
}

// newPerson creates a user with a password and opens a window of the given
// size for them in a browser context of their own.
func newPerson(t *testing.T, in *apitest.Instance, browser context.Context, name string, w, h int64, roles ...string) *person {
	t.Helper()
	email := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(name, "Dr. "), " ", ".")) + "@example.org"
	pw := password
	u, err := in.Server.Auth.CreateUser(context.Background(), audit.System,
		auth.NewUser{Email: email, Name: name, Roles: roles, TimeZone: "America/Chicago", Password: &pw})
	if err != nil {
		t.Fatal(err)
	}
	_, token, err := in.Server.Auth.CreateToken(context.Background(), audit.System, u.ID, "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	return &person{t: t, name: name, email: email, id: u.ID.String(), ctx: newWindow(t, browser, w, h),
		api: &apitest.Client{T: t, Base: in.URL, Token: token, User: u}}
}

// newWindow opens a w×h window in a browser context of its own (its own
// cookies and storage).
func newWindow(t *testing.T, browser context.Context, w, h int64) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(w, h)); err != nil {
		t.Fatal(err)
	}
	return ctx
}

// do runs browser actions, failing the test (with a screenshot) on error.
func (p *person) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		p.screenshot("failed-" + strings.ReplaceAll(what, " ", "-"))
		p.t.Fatalf("%s (%s): %v", what, p.name, err)
	}
}

// waitFor waits until the JavaScript expression is truthy.
func (p *person) waitFor(what, expr string) {
	p.t.Helper()
	p.do(what, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(15*time.Second)))
}

// eval returns the value of a JavaScript expression.
func eval[T any](p *person, expr string, opts ...chromedp.EvaluateOption) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, opts...))
	if err != nil {
		p.t.Fatalf("%s: evaluating %s: %v", p.name, expr, err)
	}
	return v
}

// choose picks a value in a <select> as a user would, firing change.
func choose(sel, value string) chromedp.Action[chromedp.Void] {
	return chromedp.Evaluate[chromedp.Void](fmt.Sprintf(
		`(() => { const s = document.querySelector(%q); s.value = %q; s.dispatchEvent(new Event("change", {bubbles: true})); })()`,
		sel, value))
}

func (p *person) signIn(base string) {
	p.t.Helper()
	p.do("open sign-in", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.ID("signin-email")))
	p.do("sign in",
		chromedp.SendKeys(chromedp.ID("signin-email"), p.email),
		chromedp.SendKeys(chromedp.ID("signin-pw"), password),
		chromedp.Click(chromedp.CSS(`#signin-password button[type=submit]`)),
	)
	p.waitFor("signed in", fmt.Sprintf(`document.querySelector("#whoami").textContent === %q && !document.querySelector("#top").hidden`, p.name))
}

// screenshotDir is where screenshots go: $CALLROOM_SCREENSHOTS, or
// screenshots/ at the top of the checkout (CI keeps it as evidence).
func screenshotDir(t *testing.T) string {
	dir := os.Getenv("CALLROOM_SCREENSHOTS")
	if dir == "" {
		dir = filepath.Join("..", "screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func (p *person) screenshot(name string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		p.t.Logf("screenshot %s: %v", name, err)
		return
	}
	path := filepath.Join(screenshotDir(p.t), name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		p.t.Fatal(err)
	}
	p.t.Logf("screenshot: %s", path)
}

// checkScreen fails the test if the Content-Security-Policy blocked
// anything, a script error went uncaught, or a visible form control on
// screen has no label.
func (p *person) checkScreen() {
	p.t.Helper()
	if v := eval[[]string](p, `window.cspViolations`); len(v) > 0 {
		p.t.Errorf("%s: Content-Security-Policy violations: %v", p.name, v)
	}
	if v := eval[[]string](p, `window.scriptErrors`); len(v) > 0 {
		p.t.Errorf("%s: script errors: %v", p.name, v)
	}
	unlabelled := eval[[]string](p, `[...document.querySelectorAll("input, select, textarea, button")]
		.filter(e => e.offsetParent !== null && e.type !== "hidden")
		.filter(e => e.tagName === "BUTTON" ? !(e.textContent.trim() || e.getAttribute("aria-label"))
			: !((e.labels && e.labels.length) || e.getAttribute("aria-label")))
		.map(e => e.outerHTML.slice(0, 80))`)
	if len(unlabelled) > 0 {
		p.t.Errorf("%s: form controls without a label: %v", p.name, unlabelled)
	}
}

package web_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/callroom/callroom/internal/apitest"
)

// TestSecondFactor: physicians must have a second factor; one signs in with
// a password, is sent to set up an authenticator (QR code and key), confirms
// a code and gets recovery codes; next time sign-in asks for a code after
// the password, and a recovery code works too.
func TestSecondFactor(t *testing.T) {
	t.Parallel()
	in := apitest.Start(t)
	browser := startBrowser(t)
	admin := in.User("Ada Admin", "admin")
	admin.Must(http.StatusOK, "PATCH", "/api/v1/security/settings", map[string]any{"mfa_required_roles": []string{"physician"}})
	doc := newPerson(t, in, browser, "Dr. Mo Factor", 1024, 800, "physician")

	doc.signIn(in.URL)
	doc.waitFor("enrolment screen", `!document.querySelector("#mfa").hidden && document.querySelector("#mfa-secret").textContent.length >= 16 && !document.querySelector("#mfa-qr").hidden && document.querySelector("#mfa-qr").naturalWidth > 0`)
	doc.checkScreen()
	doc.screenshot("mfa-enrol")
	secret := eval[string](doc, `document.querySelector("#mfa-secret").textContent`)
	code := func(at time.Time) string {
		c, err := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	doc.do("confirm", chromedp.SendKeys(chromedp.ID("mfa-code"), code(time.Now())), chromedp.Click(chromedp.ID("mfa-confirm")))
	doc.waitFor("recovery codes", `document.querySelectorAll("#mfa-recovery li").length >= 5 && !document.querySelector("#mfa-done").hidden`)
	recovery := eval[string](doc, `document.querySelector("#mfa-recovery li").textContent`)
	doc.do("continue", chromedp.Click(chromedp.ID("mfa-continue")))
	doc.waitFor("in", `!document.querySelector("#console").hidden && document.querySelector("#mfa").hidden`)

	// Next sign-in: password, then a code.
	signOutAndPassword := func() {
		t.Helper()
		doc.do("sign out", chromedp.Click(chromedp.ID("signout")))
		doc.waitFor("signed out", `!document.querySelector("#signin").hidden`)
		doc.do("password",
			chromedp.Evaluate[chromedp.Void](`document.querySelector("#signin-email").value = ""`),
			chromedp.SendKeys(chromedp.ID("signin-email"), doc.email),
			chromedp.SendKeys(chromedp.ID("signin-pw"), password),
			chromedp.Click(chromedp.CSS(`#signin-password button[type=submit]`)),
		)
		doc.waitFor("second step", `!document.querySelector("#signin-second").hidden && document.querySelector("#signin-password").hidden`)
	}
	signOutAndPassword()
	doc.screenshot("sign-in-second-step")
	doc.do("wrong code", chromedp.SendKeys(chromedp.ID("signin-code"), "12345x"), chromedp.Click(chromedp.ID("signin-verify")))
	doc.waitFor("refused", `document.querySelector("#signin-message").textContent.startsWith("That code is not right") && document.querySelector("#top").hidden`)
	doc.do("code", chromedp.SendKeys(chromedp.ID("signin-code"), code(time.Now().Add(30*time.Second))), chromedp.Click(chromedp.ID("signin-verify")))
	doc.waitFor("signed in with a code", fmt.Sprintf(`document.querySelector("#whoami").textContent === %q && !document.querySelector("#top").hidden`, doc.name))

	signOutAndPassword()
	doc.do("recovery code", chromedp.SendKeys(chromedp.ID("signin-code"), recovery), chromedp.Click(chromedp.ID("signin-verify")))
	doc.waitFor("signed in with a recovery code", fmt.Sprintf(`document.querySelector("#whoami").textContent === %q && !document.querySelector("#top").hidden`, doc.name))
	doc.checkScreen()
}

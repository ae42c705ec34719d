package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/auth"
	"github.com/callroom/callroom/httpapi"
	"github.com/callroom/callroom/internal/apitest"
	"github.com/callroom/callroom/internal/server"
	"github.com/callroom/callroom/ratelimit"
)

// browser is a client with a cookie jar that sends Origin like a browser on
// callroom's own page.
type browser struct {
	t    *testing.T
	base string
	c    *http.Client
}

func newBrowser(t *testing.T, base string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: base, c: &http.Client{Jar: jar, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) do(method, path string, v any) apitest.Response {
	b.t.Helper()
	var body io.Reader
	if v != nil {
		j, _ := json.Marshal(v)
		body = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, b.base+path, body)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Origin", b.base)
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := apitest.Response{Status: resp.StatusCode, Header: resp.Header, Body: raw}
	if len(raw) > 0 && raw[0] == '{' {
		json.Unmarshal(raw, &r.JSON) //nolint:errcheck
	}
	return r
}

func (b *browser) must(want int, method, path string, v any) map[string]any {
	b.t.Helper()
	r := b.do(method, path, v)
	if r.Status != want {
		b.t.Fatalf("%s %s: %d, want %d: %s", method, path, r.Status, want, r.Body)
	}
	return r.JSON
}

// passwordUser creates a user who signs in with a password.
func passwordUser(t *testing.T, in *apitest.Instance, email string, roles ...string) auth.User {
	t.Helper()
	pw := "correct horse battery"
	u, err := in.Server.Auth.CreateUser(context.Background(), audit.System, auth.NewUser{Email: email, Name: "P " + email,
		Roles: roles, Password: &pw, TimeZone: "UTC"})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func tokenFor(t *testing.T, in *apitest.Instance, u auth.User) *apitest.Client {
	t.Helper()
	_, secret, err := in.Server.Auth.CreateToken(context.Background(), audit.System, u.ID, "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	return &apitest.Client{T: t, Base: in.URL, Token: secret, User: u}
}

func code(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestMFAOverHTTP: an administrator requires MFA for physicians; a physician
// who signs in by password can only enrol until they do; then signing in
// needs the code.
func TestMFAOverHTTP(t *testing.T) {
	t.Parallel()
	in := apitest.Start(t)
	admin := in.User("Ada Admin", "admin")
	nurse := in.User("Nina Nurse", "nurse")
	doc := passwordUser(t, in, "doc@example.org", "physician")

	nurse.Must(403, "PATCH", "/api/v1/security/settings", map[string]any{"mfa_required_roles": []string{"physician"}})
	if r := admin.Do("PATCH", "/api/v1/security/settings", map[string]any{"lockout_threshold": 0}); r.Status != 422 || r.Field() != "lockout_threshold" {
		t.Fatalf("bad threshold: %d %s", r.Status, r.Body)
	}
	st := admin.Must(200, "PATCH", "/api/v1/security/settings", map[string]any{"mfa_required_roles": []string{"physician"}})
	if roles, _ := st["mfa_required_roles"].([]any); len(roles) != 1 {
		t.Fatalf("settings %v", st)
	}

	b := newBrowser(t, in.URL)
	login := map[string]any{"email": "doc@example.org", "password": "correct horse battery"}
	b.must(200, "POST", "/api/v1/auth/login", login)
	me := b.must(200, "GET", "/api/v1/me", nil)
	if me["mfa_enrollment_required"] != true {
		t.Fatalf("me: %v", me)
	}
	if r := b.do("GET", "/api/v1/schedules", nil); r.Status != 403 || !strings.Contains(string(r.Body), "mfa-enrollment-required") {
		t.Fatalf("unenrolled session reached the API: %d %s", r.Status, r.Body)
	}
	en := b.must(201, "POST", "/api/v1/me/mfa/totp", nil)
	secret, _ := en["secret"].(string)
	if secret == "" || !strings.HasPrefix(en["otpauth_url"].(string), "otpauth://totp/") || en["qr_code_png"] == "" {
		t.Fatalf("enrolment %v", en)
	}
	now := time.Now()
	if r := b.do("POST", "/api/v1/me/mfa/totp/confirm", map[string]any{"code": "12345"}); r.Status != 422 || r.Field() != "code" {
		t.Fatalf("bad code: %d %s", r.Status, r.Body)
	}
	rc := b.must(200, "POST", "/api/v1/me/mfa/totp/confirm", map[string]any{"code": code(t, secret, now)})
	if codes, _ := rc["recovery_codes"].([]any); len(codes) != 10 {
		t.Fatalf("recovery codes %v", rc)
	}
	b.must(200, "GET", "/api/v1/schedules", nil)
	mfa := b.must(200, "GET", "/api/v1/me/mfa", nil)
	if mfa["totp_enabled"] != true || mfa["required"] != true || mfa["recovery_codes_left"] != float64(10) {
		t.Fatalf("mfa %v", mfa)
	}

	// A new sign-in needs the code: without it the answer says so.
	b2 := newBrowser(t, in.URL)
	r := b2.do("POST", "/api/v1/auth/login", login)
	if r.Status != 401 || r.JSON["mfa_required"] != true {
		t.Fatalf("password alone: %d %s", r.Status, r.Body)
	}
	login["totp_code"] = code(t, secret, now.Add(30*time.Second))
	out := b2.must(200, "POST", "/api/v1/auth/login", login)
	if out["idle_timeout_seconds"] != float64(900) {
		t.Errorf("login answer %v", out)
	}
	if st := admin.Must(200, "GET", "/api/v1/users/"+doc.ID.String()+"/mfa", nil); st["totp_enabled"] != true {
		t.Errorf("admin sees %v", st)
	}
	nurse.Must(403, "GET", "/api/v1/users/"+doc.ID.String()+"/mfa", nil)
	// The admin resets the authenticator of a user who lost their phone.
	nurse.Must(403, "DELETE", "/api/v1/users/"+doc.ID.String()+"/mfa/totp", nil)
	admin.Must(204, "DELETE", "/api/v1/users/"+doc.ID.String()+"/mfa/totp", nil)
	if me := b2.must(200, "GET", "/api/v1/me", nil); me["mfa_enrollment_required"] != true {
		t.Errorf("after reset: %v", me)
	}
}

// TestLockoutOverHTTP: failures lock the account; the answers for a locked
// account, a wrong password and an unknown email are the same.
func TestLockoutOverHTTP(t *testing.T) {
	t.Parallel()
	in := apitest.Start(t)
	admin := in.User("Ada Admin", "admin")
	u := passwordUser(t, in, "lock@example.org", "nurse")
	admin.Must(200, "PATCH", "/api/v1/security/settings", map[string]any{"lockout_threshold": 3, "lockout_minutes": 10})
	b := newBrowser(t, in.URL)
	for range 3 {
		b.must(401, "POST", "/api/v1/auth/login", map[string]any{"email": "lock@example.org", "password": "wrong wrong wrong"})
	}
	locked := b.do("POST", "/api/v1/auth/login", map[string]any{"email": "lock@example.org", "password": "correct horse battery"})
	unknown := b.do("POST", "/api/v1/auth/login", map[string]any{"email": "nobody@example.org", "password": "correct horse battery"})
	if locked.Status != 401 || !bytes.Equal(locked.Body, unknown.Body) {
		t.Fatalf("locked %d %s; unknown %d %s", locked.Status, locked.Body, unknown.Status, unknown.Body)
	}
	var n int
	in.DB.Pool.QueryRow(context.Background(), `SELECT count(*) FROM audit_events WHERE action = 'auth.lockout' AND object_id = $1`, u.ID.String()).Scan(&n)
	if n != 1 {
		t.Fatalf("%d lockout audit events", n)
	}
	admin.Must(204, "POST", "/api/v1/users/"+u.ID.String()+"/unlock", nil)
	b.must(200, "POST", "/api/v1/auth/login", map[string]any{"email": "lock@example.org", "password": "correct horse battery"})
}

// TestSessionsListAndRevoke: a user sees their sessions and tokens and
// revokes one; the revoked session's event stream gets session.revoked and
// ends, and its cookie stops working. Others may not look.
func TestSessionsListAndRevoke(t *testing.T) {
	t.Parallel()
	in := apitest.Start(t)
	admin := in.User("Ada Admin", "admin")
	other := in.User("Olly Other", "physician")
	u := passwordUser(t, in, "rev@example.org", "nurse")
	tok := tokenFor(t, in, u)
	phone, desk := newBrowser(t, in.URL), newBrowser(t, in.URL)
	login := map[string]any{"email": "rev@example.org", "password": "correct horse battery"}
	phoneID := phone.must(200, "POST", "/api/v1/auth/login", login)["session_id"].(string)
	desk.must(200, "POST", "/api/v1/auth/login", login)

	path := "/api/v1/users/" + u.ID.String() + "/sessions"
	list := desk.must(200, "GET", path, nil)
	if s, _ := list["sessions"].([]any); len(s) != 2 {
		t.Fatalf("sessions %v", list)
	}
	if tk, _ := list["tokens"].([]any); len(tk) != 1 {
		t.Fatalf("tokens %v", list)
	}
	other.Must(403, "GET", path, nil)
	other.Must(403, "DELETE", path+"/"+phoneID, nil)
	admin.Must(200, "GET", path, nil)

	// The phone is listening when the desk revokes it.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", in.URL+"/api/v1/events", nil)
	resp, err := phone.c.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("phone stream: %v %v", err, resp)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() && sc.Text() != "" { // the retry: preamble means subscribed
	}
	desk.must(204, "DELETE", path+"/"+phoneID, nil)
	var got []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		for sc.Scan() {
			got = append(got, sc.Text())
		}
	}()
	select {
	case <-done: // the server ended the stream
	case <-time.After(10 * time.Second):
		t.Fatal("the revoked session's stream stayed open")
	}
	all := strings.Join(got, "\n")
	if !strings.Contains(all, "event: session.revoked") || !strings.Contains(all, phoneID) {
		t.Fatalf("stream got %q", all)
	}
	phone.must(401, "GET", "/api/v1/me", nil)
	desk.must(200, "GET", "/api/v1/me", nil)
	desk.must(404, "DELETE", path+"/"+other.User.ID.String(), nil)

	// Revoke everything: the desk session and the token stop working.
	admin.Must(204, "POST", "/api/v1/users/"+u.ID.String()+"/revoke-credentials", nil)
	desk.must(401, "GET", "/api/v1/me", nil)
	tok.Must(401, "GET", "/api/v1/me", nil)
	var n int
	in.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM audit_events WHERE action IN ('session.revoke', 'credentials.revoke_all')`).Scan(&n)
	if n != 2 {
		t.Errorf("%d revoke audit events, want 2", n)
	}
}

// TestRateLimits: login per address and page creation per token answer 429
// with Retry-After once over the limit.
func TestRateLimits(t *testing.T) {
	t.Parallel()
	in := apitest.Start(t, apitest.Options{Setup: func(s *server.Server) {
		s.API.Limits = httpapi.Limits{
			LoginPerIP:     ratelimit.Rule{Limit: 3, Window: time.Minute},
			PagesPerCaller: ratelimit.Rule{Limit: 2, Window: time.Minute},
		}
	}})
	b := newBrowser(t, in.URL)
	for range 3 {
		b.must(401, "POST", "/api/v1/auth/login", map[string]any{"email": "x@example.org", "password": "wrong wrong"})
	}
	r := b.do("POST", "/api/v1/auth/login", map[string]any{"email": "x@example.org", "password": "wrong wrong"})
	if r.Status != 429 || r.Header.Get("Retry-After") == "" {
		t.Fatalf("4th login: %d %v %s", r.Status, r.Header, r.Body)
	}
	nurse, nurse2 := in.User("Nina", "nurse"), in.User("Nora", "nurse")
	page := map[string]any{"service_id": "00000000-0000-0000-0000-000000000001", "priority": "routine", "summary": "x"}
	for range 2 {
		if r := nurse.Do("POST", "/api/v1/pages", page); r.Status == 429 {
			t.Fatalf("limited too early: %s", r.Body)
		}
	}
	nurse.Must(429, "POST", "/api/v1/pages", page)
	if r := nurse2.Do("POST", "/api/v1/pages", page); r.Status == 429 {
		t.Fatal("another token shares the limit")
	}
}

// TestSecurityHeaders: every response carries CSP, nosniff and a referrer
// policy; HSTS comes over TLS; frame-ancestors follows the setting.
func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		tls       bool
		ancestors string
		wantHSTS  bool
		wantFrame string
	}{
		{"plain", false, "", false, "frame-ancestors 'none'"},
		{"tls", true, "", true, "frame-ancestors 'none'"},
		{"embedded", false, "https://ehr.example.org", false, "frame-ancestors https://ehr.example.org"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := (&httpapi.Server{FrameAncestors: tc.ancestors, Log: slog.New(slog.DiscardHandler)}).Handler()
			var srv *httptest.Server
			if tc.tls {
				srv = httptest.NewTLSServer(h)
			} else {
				srv = httptest.NewServer(h)
			}
			defer srv.Close()
			for _, path := range []string{"/healthz", "/no-such-page", "/api/v1/me"} {
				resp, err := srv.Client().Get(srv.URL + path)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				hd := resp.Header
				if hd.Get("X-Content-Type-Options") != "nosniff" || hd.Get("Referrer-Policy") == "" || hd.Get("Content-Security-Policy") == "" {
					t.Errorf("%s: headers %v", path, hd)
				}
				if (hd.Get("Strict-Transport-Security") != "") != tc.wantHSTS {
					t.Errorf("%s: HSTS %q", path, hd.Get("Strict-Transport-Security"))
				}
				if !strings.HasPrefix(path, "/api/") && !strings.Contains(hd.Get("Content-Security-Policy"), tc.wantFrame) {
					t.Errorf("%s: CSP %q, want %q", path, hd.Get("Content-Security-Policy"), tc.wantFrame)
				}
			}
		})
	}
	if err := httpapi.CheckFrameAncestors("https://ehr.example.org; script-src *"); err == nil {
		t.Error("a directive smuggled into frame-ancestors was accepted")
	}
}

// TestRevokedTokenRefusedByEveryInstance: each instance keeps the API tokens
// that authenticated in memory (auth's token cache). A token revoked through
// one instance is refused by it at once, and by another as soon as that one
// hears of the commit: well before the cache's own 30-second bound, which
// the wait below stays under.
func TestRevokedTokenRefusedByEveryInstance(t *testing.T) {
	t.Parallel()
	a := apitest.Start(t)
	b := apitest.Start(t, apitest.Options{DB: a.DB})
	admin := a.User("Ada Admin", "admin")
	for _, revoke := range []string{"one token", "deactivation"} {
		t.Run(revoke, func(t *testing.T) {
			gateway := a.User("Pager Gateway", "nurse")
			onB := *gateway
			onB.Base = b.URL
			gateway.Must(200, "GET", "/api/v1/me", nil)
			onB.Must(200, "GET", "/api/v1/me", nil)
			user := "/api/v1/users/" + gateway.User.ID.String()
			if revoke == "one token" {
				list := admin.Must(200, "GET", user+"/sessions", nil)
				tokens, _ := list["tokens"].([]any)
				if len(tokens) != 1 {
					t.Fatalf("tokens %v", list)
				}
				id, _ := tokens[0].(map[string]any)["id"].(string)
				admin.Must(204, "DELETE", user+"/tokens/"+id, nil)
			} else {
				admin.Must(200, "PATCH", user, map[string]any{"active": false})
			}
			gateway.Must(401, "GET", "/api/v1/me", nil)
			deadline := time.Now().Add(10 * time.Second)
			for onB.Do("GET", "/api/v1/me", nil).Status != 401 {
				if time.Now().After(deadline) {
					t.Fatal("the other instance still accepts the revoked token")
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
}

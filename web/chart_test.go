package web_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/auth"
	"github.com/callroom/callroom/internal/apitest"
	"github.com/callroom/callroom/internal/server"
	"github.com/callroom/callroom/web"
)

// ehr is a test EHR: a SMART authorization server (discovery, authorize,
// token) and the one FHIR read callroom makes (the user's Practitioner),
// plus a chart page that frames callroom. It checks every parameter of the
// launch as a real one would, PKCE included, and records what it refused.
type ehr struct {
	t           *testing.T
	srv         *httptest.Server
	callroomURL string
	clientID    string
	mu          sync.Mutex
	codes       map[string]authRequest
	refused     []string
}

type authRequest struct{ redirectURI, challenge, launch string }

const (
	launchToken   = "launch-7f3a"
	practitioner  = "prac-42"
	chartPatient  = "pat-123"
	doctorNPI     = "1234567893"
	accessTokenOK = "ehr-access-token"
)

func newEHR(t *testing.T) *ehr {
	e := &ehr{t: t, clientID: "callroom-test", codes: map[string]authRequest{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /fhir/.well-known/smart-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{ //nolint:errcheck
			"authorization_endpoint":           e.srv.URL + "/auth/authorize",
			"token_endpoint":                   e.srv.URL + "/auth/token",
			"code_challenge_methods_supported": []string{"S256"},
			"capabilities":                     []string{"launch-ehr", "context-ehr-patient", "client-public", "sso-openid-connect"},
		})
	})
	mux.HandleFunc("GET /auth/authorize", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		want := map[string]string{"response_type": "code", "client_id": e.clientID, "launch": launchToken,
			"aud": e.srv.URL + "/fhir", "code_challenge_method": "S256", "redirect_uri": e.callroomURL + "/smart/callback"}
		for k, v := range want {
			if q.Get(k) != v {
				e.refuse(w, fmt.Sprintf("authorize: %s=%q, want %q", k, q.Get(k), v))
				return
			}
		}
		if !strings.Contains(q.Get("scope"), "launch") || !strings.Contains(q.Get("scope"), "fhirUser") || q.Get("state") == "" || q.Get("code_challenge") == "" {
			e.refuse(w, "authorize: scope, state or code_challenge missing: "+r.URL.RawQuery)
			return
		}
		code := fmt.Sprintf("code-%d", len(e.codes)+1)
		e.mu.Lock()
		e.codes[code] = authRequest{q.Get("redirect_uri"), q.Get("code_challenge"), q.Get("launch")}
		e.mu.Unlock()
		http.Redirect(w, r, q.Get("redirect_uri")+"?code="+code+"&state="+url.QueryEscape(q.Get("state")), http.StatusFound)
	})
	mux.HandleFunc("POST /auth/token", func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm() //nolint:errcheck
		e.mu.Lock()
		req, ok := e.codes[r.PostForm.Get("code")]
		delete(e.codes, r.PostForm.Get("code")) // one use
		e.mu.Unlock()
		sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
		switch {
		case !ok:
			e.refuse(w, "token: unknown or reused code")
			return
		case r.PostForm.Get("grant_type") != "authorization_code", r.PostForm.Get("client_id") != e.clientID,
			r.PostForm.Get("redirect_uri") != req.redirectURI:
			e.refuse(w, "token: bad grant_type, client_id or redirect_uri: "+r.PostForm.Encode())
			return
		case base64.RawURLEncoding.EncodeToString(sum[:]) != req.challenge:
			e.refuse(w, "token: code_verifier does not match the code_challenge")
			return
		}
		claims, _ := json.Marshal(map[string]any{"iss": e.srv.URL + "/auth", "sub": practitioner, "aud": e.clientID,
			"fhirUser": e.srv.URL + "/fhir/Practitioner/" + practitioner})
		idToken := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256","typ":"JWT"}`)) + "." +
			base64.RawURLEncoding.EncodeToString(claims) + ".c2lnbmF0dXJl"
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"access_token": accessTokenOK, "token_type": "Bearer", "expires_in": 3600, //nolint:errcheck
			"scope": "launch openid fhirUser user/Practitioner.rs", "patient": chartPatient, "id_token": idToken})
	})
	mux.HandleFunc("GET /fhir/Practitioner/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+accessTokenOK || r.PathValue("id") != practitioner {
			e.refuse(w, "fhir: Practitioner read without the access token, or of someone else")
			return
		}
		w.Header().Set("Content-Type", "application/fhir+json")
		fmt.Fprintf(w, `{"resourceType":"Practitioner","id":%q,"identifier":[{"system":"http://hl7.org/fhir/sid/us-npi","value":%q}],"name":[{"family":"Hosp","given":["Omar"]}]}`, practitioner, doctorNPI)
	})
	// The EHR's chart: callroom in an iframe, phone-width.
	mux.HandleFunc("GET /chart", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><title>EHR chart</title><h1>EHR: chart</h1><iframe id="callroom" title="callroom" width="360" height="640" src="%s"></iframe>`,
			e.callroomURL+"/smart/launch?launch="+launchToken+"&iss="+url.QueryEscape(e.srv.URL+"/fhir"))
	})
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	return e
}

func (e *ehr) refuse(w http.ResponseWriter, why string) {
	e.mu.Lock()
	e.refused = append(e.refused, why)
	e.mu.Unlock()
	http.Error(w, why, http.StatusBadRequest)
}

// TestSMARTLaunchOpensThePatientsThreads: the EHR frames callroom at 360 px
// and launches it for patient pat-123; the physician, matched by NPI, lands
// on that patient's chart view (their threads about that patient only, and
// its pages) without signing in, and posts in the thread.
func TestSMARTLaunchOpensThePatientsThreads(t *testing.T) {
	t.Parallel()
	e := newEHR(t)
	in := apitest.Start(t, apitest.Options{Setup: func(s *server.Server) {
		s.API.FrameAncestors = e.srv.URL
		s.API.Web = web.Handler(web.Options{
			FrameAncestors: e.srv.URL, SessionIdle: s.Auth.SessionIdle,
			SMART: &web.SMART{Issuer: e.srv.URL + "/fhir", ClientID: e.clientID},
			Auth:  s.Auth, Keys: s.Keys, SessionCookie: "callroom_session",
		})
	}})
	e.callroomURL = in.URL
	browser := startBrowser(t)
	nurse := newPerson(t, in, browser, "Nadia Nurse", 1280, 900, "nurse")
	doc := newPerson(t, in, browser, "Dr. Omar Hosp", 1024, 800, "physician")
	npi := doctorNPI
	if _, err := in.Server.Auth.UpdateUser(t.Context(), audit.System, doc.api.User.ID, auth.UserChange{NPI: &npi}); err != nil {
		t.Fatal(err)
	}

	mk := func(ref, name, text string) string {
		th := nurse.api.Must(http.StatusCreated, "POST", "/api/v1/threads", map[string]any{
			"kind": "patient", "patient_ref": ref, "name": name, "member_ids": []string{doc.id}})
		nurse.api.Must(http.StatusCreated, "POST", "/api/v1/threads/"+th["id"].(string)+"/messages", map[string]any{"text": text})
		return th["id"].(string)
	}
	tid := mk("Patient/"+chartPatient, "Potassium follow-up", "K+ 6.1 on the morning labs")
	mk("Patient/pat-999", "Other patient", "not this chart")
	nurse.api.Must(http.StatusCreated, "POST", "/api/v1/pages", map[string]any{
		"user_id": doc.id, "priority": "urgent", "summary": "Please review potassium", "patient_ref": "Patient/" + chartPatient})

	// The EHR page frames callroom; the launch runs inside the frame.
	doc.do("open the EHR chart", chromedp.Navigate(e.srv.URL+"/chart"))
	frameNodes, err := chromedp.Run(doc.ctx, chromedp.Nodes(chromedp.CSS("iframe#callroom")))
	if err != nil || len(frameNodes) != 1 {
		t.Fatalf("iframe: %v", err)
	}
	inFrame := func(what, expr string) {
		t.Helper()
		doc.do(what, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInFrame(frameNodes[0]), chromedp.WithPollingTimeout(15e9)))
	}
	row := fmt.Sprintf(`document.querySelector('#chart-threads li[data-thread=%q]')`, tid)
	inFrame("chart view", `!document.querySelector("#chart").hidden && document.querySelector("#chart-patient").textContent === "Patient: Patient/`+chartPatient+`"`)
	inFrame("this patient's thread", row+` && `+row+`.textContent.includes("Potassium follow-up")`)
	inFrame("only this patient's", `document.querySelectorAll("#chart-threads li").length === 1`)
	inFrame("this patient's page", `[...document.querySelectorAll("#chart-pages li")].some(li => li.textContent.includes("Please review potassium"))`)
	inFrame("no PHI in the URL", `location.pathname === "/" && location.search === "" && location.hash === "#chart"`)
	inFrame("signed in as the physician", `document.querySelector("#whoami").textContent === "Dr. Omar Hosp"`)

	doc.screenshot("chart-launched-in-ehr")

	// Post in the thread from the chart.
	inFrame("open thread", row+`.querySelector("button").click() || true`)
	inFrame("messages", `[...document.querySelectorAll("#messages .msg-text")].some(p => p.textContent === "K+ 6.1 on the morning labs")`)
	inFrame("reply", `(() => { document.querySelector("#reply-text").value = "Repeat BMP ordered"; document.querySelector("#reply-send").click(); return true })()`)
	inFrame("reply shown", `[...document.querySelectorAll("#messages li.mine .msg-text")].some(p => p.textContent === "Repeat BMP ordered")`)
	doc.screenshot("chart-in-ehr")
	msgs := nurse.api.Must(http.StatusOK, "GET", "/api/v1/threads/"+tid+"/messages", nil)
	if b, _ := json.Marshal(msgs); !strings.Contains(string(b), "Repeat BMP ordered") {
		t.Errorf("the reply did not reach the thread: %s", b)
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.refused) > 0 {
		t.Errorf("the EHR refused: %v", e.refused)
	}
}

// TestSMARTLaunchRefusesAnotherIssuer: a launch naming an EHR callroom does
// not trust is refused before anything else happens.
func TestSMARTLaunchRefusesAnotherIssuer(t *testing.T) {
	t.Parallel()
	e := newEHR(t)
	in := apitest.Start(t, apitest.Options{Setup: func(s *server.Server) {
		s.API.Web = web.Handler(web.Options{SMART: &web.SMART{Issuer: "https://ehr.example.org/fhir", ClientID: "x"},
			Auth: s.Auth, Keys: s.Keys})
	}})
	e.callroomURL = in.URL
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(in.URL + "/smart/launch?launch=x&iss=" + url.QueryEscape(e.srv.URL+"/fhir"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("launch from an untrusted iss: %d, want 403", resp.StatusCode)
	}
}

// TestSMARTLaunchRefusesAnUnknownClinician: an EHR user whose NPI no
// callroom user has gets 403 and no session, and the refusal is audited.
func TestSMARTLaunchRefusesAnUnknownClinician(t *testing.T) {
	t.Parallel()
	e := newEHR(t)
	in := apitest.Start(t, apitest.Options{Setup: func(s *server.Server) {
		s.API.Web = web.Handler(web.Options{SMART: &web.SMART{Issuer: e.srv.URL + "/fhir", ClientID: e.clientID},
			Auth: s.Auth, Keys: s.Keys, SessionCookie: "callroom_session"})
	}})
	e.callroomURL = in.URL
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar}
	resp, err := client.Get(in.URL + "/smart/launch?launch=" + launchToken + "&iss=" + url.QueryEscape(e.srv.URL+"/fhir"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || resp.Request.URL.Path != "/smart/callback" {
		t.Fatalf("an unknown clinician's launch ended %d at %s, want 403 at the callback", resp.StatusCode, resp.Request.URL.Path)
	}
	for _, c := range jar.Cookies(resp.Request.URL) {
		if c.Name == "callroom_session" {
			t.Error("an unknown clinician got a session")
		}
	}
	evs, err := audit.List(t.Context(), in.DB.Pool, audit.Filter{Action: "fhir.launch"})
	if err != nil || len(evs) != 1 || evs[0].Outcome != audit.Denied || evs[0].Details["reason"] != "unmatched practitioner" {
		t.Errorf("audited %+v (%v), want one denied fhir.launch", evs, err)
	}
}

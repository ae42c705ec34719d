package web

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/callroom/callroom"
	"github.com/callroom/callroom/auth"
	"github.com/callroom/callroom/fhir"
)

// SMART configures the patient-chart view's EHR launch (SMART App Launch,
// "EHR launch"): the EHR opens /smart/launch?launch=…&iss=…, callroom
// discovers the EHR's authorization server from
// {iss}/.well-known/smart-configuration, sends the browser there with an
// authorization code request (PKCE S256), and on /smart/callback exchanges
// the code for the token response, whose patient and fhirUser say whose
// chart is open and who is looking. fhirUser's Practitioner is matched to a
// callroom user by NPI; that user gets an ordinary browser session.
type SMART struct {
	// Issuer is the EHR's FHIR base URL. A launch naming any other iss is
	// refused: anyone can craft a launch URL, and an issuer of their own
	// would vouch for whomever they like.
	Issuer string
	// ClientID is callroom's client id at the EHR; ClientSecret, when set,
	// makes it a confidential client (client_secret_basic).
	ClientID, ClientSecret string
	// Scope requested; DefaultSMARTScope when empty.
	Scope string
	// HTTPClient talks to the EHR; a 10-second client when nil.
	HTTPClient *http.Client
	// EHR, when set, is callroom's connection to this EHR (package fhir,
	// CALLROOM_FHIR_CONFIG with a "launch" section): it matches the
	// clinician through that connection (NPI, then email), links the
	// patient's identifiers and puts the clinician in the patient's thread.
	// Without it the clinician is matched by the NPI of the Practitioner
	// read with their own access token.
	EHR *fhir.Store
}

// DefaultSMARTScope asks for the launch context, the user's identity and
// read access to the Practitioner resource that identity names.
const DefaultSMARTScope = "launch openid fhirUser user/Practitioner.rs"

// launchCookie carries the launch's state and PKCE verifier from
// /smart/launch to /smart/callback, sealed by the keyring (so any instance
// can open it, and nobody can forge or read it).
const (
	launchCookie    = "callroom_smart"
	launchCookieAAD = "cookie:callroom_smart"
	launchMaxAge    = 10 * time.Minute
)

type launchState struct {
	State         string `json:"s"`
	Verifier      string `json:"v"`
	TokenEndpoint string `json:"t"`
	Created       int64  `json:"c"`
}

// fhirID is FHIR's id datatype.
var fhirID = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)

func (c *client) smartHTTP() *http.Client {
	if c.o.SMART.HTTPClient != nil {
		return c.o.SMART.HTTPClient
	}
	return &http.Client{Timeout: 10 * time.Second}
}

func randomString() string {
	b := make([]byte, 32)
	rand.Read(b) //nolint:errcheck // never fails
	return base64.RawURLEncoding.EncodeToString(b)
}

func (c *client) redirectURI(r *http.Request) string {
	base := strings.TrimRight(c.o.PublicURL, "/")
	if base == "" {
		base = "http://" + r.Host
	}
	return base + "/smart/callback"
}

// launchFail answers a launch that cannot go on. The detail names what went
// wrong in the EHR's terms; it never holds patient data.
func (c *client) launchFail(w http.ResponseWriter, status int, detail string, err error) {
	if c.o.Log != nil {
		args := []any{"status", status, "detail", detail}
		if err != nil {
			args = append(args, "err", err.Error())
		}
		c.o.Log.Warn("smart launch refused", args...)
	}
	http.Error(w, "The EHR launch failed: "+detail, status)
}

func (c *client) smartLaunch(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	iss := strings.TrimRight(q.Get("iss"), "/")
	launch := q.Get("launch")
	if iss == "" || launch == "" {
		c.launchFail(w, http.StatusBadRequest, "the launch needs the iss and launch parameters", nil)
		return
	}
	if iss != strings.TrimRight(c.o.SMART.Issuer, "/") {
		c.launchFail(w, http.StatusForbidden, "this EHR (iss) is not one callroom is configured to trust", nil)
		return
	}
	var conf struct {
		AuthorizationEndpoint string   `json:"authorization_endpoint"`
		TokenEndpoint         string   `json:"token_endpoint"`
		CodeChallengeMethods  []string `json:"code_challenge_methods_supported"`
	}
	if err := c.getJSON(r.Context(), iss+"/.well-known/smart-configuration", "", &conf); err != nil {
		c.launchFail(w, http.StatusBadGateway, "cannot read the EHR's .well-known/smart-configuration", err)
		return
	}
	if conf.AuthorizationEndpoint == "" || conf.TokenEndpoint == "" {
		c.launchFail(w, http.StatusBadGateway, "the EHR's smart-configuration lacks authorization_endpoint or token_endpoint", nil)
		return
	}
	if len(conf.CodeChallengeMethods) > 0 && !contains(conf.CodeChallengeMethods, "S256") {
		c.launchFail(w, http.StatusBadGateway, "the EHR does not support PKCE with S256", nil)
		return
	}
	st := launchState{State: randomString(), Verifier: randomString(), TokenEndpoint: conf.TokenEndpoint, Created: time.Now().Unix()}
	plain, _ := json.Marshal(st)
	blob, _, err := c.o.Keys.Seal(r.Context(), plain, []byte(launchCookieAAD))
	if err != nil {
		c.launchFail(w, http.StatusInternalServerError, "cannot start the launch", err)
		return
	}
	http.SetCookie(w, c.frameCookie(&http.Cookie{Name: launchCookie, Value: base64.RawURLEncoding.EncodeToString(blob), Path: "/smart/",
		MaxAge: int(launchMaxAge / time.Second)}))
	sum := sha256.Sum256([]byte(st.Verifier))
	scope := c.o.SMART.Scope
	if scope == "" {
		scope = DefaultSMARTScope
	}
	u, err := url.Parse(conf.AuthorizationEndpoint)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") {
		c.launchFail(w, http.StatusBadGateway, "the EHR's authorization_endpoint is not a URL", err)
		return
	}
	aq := u.Query()
	for k, v := range map[string]string{
		"response_type": "code", "client_id": c.o.SMART.ClientID, "redirect_uri": c.redirectURI(r),
		"launch": launch, "scope": scope, "state": st.State, "aud": iss,
		"code_challenge": base64.RawURLEncoding.EncodeToString(sum[:]), "code_challenge_method": "S256",
	} {
		aq.Set(k, v)
	}
	u.RawQuery = aq.Encode()
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, u.String(), http.StatusFound)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (c *client) smartCallback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if e := q.Get("error"); e != "" {
		c.launchFail(w, http.StatusForbidden, "the EHR's authorization server answered "+strings.Map(printable, e), nil)
		return
	}
	ck, err := r.Cookie(launchCookie)
	if err != nil {
		c.launchFail(w, http.StatusBadRequest, "no launch in progress in this browser (or it took longer than 10 minutes)", nil)
		return
	}
	http.SetCookie(w, c.frameCookie(&http.Cookie{Name: launchCookie, Value: "", Path: "/smart/", MaxAge: -1}))
	var st launchState
	blob, err := base64.RawURLEncoding.DecodeString(ck.Value)
	if err == nil {
		var plain []byte
		if plain, err = c.o.Keys.Open(r.Context(), blob, []byte(launchCookieAAD)); err == nil {
			err = json.Unmarshal(plain, &st)
		}
	}
	if err != nil || time.Since(time.Unix(st.Created, 0)) > launchMaxAge {
		c.launchFail(w, http.StatusBadRequest, "the launch is invalid or expired; launch again from the EHR", err)
		return
	}
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(st.State)) != 1 {
		c.launchFail(w, http.StatusBadRequest, "the state parameter does not match this browser's launch", nil)
		return
	}
	code := q.Get("code")
	if code == "" {
		c.launchFail(w, http.StatusBadRequest, "the authorization server sent no code", nil)
		return
	}
	tok, err := c.exchangeCode(r, st, code)
	if err != nil {
		c.launchFail(w, http.StatusBadGateway, "exchanging the authorization code failed", err)
		return
	}
	if !fhirID.MatchString(tok.Patient) {
		c.launchFail(w, http.StatusBadGateway, "the token response has no patient context (patient)", nil)
		return
	}
	practitioner, err := c.fhirUser(tok)
	if err != nil {
		c.launchFail(w, http.StatusBadGateway, "the token response's fhirUser is missing or not a Practitioner of this EHR", err)
		return
	}
	var userID uuid.UUID
	if ehr := c.o.SMART.EHR; ehr != nil {
		l := fhir.LaunchContext{Patient: "Patient/" + tok.Patient, ClientAddr: clientAddr(r),
			FHIRUser: strings.TrimPrefix(practitioner, strings.TrimRight(c.o.SMART.Issuer, "/")+"/")}
		if fhirID.MatchString(tok.Encounter) {
			l.Encounter = "Encounter/" + tok.Encounter
		}
		done, err := ehr.RecordLaunch(r.Context(), l)
		var rej *fhir.Rejection
		switch {
		case errors.As(err, &rej):
			c.launchFail(w, rej.Status, rej.Diagnostics, nil)
			return
		case err != nil:
			c.launchFail(w, http.StatusBadGateway, "cannot match you through the EHR connection", err)
			return
		}
		userID = done.UserID
	} else if userID = c.matchByNPI(w, r, tok, practitioner); userID == uuid.Nil {
		return
	}
	sess, secret, err := c.o.Auth.OpenSession(r.Context(), userID, clientAddr(r), r.UserAgent())
	if errors.Is(err, auth.ErrLoginFailed) {
		c.launchFail(w, http.StatusForbidden, "your callroom account is deactivated", nil)
		return
	}
	if err != nil {
		c.launchFail(w, http.StatusInternalServerError, "cannot open a session", err)
		return
	}
	http.SetCookie(w, c.frameCookie(&http.Cookie{Name: c.o.SessionCookie, Value: secret, Path: "/", Expires: sess.ExpiresAt}))
	c.serveIndex(w, r, page{Patient: "Patient/" + tok.Patient})
}

// matchByNPI finds the callroom user whose NPI is the one on the
// Practitioner fhirUser names, read with the clinician's own token; it
// answers the browser and returns uuid.Nil when there is none.
func (c *client) matchByNPI(w http.ResponseWriter, r *http.Request, tok tokenResponse, practitioner string) uuid.UUID {
	var prac struct {
		ResourceType string `json:"resourceType"`
		Identifier   []struct {
			System string `json:"system"`
			Value  string `json:"value"`
		} `json:"identifier"`
	}
	if err := c.getJSON(r.Context(), practitioner, tok.AccessToken, &prac); err != nil || prac.ResourceType != "Practitioner" {
		c.launchFail(w, http.StatusBadGateway, "cannot read the user's Practitioner resource from the EHR", err)
		return uuid.Nil
	}
	npi := ""
	for _, id := range prac.Identifier {
		if id.System == "http://hl7.org/fhir/sid/us-npi" {
			npi = id.Value
		}
	}
	refuse := func(reason, detail string, err error) uuid.UUID {
		if aerr := c.o.Auth.LaunchRefused(r.Context(), practitioner, clientAddr(r), reason); aerr != nil {
			c.launchFail(w, http.StatusInternalServerError, "cannot record the refusal", aerr)
			return uuid.Nil
		}
		c.launchFail(w, http.StatusForbidden, detail, err)
		return uuid.Nil
	}
	if npi == "" {
		return refuse("practitioner without NPI", "your EHR account has no NPI, so callroom cannot tell who you are", nil)
	}
	u, err := c.o.Auth.UserByNPI(r.Context(), npi)
	if errors.Is(err, callroom.ErrNotFound) {
		return refuse("unmatched practitioner", "no callroom user has your NPI; ask an administrator to add it", nil)
	}
	if err != nil {
		c.launchFail(w, http.StatusInternalServerError, "cannot look up your account", err)
		return uuid.Nil
	}
	return u.ID
}

// frameCookie sets the attributes of the cookies an EHR launch sets. The
// launch runs inside the EHR's iframe; when the EHR is another site, a
// browser sends a SameSite=Lax cookie neither to the callback nor to the
// chart's API requests. Over https they are therefore SameSite=None and
// Partitioned (CHIPS: kept under the EHR's site, so they are not
// third-party cookies that browsers block, and not shared with callroom
// opened elsewhere). Over plain http (development, tests) browsers refuse
// SameSite=None, and Lax works for a same-site EHR.
func (c *client) frameCookie(ck *http.Cookie) *http.Cookie {
	ck.HttpOnly = true
	ck.Secure = c.o.SecureCookies
	ck.SameSite = http.SameSiteLaxMode
	if c.o.SecureCookies {
		ck.SameSite = http.SameSiteNoneMode
		ck.Partitioned = true
	}
	return ck
}

type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	Patient     string `json:"patient"`
	Encounter   string `json:"encounter"`
	IDToken     string `json:"id_token"`
}

func (c *client) exchangeCode(r *http.Request, st launchState, code string) (tokenResponse, error) {
	var tok tokenResponse
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {c.redirectURI(r)},
		"code_verifier": {st.Verifier}}
	if c.o.SMART.ClientSecret == "" {
		form.Set("client_id", c.o.SMART.ClientID)
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, st.TokenEndpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return tok, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if c.o.SMART.ClientSecret != "" {
		req.SetBasicAuth(url.QueryEscape(c.o.SMART.ClientID), url.QueryEscape(c.o.SMART.ClientSecret))
	}
	resp, err := c.smartHTTP().Do(req)
	if err != nil {
		return tok, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return tok, err
	}
	if resp.StatusCode != http.StatusOK {
		return tok, fmt.Errorf("token endpoint answered %d", resp.StatusCode)
	}
	if err := json.Unmarshal(body, &tok); err != nil {
		return tok, fmt.Errorf("token response: %w", err)
	}
	if tok.AccessToken == "" || !strings.EqualFold(tok.TokenType, "bearer") {
		return tok, errors.New("token response lacks a bearer access_token")
	}
	return tok, nil
}

// fhirUser returns the absolute URL of the Practitioner the id_token's
// fhirUser claim names. The id_token came straight from the token endpoint
// over the connection callroom opened, so (as OpenID Connect Core 3.1.3.7
// allows) the TLS connection, not the token's signature, vouches for it; its
// audience must still be callroom.
func (c *client) fhirUser(tok tokenResponse) (string, error) {
	parts := strings.Split(tok.IDToken, ".")
	if len(parts) != 3 {
		return "", errors.New("no id_token")
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return "", fmt.Errorf("id_token: %w", err)
	}
	var claims struct {
		Aud      json.RawMessage `json:"aud"`
		Exp      int64           `json:"exp"`
		FHIRUser string          `json:"fhirUser"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		return "", fmt.Errorf("id_token: %w", err)
	}
	if claims.Exp != 0 && time.Unix(claims.Exp, 0).Before(time.Now()) {
		return "", errors.New("id_token: expired")
	}
	var auds []string
	var one string
	if json.Unmarshal(claims.Aud, &one) == nil {
		auds = []string{one}
	} else if json.Unmarshal(claims.Aud, &auds) != nil {
		return "", errors.New("id_token: bad aud")
	}
	if !contains(auds, c.o.SMART.ClientID) {
		return "", errors.New("id_token: not issued to callroom (aud)")
	}
	base := strings.TrimRight(c.o.SMART.Issuer, "/")
	ref := claims.FHIRUser
	if !strings.Contains(ref, "://") {
		ref = base + "/" + ref
	}
	rest, ok := strings.CutPrefix(ref, base+"/")
	typ, id, ok2 := strings.Cut(rest, "/")
	if !ok || !ok2 || typ != "Practitioner" || !fhirID.MatchString(id) {
		return "", fmt.Errorf("fhirUser is not a Practitioner of %s", base)
	}
	return ref, nil
}

func (c *client) getJSON(ctx context.Context, u, bearer string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/fhir+json, application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := c.smartHTTP().Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET answered %d", resp.StatusCode)
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(v)
}

func printable(r rune) rune {
	if r < 0x20 || r > 0x7e {
		return -1
	}
	return r
}

func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

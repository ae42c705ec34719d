package httpapi_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/callroom/callroom/httpapi"
	"github.com/callroom/callroom/internal/apitest"
	"github.com/callroom/callroom/internal/server"
)

// idp is a small OpenID Connect provider: discovery, JWKS, an authorization
// endpoint that signs in whoever the test says, and a token endpoint that
// checks the PKCE verifier and returns an RS256-signed ID token.
type idp struct {
	t      *testing.T
	srv    *httptest.Server
	key    *rsa.PrivateKey
	signer jose.Signer

	mu sync.Mutex
	// who signs in next, and what the ID token should say wrongly.
	subject, email string
	verified       bool
	badNonce       bool
	wrongKey       bool
	codes          map[string]grant
}

type grant struct {
	challenge, nonce, clientID, redirect string
	subject, email                       string
	verified                             bool
}

func newIDP(t *testing.T) *idp {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p := &idp{t: t, key: key, codes: map[string]grant{}}
	p.signer, err = jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: "k1"}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{ //nolint:errcheck
			"issuer": p.srv.URL, "authorization_endpoint": p.srv.URL + "/authorize", "token_endpoint": p.srv.URL + "/token",
			"jwks_uri": p.srv.URL + "/jwks", "response_types_supported": []string{"code"}, "subject_types_supported": []string{"public"},
			"id_token_signing_alg_values_supported": []string{"RS256"}, "code_challenge_methods_supported": []string{"S256"},
		})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}}) //nolint:errcheck
	})
	mux.HandleFunc("GET /authorize", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Get("response_type") != "code" || q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" ||
			!strings.Contains(q.Get("scope"), "openid") {
			http.Error(w, "bad authorization request: "+r.URL.RawQuery, 400)
			return
		}
		p.mu.Lock()
		code := base64.RawURLEncoding.EncodeToString([]byte(time.Now().String()))
		p.codes[code] = grant{challenge: q.Get("code_challenge"), nonce: q.Get("nonce"), clientID: q.Get("client_id"),
			redirect: q.Get("redirect_uri"), subject: p.subject, email: p.email, verified: p.verified}
		p.mu.Unlock()
		http.Redirect(w, r, q.Get("redirect_uri")+"?code="+url.QueryEscape(code)+"&state="+url.QueryEscape(q.Get("state")), http.StatusFound)
	})
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm() //nolint:errcheck
		p.mu.Lock()
		g, ok := p.codes[r.PostForm.Get("code")]
		delete(p.codes, r.PostForm.Get("code"))
		badNonce, wrongKey := p.badNonce, p.wrongKey
		p.mu.Unlock()
		id, secret, _ := r.BasicAuth()
		sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
		if !ok || base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge || id != g.clientID || secret != "s3cret" ||
			r.PostForm.Get("redirect_uri") != g.redirect {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(400)
			w.Write([]byte(`{"error":"invalid_grant"}`)) //nolint:errcheck
			return
		}
		nonce := g.nonce
		if badNonce {
			nonce = "not-the-nonce"
		}
		claims, _ := json.Marshal(map[string]any{"iss": p.srv.URL, "sub": g.subject, "aud": g.clientID, "email": g.email,
			"email_verified": g.verified, "nonce": nonce, "iat": time.Now().Unix(), "exp": time.Now().Add(5 * time.Minute).Unix()})
		signer := p.signer
		if wrongKey {
			other, _ := rsa.GenerateKey(rand.Reader, 2048)
			signer, _ = jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: other, KeyID: "k1"}}, nil)
		}
		jws, err := signer.Sign(claims)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		tok, _ := jws.CompactSerialize()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"access_token": "at", "token_type": "Bearer", "expires_in": 300, "id_token": tok}) //nolint:errcheck
	})
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	return p
}

func (p *idp) next(subject, email string, verified bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.subject, p.email, p.verified = subject, email, verified
}

// signOn runs the browser through /auth/oidc/login, the provider and the
// callback, and returns the callback's answer.
func signOn(t *testing.T, b *browser) apitest.Response {
	t.Helper()
	r := b.do("GET", "/auth/oidc/login", nil)
	if r.Status != 302 {
		t.Fatalf("login: %d %s", r.Status, r.Body)
	}
	loc := r.Header.Get("Location")
	u, _ := url.Parse(loc)
	if u.Query().Get("code_challenge_method") != "S256" || u.Query().Get("nonce") == "" || u.Query().Get("state") == "" {
		t.Fatalf("authorization URL %s", loc)
	}
	resp, err := b.c.Get(loc)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 302 {
		t.Fatalf("provider: %d", resp.StatusCode)
	}
	cb := resp.Header.Get("Location")
	return b.do("GET", strings.TrimPrefix(cb, b.base), nil)
}

func TestOIDCSignOn(t *testing.T) {
	t.Parallel()
	p := newIDP(t)
	in := apitest.Start(t, apitest.Options{Setup: func(s *server.Server) {
		s.API.OIDC = &httpapi.OIDCConfig{Issuer: p.srv.URL, ClientID: "callroom", ClientSecret: "s3cret",
			RedirectURL: s.API.PublicURL + "/auth/oidc/callback"}
		s.API.LocalPasswordsOff = true
	}})
	u := passwordUser(t, in, "sso@example.org", "physician")

	// First sign-on links by verified email.
	p.next("sub-123", "SSO@example.org", true)
	b := newBrowser(t, in.URL)
	r := signOn(t, b)
	if r.Status != 302 || r.Header.Get("Location") != in.URL+"/" {
		t.Fatalf("callback: %d %v %s", r.Status, r.Header, r.Body)
	}
	me := b.must(200, "GET", "/api/v1/me", nil)
	if me["user"].(map[string]any)["id"] != u.ID.String() {
		t.Fatalf("signed in as %v", me)
	}
	sessions := b.must(200, "GET", "/api/v1/users/"+u.ID.String()+"/sessions", nil)["sessions"].([]any)
	if sessions[0].(map[string]any)["method"] != "oidc" {
		t.Errorf("session %v", sessions[0])
	}
	// Later sign-ons follow the subject, even when the email changes.
	p.next("sub-123", "renamed@example.org", false)
	if r := signOn(t, newBrowser(t, in.URL)); r.Status != 302 {
		t.Fatalf("by subject: %d %s", r.Status, r.Body)
	}
	// Passwords are switched off.
	if r := newBrowser(t, in.URL).do("POST", "/api/v1/auth/login", map[string]any{"email": "sso@example.org", "password": "correct horse battery"}); r.Status != 403 {
		t.Fatalf("password login while switched off: %d", r.Status)
	}

	for _, tc := range []struct {
		name               string
		subject, email     string
		verified           bool
		badNonce, wrongKey bool
		want               int
	}{
		{"unverified email", "sub-9", "sso@example.org", false, false, false, 403},
		{"unknown person", "sub-8", "stranger@example.org", true, false, false, 403},
		{"email already linked to another subject", "sub-7", "sso@example.org", true, false, false, 403},
		{"wrong nonce", "sub-123", "", false, true, false, 401},
		{"forged signature", "sub-123", "", false, false, true, 401},
	} {
		p.next(tc.subject, tc.email, tc.verified)
		p.mu.Lock()
		p.badNonce, p.wrongKey = tc.badNonce, tc.wrongKey
		p.mu.Unlock()
		b := newBrowser(t, in.URL)
		if r := signOn(t, b); r.Status != tc.want {
			t.Errorf("%s: %d, want %d: %s", tc.name, r.Status, tc.want, r.Body)
		}
		if r := b.do("GET", "/api/v1/me", nil); r.Status != 401 {
			t.Errorf("%s: signed in anyway", tc.name)
		}
	}
	p.mu.Lock()
	p.badNonce, p.wrongKey = false, false
	p.mu.Unlock()

	// A callback without the browser's state cookie (login CSRF), or replayed, is refused.
	p.next("sub-123", "", false)
	b1 := newBrowser(t, in.URL)
	r = b1.do("GET", "/auth/oidc/login", nil)
	resp, err := b1.c.Get(r.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cb := strings.TrimPrefix(resp.Header.Get("Location"), in.URL)
	if r := newBrowser(t, in.URL).do("GET", cb, nil); r.Status != 401 {
		t.Errorf("callback in another browser: %d", r.Status)
	}
	if r := b1.do("GET", cb, nil); r.Status != 302 {
		t.Errorf("callback in the right browser: %d %s", r.Status, r.Body)
	}
	if r := b1.do("GET", cb, nil); r.Status != 401 {
		t.Errorf("callback replayed: %d", r.Status)
	}
	var links int
	in.DB.Pool.QueryRow(t.Context(), `SELECT count(*) FROM audit_events WHERE action = 'oidc.link'`).Scan(&links)
	if links != 1 {
		t.Errorf("%d oidc.link audit events", links)
	}
}

package httpapi

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/callroom/callroom/auth"
)

// OIDCConfig is single sign-on with an OpenID Connect provider: the
// authorization code flow with PKCE (S256), a nonce, and a state bound to
// the browser by a short-lived cookie. The provider is discovered from
// Issuer (/.well-known/openid-configuration) on first use, so callroom starts
// even while the provider is down.
type OIDCConfig struct {
	Issuer       string
	ClientID     string
	ClientSecret string
	// RedirectURL is <public URL>/auth/oidc/callback, registered with the provider.
	RedirectURL string

	mu       sync.Mutex
	provider *oidc.Provider
}

const oidcStateCookie = "callroom_oidc_state"

// resolve discovers the provider once; a failure is retried on the next sign-on.
func (c *OIDCConfig) resolve(ctx context.Context) (*oidc.Provider, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.provider != nil {
		return c.provider, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	p, err := oidc.NewProvider(ctx, c.Issuer)
	if err != nil {
		return nil, err
	}
	c.provider = p
	return p, nil
}

func (c *OIDCConfig) oauth2(p *oidc.Provider) *oauth2.Config {
	return &oauth2.Config{ClientID: c.ClientID, ClientSecret: c.ClientSecret, RedirectURL: c.RedirectURL,
		Endpoint: p.Endpoint(), Scopes: []string{oidc.ScopeOpenID, "email", "profile"}}
}

func randomString() string {
	b := make([]byte, 32)
	rand.Read(b) //nolint:errcheck // crypto/rand does not fail on supported platforms
	return base64.RawURLEncoding.EncodeToString(b)
}

// oidcLogin (GET /auth/oidc/login) sends the browser to the provider.
func (s *Server) oidcLogin(w http.ResponseWriter, r *http.Request) {
	if s.OIDC == nil {
		notFound(w, "single sign-on is not configured")
		return
	}
	if !s.limit(w, r, "login-ip:"+clientAddr(r), s.Limits.LoginPerIP) {
		return
	}
	prov, err := s.OIDC.resolve(r.Context())
	if err != nil {
		s.Log.Warn("single sign-on provider discovery failed", "err", err.Error())
		writeProblem(w, Problem{Type: problemBase + "unavailable", Status: http.StatusServiceUnavailable,
			Detail: "the single sign-on provider cannot be reached; retry shortly"})
		return
	}
	state, nonce, verifier := randomString(), randomString(), oauth2.GenerateVerifier()
	if err := s.Auth.BeginOIDC(r.Context(), state, nonce, verifier); err != nil {
		s.fail(w, r, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: oidcStateCookie, Value: state, Path: "/auth/oidc/", HttpOnly: true,
		Secure: s.SecureCookies, SameSite: http.SameSiteLaxMode, MaxAge: 600})
	u := s.OIDC.oauth2(prov).AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier))
	http.Redirect(w, r, u, http.StatusFound)
}

// oidcCallback (GET /auth/oidc/callback) finishes a sign-on: it checks the
// state against the browser's cookie and the database, exchanges the code
// with the PKCE verifier, verifies the ID token (signature, issuer,
// audience, expiry, nonce), opens a session for the linked user and sends
// the browser home.
func (s *Server) oidcCallback(w http.ResponseWriter, r *http.Request) {
	if s.OIDC == nil {
		notFound(w, "single sign-on is not configured")
		return
	}
	q := r.URL.Query()
	http.SetCookie(w, &http.Cookie{Name: oidcStateCookie, Value: "", Path: "/auth/oidc/", HttpOnly: true,
		Secure: s.SecureCookies, SameSite: http.SameSiteLaxMode, MaxAge: -1})
	if e := q.Get("error"); e != "" {
		unauthorized(w, "single sign-on was refused by the identity provider: "+truncateASCII(e, 64))
		return
	}
	state, code := q.Get("state"), q.Get("code")
	c, err := r.Cookie(oidcStateCookie)
	if state == "" || code == "" || err != nil || subtle.ConstantTimeCompare([]byte(c.Value), []byte(state)) != 1 {
		unauthorized(w, "single sign-on failed: the sign-on did not start in this browser or took too long; start again")
		return
	}
	nonce, verifier, err := s.Auth.TakeOIDC(r.Context(), state)
	if err != nil {
		if errors.Is(err, auth.ErrUnauthenticated) {
			unauthorized(w, "single sign-on failed: the sign-on expired or was already used; start again")
			return
		}
		s.fail(w, r, err)
		return
	}
	id, err := s.exchangeOIDC(r.Context(), code, verifier, nonce)
	if err != nil {
		// The reason is logged without the token; the answer stays general.
		s.Log.Warn("single sign-on rejected", "err", err.Error())
		unauthorized(w, "single sign-on failed: the identity provider's answer could not be verified")
		return
	}
	sess, secret, err := s.Auth.SignInOIDC(r.Context(), id, clientAddr(r), r.UserAgent())
	if errors.Is(err, auth.ErrNoLinkedUser) {
		forbidden(w, err.Error())
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	http.SetCookie(w, s.sessionCookie(secret, sess.ExpiresAt, 0))
	home := "/"
	if s.PublicURL != "" {
		home = strings.TrimSuffix(s.PublicURL, "/") + "/"
	}
	http.Redirect(w, r, home, http.StatusFound)
}

func (s *Server) exchangeOIDC(ctx context.Context, code, verifier, nonce string) (auth.OIDCIdentity, error) {
	prov, err := s.OIDC.resolve(ctx)
	if err != nil {
		return auth.OIDCIdentity{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	tok, err := s.OIDC.oauth2(prov).Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		return auth.OIDCIdentity{}, fmt.Errorf("token exchange: %w", err)
	}
	raw, ok := tok.Extra("id_token").(string)
	if !ok || raw == "" {
		return auth.OIDCIdentity{}, errors.New("the token response has no id_token")
	}
	idt, err := prov.Verifier(&oidc.Config{ClientID: s.OIDC.ClientID}).Verify(ctx, raw)
	if err != nil {
		return auth.OIDCIdentity{}, err
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(nonce)) != 1 {
		return auth.OIDCIdentity{}, errors.New("the ID token's nonce does not match the sign-on")
	}
	var claims struct {
		Email         string `json:"email"`
		EmailVerified any    `json:"email_verified"`
	}
	if err := idt.Claims(&claims); err != nil {
		return auth.OIDCIdentity{}, err
	}
	// Some providers send email_verified as the string "true".
	verified := claims.EmailVerified == true || claims.EmailVerified == "true"
	return auth.OIDCIdentity{Issuer: idt.Issuer, Subject: idt.Subject, Email: claims.Email, EmailVerified: verified}, nil
}

func truncateASCII(s string, n int) string {
	out := make([]byte, 0, n)
	for i := 0; i < len(s) && len(out) < n; i++ {
		if c := s[i]; c == '_' || c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			out = append(out, c)
		}
	}
	return string(out)
}

package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/auth"
)

type ctxKey int

const principalKey ctxKey = iota

// SessionCookie is the browser session's cookie name.
const SessionCookie = "callroom_session"

// principal returns the authenticated caller; only valid behind authenticate.
func principal(r *http.Request) auth.Principal {
	p, _ := r.Context().Value(principalKey).(auth.Principal)
	return p
}

func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// authenticate resolves the bearer token or session cookie; every /api/v1
// route except login sits behind it.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secret, fromCookie := "", false
		if h := r.Header.Get("Authorization"); h != "" {
			scheme, tok, ok := strings.Cut(h, " ")
			if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
				unauthorized(w, "use 'Authorization: Bearer <token>'")
				return
			}
			secret = strings.TrimSpace(tok)
		} else if c, err := r.Cookie(SessionCookie); err == nil {
			secret, fromCookie = c.Value, true
		}
		if secret == "" {
			unauthorized(w, "sign in, or send 'Authorization: Bearer <token>'")
			return
		}
		p, err := s.Auth.Authenticate(r.Context(), secret, clientAddr(r))
		if err != nil {
			if errors.Is(err, auth.ErrUnauthenticated) {
				unauthorized(w, "credentials are missing, expired or revoked")
				return
			}
			s.fail(w, r, err)
			return
		}
		// A session cookie rides along on cross-site requests too; refuse
		// state changes that do not come from our own pages (CSRF).
		if fromCookie && !safeMethod(r.Method) && !s.sameOrigin(r) {
			forbidden(w, "cross-site request refused")
			return
		}
		if p.MFAEnrollmentRequired && !enrolmentRoute(r) {
			writeProblem(w, Problem{Type: problemBase + "mfa-enrollment-required", Status: http.StatusForbidden,
				Detail: "your account must have a second factor: enrol an authenticator at /api/v1/me/mfa/totp first"})
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey, p)))
	})
}

// enrolmentRoute reports whether r is one a session that must still enrol a
// second factor may reach: /me, the enrolment endpoints, and logout.
func enrolmentRoute(r *http.Request) bool {
	p := r.URL.Path
	return p == "/api/v1/me" || p == "/api/v1/me/mfa" || strings.HasPrefix(p, "/api/v1/me/mfa/") || p == "/api/v1/auth/logout"
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

func (s *Server) sameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		// Browsers send Origin on every cross-origin POST; without it, fall
		// back to Fetch Metadata.
		return r.Header.Get("Sec-Fetch-Site") != "cross-site"
	}
	o, err := url.Parse(origin)
	if err != nil {
		return false
	}
	if o.Host == r.Host {
		return true
	}
	if s.PublicURL != "" {
		if p, err := url.Parse(s.PublicURL); err == nil && p.Scheme == o.Scheme && p.Host == o.Host {
			return true
		}
	}
	return false
}

// allow checks that the caller holds perm, answering 403 and auditing the
// refusal when not. Handlers call it right after decoding.
func (s *Server) allow(w http.ResponseWriter, r *http.Request, perm auth.Permission) bool {
	p := principal(r)
	if p.Can(perm) {
		return true
	}
	s.denied(w, r, string(perm))
	return false
}

// denied answers 403 and records the refusal: a security officer wants to
// see who tried what they may not do.
func (s *Server) denied(w http.ResponseWriter, r *http.Request, what string) {
	err := audit.Record(r.Context(), s.DB, principal(r).Actor(), audit.Entry{
		Action: "access.denied", Outcome: audit.Denied,
		Details: map[string]any{"permission": what, "route": r.Method + " " + routePattern(r)},
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	forbidden(w, fmt.Sprintf("your roles do not allow this (%s)", what))
}

func routePattern(r *http.Request) string {
	if rc := chi.RouteContext(r.Context()); rc != nil {
		if p := rc.RoutePattern(); p != "" {
			return p
		}
	}
	return "(unmatched)"
}

type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += n
	return n, err
}

// Flush lets server-sent event streams flush through the wrapper.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the real writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// logRequests logs one line per request with the route pattern, never the
// raw path or query: those can carry patient identifiers.
func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get("X-Request-Id")
		if id == "" || len(id) > 64 {
			b := make([]byte, 8)
			rand.Read(b) //nolint:errcheck
			id = hex.EncodeToString(b)
		}
		w.Header().Set("X-Request-Id", id)
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		took, route := time.Since(start), routePattern(r)
		s.Log.Info("http", "method", r.Method, "route", route, "status", sw.status,
			"bytes", sw.bytes, "ms", float64(took.Microseconds())/1000, "request_id", id)
		s.Metrics.HTTPRequest(route, r.Method, sw.status, took, sw.Header().Get("Content-Type") == "text/event-stream")
	})
}

func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				// The panic value may hold request data; log its type and the stack only.
				s.Log.Error("panic", "route", routePattern(r), "type", fmt.Sprintf("%T", v), "stack", string(debug.Stack()))
				writeProblem(w, Problem{Status: http.StatusInternalServerError, Detail: "internal error; it has been logged"})
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// securityHeaders sets what every response carries: a Content-Security-Policy
// (API answers may not run or embed anything; pages may be framed only by the
// configured EHR origins), nosniff, no referrer, and HSTS when served over
// TLS or behind an https public URL.
func (s *Server) securityHeaders(next http.Handler) http.Handler {
	ancestors := s.frameAncestors()
	pageCSP := "default-src 'self'; base-uri 'none'; object-src 'none'; form-action 'self'; frame-ancestors " + ancestors
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		if strings.HasPrefix(r.URL.Path, "/api/") {
			h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
			h.Set("Cache-Control", "no-store")
		} else {
			h.Set("Content-Security-Policy", pageCSP)
		}
		if ancestors == "'none'" {
			h.Set("X-Frame-Options", "DENY")
		}
		if s.HSTS || r.TLS != nil {
			h.Set("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) frameAncestors() string {
	if s.FrameAncestors == "" {
		return "'none'"
	}
	return s.FrameAncestors
}

// CheckFrameAncestors validates a CSP frame-ancestors source list: 'none',
// 'self', or space-separated origins such as https://ehr.example.org.
func CheckFrameAncestors(v string) error {
	for _, src := range strings.Fields(v) {
		if src == "'none'" || src == "'self'" {
			continue
		}
		u, err := url.Parse(src)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || (u.Path != "" && u.Path != "/") ||
			strings.ContainsAny(src, ";,'\"") {
			return fmt.Errorf("frame ancestors: %q is not 'none', 'self' or an origin like https://ehr.example.org", src)
		}
	}
	if strings.TrimSpace(v) == "" {
		return errors.New("frame ancestors: empty")
	}
	return nil
}

// sessionCookie is the session cookie: HttpOnly always, Secure behind https,
// SameSite=Lax, or None when callroom is embedded in an EHR on another site
// (a framed page gets no Lax cookie); the Origin check above then stands
// alone against cross-site requests, as it does for every unsafe method.
func (s *Server) sessionCookie(value string, expires time.Time, maxAge int) *http.Cookie {
	same := http.SameSiteLaxMode
	if s.SecureCookies && s.frameAncestors() != "'none'" {
		same = http.SameSiteNoneMode
	}
	return &http.Cookie{Name: SessionCookie, Value: value, Path: "/", HttpOnly: true, Secure: s.SecureCookies,
		SameSite: same, Expires: expires, MaxAge: maxAge}
}

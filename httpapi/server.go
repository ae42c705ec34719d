// Package httpapi is callroom's HTTP API: thin handlers that decode a
// request, check the caller's permission, call the domain, and encode the
// answer. Every route is described in the OpenAPI document served at
// /api/openapi.json, and a test fails when the two disagree.
package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/callroom/callroom/auth"
	"github.com/callroom/callroom/escalation"
	"github.com/callroom/callroom/events"
	"github.com/callroom/callroom/fhir"
	"github.com/callroom/callroom/inbox"
	"github.com/callroom/callroom/metrics"
	"github.com/callroom/callroom/notify"
	"github.com/callroom/callroom/oncall"
	"github.com/callroom/callroom/patient"
	"github.com/callroom/callroom/ratelimit"
)

// Server holds what the handlers need.
type Server struct {
	Log      *slog.Logger
	DB       *pgxpool.Pool
	Auth     *auth.Store
	OnCall   *oncall.Store
	Events   *events.Hub
	Pages    *escalation.Store
	Contacts *notify.Store
	Inbox    *inbox.Store
	// Patients links a patient's identifiers (MRN) to its Patient reference.
	Patients *patient.Store
	// FHIR receives the EHR's subscription notifications (nil: no EHR).
	FHIR *fhir.Store
	// Ready reports whether the service can do its work (database and River
	// reachable); /readyz answers from it.
	Ready func(ctx context.Context) error
	// Metrics records requests and streams; nil records nothing. Unless
	// MetricsElsewhere, /metrics serves it on this handler.
	Metrics          *metrics.Metrics
	MetricsElsewhere bool
	// PublicURL is where users reach callroom, e.g. https://callroom.example.org.
	PublicURL string
	// SecureCookies marks the session cookie Secure (set when PublicURL is https).
	SecureCookies bool
	// Web, when set, serves the browser client: every GET that no API route
	// matches outside /api/ goes to it (see package web).
	Web http.Handler
	// HSTS sends Strict-Transport-Security on every response (set when
	// PublicURL is https); responses over TLS carry it regardless.
	HSTS bool
	// FrameAncestors is the CSP frame-ancestors list for pages, e.g. the
	// EHR's origin that embeds callroom; empty means 'none'.
	FrameAncestors string
	// Limiter and Limits rate-limit login and page creation; nil Limiter
	// switches limiting off.
	Limiter *ratelimit.Limiter
	Limits  Limits
	// OIDC, when set, enables single sign-on at /auth/oidc/login.
	OIDC *OIDCConfig
	// LocalPasswordsOff refuses password login (single sign-on only).
	LocalPasswordsOff bool
	// TrustedProxies are the load balancers whose X-Forwarded-For is believed.
	TrustedProxies []netip.Prefix

	// routes registered by domain files; see routes().
	extra []func(chi.Router)
}

// Handler returns the whole HTTP surface.
func (s *Server) Handler() http.Handler {
	r := chi.NewRouter()
	r.Use(s.forwardedFor, s.recoverer, s.logRequests, s.securityHeaders)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		if s.Web != nil && !strings.HasPrefix(r.URL.Path, "/api/") {
			s.Web.ServeHTTP(w, r)
			return
		}
		notFound(w, "no such route")
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, Problem{Status: http.StatusMethodNotAllowed, Detail: "method not allowed on this route"})
	})

	r.Get("/healthz", s.healthz)
	r.Get("/readyz", s.readyz)
	r.Get("/api/openapi.json", s.openAPI)
	r.Get("/calendar/{file}", s.calendar)
	s.fhirRoutes(r)
	if s.Metrics != nil && !s.MetricsElsewhere {
		r.Method(http.MethodGet, "/metrics", s.Metrics.Handler())
	}
	r.Get("/auth/oidc/login", s.oidcLogin)
	r.Get("/auth/oidc/callback", s.oidcCallback)

	r.Route("/api/v1", func(r chi.Router) {
		r.Post("/auth/login", s.login)
		r.Group(func(r chi.Router) {
			r.Use(s.authenticate)
			r.Post("/auth/logout", s.logout)
			r.Get("/me", s.me)
			r.Get("/events", s.events)
			s.userRoutes(r)
			s.scheduleRoutes(r)
			s.pageRoutes(r)
			s.contactRoutes(r)
			s.threadRoutes(r)
			r.Get("/fhir/unmatched-practitioners", s.unmatchedPractitioners)
			s.reportRoutes(r)
			s.securityRoutes(r)
			s.auditRoutes(r)
			for _, f := range s.extra {
				f(r)
			}
		})
	})
	return r
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if s.Ready != nil {
		if err := s.Ready(ctx); err != nil {
			s.Log.Warn("not ready", "err", err.Error())
			w.Header().Set("Retry-After", "2")
			writeProblem(w, Problem{Type: problemBase + "unavailable", Status: http.StatusServiceUnavailable,
				Detail: "not ready: the database or the job queue is unreachable"})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

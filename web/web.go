// Package web is callroom's browser client: a sign-in screen, the nurses'
// paging console, the clinicians' inbox, the schedulers' calendar and the
// patient-chart view, the administrators' screens and the response-time
// report (admins and auditors). It is plain HTML, CSS and JavaScript embedded in the
// binary (no build step), talking to the JSON API under /api/v1 with the
// session cookie, and to the event stream at /api/v1/events for live
// updates. No page carries PHI in its URL: screens are chosen by the
// fragment (#console, #inbox, ...) and records are fetched by id.
package web

import (
	"bytes"
	"embed"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/callroom/callroom/auth"
	"github.com/callroom/callroom/keys"
)

//go:embed static
var files embed.FS

// Options adjust the client.
type Options struct {
	// FrameAncestors is the CSP frame-ancestors source list: the origins
	// allowed to frame the client (the EHR, for the patient-chart view),
	// space-separated. Empty or 'none' allows none.
	FrameAncestors string
	// SessionIdle is the idle timeout of browser sessions: the client signs
	// itself out after this long without input.
	SessionIdle time.Duration

	// SMART, when set, enables the EHR launch of the patient-chart view
	// (/smart/launch and /smart/callback); it then needs Auth, Keys,
	// SessionCookie and, behind a proxy, PublicURL.
	SMART         *SMART
	Auth          *auth.Store
	Keys          *keys.Keyring
	Log           *slog.Logger
	SessionCookie string
	SecureCookies bool
	PublicURL     string
}

// contentSecurityPolicy allows our own scripts, styles and connections
// only: no inline script or style, no eval, nothing from elsewhere.
func contentSecurityPolicy(o Options) string {
	fa := o.frameAncestors()
	return "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; " +
		"connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors " + fa
}

func (o Options) frameAncestors() string {
	if strings.TrimSpace(o.FrameAncestors) == "" {
		return "'none'"
	}
	return strings.TrimSpace(o.FrameAncestors)
}

// screens are the paths that open the client: the root, and the page link
// that notices carry (/pages/<id>, see escalation's notices).
var screens = regexp.MustCompile(`^/(?:pages/[0-9a-f-]{36})?$`)

// index is index.html as a template: the server fills in what the script
// needs to know before its first request (the idle timeout; after an EHR
// launch, whose chart is open).
var index = template.Must(template.ParseFS(files, "static/index.html"))

// page is what index.html is rendered with.
type page struct {
	IdleSeconds int
	Patient     string // "Patient/123" after an EHR launch
}

type client struct {
	o      Options
	static fs.FS
	assets http.Handler
	csp    string
}

// Handler serves the client: index.html for the client's paths, the files
// under /assets/, and the EHR launch under /smart/. Anything else is 404.
func Handler(o Options) http.Handler {
	static, err := fs.Sub(files, "static")
	if err != nil {
		panic(err)
	}
	if o.SessionCookie == "" {
		o.SessionCookie = "callroom_session"
	}
	c := &client{o: o, static: static, assets: http.FileServerFS(static), csp: contentSecurityPolicy(o)}
	return c
}

func (c *client) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	h := w.Header()
	h.Set("Content-Security-Policy", c.csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	if c.o.frameAncestors() == "'none'" {
		h.Set("X-Frame-Options", "DENY")
	} else {
		h.Del("X-Frame-Options") // frame-ancestors decides
	}
	p := r.URL.Path
	switch {
	case screens.MatchString(p):
		c.serveIndex(w, r, page{})
	case strings.HasPrefix(p, "/assets/") && path.Ext(p) != "" && p != "/assets/index.html":
		h.Set("Cache-Control", "no-cache")
		r2 := r.Clone(r.Context())
		r2.URL.Path = strings.TrimPrefix(p, "/assets")
		c.assets.ServeHTTP(w, r2)
	case p == "/smart/launch" && c.o.SMART != nil:
		c.smartLaunch(w, r)
	case p == "/smart/callback" && c.o.SMART != nil:
		c.smartCallback(w, r)
	default:
		http.NotFound(w, r)
	}
}

func (c *client) serveIndex(w http.ResponseWriter, r *http.Request, pg page) {
	pg.IdleSeconds = int(c.o.SessionIdle / time.Second)
	var buf bytes.Buffer
	if err := index.Execute(&buf, pg); err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(buf.Bytes()) //nolint:errcheck
}

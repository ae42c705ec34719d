// Package web is callroom's browser client: a sign-in screen, the nurses'
// paging console, the clinicians' inbox, the schedulers' calendar and the
// patient-chart view. It is plain HTML, CSS and JavaScript embedded in the
// binary (no build step), talking to the JSON API under /api/v1 with the
// session cookie, and to the event stream at /api/v1/events for live
// updates. No page carries PHI in its URL: screens are chosen by the
// fragment (#console, #inbox, ...) and records are fetched by id.
package web

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"regexp"
	"strings"
)

//go:embed static
var files embed.FS

// Options adjust the client.
type Options struct {
	// FrameAncestors lists the origins allowed to frame the client (the
	// EHR, for the patient-chart view). Empty allows none.
	FrameAncestors []string
}

// contentSecurityPolicy allows our own scripts, styles and connections
// only: no inline script or style, no eval, nothing from elsewhere.
func contentSecurityPolicy(o Options) string {
	fa := "'none'"
	if len(o.FrameAncestors) > 0 {
		fa = strings.Join(o.FrameAncestors, " ")
	}
	return "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; " +
		"connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors " + fa
}

// screens are the paths that open the client: the root, and the page link
// that notices carry (/pages/<id>, see escalation's notices).
var screens = regexp.MustCompile(`^/(?:pages/[0-9a-f-]{36})?$`)

// Handler serves the client: index.html for the client's paths and the
// files under /assets/. Anything else is 404.
func Handler(o Options) http.Handler {
	static, err := fs.Sub(files, "static")
	if err != nil {
		panic(err)
	}
	assets := http.FileServerFS(static)
	csp := contentSecurityPolicy(o)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		if len(o.FrameAncestors) == 0 {
			h.Set("X-Frame-Options", "DENY")
		}
		p := r.URL.Path
		switch {
		case screens.MatchString(p):
			h.Set("Cache-Control", "no-store")
			http.ServeFileFS(w, r, static, "index.html")
		case strings.HasPrefix(p, "/assets/") && path.Ext(p) != "":
			h.Set("Cache-Control", "no-cache")
			r2 := r.Clone(r.Context())
			r2.URL.Path = strings.TrimPrefix(p, "/assets")
			assets.ServeHTTP(w, r2)
		default:
			http.NotFound(w, r)
		}
	})
}

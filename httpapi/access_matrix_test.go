package httpapi_test

import (
	"context"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/callroom/callroom/httpapi"
	"github.com/callroom/callroom/internal/apitest"
)

// matrixRoles is the column order of accessMatrix.
var matrixRoles = []string{"nurse", "physician", "scheduler", "admin", "auditor"}

// accessMatrix is least privilege, written down (HIPAA 164.312(a)(1)): for
// every route, what each role may do, one letter per role in matrixRoles
// order: y = allowed (any answer but 401/403), n = refused with 403.
// "public" routes answer without credentials. Path parameters point at
// things that belong to someone else: {id} of /threads is a patient thread
// none of the callers is in (another patient's thread), {id} of /users is
// another user (their contact methods, feeds, sessions).
//
// TestAccessMatrix fails when a route exists that is not listed here, so a
// new route cannot ship without someone deciding who may call it.
var accessMatrix = map[string]string{
	"GET /api/openapi.json":   "public",
	"GET /healthz":            "public",
	"GET /readyz":             "public",
	"GET /calendar/{file}":    "public", // the secret is the file name
	"POST /api/v1/auth/login": "public",

	// Single sign-on starts and ends without a session (404 when it is not
	// configured).
	"GET /auth/oidc/login":    "public",
	"GET /auth/oidc/callback": "public",

	// The EHR calls back with its subscription's secret or an HMAC of the
	// body, not a callroom credential; an EHR launch starts without a
	// session (404 when no EHR is configured).
	"POST /fhir/hooks/{subscription}":            "public",
	"PUT /fhir/hooks/{subscription}/{type}/{id}": "public",
	"GET /smart/launch":                          "public",
	"GET /smart/callback":                        "public",
	// Practitioners the EHR named that matched no account: for whoever manages accounts.
	"GET /api/v1/fhir/unmatched-practitioners": "nnnyn",

	"POST /api/v1/auth/logout": "yyyyy",
	// One's own second factor.
	"GET /api/v1/me/mfa":               "yyyyy",
	"POST /api/v1/me/mfa/totp":         "yyyyy",
	"POST /api/v1/me/mfa/totp/confirm": "yyyyy",
	"POST /api/v1/me/mfa/totp/disable": "yyyyy",
	"GET /api/v1/security/settings":    "nnnyn",
	"PATCH /api/v1/security/settings":  "nnnyn",
	// Another user's sessions, tokens and second factor: the user
	// themselves (not the callers here) or an administrator.
	"GET /api/v1/users/{id}/sessions":            "nnnyn",
	"DELETE /api/v1/users/{id}/sessions/{sid}":   "nnnyn",
	"DELETE /api/v1/users/{id}/tokens/{tid}":     "nnnyn",
	"POST /api/v1/users/{id}/revoke-credentials": "nnnyn",
	"GET /api/v1/users/{id}/mfa":                 "nnnyn",
	"DELETE /api/v1/users/{id}/mfa/totp":         "nnnyn",
	"POST /api/v1/users/{id}/unlock":             "nnnyn",
	"GET /api/v1/me":                             "yyyyy",
	"GET /api/v1/events":                         "yyyyy",

	// Audit controls: the trail and the emergency-access review queue are
	// for auditors and administrators; breaking the glass is for clinicians.
	"GET /api/v1/audit":                         "nnnyy",
	"GET /api/v1/reports/response-times":        "nnnyy", // names staff and their response times
	"POST /api/v1/emergency-access":             "yynnn",
	"GET /api/v1/emergency-access":              "nnnyy",
	"POST /api/v1/emergency-access/{id}/review": "nnnyy",

	"POST /api/v1/users":                                 "nnnyn",
	"GET /api/v1/users":                                  "yyyyy",
	"GET /api/v1/users/{id}":                             "yyyyy",
	"PATCH /api/v1/users/{id}":                           "nnnyn",
	"POST /api/v1/users/{id}/contact-methods":            "nnnyn",
	"GET /api/v1/users/{id}/contact-methods":             "nnnyn",
	"DELETE /api/v1/users/{id}/contact-methods/{cid}":    "nnnyn",
	"POST /api/v1/users/{id}/notification-rules":         "nnnyn",
	"GET /api/v1/users/{id}/notification-rules":          "nnnyn",
	"DELETE /api/v1/users/{id}/notification-rules/{rid}": "nnnyn",
	"POST /api/v1/users/{id}/feeds":                      "nnnyn",
	"DELETE /api/v1/feeds/{id}":                          "yyyyy", // only one's own, or an admin: a random id is not found

	"POST /api/v1/schedules":                        "nnyyn",
	"GET /api/v1/schedules":                         "yyyyy",
	"GET /api/v1/schedules/{id}":                    "yyyyy",
	"PATCH /api/v1/schedules/{id}":                  "nnyyn",
	"DELETE /api/v1/schedules/{id}":                 "nnyyn",
	"POST /api/v1/schedules/{id}/rotations":         "nnyyn",
	"DELETE /api/v1/schedules/{id}/rotations/{rid}": "nnyyn",
	"POST /api/v1/schedules/{id}/rules":             "nnyyn",
	"DELETE /api/v1/schedules/{id}/rules/{rid}":     "nnyyn",
	"POST /api/v1/schedules/{id}/overrides":         "nnyyn",
	"GET /api/v1/schedules/{id}/overrides":          "yyyyy",
	"DELETE /api/v1/schedules/{id}/overrides/{oid}": "nnyyn",
	"GET /api/v1/schedules/{id}/on-call":            "yyyyy",
	"GET /api/v1/schedules/{id}/shifts":             "yyyyy",
	"GET /api/v1/schedules/{id}/gaps":               "yyyyy",
	"GET /api/v1/schedules/{id}/feeds":              "nnyyn",
	"POST /api/v1/schedules/{id}/feeds":             "yyyyy", // anyone may subscribe to a schedule

	"POST /api/v1/services":                "nnnyn",
	"GET /api/v1/services":                 "yyyyy",
	"GET /api/v1/services/{id}":            "yyyyy",
	"POST /api/v1/escalation-policies":     "nnnyn",
	"GET /api/v1/escalation-policies":      "yyyyy",
	"GET /api/v1/escalation-policies/{id}": "yyyyy",
	"POST /api/v1/pages":                   "yynyn",
	"GET /api/v1/pages":                    "yyyyy",
	"GET /api/v1/pages/{id}":               "yyyyy",
	"POST /api/v1/pages/{id}/acknowledge":  "yyyyy",
	"POST /api/v1/pages/{id}/cancel":       "yyyyy",
	"POST /api/v1/pages/{id}/escalate":     "yyyyy",
	"POST /api/v1/pages/{id}/resolve":      "yyyyy",

	// Another patient's thread: no role reads or changes it without being
	// in it; auditors and administrators read message versions to
	// investigate; administrators place legal holds and recall.
	"POST /api/v1/threads":                                 "yynnn",
	"GET /api/v1/threads":                                  "yyyyy",
	"GET /api/v1/patients/{ref}/threads":                   "yyyyy", // answers only what the caller may see
	"GET /api/v1/patients/{ref}/identifiers":               "nnnyn",
	"POST /api/v1/patients/{ref}/identifiers":              "nnnyn",
	"GET /api/v1/threads/{id}":                             "nnnnn",
	"POST /api/v1/threads/{id}/members":                    "nnnnn",
	"DELETE /api/v1/threads/{id}/members/{uid}":            "nnnnn",
	"POST /api/v1/threads/{id}/messages":                   "nnnnn",
	"GET /api/v1/threads/{id}/messages":                    "nnnnn",
	"GET /api/v1/threads/{id}/messages/{mid}":              "nnnnn",
	"PATCH /api/v1/threads/{id}/messages/{mid}":            "nnnnn",
	"POST /api/v1/threads/{id}/messages/{mid}/recall":      "nnnyn",
	"POST /api/v1/threads/{id}/messages/{mid}/acknowledge": "nnnnn",
	"GET /api/v1/threads/{id}/messages/{mid}/versions":     "nnnyy",
	"POST /api/v1/threads/{id}/read":                       "nnnnn",
	"POST /api/v1/threads/{id}/attachments":                "nnnnn",
	"GET /api/v1/threads/{id}/attachments":                 "nnnnn",
	"GET /api/v1/threads/{id}/attachments/{aid}":           "nnnnn",
	"POST /api/v1/threads/{id}/legal-hold":                 "nnnyn",
	"PUT /api/v1/retention-policies/{kind}":                "nnnyn",
}

func TestAccessMatrix(t *testing.T) {
	t.Parallel()
	// Every route is in the matrix, and every row is a route.
	routes := map[string]bool{}
	err := chi.Walk((&httpapi.Server{}).Handler().(chi.Routes), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		routes[method+" "+strings.TrimSuffix(route, "/")] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for r := range routes {
		if _, ok := accessMatrix[r]; !ok {
			t.Errorf("route %s is not in accessMatrix: decide which roles may call it", r)
		}
	}
	for r, want := range accessMatrix {
		if !routes[r] {
			t.Errorf("accessMatrix lists %s, which is not a route", r)
		}
		if want != "public" && len(want) != len(matrixRoles) {
			t.Errorf("%s: %q needs one letter per role", r, want)
		}
	}
	if t.Failed() {
		return
	}

	in := apitest.Start(t)
	owner := in.User("Olivia Owner MD", "physician")
	member := in.User("Mia Member RN", "nurse")
	other := in.User("Uma Other RN", "nurse")
	th := owner.Must(201, "POST", "/api/v1/threads", map[string]any{"kind": "patient", "name": "Bed 9",
		"patient_ref": "Patient/p-matrix", "member_ids": []string{member.User.ID.String()}})
	threadID := th["id"].(string)
	msg := owner.Must(201, "POST", "/api/v1/threads/"+threadID+"/messages", map[string]any{"text": "lactate 4.2"})
	callers := map[string]*apitest.Client{}
	for _, role := range matrixRoles {
		callers[role] = in.User("Matrix "+role, role)
	}

	path := func(route string) string {
		p := route
		switch {
		case strings.HasPrefix(p, "/api/v1/threads/{id}"):
			p = strings.Replace(p, "{id}", threadID, 1)
		case strings.HasPrefix(p, "/api/v1/users/{id}"):
			p = strings.Replace(p, "{id}", other.User.ID.String(), 1)
		}
		return strings.NewReplacer("{mid}", msg["id"].(string), "{uid}", member.User.ID.String(),
			"{ref}", url.PathEscape("Patient/p-matrix"), "{kind}", "patient", "{file}", "x.ics",
			"{id}", uuid.NewString(), "{rid}", uuid.NewString(), "{oid}", uuid.NewString(), "{cid}", uuid.NewString(),
			"{aid}", uuid.NewString()).Replace(p)
	}
	// Bodies valid enough to reach the permission check, for handlers that
	// validate before asking who calls; the rest get {}.
	bodies := map[string]string{
		"POST /api/v1/threads/{id}/read":        `{"message_id": "` + msg["id"].(string) + `"}`,
		"POST /api/v1/threads/{id}/legal-hold":  `{"legal_hold": true}`,
		"PUT /api/v1/retention-policies/{kind}": `{"days": 400}`,
	}
	call := func(c *apitest.Client, method, p, raw string) int {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var body *strings.Reader
		if raw != "" {
			body = strings.NewReader(raw)
		} else if method == "POST" || method == "PATCH" || method == "PUT" {
			body = strings.NewReader("{}")
		} else {
			body = strings.NewReader("")
		}
		req, _ := http.NewRequestWithContext(ctx, method, in.URL+p, body)
		if body.Len() > 0 {
			req.Header.Set("Content-Type", "application/json")
		}
		if c != nil {
			req.Header.Set("Authorization", "Bearer "+c.Token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, p, err)
		}
		resp.Body.Close() // an event stream ends here
		return resp.StatusCode
	}

	// Deletions last, so they do not remove what other rows use.
	keys := make([]string, 0, len(accessMatrix))
	for r := range accessMatrix {
		keys = append(keys, r)
	}
	sort.Slice(keys, func(i, j int) bool {
		di, dj := strings.HasPrefix(keys[i], "DELETE"), strings.HasPrefix(keys[j], "DELETE")
		if di != dj {
			return dj
		}
		return keys[i] < keys[j]
	})
	for _, r := range keys {
		want := accessMatrix[r]
		method, route, _ := strings.Cut(r, " ")
		p := path(route)
		if want == "public" {
			if got := call(nil, method, p, bodies[r]); got == 401 || got == 403 || got >= 500 {
				t.Errorf("%s without credentials: %d, want it public", r, got)
			}
			continue
		}
		if got := call(nil, method, p, bodies[r]); got != 401 {
			t.Errorf("%s without credentials: %d, want 401", r, got)
		}
		for i, role := range matrixRoles {
			c := callers[role]
			if r == "POST /api/v1/auth/logout" {
				c = in.User("Leaving "+role, role) // logging out ends the caller's credentials
			}
			got := call(c, method, p, bodies[r])
			switch {
			case want[i] == 'n' && got != 403:
				t.Errorf("%s as %s: %d, want 403", r, role, got)
			case want[i] == 'y' && (got == 401 || got == 403 || got >= 500):
				t.Errorf("%s as %s: %d, want allowed", r, role, got)
			}
		}
	}
}

package httpapi_test

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/callroom/callroom/internal/apitest"
)

// phiFreeReads are the GET routes whose answers carry no PHI (no patient
// reference, no message or page text): reading them is not audited.
// TestEveryPHIReadIsAudited fails when a GET route is in neither this list
// nor its table, so a new read cannot skip the audit trail unnoticed.
var phiFreeReads = map[string]string{
	"GET /api/openapi.json":                     "the API description",
	"GET /healthz":                              "liveness",
	"GET /readyz":                               "readiness",
	"GET /calendar/{file}":                      "on-call shifts (staff names only)",
	"GET /api/v1/me":                            "the caller",
	"GET /api/v1/fhir/unmatched-practitioners":  "practitioner references and NPIs (staff, no patient)",
	"GET /smart/launch":                         "a redirect to the EHR's authorization server",
	"GET /smart/callback":                       "a redirect to a thread id; the launch itself is audited (fhir.launch, with the patient)",
	"GET /api/v1/events":                        "event stream: ids only; the client then reads through audited routes",
	"GET /api/v1/users":                         "staff directory",
	"GET /api/v1/users/{id}":                    "staff directory",
	"GET /api/v1/users/{id}/contact-methods":    "staff contact details",
	"GET /api/v1/users/{id}/notification-rules": "staff settings",
	"GET /api/v1/schedules":                     "schedules",
	"GET /api/v1/schedules/{id}":                "schedules",
	"GET /api/v1/schedules/{id}/overrides":      "schedules",
	"GET /api/v1/schedules/{id}/on-call":        "schedules",
	"GET /api/v1/schedules/{id}/shifts":         "schedules",
	"GET /api/v1/schedules/{id}/gaps":           "schedules",
	"GET /api/v1/schedules/{id}/feeds":          "schedules",
	"GET /api/v1/services":                      "services",
	"GET /api/v1/services/{id}":                 "services",
	"GET /api/v1/escalation-policies":           "escalation policies",
	"GET /api/v1/escalation-policies/{id}":      "escalation policies",
	"GET /auth/oidc/login":                      "a redirect to the identity provider",
	"GET /auth/oidc/callback":                   "signs in; answers a session, no PHI",
	"GET /api/v1/me/mfa":                        "the caller's second-factor status",
	"GET /api/v1/users/{id}/mfa":                "a user's second-factor status",
	"GET /api/v1/users/{id}/sessions":           "a user's sessions and tokens (address, agent)",
	"GET /api/v1/security/settings":             "MFA and lockout settings",
	"GET /api/v1/reports/response-times":        "counts and response times per service and person; no patient, no page text",
}

// TestEveryPHIReadIsAudited (HIPAA 164.312(b)): every read that answers
// PHI leaves an audit event naming the reader and the patient: opening a
// thread, listing threads (one's own, a patient's), reading messages, their
// versions and attachments, reading and listing pages, exporting the audit
// trail, the emergency-access queue.
func TestEveryPHIReadIsAudited(t *testing.T) {
	t.Parallel()
	in := apitest.Start(t)
	ctx := context.Background()
	ref := "Patient/p-audited"
	ana := in.User("Dr Ana Cruz", "physician")
	nina := in.User("Nina RN", "nurse")
	aud := in.User("Avi Auditor", "auditor")
	dan := in.User("Dan Covering RN", "nurse")
	adm := in.User("Ada Admin", "admin")
	th := ana.Must(201, "POST", "/api/v1/threads", map[string]any{"kind": "patient", "name": "Bed 7", "patient_ref": ref,
		"member_ids": []string{nina.User.ID.String()}})
	base := "/api/v1/threads/" + th["id"].(string)
	msg := ana.Must(201, "POST", base+"/messages", map[string]any{"text": "INR 4.8, hold warfarin"})
	resp, b := inboxRaw(t, ana, "POST", base+"/attachments?filename=ecg.png", "image/png", append([]byte("\x89PNG\r\n\x1a\n"), "ecg strip"...))
	if resp.StatusCode != 201 {
		t.Fatalf("upload: %d %s", resp.StatusCode, b)
	}
	var att map[string]any
	json.Unmarshal(b, &att) //nolint:errcheck
	ana.Must(201, "POST", base+"/messages", map[string]any{"text": "ECG attached", "attachment_ids": []any{att["id"]}})
	page := nina.Must(201, "POST", "/api/v1/pages", map[string]any{"user_id": ana.User.ID, "priority": "urgent",
		"summary": "INR 4.8", "patient_ref": ref})
	dan.Must(201, "POST", "/api/v1/emergency-access", map[string]any{"patient_ref": ref, "reason": "covering the rapid response"})

	reads := []struct {
		route  string // as in accessMatrix
		path   string
		caller *apitest.Client
		action string
	}{
		{"GET /api/v1/threads", "/api/v1/threads", nina, "thread.list"},
		{"GET /api/v1/threads/{id}", base, nina, "thread.read"},
		{"GET /api/v1/patients/{ref}/threads", "/api/v1/patients/" + url.PathEscape(ref) + "/threads", nina, "thread.list"},
		{"GET /api/v1/threads/{id}/messages", base + "/messages", nina, "message.list"},
		{"GET /api/v1/threads/{id}/messages/{mid}", base + "/messages/" + msg["id"].(string), nina, "message.read"},
		{"GET /api/v1/threads/{id}/messages/{mid}/versions", base + "/messages/" + msg["id"].(string) + "/versions", aud, "message.versions"},
		{"GET /api/v1/threads/{id}/attachments", base + "/attachments", nina, "attachment.list"},
		{"GET /api/v1/threads/{id}/attachments/{aid}", base + "/attachments/" + att["id"].(string), nina, "attachment.download"},
		{"GET /api/v1/pages", "/api/v1/pages", ana, "page.list"},
		{"GET /api/v1/pages/{id}", "/api/v1/pages/" + page["id"].(string), ana, "page.read"},
		{"GET /api/v1/audit", "/api/v1/audit?patient=" + url.QueryEscape(ref), aud, "audit.search"},
		{"GET /api/v1/emergency-access", "/api/v1/emergency-access", aud, "emergency_access.list"},
		{"GET /api/v1/patients/{ref}/identifiers", "/api/v1/patients/" + url.PathEscape(ref) + "/identifiers", adm, "patient.names"},
	}
	covered := map[string]bool{}
	for _, rd := range reads {
		covered[rd.route] = true
		var before int64
		in.DB.Pool.QueryRow(ctx, `SELECT coalesce(max(id), 0) FROM audit_events`).Scan(&before) //nolint:errcheck
		if r := rd.caller.Do("GET", rd.path, nil); r.Status != 200 {
			t.Errorf("%s: %d %s", rd.route, r.Status, r.Body)
			continue
		}
		var n int
		err := in.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM audit_events WHERE id > $1 AND actor_id = $2 AND action = $3
			AND patient_ref = $4 AND outcome = 'success'`, before, rd.caller.User.ID, rd.action, ref).Scan(&n)
		if err != nil || n == 0 {
			t.Errorf("%s by %s: no %s audit event naming the patient (%v)", rd.route, rd.caller.User.Name, rd.action, err)
		}
	}
	for route := range accessMatrix {
		if strings.HasPrefix(route, "GET ") && !covered[route] && phiFreeReads[route] == "" {
			t.Errorf("%s reads something: add it to this test's table (PHI, audited) or to phiFreeReads", route)
		}
	}
}

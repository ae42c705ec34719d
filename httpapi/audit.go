package httpapi

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/auth"
	"github.com/callroom/callroom/patient"
)

// auditRoutes: the audit trail, for auditors and administrators.
func (s *Server) auditRoutes(r chi.Router) {
	r.Get("/audit", s.searchAudit)
	s.emergencyRoutes(r)
}

// searchAudit answers a FHIR AuditEvent search with a searchset Bundle,
// oldest first. Parameters (FHIR names): patient, agent (a user id), subtype
// (a callroom action such as thread.read), action (C, R, U, D or E), date
// (repeatable, with a ge/gt/le/lt prefix), _count (1..1000, default 100) and
// _after (the paging cursor of the next link). An unknown parameter is
// refused rather than ignored: an auditor must not believe a filter applied
// that did not. The search itself is audited, with the patient it asked
// about: exporting the trail is an access to PHI.
func (s *Server) searchAudit(w http.ResponseWriter, r *http.Request) {
	if !s.allow(w, r, auth.ReadAudit) {
		return
	}
	q := r.URL.Query()
	f := audit.Filter{Limit: 100}
	for name, vs := range q {
		switch name {
		case "patient", "agent", "subtype", "action", "_count", "_after":
			if len(vs) > 1 {
				badRequest(w, name, "give it once")
				return
			}
		case "date":
		default:
			badRequest(w, name, "unknown search parameter; use patient, agent, subtype, action, date, _count or _after")
			return
		}
	}
	f.PatientRef = q.Get("patient")
	if len(f.PatientRef) > 400 {
		invalid(w, "patient", "is longer than 400 characters")
		return
	}
	if v := q.Get("agent"); v != "" {
		id, err := uuid.Parse(strings.TrimPrefix(v, audit.SystemUser+"|"))
		if err != nil {
			invalid(w, "agent", "must be a user id")
			return
		}
		f.ActorID = &id
	}
	f.Action = q.Get("subtype")
	if v := q.Get("action"); v != "" {
		if len(v) != 1 || !strings.Contains("CRUDE", v) {
			invalid(w, "action", "must be one of C, R, U, D, E")
			return
		}
		f.ActionCode = v
	}
	for _, v := range q["date"] {
		prefix, value := v[:min(2, len(v))], ""
		if len(v) > 2 {
			value = v[2:]
		}
		t, err := time.Parse(time.RFC3339Nano, value)
		if err != nil {
			invalid(w, "date", "must be ge, gt, le or lt followed by an RFC 3339 time, e.g. ge2026-01-01T00:00:00Z")
			return
		}
		switch prefix {
		case "ge":
			f.From = t
		case "gt":
			f.From = t.Add(time.Microsecond)
		case "lt":
			f.To = t
		case "le":
			f.To = t.Add(time.Microsecond)
		default:
			invalid(w, "date", "must start with ge, gt, le or lt")
			return
		}
	}
	if v := q.Get("_count"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			invalid(w, "_count", "must be a number from 1 to 1000")
			return
		}
		f.Limit = n
	}
	if v := q.Get("_after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			invalid(w, "_after", "must be the cursor from a next link")
			return
		}
		f.AfterID = n
	}
	if f.PatientRef != "" {
		if err := patient.CheckRef("patient", f.PatientRef); err != nil {
			s.fail(w, r, err)
			return
		}
		names, err := patient.Names(r.Context(), s.DB, f.PatientRef)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		// Every name of the patient, not only the one asked about.
		f.PatientRefs, f.PatientRef = names, ""
	}
	events, err := audit.List(r.Context(), s.DB, f)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// Details name what was asked, never the answer.
	details := map[string]any{"count": len(events)}
	for _, k := range []string{"agent", "subtype", "action", "_after"} {
		if v := q.Get(k); v != "" {
			details[k] = v
		}
	}
	if len(q["date"]) > 0 {
		details["date"] = strings.Join(q["date"], ",")
	}
	if err := audit.Record(r.Context(), s.DB, principal(r).Actor(), audit.Entry{Action: "audit.search", ObjectType: "audit_events",
		PatientRef: q.Get("patient"), Details: details}); err != nil {
		s.fail(w, r, err)
		return
	}
	self := s.PublicURL + "/api/v1/audit"
	if enc := q.Encode(); enc != "" {
		self += "?" + enc
	}
	next := ""
	if len(events) == f.Limit {
		nq := url.Values{}
		for k, v := range q {
			nq[k] = v
		}
		nq.Set("_after", strconv.FormatInt(events[len(events)-1].ID, 10))
		next = s.PublicURL + "/api/v1/audit?" + nq.Encode()
	}
	w.Header().Set("Content-Type", "application/fhir+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	json.NewEncoder(w).Encode(audit.Bundle(events, self, next)) //nolint:errcheck // the client is gone
}

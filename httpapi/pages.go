package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/auth"
	"github.com/callroom/callroom/escalation"
)

func (s *Server) pageRoutes(r chi.Router) {
	r.Post("/services", s.createService)
	r.Get("/services", s.listServices)
	r.Get("/services/{id}", s.getService)
	r.Post("/escalation-policies", s.createPolicy)
	r.Get("/escalation-policies", s.listPolicies)
	r.Get("/escalation-policies/{id}", s.getPolicy)
	r.Post("/pages", s.createPage)
	r.Get("/pages", s.listPages)
	r.Get("/pages/{id}", s.getPage)
	r.Post("/pages/{id}/acknowledge", s.pageAction(s.Pages.Acknowledge))
	r.Post("/pages/{id}/resolve", s.pageAction(s.Pages.Resolve))
	r.Post("/pages/{id}/cancel", s.pageAction(s.Pages.Cancel))
	r.Post("/pages/{id}/escalate", s.escalatePage)
}

func (s *Server) createService(w http.ResponseWriter, r *http.Request) {
	var in escalation.NewService
	if !decode(w, r, &in) || !s.allow(w, r, auth.ManageServices) {
		return
	}
	out, err := s.Pages.CreateService(r.Context(), principal(r).Actor(), in)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/v1/services/"+out.ID.String())
	writeJSON(w, http.StatusCreated, out)
}

func (s *Server) listServices(w http.ResponseWriter, r *http.Request) {
	if !s.allow(w, r, auth.ReadDirectory) {
		return
	}
	out, err := s.Pages.Services(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"services": out})
}

func (s *Server) getService(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok || !s.allow(w, r, auth.ReadDirectory) {
		return
	}
	out, err := s.Pages.Service(r.Context(), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) createPolicy(w http.ResponseWriter, r *http.Request) {
	var in escalation.NewPolicy
	if !decode(w, r, &in) || !s.allow(w, r, auth.ManageServices) {
		return
	}
	out, err := s.Pages.CreatePolicy(r.Context(), principal(r).Actor(), in)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/v1/escalation-policies/"+out.ID.String())
	writeJSON(w, http.StatusCreated, out)
}

func (s *Server) listPolicies(w http.ResponseWriter, r *http.Request) {
	if !s.allow(w, r, auth.ReadDirectory) {
		return
	}
	out, err := s.Pages.Policies(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if out == nil {
		out = []escalation.Policy{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"escalation_policies": out})
}

func (s *Server) getPolicy(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok || !s.allow(w, r, auth.ReadDirectory) {
		return
	}
	out, err := s.Pages.Policy(r.Context(), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// createPage sends a page: 201 with the new page, or 200 with the open page
// that already has the same dedup key.
func (s *Server) createPage(w http.ResponseWriter, r *http.Request) {
	var in escalation.NewPage
	if !decode(w, r, &in) || !s.allow(w, r, auth.SendPages) || !s.limit(w, r, pageBucket(principal(r)), s.Limits.PagesPerCaller) {
		return
	}
	p, created, err := s.Pages.Create(r.Context(), principal(r).Actor(), in)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		w.Header().Set("Location", "/api/v1/pages/"+p.ID.String())
	}
	writeJSON(w, status, p)
}

func (s *Server) listPages(w http.ResponseWriter, r *http.Request) {
	if !s.allow(w, r, auth.ReadPages) {
		return
	}
	q := r.URL.Query()
	f := escalation.Filter{Status: escalation.Status(q.Get("status"))}
	switch f.Status {
	case "", escalation.Open, escalation.Acknowledged, escalation.Resolved, escalation.Cancelled, escalation.Unanswered:
	default:
		invalid(w, "status", "must be open, acknowledged, resolved, cancelled or unanswered")
		return
	}
	if v := q.Get("service"); v != "" {
		id, err := uuid.Parse(v)
		if err != nil {
			badRequest(w, "service", "is not a UUID")
			return
		}
		f.ServiceID = &id
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			invalid(w, "limit", "must be between 1 and 500")
			return
		}
		f.Limit = n
	}
	if v := q.Get("before"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			badRequest(w, "before", "must be an RFC 3339 time")
			return
		}
		f.Before = &t
	}
	out, err := s.Pages.List(r.Context(), f)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if out == nil {
		out = []escalation.Page{}
	}
	if err := audit.Record(r.Context(), s.DB, principal(r).Actor(), audit.Entry{Action: "page.list", ObjectType: "page",
		Details: map[string]any{"count": len(out), "status": f.Status}}); err != nil {
		s.fail(w, r, err)
		return
	}
	// Each patient the list shows is named in the trail.
	refs := make([]string, 0, len(out))
	for _, p := range out {
		if p.PatientRef != nil {
			refs = append(refs, *p.PatientRef)
		}
	}
	if err := audit.RecordPatients(r.Context(), s.DB, principal(r).Actor(), audit.Entry{Action: "page.list", ObjectType: "page"}, refs); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"pages": out})
}

// getPage returns a page with its timeline. Opening it counts as reading the
// caller's notifications for it, and is audited: a page can carry PHI.
func (s *Server) getPage(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok || !s.allow(w, r, auth.ReadPages) {
		return
	}
	p := principal(r)
	if err := s.Pages.MarkRead(r.Context(), p.User.ID, id); err != nil {
		s.fail(w, r, err)
		return
	}
	out, err := s.Pages.Get(r.Context(), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ref := ""
	if out.PatientRef != nil {
		ref = *out.PatientRef
	}
	if err := audit.Record(r.Context(), s.DB, p.Actor(), audit.Entry{Action: "page.read", ObjectType: "page", ObjectID: id.String(), PatientRef: ref}); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

type pageActionFunc func(ctx context.Context, who auth.Principal, id uuid.UUID) (escalation.Page, error)

func (s *Server) pageAction(act pageActionFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, ok := pathID(w, r, "id")
		if !ok || !s.allow(w, r, auth.ReadPages) {
			return
		}
		out, err := act(r.Context(), principal(r), id)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, out)
	}
}

type escalateRequest struct {
	FromRound *int `json:"from_round,omitempty"`
	FromStep  *int `json:"from_step,omitempty"`
}

func (s *Server) escalatePage(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	var in escalateRequest
	if r.ContentLength != 0 && !decode(w, r, &in) {
		return
	}
	if !s.allow(w, r, auth.ReadPages) {
		return
	}
	out, err := s.Pages.Escalate(r.Context(), principal(r), id, in.FromRound, in.FromStep)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

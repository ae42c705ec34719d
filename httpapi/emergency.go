package httpapi

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/callroom/callroom/inbox"
)

// emergencyRoutes: break-the-glass access to a patient's threads, and the
// auditors' review queue. Package inbox decides and audits.
func (s *Server) emergencyRoutes(r chi.Router) {
	r.Post("/emergency-access", s.breakGlass)
	r.Get("/emergency-access", s.listEmergencyAccess)
	r.Post("/emergency-access/{id}/review", s.reviewEmergencyAccess)
}

// breakGlass answers 201 with the grant. The patient and the reason travel
// in the body, never the URL.
func (s *Server) breakGlass(w http.ResponseWriter, r *http.Request) {
	var in inbox.NewEmergencyAccess
	if !decode(w, r, &in) {
		return
	}
	out, err := s.Inbox.BreakGlass(r.Context(), principal(r), in)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, out)
}

func (s *Server) listEmergencyAccess(w http.ResponseWriter, r *http.Request) {
	f := inbox.EmergencyFilter{}
	switch v := r.URL.Query().Get("unreviewed"); v {
	case "", "false":
	case "true":
		f.Unreviewed = true
	default:
		badRequest(w, "unreviewed", "must be true or false")
		return
	}
	var ok bool
	if f.Limit, ok = inboxQueryInt(w, r, "limit"); !ok {
		return
	}
	out, err := s.Inbox.EmergencyAccesses(r.Context(), principal(r), f)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if out == nil {
		out = []inbox.EmergencyAccess{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"emergency_access": out})
}

type reviewRequest struct {
	Note string `json:"note"`
}

func (s *Server) reviewEmergencyAccess(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	var in reviewRequest
	if !ok || !decode(w, r, &in) {
		return
	}
	out, err := s.Inbox.ReviewEmergencyAccess(r.Context(), principal(r), id, in.Note)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

package httpapi

import (
	"context"
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/auth"
	"github.com/callroom/callroom/notify"
)

// contactRoutes: how a person is reached. Everyone manages their own contact
// methods and notification rules; administrators manage anyone's.
func (s *Server) contactRoutes(r chi.Router) {
	r.Post("/users/{id}/contact-methods", s.createContactMethod)
	r.Get("/users/{id}/contact-methods", s.listContactMethods)
	r.Delete("/users/{id}/contact-methods/{cid}", s.deleteContactMethod)
	r.Post("/users/{id}/notification-rules", s.createNotificationRule)
	r.Get("/users/{id}/notification-rules", s.listNotificationRules)
	r.Delete("/users/{id}/notification-rules/{rid}", s.deleteNotificationRule)
}

// mayManageContacts reports whether the caller may manage userID's contact
// methods and notification rules: their own, or anyone's with ManageUsers
// (refusals are answered 403 and audited by allow). For another user it
// answers 404 when there is no such user, so an administrator's typo is not
// mistaken for "no contact methods".
func (s *Server) mayManageContacts(w http.ResponseWriter, r *http.Request, userID uuid.UUID) bool {
	if principal(r).User.ID == userID {
		return true
	}
	if !s.allow(w, r, auth.ManageUsers) {
		return false
	}
	if _, err := s.Auth.User(r.Context(), userID); err != nil {
		s.fail(w, r, err)
		return false
	}
	return true
}

// contactMethodCreated is the answer to a create: the method and, for a
// webhook whose secret was generated, that secret, shown this once.
type contactMethodCreated struct {
	notify.ContactMethod
	Secret string `json:"secret,omitempty"`
}

func (s *Server) createContactMethod(w http.ResponseWriter, r *http.Request) {
	userID, ok := pathID(w, r, "id")
	var in notify.NewContactMethod
	if !ok || !decode(w, r, &in) || !s.mayManageContacts(w, r, userID) {
		return
	}
	cm, secret, err := s.Contacts.CreateContactMethod(r.Context(), principal(r).Actor(), userID, in)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, contactMethodCreated{cm, secret})
}

func (s *Server) listContactMethods(w http.ResponseWriter, r *http.Request) {
	userID, ok := pathID(w, r, "id")
	if !ok || !s.mayManageContacts(w, r, userID) {
		return
	}
	out, err := s.Contacts.ContactMethods(r.Context(), userID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"contact_methods": out})
}

func (s *Server) deleteContactMethod(w http.ResponseWriter, r *http.Request) {
	s.deleteContactPart(w, r, "cid", s.Contacts.DeleteContactMethod)
}

func (s *Server) createNotificationRule(w http.ResponseWriter, r *http.Request) {
	userID, ok := pathID(w, r, "id")
	var in notify.NewNotificationRule
	if !ok || !decode(w, r, &in) || !s.mayManageContacts(w, r, userID) {
		return
	}
	out, err := s.Contacts.CreateNotificationRule(r.Context(), principal(r).Actor(), userID, in)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, out)
}

func (s *Server) listNotificationRules(w http.ResponseWriter, r *http.Request) {
	userID, ok := pathID(w, r, "id")
	if !ok || !s.mayManageContacts(w, r, userID) {
		return
	}
	out, err := s.Contacts.NotificationRules(r.Context(), userID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"notification_rules": out})
}

func (s *Server) deleteNotificationRule(w http.ResponseWriter, r *http.Request) {
	s.deleteContactPart(w, r, "rid", s.Contacts.DeleteNotificationRule)
}

// deleteContactPart deletes the {param} object of user {id}; an id that
// belongs to someone else is 404, as if it did not exist.
func (s *Server) deleteContactPart(w http.ResponseWriter, r *http.Request, param string,
	del func(context.Context, audit.Actor, uuid.UUID, uuid.UUID) error) {
	userID, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	part, ok := pathID(w, r, param)
	if !ok || !s.mayManageContacts(w, r, userID) {
		return
	}
	if err := del(r.Context(), principal(r).Actor(), userID, part); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

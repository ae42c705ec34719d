package httpapi

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/callroom/callroom/auth"
)

func (s *Server) userRoutes(r chi.Router) {
	r.Post("/users", s.createUser)
	r.Get("/users", s.listUsers)
	r.Get("/users/{id}", s.getUser)
	r.Patch("/users/{id}", s.updateUser)
}

// pathID parses the {name} URL parameter as a UUID, answering 400 if it is not one.
func pathID(w http.ResponseWriter, r *http.Request, name string) (uuid.UUID, bool) {
	id, err := uuid.Parse(chi.URLParam(r, name))
	if err != nil {
		badRequest(w, name, "is not a UUID")
		return uuid.Nil, false
	}
	return id, true
}

func (s *Server) createUser(w http.ResponseWriter, r *http.Request) {
	var in auth.NewUser
	if !decode(w, r, &in) || !s.allow(w, r, auth.ManageUsers) {
		return
	}
	u, err := s.Auth.CreateUser(r.Context(), principal(r).Actor(), in)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/v1/users/"+u.ID.String())
	writeJSON(w, http.StatusCreated, u)
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) {
	if !s.allow(w, r, auth.ReadDirectory) {
		return
	}
	f := auth.UserFilter{ActiveOnly: r.URL.Query().Get("active") == "true"}
	if role := r.URL.Query().Get("role"); role != "" {
		roles, err := auth.ParseRoles("role", []string{role})
		if err != nil {
			s.fail(w, r, err)
			return
		}
		f.Role = roles[0]
	}
	users, err := s.Auth.Users(r.Context(), f)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": users})
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok || !s.allow(w, r, auth.ReadDirectory) {
		return
	}
	u, err := s.Auth.User(r.Context(), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, u)
}

// updateUser lets administrators change anything and users change their own
// name, time zone and password.
func (s *Server) updateUser(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	var c auth.UserChange
	if !decode(w, r, &c) {
		return
	}
	p := principal(r)
	self := p.User.ID == id && c.Roles == nil && c.Active == nil && c.NPI == nil
	if !self && !s.allow(w, r, auth.ManageUsers) {
		return
	}
	if p.User.ID == id && c.Active != nil && !*c.Active {
		invalid(w, "active", "you cannot deactivate yourself")
		return
	}
	u, err := s.Auth.UpdateUser(r.Context(), p.Actor(), id, c)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, u)
}

type loginRequest struct {
	Email        string `json:"email"`
	Password     string `json:"password"`
	TOTPCode     string `json:"totp_code,omitempty"`
	RecoveryCode string `json:"recovery_code,omitempty"`
}

// login signs in with a password, and a second factor when the user has
// one. Without a code such a user gets 401 with the mfa-required problem
// ("mfa_required": true); any other failure, a wrong code or a locked
// account included, gets the same login-failed answer.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	var in loginRequest
	if !decode(w, r, &in) {
		return
	}
	if s.LocalPasswordsOff {
		forbidden(w, "password sign-in is switched off; use single sign-on at /auth/oidc/login")
		return
	}
	// A cross-site page must not sign a browser in to an account of its
	// choosing (login CSRF); the session cookie does not exist yet, so the
	// check in authenticate cannot cover this route.
	if !s.sameOrigin(r) {
		forbidden(w, "cross-site request refused")
		return
	}
	if in.Email == "" {
		invalid(w, "email", "is required")
		return
	}
	if in.Password == "" {
		invalid(w, "password", "is required")
		return
	}
	if !s.limit(w, r, "login-ip:"+clientAddr(r), s.Limits.LoginPerIP) ||
		!s.limit(w, r, "login-email:"+bucketHash(strings.ToLower(strings.TrimSpace(in.Email))), s.Limits.LoginPerEmail) {
		return
	}
	sess, secret, err := s.Auth.SignIn(r.Context(), auth.Credentials{Email: in.Email, Password: in.Password,
		TOTPCode: in.TOTPCode, RecoveryCode: in.RecoveryCode, ClientAddr: clientAddr(r), UserAgent: r.UserAgent()})
	switch {
	case errors.Is(err, auth.ErrMFARequired):
		w.Header().Set("WWW-Authenticate", `Bearer realm="callroom"`)
		writeProblem(w, Problem{Type: problemBase + "mfa-required", Title: "Second factor required", Status: http.StatusUnauthorized,
			Detail: "enter the code from your authenticator app (totp_code) or a recovery code (recovery_code)", MFARequired: true})
		return
	case errors.Is(err, auth.ErrLoginFailed):
		unauthorized(w, err.Error())
		return
	case err != nil:
		s.fail(w, r, err)
		return
	}
	s.startSession(w, r, sess, secret)
}

// startSession sets the cookie of a new session and answers with the user.
func (s *Server) startSession(w http.ResponseWriter, r *http.Request, sess auth.Session, secret string) {
	http.SetCookie(w, s.sessionCookie(secret, sess.ExpiresAt, 0))
	u, err := s.Auth.User(r.Context(), sess.UserID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"user": u, "session_id": sess.ID, "expires_at": sess.ExpiresAt,
		"idle_timeout_seconds": int(s.Auth.SessionIdle / time.Second)})
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if err := s.Auth.Logout(r.Context(), principal(r)); err != nil {
		s.fail(w, r, err)
		return
	}
	http.SetCookie(w, s.sessionCookie("", time.Time{}, -1))
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) me(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	perms := []auth.Permission{}
	for _, perm := range auth.AllPermissions() {
		if p.Can(perm) {
			perms = append(perms, perm)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"user": p.User, "permissions": perms,
		"mfa_enrollment_required": p.MFAEnrollmentRequired})
}

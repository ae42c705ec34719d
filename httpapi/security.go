package httpapi

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/callroom/callroom/auth"
	"github.com/callroom/callroom/ratelimit"
)

// Limits are the rate limits the API applies. A zero Rule allows everything.
type Limits struct {
	// LoginPerIP and LoginPerEmail bound password attempts from one address
	// and against one account (guessing spread over many addresses still
	// meets the account lockout). The per-address limit is generous because
	// a hospital's workstations often reach callroom from one NAT address,
	// all signing in at shift change.
	LoginPerIP, LoginPerEmail ratelimit.Rule
	// PagesPerCaller bounds page creation per API token (or per user for
	// browser sessions), so a runaway integration cannot flood the on-call.
	PagesPerCaller ratelimit.Rule
}

// DefaultLimits are generous for people and tight for scripts.
var DefaultLimits = Limits{
	LoginPerIP:     ratelimit.Rule{Limit: 120, Window: time.Minute},
	LoginPerEmail:  ratelimit.Rule{Limit: 10, Window: time.Minute},
	PagesPerCaller: ratelimit.Rule{Limit: 120, Window: time.Minute},
}

func (s *Server) securityRoutes(r chi.Router) {
	r.Get("/me/mfa", s.getMFA)
	r.Post("/me/mfa/totp", s.startTOTP)
	r.Post("/me/mfa/totp/confirm", s.confirmTOTP)
	r.Post("/me/mfa/totp/disable", s.disableTOTP)
	r.Get("/users/{id}/sessions", s.listSessions)
	r.Delete("/users/{id}/sessions/{sid}", s.revokeSession)
	r.Delete("/users/{id}/tokens/{tid}", s.revokeToken)
	r.Post("/users/{id}/revoke-credentials", s.revokeCredentials)
	r.Get("/users/{id}/mfa", s.getUserMFA)
	r.Delete("/users/{id}/mfa/totp", s.resetTOTP)
	r.Post("/users/{id}/unlock", s.unlockUser)
	r.Get("/security/settings", s.getSecuritySettings)
	r.Patch("/security/settings", s.updateSecuritySettings)
}

// limit counts the request against bucket and answers 429 with Retry-After
// when rule is exceeded.
func (s *Server) limit(w http.ResponseWriter, r *http.Request, bucket string, rule ratelimit.Rule) bool {
	if s.Limiter == nil {
		return true
	}
	d, err := s.Limiter.Allow(r.Context(), bucket, rule)
	if err != nil {
		s.fail(w, r, err)
		return false
	}
	if d.Allowed {
		return true
	}
	w.Header().Set("Retry-After", strconv.Itoa(int(d.RetryAfter.Seconds())))
	writeProblem(w, Problem{Type: problemBase + "rate-limited", Status: http.StatusTooManyRequests,
		Detail: "too many requests; retry after " + strconv.Itoa(int(d.RetryAfter.Seconds())) + " s"})
	return false
}

// pageBucket names the page-creation bucket of the caller: its API token,
// or the user for a browser session.
func pageBucket(p auth.Principal) string {
	if p.TokenID != uuid.Nil {
		return "pages-token:" + p.TokenID.String()
	}
	return "pages-user:" + p.User.ID.String()
}

// bucketHash keeps identifiers such as emails out of the rate_limits table.
func bucketHash(v string) string {
	h := sha256.Sum256([]byte(v))
	return hex.EncodeToString(h[:12])
}

// selfOrAdmin allows a user to act on their own account and administrators
// on anyone's.
func (s *Server) selfOrAdmin(w http.ResponseWriter, r *http.Request) (uuid.UUID, bool) {
	uid, ok := pathID(w, r, "id")
	if !ok {
		return uid, false
	}
	if principal(r).User.ID == uid {
		return uid, true
	}
	return uid, s.allow(w, r, auth.ManageUsers)
}

func (s *Server) getMFA(w http.ResponseWriter, r *http.Request) {
	st, err := s.Auth.MFA(r.Context(), principal(r).User.ID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// getUserMFA is a user's second-factor status, for the user or an
// administrator checking who has enrolled.
func (s *Server) getUserMFA(w http.ResponseWriter, r *http.Request) {
	id, ok := s.selfOrAdmin(w, r)
	if !ok {
		return
	}
	st, err := s.Auth.MFA(r.Context(), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// startTOTP begins enrolment: it answers the secret, the otpauth URL and a
// QR code for the authenticator app. Only browser sessions enrol; an API
// token is a system's credential.
func (s *Server) startTOTP(w http.ResponseWriter, r *http.Request) {
	en, err := s.Auth.StartTOTP(r.Context(), principal(r))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, en)
}

type totpCode struct {
	Code         string `json:"code,omitempty"`
	RecoveryCode string `json:"recovery_code,omitempty"`
}

func (s *Server) confirmTOTP(w http.ResponseWriter, r *http.Request) {
	var in totpCode
	if !decode(w, r, &in) {
		return
	}
	if in.Code == "" {
		invalid(w, "code", "is required")
		return
	}
	codes, err := s.Auth.ConfirmTOTP(r.Context(), principal(r), in.Code)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"recovery_codes": codes})
}

func (s *Server) disableTOTP(w http.ResponseWriter, r *http.Request) {
	var in totpCode
	if !decode(w, r, &in) {
		return
	}
	p := principal(r)
	if err := s.Auth.DisableTOTP(r.Context(), p.Actor(), p.User.ID, in.Code, in.RecoveryCode, false); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// resetTOTP is the administrator removing the authenticator of a user who
// lost it; they enrol again at their next sign-in.
func (s *Server) resetTOTP(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok || !s.allow(w, r, auth.ManageUsers) {
		return
	}
	if err := s.Auth.DisableTOTP(r.Context(), principal(r).Actor(), id, "", "", true); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) unlockUser(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok || !s.allow(w, r, auth.ManageUsers) {
		return
	}
	if err := s.Auth.Unlock(r.Context(), principal(r).Actor(), id); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// listSessions lists a user's live sessions and API tokens: the user's own,
// or anyone's for an administrator.
func (s *Server) listSessions(w http.ResponseWriter, r *http.Request) {
	id, ok := s.selfOrAdmin(w, r)
	if !ok {
		return
	}
	sessions, err := s.Auth.Sessions(r.Context(), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	tokens, err := s.Auth.Tokens(r.Context(), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"sessions": sessions, "tokens": tokens,
		"current_session_id": nullID(principal(r).SessionID)})
}

func nullID(id uuid.UUID) *uuid.UUID {
	if id == uuid.Nil {
		return nil
	}
	return &id
}

func (s *Server) revokeSession(w http.ResponseWriter, r *http.Request) {
	id, ok := s.selfOrAdmin(w, r)
	if !ok {
		return
	}
	sid, ok := pathID(w, r, "sid")
	if !ok {
		return
	}
	if err := s.Auth.RevokeSession(r.Context(), principal(r).Actor(), id, sid); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) {
	id, ok := s.selfOrAdmin(w, r)
	if !ok {
		return
	}
	tid, ok := pathID(w, r, "tid")
	if !ok {
		return
	}
	if err := s.Auth.RevokeToken(r.Context(), principal(r).Actor(), id, tid); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// revokeCredentials ends every session and token of the user: a lost phone,
// a suspected compromise. Their open clients get session.revoked {"all": true}.
func (s *Server) revokeCredentials(w http.ResponseWriter, r *http.Request) {
	id, ok := s.selfOrAdmin(w, r)
	if !ok {
		return
	}
	if err := s.Auth.RevokeAll(r.Context(), principal(r).Actor(), id); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) getSecuritySettings(w http.ResponseWriter, r *http.Request) {
	if !s.allow(w, r, auth.ManageUsers) {
		return
	}
	st, err := s.Auth.Settings(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) updateSecuritySettings(w http.ResponseWriter, r *http.Request) {
	var in auth.SecuritySettingsChange
	if !decode(w, r, &in) || !s.allow(w, r, auth.ManageUsers) {
		return
	}
	st, err := s.Auth.UpdateSettings(r.Context(), principal(r).Actor(), in)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

package httpapi

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/callroom/callroom/auth"
	"github.com/callroom/callroom/fhir"
)

// fhirRoutes are where the EHR's subscriptions call back. They sit outside
// /api/v1: the EHR authenticates with the subscription's secret or an HMAC
// of the body (checked by package fhir), not with a callroom token, and is
// answered in FHIR's terms (OperationOutcome).
func (s *Server) fhirRoutes(r chi.Router) {
	r.Post("/fhir/hooks/{subscription}", s.fhirHook)
	r.Put("/fhir/hooks/{subscription}/{type}/{id}", s.fhirHook)
	r.Get("/smart/launch", s.smartLaunch)
	r.Get(fhir.LaunchCallbackPath, s.smartCallback)
}

// launchFailed answers a refused launch to the browser.
func (s *Server) launchFailed(w http.ResponseWriter, r *http.Request, err error) {
	var rej *fhir.Rejection
	if errors.As(err, &rej) {
		writeProblem(w, Problem{Status: rej.Status, Detail: rej.Diagnostics})
		return
	}
	var se *fhir.ServerError
	if errors.As(err, &se) {
		s.Log.Warn("smart launch: the EHR failed", "status", se.Status)
		writeProblem(w, Problem{Status: http.StatusBadGateway, Detail: "the EHR could not be reached; launch again"})
		return
	}
	s.fail(w, r, err)
}

// smartLaunch starts a SMART on FHIR EHR launch: the browser goes to the
// EHR's authorization server.
func (s *Server) smartLaunch(w http.ResponseWriter, r *http.Request) {
	if s.FHIR == nil {
		// Without an EHR connection (CALLROOM_FHIR_CONFIG) the web client's
		// own chart launch (CALLROOM_SMART_ISSUER) answers, if configured.
		if s.Web != nil {
			s.Web.ServeHTTP(w, r)
			return
		}
		notFound(w, "no EHR connection is configured")
		return
	}
	to, err := s.FHIR.StartLaunch(r.Context(), r.URL.Query().Get("iss"), r.URL.Query().Get("launch"))
	if err != nil {
		s.launchFailed(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, to, http.StatusFound)
}

// smartCallback finishes the launch: the clinician is signed in (a session
// cookie, as after a login) and sent to the patient's thread.
func (s *Server) smartCallback(w http.ResponseWriter, r *http.Request) {
	if s.FHIR == nil {
		// Without an EHR connection (CALLROOM_FHIR_CONFIG) the web client's
		// own chart launch (CALLROOM_SMART_ISSUER) answers, if configured.
		if s.Web != nil {
			s.Web.ServeHTTP(w, r)
			return
		}
		notFound(w, "no EHR connection is configured")
		return
	}
	q := r.URL.Query()
	if e := q.Get("error"); e != "" {
		writeProblem(w, Problem{Status: http.StatusForbidden, Detail: "the EHR did not authorize the launch"})
		return
	}
	done, err := s.FHIR.FinishLaunch(r.Context(), q.Get("code"), q.Get("state"), clientAddr(r))
	if err != nil {
		s.launchFailed(w, r, err)
		return
	}
	sess, secret, err := s.Auth.OpenSession(r.Context(), done.UserID, clientAddr(r), r.UserAgent())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: SessionCookie, Value: secret, Path: "/", HttpOnly: true, Secure: s.SecureCookies,
		SameSite: http.SameSiteLaxMode, Expires: sess.ExpiresAt,
	})
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, strings.TrimRight(s.PublicURL, "/")+"/threads/"+done.ThreadID.String(), http.StatusFound)
}

func (s *Server) fhirHook(w http.ResponseWriter, r *http.Request) {
	if s.FHIR == nil {
		writeOutcome(w, http.StatusNotFound, "not-found", "no EHR connection is configured")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, fhir.MaxNotification))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeOutcome(w, http.StatusRequestEntityTooLarge, "too-long", "notification is larger than 5 MiB")
			return
		}
		writeOutcome(w, http.StatusBadRequest, "incomplete", "the body could not be read")
		return
	}
	path := ""
	if t := chi.URLParam(r, "type"); t != "" {
		path = t + "/" + chi.URLParam(r, "id")
	}
	ans, err := s.FHIR.Accept(r.Context(), fhir.Incoming{
		Subscription: chi.URLParam(r, "subscription"), Method: r.Method, Path: path,
		Header: r.Header.Get, Body: body, ClientAddr: clientAddr(r),
	})
	var rej *fhir.Rejection
	if errors.As(err, &rej) {
		writeOutcome(w, rej.Status, rej.Code, rej.Diagnostics)
		return
	}
	if err != nil {
		s.Log.Error("fhir notification", "err", err.Error())
		writeOutcome(w, http.StatusServiceUnavailable, "transient", "the notification could not be recorded; send it again")
		return
	}
	w.Header().Set("Content-Type", "application/fhir+json")
	w.WriteHeader(http.StatusOK)
	json.NewEncoder(w).Encode(map[string]any{ //nolint:errcheck
		"resourceType": "OperationOutcome",
		"issue": []map[string]any{{"severity": "information", "code": "informational",
			"diagnostics": outcomeSummary(ans)}},
	})
}

func outcomeSummary(a fhir.Answer) string {
	switch {
	case a.Duplicate:
		return "duplicate of notification " + a.NotificationID.String() + ": already recorded"
	case a.NotificationID.String() != "00000000-0000-0000-0000-000000000000":
		return a.Kind + " recorded as notification " + a.NotificationID.String()
	}
	return a.Kind + " received"
}

// writeOutcome answers a FHIR client with an OperationOutcome.
func writeOutcome(w http.ResponseWriter, status int, code, diagnostics string) {
	w.Header().Set("Content-Type", "application/fhir+json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{ //nolint:errcheck
		"resourceType": "OperationOutcome",
		"issue":        []map[string]any{{"severity": "error", "code": code, "diagnostics": diagnostics}},
	})
}

// unmatchedPractitioners lists practitioners the EHR named that matched no
// user (by NPI nor email), for administrators to create or fix accounts.
func (s *Server) unmatchedPractitioners(w http.ResponseWriter, r *http.Request) {
	if !s.allow(w, r, auth.ManageUsers) {
		return
	}
	out := []fhir.Unmatched{}
	if s.FHIR != nil {
		list, err := s.FHIR.Unmatched(r.Context())
		if err != nil {
			s.fail(w, r, err)
			return
		}
		out = append(out, list...)
	}
	writeJSON(w, http.StatusOK, map[string]any{"practitioners": out})
}

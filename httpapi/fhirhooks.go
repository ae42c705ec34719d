package httpapi

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"

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
	r.Get("/smart/callback", s.smartLaunch)
}

// smartLaunch serves the SMART on FHIR EHR launch of the patient-chart
// view (/smart/launch and /smart/callback): the web client does it, with
// the EHR connection when one is configured (see package web).
func (s *Server) smartLaunch(w http.ResponseWriter, r *http.Request) {
	if s.Web == nil {
		notFound(w, "no EHR launch is configured")
		return
	}
	s.Web.ServeHTTP(w, r)
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
		s.Metrics.FHIR("notification", "rejected")
		writeOutcome(w, rej.Status, rej.Code, rej.Diagnostics)
		return
	}
	if err != nil {
		s.Metrics.FHIR("notification", "error")
		s.Log.Error("fhir notification", "err", err.Error())
		writeOutcome(w, http.StatusServiceUnavailable, "transient", "the notification could not be recorded; send it again")
		return
	}
	if ans.Duplicate {
		s.Metrics.FHIR("notification", "duplicate")
	} else {
		s.Metrics.FHIR("notification", "accepted")
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

package httpapi

import (
	"net/http"
	"net/url"

	"github.com/go-chi/chi/v5"

	"github.com/callroom/callroom/auth"
	"github.com/callroom/callroom/patient"
)

// patientParam reads {ref}, a patient's name ("Patient/123" or
// "system|value"), URL-escaped ("Patient%2F123"). When the request path had
// escapes, chi matched the raw path, so the parameter is still escaped.
func patientParam(w http.ResponseWriter, r *http.Request) (string, bool) {
	ref := chi.URLParam(r, "ref")
	if r.URL.RawPath != "" {
		var err error
		if ref, err = url.PathUnescape(ref); err != nil {
			badRequest(w, "ref", "is not a properly escaped path segment")
			return "", false
		}
	}
	return ref, true
}

// patientIdentifiers lists every name of a patient: its Patient reference
// and the identifiers linked to it. Administrators only, audited.
func (s *Server) patientIdentifiers(w http.ResponseWriter, r *http.Request) {
	if !s.allow(w, r, auth.ManageUsers) {
		return
	}
	ref, ok := patientParam(w, r)
	if !ok {
		return
	}
	names, err := s.Patients.Names(r.Context(), principal(r).Actor(), ref)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, patientNames(names))
}

// linkPatientIdentifiers links identifiers to a Patient reference, for
// sites whose EHR callroom does not read. Administrators only, audited.
func (s *Server) linkPatientIdentifiers(w http.ResponseWriter, r *http.Request) {
	if !s.allow(w, r, auth.ManageUsers) {
		return
	}
	ref, ok := patientParam(w, r)
	if !ok {
		return
	}
	var in struct {
		Identifiers []string `json:"identifiers"`
	}
	if !decode(w, r, &in) {
		return
	}
	if len(in.Identifiers) == 0 || len(in.Identifiers) > 100 {
		invalid(w, "identifiers", "give 1 to 100 identifiers")
		return
	}
	names, err := s.Patients.Link(r.Context(), principal(r).Actor(), ref, in.Identifiers, patient.FromAdmin)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, patientNames(names))
}

type patientNamesBody struct {
	PatientRef  string   `json:"patient_ref"`
	Identifiers []string `json:"identifiers"`
}

// patientNames splits Names' answer: the Patient reference (empty when the
// name asked about is an identifier linked to none) and the identifiers.
func patientNames(names []string) patientNamesBody {
	out := patientNamesBody{Identifiers: []string{}}
	for _, n := range names {
		if patient.IsLiteral(n) {
			out.PatientRef = n
		} else {
			out.Identifiers = append(out.Identifiers, n)
		}
	}
	return out
}

package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/callroom/callroom"
	"github.com/callroom/callroom/auth"
)

// Problem is an RFC 9457 problem details object. Field names the offending
// input, so a client (or a person reading the response) knows what to fix.
type Problem struct {
	Type   string         `json:"type"`
	Title  string         `json:"title"`
	Status int            `json:"status"`
	Detail string         `json:"detail,omitempty"`
	Field  string         `json:"field,omitempty"`
	Errors []FieldProblem `json:"errors,omitempty"`
	// MFARequired is the extension member of the mfa-required problem.
	MFARequired bool `json:"mfa_required,omitempty"`
}

// FieldProblem is one field's complaint.
type FieldProblem struct {
	Field  string `json:"field"`
	Detail string `json:"detail"`
}

const problemBase = "https://callroom.dev/problems/"

func writeProblem(w http.ResponseWriter, p Problem) {
	if p.Type == "" {
		p.Type = "about:blank"
	}
	if p.Title == "" {
		p.Title = http.StatusText(p.Status)
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	json.NewEncoder(w).Encode(p) //nolint:errcheck // the client is gone
}

func badRequest(w http.ResponseWriter, field, detail string) {
	writeProblem(w, Problem{Type: problemBase + "malformed-request", Title: "Malformed request", Status: http.StatusBadRequest,
		Detail: detail, Field: field, Errors: fieldErrors(field, detail)})
}

func invalid(w http.ResponseWriter, field, detail string) {
	writeProblem(w, Problem{Type: problemBase + "validation", Title: "Invalid input", Status: http.StatusUnprocessableEntity,
		Detail: field + ": " + detail, Field: field, Errors: fieldErrors(field, detail)})
}

func fieldErrors(field, detail string) []FieldProblem {
	if field == "" {
		return nil
	}
	return []FieldProblem{{Field: field, Detail: detail}}
}

func unauthorized(w http.ResponseWriter, detail string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="callroom"`)
	writeProblem(w, Problem{Type: problemBase + "unauthenticated", Status: http.StatusUnauthorized, Detail: detail})
}

func forbidden(w http.ResponseWriter, detail string) {
	writeProblem(w, Problem{Type: problemBase + "forbidden", Status: http.StatusForbidden, Detail: detail})
}

func notFound(w http.ResponseWriter, detail string) {
	writeProblem(w, Problem{Type: problemBase + "not-found", Status: http.StatusNotFound, Detail: detail})
}

// fail answers err, mapping callroom's domain errors to statuses. Unknown
// errors are logged (by kind, without request data) and answered 500; a
// database that cannot be reached is 503, so clients and load balancers retry
// elsewhere rather than wait.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var fe *callroom.FieldError
	var ce *callroom.ConflictError
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &fe):
		invalid(w, fe.Field, fe.Detail)
	case errors.As(err, &ce):
		writeProblem(w, Problem{Type: problemBase + "conflict", Status: http.StatusConflict, Detail: ce.Detail,
			Field: ce.Field, Errors: fieldErrors(ce.Field, ce.Detail)})
	case errors.Is(err, callroom.ErrNotFound):
		notFound(w, err.Error())
	case errors.Is(err, callroom.ErrForbidden):
		forbidden(w, err.Error())
	case errors.Is(err, auth.ErrUnauthenticated):
		unauthorized(w, "credentials are missing, expired or revoked")
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		// The client went away; nobody reads the answer.
		w.WriteHeader(499)
	case errors.As(err, &pgErr) && pgErr.Code == "57014", errors.Is(err, context.DeadlineExceeded), isConnError(err):
		s.Log.Warn("database unavailable", "route", routePattern(r), "err", err.Error())
		w.Header().Set("Retry-After", "2")
		writeProblem(w, Problem{Type: problemBase + "unavailable", Status: http.StatusServiceUnavailable,
			Detail: "the database is unavailable; retry shortly"})
	default:
		s.Log.Error("request failed", "route", routePattern(r), "err", err.Error())
		writeProblem(w, Problem{Status: http.StatusInternalServerError, Detail: "internal error; it has been logged"})
	}
}

func isConnError(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// Class 08: connection exception; 57P01-03: admin shutdown, crash, cannot connect now.
		return pgErr.Code[:2] == "08" || pgErr.Code == "57P01" || pgErr.Code == "57P02" || pgErr.Code == "57P03"
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	return pgconn.SafeToRetry(err) || pgconn.Timeout(err)
}

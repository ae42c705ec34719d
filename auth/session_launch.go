package auth

import (
	"context"
	"errors"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callroom/callroom/audit"
)

// MethodSMART is the sign-in method of sessions opened by an EHR launch.
const MethodSMART = "smart"

// OpenSession opens a browser session for a user whom an EHR launch (SMART
// on FHIR) identified: the EHR's authorization server vouched for the
// clinician, as an OpenID provider does for single sign-on, so no password
// or second factor is asked. A deactivated or unknown user gets
// ErrLoginFailed, audited, like a failed sign-in.
func (s *Store) OpenSession(ctx context.Context, userID uuid.UUID, clientAddr, userAgent string) (Session, string, error) {
	by := audit.Actor{UserID: userID, ClientAddr: clientAddr}
	var active bool
	err := s.db.QueryRow(ctx, `SELECT active FROM users WHERE id = $1`, userID).Scan(&active)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return Session{}, "", err
	}
	if !active {
		if err := audit.Record(ctx, s.db, by, audit.Entry{Action: "auth.login", ObjectType: "user", ObjectID: userID.String(),
			Outcome: audit.Failure, Details: map[string]any{"method": MethodSMART, "reason": "deactivated_or_unknown"}}); err != nil {
			return Session{}, "", err
		}
		return Session{}, "", ErrLoginFailed
	}
	return s.openSession(ctx, by, userID, MethodSMART, clientAddr, userAgent)
}

// UserByNPI returns the user with that National Provider Identifier: how an
// EHR's Practitioner is matched to a callroom user.
func (s *Store) UserByNPI(ctx context.Context, npi string) (User, error) {
	return s.userWhere(ctx, `npi = $1`, npi)
}

// LaunchRefused records an EHR launch refused because the clinician the EHR
// named (fhirUser, a Practitioner reference) matches no callroom user, so a
// security officer sees who tried to open callroom from a chart.
func (s *Store) LaunchRefused(ctx context.Context, fhirUser, clientAddr, reason string) error {
	return audit.Record(ctx, s.db, audit.Actor{ClientAddr: clientAddr}, audit.Entry{Action: "fhir.launch", ObjectType: "fhir_user",
		ObjectID: fhirUser, Outcome: audit.Denied, Details: map[string]any{"reason": reason}})
}

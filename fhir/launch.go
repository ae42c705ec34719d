package fhir

import (
	"context"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/inbox"
	"github.com/callroom/callroom/internal/pg"
	"github.com/callroom/callroom/patient"
)

// Launch configures SMART on FHIR EHR launch: the EHR opens callroom's
// patient-chart view from a patient's chart. The browser side (discovery,
// authorization code with PKCE, the token exchange, the session) is the web
// client's (package web); this package does what needs the EHR connection:
// see Store.Launched.
type Launch struct {
	ClientID string
	// ClientSecret, when set, makes callroom a confidential client
	// (client_secret_basic); otherwise a public one.
	ClientSecret string
	// Scope asked for; DefaultLaunchScope when empty.
	Scope string
}

// DefaultLaunchScope asks for the launch context and the user's identity;
// the clinician is matched through the EHR connection, not their token.
const DefaultLaunchScope = "launch openid fhirUser"

// LaunchContext is what a finished EHR launch says: whose chart, which
// encounter, and who is looking.
type LaunchContext struct {
	Patient   string // "Patient/123"
	Encounter string // "Encounter/456", or ""
	// FHIRUser is the ID token's fhirUser as a relative reference
	// ("Practitioner/7" or "PractitionerRole/8").
	FHIRUser   string
	ClientAddr string
}

// Launched is a finished launch: who, and the patient's thread they are in.
type Launched struct {
	UserID   uuid.UUID
	ThreadID uuid.UUID
}

// RecordLaunch records a finished EHR launch. It matches the clinician to a
// user (NPI, then email, as for care teams; a clinician callroom cannot
// match is refused with a 403 Rejection and audited, never guessed), links
// the patient's identifiers read from the EHR (so threads opened under the
// MRN join this chart), and opens the patient's (and encounter's) thread
// with the clinician in it: the EHR vouches that they are working in this
// chart.
func (s *Store) RecordLaunch(ctx context.Context, l LaunchContext) (Launched, error) {
	if !patient.IsLiteral(l.Patient) {
		return Launched{}, reject(422, "required", "the launch carries no patient")
	}
	if t, _, _ := strings.Cut(l.FHIRUser, "/"); t != "Practitioner" && t != "PractitionerRole" {
		return Launched{}, reject(403, "security", "the EHR user is not a practitioner")
	}
	userID, err := s.newResolver().users(ctx, []string{l.FHIRUser})
	if err != nil {
		return Launched{}, err
	}
	if len(userID) == 0 {
		if err := audit.Record(ctx, s.db, audit.Actor{ClientAddr: l.ClientAddr}, audit.Entry{Action: "fhir.launch", ObjectType: "fhir_user",
			ObjectID: l.FHIRUser, Outcome: audit.Denied, Details: map[string]any{"reason": "unmatched practitioner"}}); err != nil {
			return Launched{}, err
		}
		return Launched{}, reject(403, "security", "the EHR user matches no callroom account; an administrator can create it")
	}
	out := Launched{UserID: userID[0]}
	// The patient's MRN and other identifiers. Not reading them does not
	// stop the launch: the threads under the FHIR id are still there.
	identifiers, err := s.patientIdentifiers(ctx, l.Patient)
	if err != nil {
		s.log.Warn("smart launch: cannot read the patient's identifiers from the EHR; threads kept under them stay apart")
	}
	err = pg.InTx(ctx, s.db, func(tx pgx.Tx) error {
		if _, err := patient.Link(ctx, tx, audit.System, l.Patient, identifiers, patient.FromEHR); err != nil {
			return err
		}
		var w pg.Writes
		var err error
		if out.ThreadID, _, err = s.inbox.OpenPatientThread(ctx, tx, &w, inbox.PatientThread{PatientRef: l.Patient, EncounterRef: l.Encounter}); err != nil {
			return err
		}
		if _, _, _, err := s.inbox.SyncMembers(ctx, tx, &w, out.ThreadID, userID, nil, map[string]any{"source": "smart launch"}); err != nil {
			return err
		}
		if err := audit.Queue(&w, audit.Actor{UserID: out.UserID, ClientAddr: l.ClientAddr}, audit.Entry{Action: "fhir.launch",
			ObjectType: "thread", ObjectID: out.ThreadID.String(), PatientRef: l.Patient}); err != nil {
			return err
		}
		return w.Flush(ctx, tx)
	})
	return out, err
}

// BaseURL is the EHR's FHIR base URL, the only issuer a launch may name.
func (s *Store) BaseURL() string { return s.client.base }

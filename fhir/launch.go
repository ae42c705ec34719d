package fhir

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/inbox"
	"github.com/callroom/callroom/internal/pg"
	"github.com/callroom/callroom/patient"
)

// Launch configures SMART on FHIR EHR launch: the EHR opens callroom from a
// patient's chart (GET /smart/launch?iss=…&launch=…); callroom asks the
// EHR's authorization server for the launch context (authorization code
// with PKCE S256, a public client), signs the clinician in and opens the
// patient's thread.
type Launch struct {
	ClientID string
	// Scope asked for; default "launch openid fhirUser".
	Scope string
}

// LaunchCallbackPath is the redirect URI's path, under callroom's public URL.
const LaunchCallbackPath = "/smart/callback"

// launchTTL bounds how long a launch may take.
const launchTTL = 10 * time.Minute

type smartConfiguration struct {
	AuthorizationEndpoint string `json:"authorization_endpoint"`
	TokenEndpoint         string `json:"token_endpoint"`
}

func (c *Client) smartConfiguration(ctx context.Context) (smartConfiguration, error) {
	var conf smartConfiguration
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/.well-known/smart-configuration", nil)
	if err != nil {
		return conf, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return conf, &ServerError{Outcome: "SMART discovery: " + err.Error()}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&conf) != nil ||
		conf.AuthorizationEndpoint == "" || conf.TokenEndpoint == "" {
		return conf, &ServerError{Status: resp.StatusCode, Outcome: "SMART discovery: no authorization or token endpoint"}
	}
	return conf, nil
}

func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func hashState(state string) []byte {
	h := sha256.Sum256([]byte(state))
	return h[:]
}

// StartLaunch answers the EHR's launch: the URL of the EHR's authorization
// server to send the browser to. iss must be the configured FHIR server:
// callroom never follows a launch to a server it does not know.
func (s *Store) StartLaunch(ctx context.Context, iss, launch string) (string, error) {
	if s.cfg.Launch == nil {
		return "", reject(404, "not-supported", "EHR launch is not configured")
	}
	if strings.TrimRight(iss, "/") != s.client.base {
		return "", reject(400, "invalid", "iss is not the EHR callroom is connected to")
	}
	if launch == "" || len(launch) > 1000 {
		return "", reject(400, "required", "launch is required")
	}
	conf, err := s.client.smartConfiguration(ctx)
	if err != nil {
		return "", err
	}
	state, verifier := randomToken(), randomToken()
	if _, err := s.db.Exec(ctx, `INSERT INTO fhir_launches (state_hash, verifier) VALUES ($1, $2)`, hashState(state), verifier); err != nil {
		return "", err
	}
	challenge := sha256.Sum256([]byte(verifier))
	scope := s.cfg.Launch.Scope
	if scope == "" {
		scope = "launch openid fhirUser"
	}
	q := url.Values{
		"response_type": {"code"}, "client_id": {s.cfg.Launch.ClientID}, "redirect_uri": {s.redirectURI()},
		"launch": {launch}, "scope": {scope}, "state": {state}, "aud": {s.client.base},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(challenge[:])}, "code_challenge_method": {"S256"},
	}
	sep := "?"
	if strings.Contains(conf.AuthorizationEndpoint, "?") {
		sep = "&"
	}
	return conf.AuthorizationEndpoint + sep + q.Encode(), nil
}

func (s *Store) redirectURI() string {
	return strings.TrimRight(s.cfg.Endpoint, "/") + LaunchCallbackPath
}

// Launched is a finished launch: who, and the thread to show them.
type Launched struct {
	UserID   uuid.UUID
	ThreadID uuid.UUID
}

// FinishLaunch takes the authorization server's answer: it checks the
// state (once, within 10 minutes), exchanges the code, matches the
// clinician (fhirUser) to a user and opens the patient's thread with them
// in it. A clinician callroom cannot match is refused, never guessed.
func (s *Store) FinishLaunch(ctx context.Context, code, state, clientAddr string) (Launched, error) {
	if s.cfg.Launch == nil {
		return Launched{}, reject(404, "not-supported", "EHR launch is not configured")
	}
	if code == "" || state == "" {
		return Launched{}, reject(400, "required", "code and state are required")
	}
	var verifier string
	err := s.db.QueryRow(ctx, `UPDATE fhir_launches SET used_at = now()
		WHERE state_hash = $1 AND used_at IS NULL AND created_at > now() - $2::interval RETURNING verifier`,
		hashState(state), launchTTL).Scan(&verifier)
	if errors.Is(err, pgx.ErrNoRows) {
		return Launched{}, reject(400, "security", "unknown, expired or already used launch state")
	}
	if err != nil {
		return Launched{}, err
	}
	conf, err := s.client.smartConfiguration(ctx)
	if err != nil {
		return Launched{}, err
	}
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {s.redirectURI()},
		"client_id": {s.cfg.Launch.ClientID}, "code_verifier": {verifier}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, conf.TokenEndpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return Launched{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := s.client.http.Do(req)
	if err != nil {
		return Launched{}, &ServerError{Outcome: "token endpoint: " + err.Error()}
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
		Patient     string `json:"patient"`
		Encounter   string `json:"encounter"`
		IDToken     string `json:"id_token"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&tok) != nil || tok.AccessToken == "" {
		return Launched{}, reject(401, "security", "the EHR's authorization server refused the code")
	}
	if tok.Patient == "" {
		return Launched{}, reject(422, "required", "the launch carries no patient")
	}
	fhirUser, err := s.fhirUser(tok.IDToken)
	if err != nil {
		return Launched{}, err
	}
	userID, err := s.newResolver().users(ctx, []string{fhirUser})
	if err != nil {
		return Launched{}, err
	}
	if len(userID) == 0 {
		if err := audit.Record(ctx, s.db, audit.Actor{ClientAddr: clientAddr}, audit.Entry{Action: "fhir.launch", ObjectType: "fhir_user",
			ObjectID: fhirUser, Outcome: audit.Denied, Details: map[string]any{"reason": "unmatched practitioner"}}); err != nil {
			return Launched{}, err
		}
		return Launched{}, reject(403, "security", "the EHR user matches no callroom account; an administrator can create it")
	}
	out := Launched{UserID: userID[0]}
	patientRef := "Patient/" + strings.TrimPrefix(tok.Patient, "Patient/")
	// The patient's MRN and other identifiers, so that threads nurses opened
	// under them join this chart. Not reading them does not stop the launch:
	// the threads under the FHIR id are still there.
	identifiers, err := s.patientIdentifiers(ctx, patientRef)
	if err != nil {
		s.log.Warn("smart launch: cannot read the patient's identifiers from the EHR; threads kept under them stay apart")
	}
	encounter := ""
	if tok.Encounter != "" {
		encounter = "Encounter/" + strings.TrimPrefix(tok.Encounter, "Encounter/")
	}
	err = pg.InTx(ctx, s.db, func(tx pgx.Tx) error {
		var err error
		if _, err := patient.Link(ctx, tx, audit.System, patientRef, identifiers, patient.FromEHR); err != nil {
			return err
		}
		if out.ThreadID, _, err = s.inbox.OpenPatientThread(ctx, tx, inbox.PatientThread{PatientRef: patientRef, EncounterRef: encounter}); err != nil {
			return err
		}
		// The EHR vouches that this clinician is working in this chart.
		if _, _, _, err := s.inbox.SyncMembers(ctx, tx, out.ThreadID, userID, nil, map[string]any{"source": "smart launch"}); err != nil {
			return err
		}
		return audit.Record(ctx, tx, audit.Actor{UserID: out.UserID, ClientAddr: clientAddr}, audit.Entry{Action: "fhir.launch",
			ObjectType: "thread", ObjectID: out.ThreadID.String(), PatientRef: patientRef})
	})
	return out, err
}

// fhirUser reads the fhirUser claim of the ID token. The token came
// straight from the token endpoint over the connection callroom opened (TLS
// in production), in exchange for this launch's code and PKCE verifier, so
// its origin is established without checking its signature (OpenID Connect
// Core 3.1.3.7); its audience and expiry are still checked.
func (s *Store) fhirUser(idToken string) (string, error) {
	parts := strings.Split(idToken, ".")
	if len(parts) != 3 {
		return "", reject(422, "required", "the launch carries no ID token (ask for the openid and fhirUser scopes)")
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", reject(422, "invalid", "the ID token is not a JWT")
	}
	var claims struct {
		Aud      any    `json:"aud"`
		Exp      int64  `json:"exp"`
		FHIRUser string `json:"fhirUser"`
	}
	if err := json.Unmarshal(raw, &claims); err != nil {
		return "", reject(422, "invalid", "the ID token's claims are not JSON")
	}
	audOK := false
	switch a := claims.Aud.(type) {
	case string:
		audOK = a == s.cfg.Launch.ClientID
	case []any:
		for _, x := range a {
			audOK = audOK || x == s.cfg.Launch.ClientID
		}
	}
	if !audOK || time.Unix(claims.Exp, 0).Before(s.now()) {
		return "", reject(401, "security", "the ID token is not for callroom or has expired")
	}
	ref := literalRef(claims.FHIRUser)
	if !strings.HasPrefix(ref, "Practitioner/") && !strings.HasPrefix(ref, "PractitionerRole/") {
		return "", reject(403, "security", "the EHR user is not a practitioner")
	}
	return ref, nil
}

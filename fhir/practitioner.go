package fhir

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	models "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// NPISystem is the identifier system of US National Provider Identifiers.
const NPISystem = "http://hl7.org/fhir/sid/us-npi"

// resolver matches the people a resource names to callroom users, reading
// each Practitioner once per job.
type resolver struct {
	s    *Store
	seen map[string]uuid.UUID // reference -> user (uuid.Nil: unmatched)
}

func (s *Store) newResolver() *resolver { return &resolver{s: s, seen: map[string]uuid.UUID{}} }

// users resolves refs ("Practitioner/1", "PractitionerRole/2"; other types
// are not people callroom pages) to users, without duplicates. An EHR that
// cannot be reached is an error (the job retries); a reference it does not
// know is an unmatched practitioner.
func (r *resolver) users(ctx context.Context, refs []string) ([]uuid.UUID, error) {
	var out []uuid.UUID
	for _, ref := range refs {
		id, err := r.user(ctx, ref)
		if err != nil {
			return nil, err
		}
		if id != uuid.Nil && !containsID(out, id) {
			out = append(out, id)
		}
	}
	return out, nil
}

func containsID(ids []uuid.UUID, id uuid.UUID) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

func (r *resolver) user(ctx context.Context, ref string) (uuid.UUID, error) {
	if id, ok := r.seen[ref]; ok {
		return id, nil
	}
	if t, _, _ := strings.Cut(ref, "/"); t != "Practitioner" && t != "PractitionerRole" {
		return uuid.Nil, nil // not a person callroom pages
	}
	// A recent match (or non-match) stands: no EHR read.
	var cached *uuid.UUID
	err := r.s.db.QueryRow(ctx, `SELECT user_id FROM fhir_practitioner_matches WHERE practitioner_ref = $1 AND checked_at > $2`,
		ref, r.s.now().Add(-matchFor)).Scan(&cached)
	if err == nil {
		id := uuid.Nil
		if cached != nil {
			id = *cached
		}
		r.seen[ref] = id
		return id, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return uuid.Nil, err
	}
	id, err := r.lookup(ctx, ref)
	if err != nil {
		return uuid.Nil, err
	}
	var user *uuid.UUID
	if id != uuid.Nil {
		user = &id
	}
	if _, err := r.s.db.Exec(ctx, `INSERT INTO fhir_practitioner_matches (practitioner_ref, user_id, checked_at) VALUES ($1, $2, now())
		ON CONFLICT (practitioner_ref) DO UPDATE SET user_id = $2, checked_at = now()`, ref, user); err != nil {
		return uuid.Nil, err
	}
	return id, nil
}

// matchFor is how long a practitioner's match is reused.
const matchFor = 5 * time.Minute

// lookup reads the practitioner from the EHR and matches it.
func (r *resolver) lookup(ctx context.Context, ref string) (uuid.UUID, error) {
	typ, _, _ := strings.Cut(ref, "/")
	practitionerRef := ref
	switch typ {
	case "Practitioner":
	case "PractitionerRole":
		raw, err := r.s.client.ReadReference(ctx, ref)
		if notFound(err) {
			r.seen[ref] = uuid.Nil
			return uuid.Nil, nil
		}
		if err != nil {
			return uuid.Nil, err
		}
		role, err := decodePractitionerRole(raw)
		if err != nil || role.Practitioner == nil || role.Practitioner.Reference == nil {
			r.seen[ref] = uuid.Nil
			return uuid.Nil, nil
		}
		practitionerRef = *role.Practitioner.Reference
	default:
		return uuid.Nil, nil
	}
	raw, err := r.s.client.ReadReference(ctx, practitionerRef)
	var p models.Practitioner
	if err == nil {
		p, err = decodePractitioner(raw)
	}
	if notFound(err) {
		r.seen[ref] = uuid.Nil
		return uuid.Nil, r.s.noteUnmatched(ctx, practitionerRef, "", false)
	}
	if err != nil {
		return uuid.Nil, err
	}
	id, err := r.s.matchPractitioner(ctx, practitionerRef, p)
	if err != nil {
		return uuid.Nil, err
	}
	r.seen[ref] = id
	return id, nil
}

func notFound(err error) bool {
	var se *ServerError
	return errors.As(err, &se) && (se.Status == 404 || se.Status == 410)
}

// matchPractitioner finds the user with the practitioner's NPI, else with
// one of its email addresses; an active nurse or physician only. No match is
// listed for an administrator.
func (s *Store) matchPractitioner(ctx context.Context, ref string, p models.Practitioner) (uuid.UUID, error) {
	var npi string
	for _, idf := range p.Identifier {
		if str(idf.System) == NPISystem && str(idf.Value) != "" {
			npi = str(idf.Value)
			break
		}
	}
	var emails []string
	for _, t := range p.Telecom {
		if t.System != nil && *t.System == models.ContactPointSystemEmail && str(t.Value) != "" {
			emails = append(emails, strings.ToLower(strings.TrimSpace(str(t.Value))))
		}
	}
	var id uuid.UUID
	err := s.db.QueryRow(ctx, `SELECT id FROM users WHERE active AND (($1 <> '' AND npi = $1) OR email = ANY ($2))
		ORDER BY ($1 <> '' AND npi = $1) DESC LIMIT 1`, npi, emails).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return uuid.Nil, s.noteUnmatched(ctx, ref, npi, len(emails) > 0)
	}
	if err != nil {
		return uuid.Nil, err
	}
	_, err = s.db.Exec(ctx, `DELETE FROM fhir_unmatched_practitioners WHERE practitioner_ref = $1`, ref)
	return id, err
}

func (s *Store) noteUnmatched(ctx context.Context, ref, npi string, hasEmail bool) error {
	_, err := s.db.Exec(ctx, `INSERT INTO fhir_unmatched_practitioners (practitioner_ref, npi, has_email) VALUES ($1, $2, $3)
		ON CONFLICT (practitioner_ref) DO UPDATE SET npi = $2, has_email = $3, last_seen_at = now()`, ref, npi, hasEmail)
	return err
}

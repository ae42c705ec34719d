// Package audit writes and reads the audit trail: who did what to which
// object, when, from where, and whether it was allowed. Every change in
// callroom writes its audit event in the same transaction as the change, so
// the trail never claims something that did not happen nor misses something
// that did.
package audit

import (
	"context"
	"encoding/json"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callroom/callroom/internal/pg"
)

// Outcome says whether the audited action happened.
type Outcome string

const (
	Success Outcome = "success"
	Failure Outcome = "failure" // attempted and failed (bad password, invalid input)
	Denied  Outcome = "denied"  // refused for lack of permission
)

// Actor is who acts and from where. The zero UserID means the system itself
// (a River job) or a caller that could not be identified.
type Actor struct {
	UserID     uuid.UUID
	ClientAddr string
}

// System is the actor for work callroom does on its own (escalation steps,
// retention).
var System = Actor{}

// Event is one row of the audit trail.
type Event struct {
	ID         int64          `json:"id" db:"id"`
	At         time.Time      `json:"at" db:"at"`
	ActorID    *uuid.UUID     `json:"actor_id,omitempty" db:"actor_id"`
	Action     string         `json:"action" db:"action"`
	ObjectType string         `json:"object_type" db:"object_type"`
	ObjectID   string         `json:"object_id" db:"object_id"`
	Outcome    Outcome        `json:"outcome" db:"outcome"`
	ClientAddr string         `json:"client_addr" db:"client_addr"`
	PatientRef *string        `json:"patient_ref,omitempty" db:"patient_ref"`
	Details    map[string]any `json:"details,omitempty" db:"details"`
}

// Entry is what a caller records; the rest is filled in.
type Entry struct {
	Action     string
	ObjectType string
	ObjectID   string
	Outcome    Outcome // Success when empty
	PatientRef string
	Details    map[string]any // no PHI: ids, counts, reasons
}

// Record appends e, done by a, using q, which should be the transaction that
// makes the change being recorded.
func Record(ctx context.Context, q pg.Querier, a Actor, e Entry) error {
	r, err := newRecord(a, e)
	if err != nil {
		return err
	}
	_, err = q.Exec(ctx, recordSQL, r.actor, r.action, r.objectType, r.objectID, r.outcome, r.clientAddr, r.patient, r.details)
	return err
}

// Queue is Record for a transaction that sends its writes together: the
// event is written when w is flushed, in that transaction. Events queued
// by the members of a group (pg.Group, pg.Lockstep) are written by one
// insert (pg.Writes.ExecRows).
func Queue(w *pg.Writes, a Actor, e Entry) error {
	r, err := newRecord(a, e)
	if err != nil {
		return err
	}
	w.ExecRows(recordRowsSQL, 1, []*uuid.UUID{r.actor}, []string{r.action}, []string{r.objectType}, []string{r.objectID},
		[]string{string(r.outcome)}, []string{r.clientAddr}, []*string{r.patient}, [][]byte{r.details})
	return nil
}

const recordSQL = `INSERT INTO audit_events
	(actor_id, action, object_type, object_id, outcome, client_addr, patient_ref, details)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`

// recordRowsSQL is recordSQL with a row per element of its arrays.
const recordRowsSQL = `INSERT INTO audit_events
	(actor_id, action, object_type, object_id, outcome, client_addr, patient_ref, details)
	SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::jsonb[])`

// record is an event's row.
type record struct {
	actor                        *uuid.UUID
	action, objectType, objectID string
	outcome                      Outcome
	clientAddr                   string
	patient                      *string
	details                      []byte
}

func newRecord(a Actor, e Entry) (record, error) {
	r := record{action: e.Action, objectType: e.ObjectType, objectID: e.ObjectID, outcome: e.Outcome,
		clientAddr: a.ClientAddr, details: []byte("{}")}
	if r.outcome == "" {
		r.outcome = Success
	}
	if a.UserID != uuid.Nil {
		r.actor = &a.UserID
	}
	if e.PatientRef != "" {
		r.patient = &e.PatientRef
	}
	if len(e.Details) > 0 {
		b, err := json.Marshal(e.Details)
		if err != nil {
			return record{}, err
		}
		r.details = b
	}
	return r, nil
}

// Filter narrows List.
type Filter struct {
	ActorID    *uuid.UUID
	Action     string
	ObjectType string
	ObjectID   string
	PatientRef string
	// PatientRefs, when not empty, keeps events about any of these names of
	// one patient (patient.Names): a patient's access report must show reads
	// made under the MRN as well as under Patient/123.
	PatientRefs []string
	From, To    time.Time
	// ActionCode keeps events whose AuditEvent.action is this (C, R, U, D, E).
	ActionCode string
	// AfterID keeps events after this id (the next page).
	AfterID int64
	Limit   int
}

// List returns events matching f, oldest first.
func List(ctx context.Context, q pg.Querier, f Filter) ([]Event, error) {
	if f.Limit <= 0 || f.Limit > 1000 {
		f.Limit = 1000
	}
	var from, to *time.Time
	if !f.From.IsZero() {
		from = &f.From
	}
	if !f.To.IsZero() {
		to = &f.To
	}
	rows, err := q.Query(ctx, `SELECT id, at, actor_id, action, object_type, object_id, outcome, client_addr, patient_ref, details
		FROM audit_events
		WHERE ($1::uuid IS NULL OR actor_id = $1)
		  AND ($2 = '' OR action = $2)
		  AND ($3 = '' OR object_type = $3)
		  AND ($4 = '' OR object_id = $4)
		  AND ($5 = '' OR patient_ref = $5)
		  AND (coalesce(cardinality($11::text[]), 0) = 0 OR patient_ref = ANY($11))
		  AND ($6::timestamptz IS NULL OR at >= $6)
		  AND ($7::timestamptz IS NULL OR at < $7)
		  AND ($9 = '' OR `+actionCodeSQL()+` = $9)
		  AND id > $10
		ORDER BY id LIMIT $8`,
		f.ActorID, f.Action, f.ObjectType, f.ObjectID, f.PatientRef, from, to, f.Limit, f.ActionCode, f.AfterID, f.PatientRefs)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByName[Event])
}

// RecordPatients records e once per distinct patient in refs (sorted, with
// how many of the listed objects concern them in details.count), so that a
// patient's access report shows every listing that showed them. Use it
// after the listing's own event, for answers that carry patient references.
func RecordPatients(ctx context.Context, q pg.Querier, a Actor, e Entry, refs []string) error {
	counts := map[string]int{}
	for _, r := range refs {
		if r != "" {
			counts[r]++
		}
	}
	keys := make([]string, 0, len(counts))
	for r := range counts {
		keys = append(keys, r)
	}
	slices.Sort(keys)
	for _, r := range keys {
		pe := e
		pe.PatientRef = r
		pe.Details = map[string]any{"count": counts[r]}
		if err := Record(ctx, q, a, pe); err != nil {
			return err
		}
	}
	return nil
}

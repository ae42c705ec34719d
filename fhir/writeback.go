package fhir

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/callroom/callroom/escalation"
	"github.com/callroom/callroom/inbox"
	"github.com/callroom/callroom/internal/pg"
	"github.com/callroom/callroom/worker"
)

// Write-back: what happened in callroom goes into the patient's record as
// FHIR Communication resources, built here as plain JSON (golang-fhir-models
// would write every choice of payload.content[x] and turn a missing status
// into "preparation"). Each is queued in the transaction of the change that
// calls for it and sent by a River job, so an EHR that is down or slow
// delays the write-back and never blocks paging or messaging.

// WriteBackArgs is the job that sends one Communication.
type WriteBackArgs struct {
	ID uuid.UUID `json:"id"`
}

// Kind implements river.JobArgs.
func (WriteBackArgs) Kind() string { return "fhir.writeback" }

// InsertOpts: the fhir queue; many attempts, since an EHR can be down for
// hours and a summary must still arrive.
func (WriteBackArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: worker.QueueEHR, MaxAttempts: 25}
}

// IdentifierSystem is the default system of the identifiers callroom puts
// on what it writes (Config.IdentifierSystem overrides it).
const IdentifierSystem = "urn:callroom:communication"

func (s *Store) identifierSystem() string {
	if s.cfg.IdentifierSystem != "" {
		return s.cfg.IdentifierSystem
	}
	return IdentifierSystem
}

// queueWriteBack queues in w the record that (kind, object, event) is to be
// written back, with its job, in one statement; a second call for the same
// is a no-op.
func queueWriteBack(w *pg.Writes, kind string, object uuid.UUID, event string) error {
	id := uuid.New()
	job, err := worker.NewJobInStatementFrom("wb", WriteBackArgs{ID: id}, WriteBackArgs{}.InsertOpts(), 5, time.Now())
	if err != nil {
		return err
	}
	w.Exec(`WITH wb AS (INSERT INTO fhir_writebacks (id, kind, object_id, event) VALUES ($1, $2, $3, $4)
			ON CONFLICT (kind, object_id, event) DO NOTHING RETURNING id),
		job AS (`+job.SQL+`)
		SELECT`, append([]any{id, kind, object, event}, job.Args...)...)
	return nil
}

// PageSettled queues a page's summary (escalation.Store.PageSettled). Pages
// without a patient are not part of anyone's record.
func (s *Store) PageSettled(ctx context.Context, tx pgx.Tx, p escalation.Page) error {
	if p.PatientRef == nil || *p.PatientRef == "" || !patientRef.MatchString(*p.PatientRef) {
		return nil
	}
	var w pg.Writes
	if err := queueWriteBack(&w, "page", p.ID, string(p.Status)); err != nil {
		return err
	}
	return w.Flush(ctx, tx)
}

// WriteBackWorker sends queued Communications.
type WriteBackWorker struct {
	river.WorkerDefaults[WriteBackArgs]
	Store *Store
	Pages *escalation.Store
}

// NextRetry backs off exponentially: an EHR that is down is not hammered,
// and one that comes back gets the backlog within minutes.
func (w *WriteBackWorker) NextRetry(job *river.Job[WriteBackArgs]) time.Time {
	base := w.Store.RetryBase
	if base <= 0 {
		base = 5 * time.Second
	}
	d := base << min(job.Attempt-1, 20)
	if d > 30*time.Minute || d <= 0 {
		d = 30 * time.Minute
	}
	return time.Now().Add(d)
}

// Timeout bounds one attempt.
func (w *WriteBackWorker) Timeout(*river.Job[WriteBackArgs]) time.Duration { return time.Minute }

type writeback struct {
	ID       uuid.UUID  `db:"id"`
	Kind     string     `db:"kind"`
	ObjectID uuid.UUID  `db:"object_id"`
	Event    string     `db:"event"`
	SentAt   *time.Time `db:"sent_at"`
}

// Work builds the Communication from the current state and creates it with
// If-None-Exist on its identifier: a retry after a lost answer finds the one
// already created.
func (w *WriteBackWorker) Work(ctx context.Context, job *river.Job[WriteBackArgs]) error {
	s := w.Store
	rows, _ := s.db.Query(ctx, `SELECT id, kind, object_id, event, sent_at FROM fhir_writebacks WHERE id = $1`, job.Args.ID)
	wb, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[writeback])
	if errors.Is(err, pgx.ErrNoRows) {
		return river.JobCancel(fmt.Errorf("write-back %s is gone", job.Args.ID))
	}
	if err != nil || wb.SentAt != nil {
		return err
	}
	var comm map[string]any
	switch wb.Kind {
	case "page":
		comm, err = w.pageCommunication(ctx, wb)
	case "thread", "digest":
		comm, err = w.threadCommunication(ctx, wb)
	default:
		return river.JobCancel(fmt.Errorf("write-back kind %q", wb.Kind))
	}
	if err != nil {
		return err
	}
	if comm == nil {
		_, err := s.db.Exec(ctx, `UPDATE fhir_writebacks SET sent_at = now(), last_error = 'nothing to write' WHERE id = $1`, wb.ID)
		return err
	}
	body, err := json.Marshal(comm)
	if err != nil {
		return err
	}
	value := wb.ID.String()
	id, err := s.client.Create(ctx, "Communication", body, "identifier="+url.QueryEscape(s.identifierSystem()+"|"+value))
	if err != nil {
		msg := clip(err.Error(), 500)
		s.db.Exec(ctx, `UPDATE fhir_writebacks SET last_error = $2 WHERE id = $1`, wb.ID, msg) //nolint:errcheck
		s.observe().FHIR("write_back", "failed")
		var se *ServerError
		if errors.As(err, &se) && !se.Temporary() {
			// The EHR refused what we sent: retrying sends the same.
			s.log.Error("fhir write-back refused", "writeback", wb.ID, "status", se.Status, "outcome", se.Outcome)
			return river.JobCancel(err)
		}
		return err
	}
	ref := ""
	if id != "" {
		ref = "Communication/" + id
	}
	_, err = s.db.Exec(ctx, `UPDATE fhir_writebacks SET sent_at = now(), fhir_ref = $2, last_error = NULL WHERE id = $1`, wb.ID, ref)
	if err == nil {
		s.observe().FHIR("write_back", "ok")
	}
	return err
}

// communication is the skeleton every write-back shares.
func (s *Store) communication(id uuid.UUID, priority, patient, encounter string, sent time.Time, text string) map[string]any {
	c := map[string]any{
		"resourceType": "Communication",
		"identifier":   []any{map[string]any{"system": s.identifierSystem(), "value": id.String()}},
		"status":       "completed",
		"category": []any{map[string]any{
			"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/communication-category", "code": "notification"}},
			"text":   "callroom",
		}},
		"subject": map[string]any{"reference": patient},
		"sent":    sent.UTC().Format(time.RFC3339),
		"payload": []any{map[string]any{"contentString": text}},
	}
	switch priority {
	case "routine", "urgent", "asap", "stat":
		c["priority"] = priority
	}
	if encounter != "" {
		c["encounter"] = map[string]any{"reference": encounter}
	}
	return c
}

// userReference names a user as a Practitioner: by NPI when they have one
// (a logical reference the EHR resolves), always with their name.
func userReference(name string, npi *string) map[string]any {
	r := map[string]any{"type": "Practitioner"}
	if name != "" {
		r["display"] = name
	}
	if npi != nil && *npi != "" {
		r["identifier"] = map[string]any{"system": NPISystem, "value": *npi}
	}
	return r
}

type person struct {
	ID   uuid.UUID `db:"id"`
	Name string    `db:"name"`
	NPI  *string   `db:"npi"`
}

func (s *Store) people(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]person, error) {
	rows, _ := s.db.Query(ctx, `SELECT id, name, npi FROM users WHERE id = ANY ($1)`, ids)
	ps, err := pgx.CollectRows(rows, pgx.RowToStructByName[person])
	out := map[uuid.UUID]person{}
	for _, p := range ps {
		out[p.ID] = p
	}
	return out, err
}

func (w *WriteBackWorker) pageCommunication(ctx context.Context, wb writeback) (map[string]any, error) {
	p, err := w.Pages.Get(ctx, wb.ObjectID)
	if err != nil {
		return nil, err
	}
	if p.PatientRef == nil {
		return nil, nil
	}
	var ids []uuid.UUID
	if p.CreatedBy != nil {
		ids = append(ids, *p.CreatedBy)
	}
	// Whom: the person paged, everyone the page reached, and whoever
	// acknowledged it (perhaps from the patient's thread).
	recipients := []uuid.UUID{}
	add := func(id uuid.UUID) {
		if id != uuid.Nil && !containsID(recipients, id) {
			recipients = append(recipients, id)
		}
	}
	if p.UserID != nil {
		add(*p.UserID)
	}
	for _, n := range p.Notifications {
		add(n.UserID)
	}
	if p.AcknowledgedBy != nil {
		add(*p.AcknowledgedBy)
	}
	ppl, err := w.Store.people(ctx, append(ids, recipients...))
	if err != nil {
		return nil, err
	}
	name := func(id *uuid.UUID) string {
		if id == nil {
			return "callroom"
		}
		return ppl[*id].Name
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Page (%s) %s: %s\n", p.Priority, wb.Event, p.Summary)
	fmt.Fprintf(&b, "Paged by %s", name(p.CreatedBy))
	if p.ServiceName != nil {
		fmt.Fprintf(&b, " to %s", *p.ServiceName)
	}
	fmt.Fprintf(&b, " at %s.\n", p.CreatedAt.UTC().Format(time.RFC3339))
	if len(recipients) > 0 {
		var names []string
		for _, id := range recipients {
			names = append(names, ppl[id].Name)
		}
		fmt.Fprintf(&b, "Notified: %s.\n", strings.Join(names, ", "))
	}
	sent := p.UpdatedAt
	if p.AcknowledgedAt != nil {
		fmt.Fprintf(&b, "Acknowledged by %s at %s (response time %s).\n", name(p.AcknowledgedBy),
			p.AcknowledgedAt.UTC().Format(time.RFC3339), p.AcknowledgedAt.Sub(p.CreatedAt).Round(time.Second))
		sent = *p.AcknowledgedAt
	}
	if p.ResolvedAt != nil {
		fmt.Fprintf(&b, "Resolved at %s.\n", p.ResolvedAt.UTC().Format(time.RFC3339))
		sent = *p.ResolvedAt
	}
	if wb.Event == string(escalation.Unanswered) {
		b.WriteString("Nobody acknowledged the page.\n")
	}
	enc := ""
	if p.EncounterRef != nil {
		enc = *p.EncounterRef
	}
	c := w.Store.communication(wb.ID, string(p.Priority), *p.PatientRef, enc, sent, strings.TrimSpace(b.String()))
	if p.CreatedBy != nil {
		c["sender"] = userReference(ppl[*p.CreatedBy].Name, ppl[*p.CreatedBy].NPI)
	} else {
		c["sender"] = map[string]any{"type": "Device", "display": "callroom"}
	}
	var rec []any
	for _, id := range recipients {
		rec = append(rec, userReference(ppl[id].Name, ppl[id].NPI))
	}
	if len(rec) > 0 {
		c["recipient"] = rec
	}
	return c, nil
}

func (w *WriteBackWorker) threadCommunication(ctx context.Context, wb writeback) (map[string]any, error) {
	s := w.Store
	until := time.Time{}
	title := "Thread archived"
	if wb.Kind == "digest" {
		day, err := time.Parse(time.DateOnly, wb.Event)
		if err != nil {
			return nil, river.JobCancel(fmt.Errorf("digest event %q is not a day", wb.Event))
		}
		until = day.Add(24 * time.Hour)
		title = "Daily digest " + wb.Event
	}
	tr, err := s.inbox.Transcript(ctx, wb.ObjectID, until)
	if err != nil {
		return nil, err
	}
	if !patientRef.MatchString(tr.PatientRef) {
		return nil, nil // filed under an identifier, not a FHIR Patient
	}
	var b strings.Builder
	var names []string
	for _, p := range tr.Participants {
		names = append(names, p.Name)
	}
	fmt.Fprintf(&b, "%s. Participants: %s. Messages: %d", title, strings.Join(names, ", "), len(tr.Messages))
	if tr.Withheld > 0 {
		fmt.Fprintf(&b, " (%d recalled or purged, not shown)", tr.Withheld)
	}
	b.WriteString(".\n")
	for _, m := range tr.Messages {
		author := m.Author
		if m.AuthorID == nil {
			author = "callroom"
		}
		fmt.Fprintf(&b, "\n[%s] %s", m.At.UTC().Format(time.RFC3339), author)
		if m.Priority != inbox.Routine {
			fmt.Fprintf(&b, " (%s)", m.Priority)
		}
		fmt.Fprintf(&b, ": %s", m.Text)
	}
	c := s.communication(wb.ID, "routine", tr.PatientRef, tr.EncounterRef, time.Now(), b.String())
	c["sender"] = map[string]any{"type": "Device", "display": "callroom"}
	// The recipient is the patient's care team when the EHR told us of one,
	// else the participants.
	var team string
	s.db.QueryRow(ctx, `SELECT source_ref FROM fhir_sources WHERE thread_id = $1 AND source_ref LIKE 'CareTeam/%' ORDER BY updated_at DESC LIMIT 1`, wb.ObjectID).Scan(&team) //nolint:errcheck
	if team != "" {
		c["recipient"] = []any{map[string]any{"reference": team}}
	} else if len(tr.Participants) > 0 {
		var rec []any
		for _, p := range tr.Participants {
			rec = append(rec, userReference(p.Name, p.NPI))
		}
		c["recipient"] = rec
	}
	return c, nil
}

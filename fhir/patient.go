package fhir

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/internal/pg"
	"github.com/callroom/callroom/patient"
	"github.com/callroom/callroom/worker"
)

func decodePatient(raw []byte) (models.Patient, error) {
	if t, err := resourceTypeOf(raw); err != nil {
		return models.Patient{}, err
	} else if t != "Patient" {
		return models.Patient{}, reject(422, "invalid", "expected a Patient, got a %s", t)
	}
	return models.UnmarshalPatient(raw)
}

// patientIdentifiers returns the identifiers (MRN and the like) of the
// EHR's Patient ref in token form, read from the EHR. Callroom keeps no
// demographics: only these tokens, so that threads opened under the MRN
// before the FHIR id was known join the patient's chart (package patient).
func (s *Store) patientIdentifiers(ctx context.Context, ref string) ([]string, error) {
	raw, err := s.client.ReadReference(ctx, ref)
	if err != nil {
		return nil, err
	}
	p, err := decodePatient(raw)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, id := range p.Identifier {
		if tok := identifierToken(&id); tok != "" {
			ids = append(ids, tok)
		}
	}
	return ids, nil
}

// identifierToken is id as "system|value", or "" without both.
func identifierToken(id *models.Identifier) string {
	if id == nil || id.System == nil || id.Value == nil {
		return ""
	}
	return patient.Identifier(*id.System, *id.Value)
}

// LinkPatientArgs is the job that reads a Patient's identifiers from the
// EHR and links them (package patient). It is queued when a resource opens
// a thread for a patient, so the EHR read never delays the thread.
type LinkPatientArgs struct {
	Patient string `json:"patient"`
}

// Kind implements river.JobArgs.
func (LinkPatientArgs) Kind() string { return "fhir.link_patient" }

// InsertOpts: the fhir queue, at most one per patient an hour (a patient's
// MRN rarely changes; each launch reads it again anyway).
func (LinkPatientArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: worker.QueueEHR, MaxAttempts: 10,
		UniqueOpts: river.UniqueOpts{ByArgs: true, ByPeriod: time.Hour}}
}

// patientNamed learns, in tx, what a resource about the patient ref says of
// its identifiers: a subject reference that also carries an identifier links
// it (queued in w: a batch applied in lockstep stays in lockstep), and a
// thread just opened for the patient queues a read of the Patient's
// identifiers (LinkPatientArgs).
//
// What w holds is flushed first if tx is used (outside a batch, which
// gathers the reads instead).
func (s *Store) patientNamed(ctx context.Context, tx pgx.Tx, w *pg.Writes, ref string, subject *models.Identifier, opened bool) error {
	if tok := identifierToken(subject); tok != "" {
		if err := patient.QueueLink(w, audit.System, ref, []string{tok}, patient.FromEHR); err != nil {
			return err
		}
	}
	if !opened {
		return nil
	}
	if q, gathering := ctx.Value(patientReadsKey{}).(*patientReads); gathering {
		q.mu.Lock()
		q.refs = append(q.refs, ref)
		q.mu.Unlock()
		return nil
	}
	if err := w.Flush(ctx, tx); err != nil {
		return err
	}
	_, err := worker.InsertTx(ctx, s.river, tx, LinkPatientArgs{Patient: ref}, nil)
	return err
}

// patientReads gathers the Patient reads (LinkPatientArgs) a batch of
// notifications queues, so that their jobs go in one statement at the end
// of the batch's transaction rather than one insert (a round trip and a
// unique check) per thread opened: River's job inserts were the largest
// part of PostgreSQL's time per notification (docs/PERFORMANCE.md).
type patientReads struct {
	mu   sync.Mutex // changes applied in lockstep add at once
	refs []string
}

type patientReadsKey struct{}

// gatherPatientReads returns ctx in which patientNamed adds to the
// returned patientReads instead of inserting.
func gatherPatientReads(ctx context.Context) (context.Context, *patientReads) {
	q := &patientReads{}
	return context.WithValue(ctx, patientReadsKey{}, q), q
}

// truncate drops the reads added after the first n, for a notification
// rolled back to its savepoint.
func (q *patientReads) truncate(n int) {
	q.mu.Lock()
	q.refs = q.refs[:n]
	q.mu.Unlock()
}

// len is how many reads were added.
func (q *patientReads) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.refs)
}

// insert queues the gathered reads in tx, each patient once, and empties q.
func (q *patientReads) insert(ctx context.Context, s *Store, tx pgx.Tx) error {
	slices.Sort(q.refs)
	refs := slices.Compact(q.refs)
	q.refs = nil
	if len(refs) == 0 {
		return nil
	}
	params := make([]river.InsertManyParams, len(refs))
	for i, ref := range refs {
		params[i] = river.InsertManyParams{Args: LinkPatientArgs{Patient: ref}}
	}
	_, err := worker.InsertManyTx(ctx, s.river, tx, params)
	return err
}

// LinkPatientWorker runs LinkPatientArgs jobs.
type LinkPatientWorker struct {
	river.WorkerDefaults[LinkPatientArgs]
	Store *Store
}

// Work reads the Patient and links its identifiers. A Patient the EHR no
// longer has (or that is not a Patient) is given up, not retried.
func (w *LinkPatientWorker) Work(ctx context.Context, job *river.Job[LinkPatientArgs]) error {
	// Errors name no patient: River logs them.
	ids, err := w.Store.patientIdentifiers(ctx, job.Args.Patient)
	var rej *Rejection
	var se *ServerError
	switch {
	case errors.As(err, &rej), errors.As(err, &se) && (se.Status == 404 || se.Status == 410):
		return river.JobCancel(errors.New("the EHR has no such Patient"))
	case errors.As(err, &se) && se.Status != 0:
		return fmt.Errorf("reading the Patient: the EHR answered %d", se.Status)
	case err != nil:
		return errors.New("reading the Patient from the EHR failed")
	}
	return pg.InTx(ctx, w.Store.db, func(tx pgx.Tx) error {
		_, err := patient.Link(ctx, tx, audit.System, job.Args.Patient, ids, patient.FromEHR)
		return err
	})
}

package patient

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/callroom/callroom"
	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/internal/pg"
)

// Source says who stated that an identifier belongs to a patient.
type Source string

const (
	// FromEHR: the EHR said so (a Patient resource, or an Encounter's
	// subject carrying both a reference and an identifier).
	FromEHR Source = "ehr"
	// FromAdmin: an administrator linked them by hand.
	FromAdmin Source = "admin"
)

// SameAs is an SQL expression, for `col IN ` + SameAs("$1"), listing every
// name of the patient that param names: the Patient reference its
// identifiers are linked to (or param itself) and all identifiers linked to
// that reference. It costs two index lookups, so queries keyed by a patient
// use it always rather than matching the exact text.
func SameAs(param string) string {
	canonical := `coalesce((SELECT patient_ref FROM patient_identifiers WHERE identifier = ` + param + `), ` + param + `::text)`
	return `(SELECT ` + canonical + ` UNION ALL SELECT identifier FROM patient_identifiers WHERE patient_ref = ` + canonical + `)`
}

// Names returns every name of the patient ref names, the Patient reference
// first (when known) and then its identifiers, sorted.
func Names(ctx context.Context, q pg.Querier, ref string) ([]string, error) {
	rows, _ := q.Query(ctx, `SELECT n FROM `+SameAs("$1")+` AS names(n)`, ref)
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	slices.SortFunc(names, func(a, b string) int {
		if IsLiteral(a) != IsLiteral(b) {
			if IsLiteral(a) {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	return slices.Compact(names), nil
}

// Link records, in q's transaction, that identifiers ("system|value") name
// the patient ref ("Patient/123"), and audits it when anything changed. An
// identifier already linked to another Patient is moved (the EHR merged or
// corrected the record; the audit event says how many moved). It returns
// how many identifiers were new or moved.
func Link(ctx context.Context, q pg.Querier, who audit.Actor, ref string, identifiers []string, source Source) (int, error) {
	var w pg.Writes
	var linked int
	if err := queueLink(&w, who, ref, identifiers, source, &linked); err != nil {
		return 0, err
	}
	if err := w.Flush(ctx, q); err != nil {
		return 0, err
	}
	return linked, nil
}

// QueueLink is Link for a transaction that sends its writes together: the
// identifiers are linked when w is flushed, and the audit event, when
// anything changed, goes with w's next round trip. Why: an EHR batch
// applies its notifications in lockstep (pg.Lockstep), whose functions may
// not use the transaction directly, and an Encounter whose subject carries
// an MRN beside its reference would otherwise send the whole batch back to
// being applied one by one (docs/PERFORMANCE.md).
func QueueLink(w *pg.Writes, who audit.Actor, ref string, identifiers []string, source Source) error {
	return queueLink(w, who, ref, identifiers, source, nil)
}

// queueLink is QueueLink, which sets *linked (if not nil) to how many
// identifiers were new or moved once w is flushed.
func queueLink(w *pg.Writes, who audit.Actor, ref string, identifiers []string, source Source, linked *int) error {
	if !IsLiteral(ref) {
		return callroom.Invalid("ref", "must be a FHIR reference such as Patient/123")
	}
	for i, id := range identifiers {
		if err := CheckIdentifier(fmt.Sprintf("identifiers[%d]", i), id); err != nil {
			return err
		}
	}
	ids := slices.Compact(slices.Sorted(slices.Values(identifiers)))
	if len(ids) == 0 {
		return nil
	}
	w.Queue(`WITH prior AS (
			SELECT identifier, patient_ref FROM patient_identifiers WHERE identifier = ANY($1::text[])
		), up AS (
			INSERT INTO patient_identifiers (identifier, patient_ref, source) SELECT unnest($1::text[]), $2, $3
			ON CONFLICT (identifier) DO UPDATE SET patient_ref = excluded.patient_ref, source = excluded.source, linked_at = now()
			WHERE patient_identifiers.patient_ref <> excluded.patient_ref
			RETURNING identifier
		)
		SELECT (prior.identifier IS NOT NULL) FROM up LEFT JOIN prior USING (identifier)`, ids, ref, string(source)).Query(func(rows pgx.Rows) error {
		moved, err := pgx.CollectRows(rows, pgx.RowTo[bool])
		if err != nil || len(moved) == 0 {
			return err
		}
		n := 0
		for _, m := range moved {
			if m {
				n++
			}
		}
		if linked != nil {
			*linked = len(moved)
		}
		return audit.Queue(w, who, audit.Entry{Action: "patient.link", ObjectType: "patient", ObjectID: ref,
			PatientRef: ref, Details: map[string]any{"linked": len(moved), "moved": n, "source": string(source)}})
	})
	return nil
}

// Store answers the administrators' API over patient names.
type Store struct{ db *pgxpool.Pool }

// NewStore returns a Store on db.
func NewStore(db *pgxpool.Pool) *Store { return &Store{db: db} }

// Link links identifiers to ref in its own transaction (see Link).
func (s *Store) Link(ctx context.Context, who audit.Actor, ref string, identifiers []string, source Source) ([]string, error) {
	var names []string
	err := pg.InTx(ctx, s.db, func(tx pgx.Tx) error {
		if _, err := Link(ctx, tx, who, ref, identifiers, source); err != nil {
			return err
		}
		var err error
		names, err = Names(ctx, tx, ref)
		return err
	})
	return names, err
}

// Names returns every name of the patient (see Names), audited as a read:
// which identifiers a patient has is itself about the patient.
func (s *Store) Names(ctx context.Context, who audit.Actor, ref string) ([]string, error) {
	if err := CheckRef("ref", ref); err != nil {
		return nil, err
	}
	var names []string
	err := pg.InTx(ctx, s.db, func(tx pgx.Tx) error {
		var err error
		if names, err = Names(ctx, tx, ref); err != nil {
			return err
		}
		return audit.Record(ctx, tx, who, audit.Entry{Action: "patient.names", ObjectType: "patient", ObjectID: names[0],
			PatientRef: names[0], Details: map[string]any{"count": len(names)}})
	})
	return names, err
}

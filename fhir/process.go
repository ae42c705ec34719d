package fhir

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	models "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"github.com/callroom/callroom/inbox"
	"github.com/callroom/callroom/internal/pg"
)

// ProcessWorker runs ProcessArgs jobs: it applies what a notification says
// to patient threads, together with other notifications of its subscription
// that are waiting (see BatchSize). Re-running it is harmless: every step
// converges to the resource's state, and a resource older than the one
// applied is skipped.
type ProcessWorker struct {
	river.WorkerDefaults[ProcessArgs]
	Store *Store
}

// Timeout bounds one batch's processing (EHR reads included).
func (w *ProcessWorker) Timeout(*river.Job[ProcessArgs]) time.Duration { return 2 * time.Minute }

// Work processes the notification.
func (w *ProcessWorker) Work(ctx context.Context, job *river.Job[ProcessArgs]) error {
	return w.Store.process(ctx, job.Args.NotificationID)
}

// syncSlack is how far back a search for changes reaches before the last
// read, for clocks that disagree and writes that commit late.
const syncSlack = 5 * time.Second

// readUpTo records that changes up to t were read.
func (s *Store) readUpTo(sub Subscription, t time.Time) func(w *pg.Writes) {
	return func(w *pg.Writes) {
		w.Exec(`INSERT INTO fhir_subscription_state (subscription, last_read_at) VALUES ($1, $2)
			ON CONFLICT (subscription) DO UPDATE SET last_read_at = greatest(fhir_subscription_state.last_read_at, $2), updated_at = now()`,
			sub.Name, t)
	}
}

// changedSince searches the subscription's criteria for resources changed
// since the last read (all of them the first time).
func (s *Store) changedSince(ctx context.Context, sub Subscription) ([]json.RawMessage, error) {
	var last *time.Time
	err := s.db.QueryRow(ctx, `SELECT last_read_at FROM fhir_subscription_state WHERE subscription = $1`, sub.Name).Scan(&last)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, err
	}
	_, query, _ := strings.Cut(sub.Criteria, "?")
	params, err := url.ParseQuery(query)
	if err != nil {
		return nil, fmt.Errorf("fhir subscription %s: criteria: %w", sub.Name, err)
	}
	if last != nil {
		params.Set("_lastUpdated", "gt"+last.Add(-syncSlack).UTC().Format(time.RFC3339))
	}
	params.Set("_count", "100")
	return s.client.Search(ctx, sub.ResourceType(), params)
}

// backportResources returns the resources a Backport notification is about
// (read from the EHR for id-only content) and whether its event numbers
// jump past last, the highest seen before it.
func (s *Store) backportResources(ctx context.Context, body []byte, last int64) ([]json.RawMessage, bool, error) {
	b, err := decodeBundle(body, models.BundleTypeHistory)
	if err != nil {
		return nil, false, err
	}
	st, err := parseStatus(b.Entry[0].Resource)
	if err != nil {
		return nil, false, err
	}
	gap := len(st.EventNumbers) > 0 && slices.Min(st.EventNumbers) > last+1
	var out []json.RawMessage
	for _, e := range b.Entry[1:] {
		if len(e.Resource) > 0 {
			out = append(out, e.Resource)
			continue
		}
		ref := ""
		if e.Request != nil && e.Request.Url != "" {
			ref = e.Request.Url
		} else if e.FullUrl != nil {
			ref = *e.FullUrl
		}
		ref = literalRef(ref)
		if ref == "" {
			continue
		}
		raw, err := s.client.ReadReference(ctx, ref)
		if notFound(err) {
			continue
		}
		if err != nil {
			return nil, false, err
		}
		out = append(out, raw)
	}
	return out, gap, nil
}

var literalTail = regexp.MustCompile(`([A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64})(/_history/[^/]+)?$`)

// literalRef returns "Type/id" from a relative or absolute URL.
func literalRef(u string) string {
	m := literalTail.FindStringSubmatch(strings.SplitN(u, "?", 2)[0])
	if m == nil {
		return ""
	}
	return m[1]
}

// prepareResource decodes one resource and resolves the people it names
// (which may read the EHR), returning what it changes; deleted says the EHR
// deleted it.
//
// Its keys are what the change touches that another change of the batch may
// touch too (the resource, its patient): changes with no key in common may
// be applied in lockstep (applyTogether). A change without keys (a deleted
// resource, whose patient is not known) is applied on its own.
func (s *Store) prepareResource(ctx context.Context, r *resolver, raw json.RawMessage, deleted bool) (change, []string, error) {
	typ, err := resourceTypeOf(raw)
	if err != nil {
		return nil, nil, err
	}
	if deleted {
		return s.deletedChange(typ, raw), nil, nil
	}
	switch typ {
	case "Encounter":
		return s.encounterChange(ctx, r, raw)
	case "CareTeam":
		return s.careTeamChange(ctx, r, raw)
	}
	return nil, nil, reject(422, "not-supported", "callroom does not act on %s resources", typ)
}

var patientRef = regexp.MustCompile(`^Patient/[A-Za-z0-9\-.]{1,64}$`)

// Encounter classes that mean an emergency visit (v3 ActCode).
var emergencyClasses = []string{"EMER"}

func (s *Store) encounterChange(ctx context.Context, r *resolver, raw json.RawMessage) (change, []string, error) {
	e, status, err := decodeEncounter(raw)
	if err != nil {
		return nil, nil, err
	}
	ref := "Encounter/" + *e.Id
	if e.Subject == nil || !patientRef.MatchString(literalRef(str(e.Subject.Reference))) {
		return nil, nil, reject(422, "required", "%s has no Patient subject", ref)
	}
	patient := literalRef(*e.Subject.Reference)
	starting := status == "in-progress" || (status == "arrived" && slices.Contains(emergencyClasses, str(e.Class.Code)))
	ending := status == "finished" || status == "cancelled" || status == "entered-in-error"
	var members []uuid.UUID
	if starting {
		var refs []string
		for _, p := range e.Participant {
			if p.Individual != nil && periodCovers(p.Period, s.now()) {
				refs = append(refs, literalRef(str(p.Individual.Reference)))
			}
		}
		if members, err = r.users(ctx, refs); err != nil {
			return nil, nil, err
		}
	}
	return func(ctx context.Context, tx pgx.Tx, w *pg.Writes) (note string, err error) {
		src, err := lockSource(ctx, tx, w, ref, lastUpdatedOf(e.Meta))
		if err != nil || src.stale {
			return ref + ": older than applied, skipped", err
		}
		threadID := src.threadID
		switch {
		case starting:
			var opened bool
			if threadID, opened, err = s.inbox.OpenPatientThread(ctx, tx, w, inbox.PatientThread{PatientRef: patient, EncounterRef: ref}); err != nil {
				return "", err
			}
			if err := s.patientNamed(ctx, tx, w, patient, e.Subject.Identifier, opened); err != nil {
				return "", err
			}
			added, removed, err := s.syncSource(ctx, tx, w, threadID, ref, members, opened)
			if err != nil {
				return "", err
			}
			note = fmt.Sprintf("%s %s: thread open, +%d -%d members", ref, status, added, removed)
		case ending && threadID != uuid.Nil:
			archived, err := s.inbox.ArchiveThread(ctx, tx, w, threadID)
			if err != nil {
				return "", err
			}
			if archived {
				// The conversation goes into the patient's record.
				if err := queueWriteBack(w, "thread", threadID, "archived"); err != nil {
					return "", err
				}
			}
			note = fmt.Sprintf("%s %s: thread archived", ref, status)
		default:
			// Recorded even without a thread (a visit over before it was
			// opened here): an older notification applied after this one
			// is then skipped as stale instead of opening a thread.
			note = fmt.Sprintf("%s %s: nothing to do", ref, status)
		}
		saveSource(w, ref, threadID, status, lastUpdatedOf(e.Meta))
		return note, nil
	}, []string{ref, patient}, nil
}

func (s *Store) careTeamChange(ctx context.Context, r *resolver, raw json.RawMessage) (change, []string, error) {
	c, status, err := decodeCareTeam(raw)
	if err != nil {
		return nil, nil, err
	}
	ref := "CareTeam/" + *c.Id
	if c.Subject == nil || !patientRef.MatchString(literalRef(str(c.Subject.Reference))) {
		return nil, nil, reject(422, "required", "%s has no Patient subject", ref)
	}
	patient := literalRef(*c.Subject.Reference)
	encounter := ""
	if c.Encounter != nil {
		encounter = literalRef(str(c.Encounter.Reference))
	}
	now := s.now()
	active := (status == "" || status == "active") && periodCovers(c.Period, now)
	var members []uuid.UUID
	if active {
		var refs []string
		for _, p := range c.Participant {
			if p.Member != nil && periodCovers(p.Period, now) {
				refs = append(refs, literalRef(str(p.Member.Reference)))
			}
		}
		if members, err = r.users(ctx, refs); err != nil {
			return nil, nil, err
		}
	}
	return func(ctx context.Context, tx pgx.Tx, w *pg.Writes) (string, error) {
		src, err := lockSource(ctx, tx, w, ref, lastUpdatedOf(c.Meta))
		if err != nil || src.stale {
			return ref + ": older than applied, skipped", err
		}
		threadID, opened := src.threadID, false
		if threadID == uuid.Nil {
			if !active {
				saveSource(w, ref, uuid.Nil, status, lastUpdatedOf(c.Meta))
				return ref + " " + status + ": nothing to do", nil
			}
			if encounter == "" {
				if threadID, err = inbox.LatestPatientThread(ctx, tx, w, patient); err != nil {
					return "", err
				}
			}
			if threadID == uuid.Nil {
				if threadID, opened, err = s.inbox.OpenPatientThread(ctx, tx, w, inbox.PatientThread{PatientRef: patient, EncounterRef: encounter}); err != nil {
					return "", err
				}
				if err := s.patientNamed(ctx, tx, w, patient, c.Subject.Identifier, opened); err != nil {
					return "", err
				}
			}
		}
		added, removed, err := s.syncSource(ctx, tx, w, threadID, ref, members, opened)
		if err != nil {
			return "", err
		}
		saveSource(w, ref, threadID, status, lastUpdatedOf(c.Meta))
		return fmt.Sprintf("%s %s: +%d -%d members", ref, status, added, removed), nil
	}, []string{ref, patient}, nil
}

type source struct {
	threadID uuid.UUID
	stale    bool
}

// lockSource locks what is known of ref and says whether a resource last
// updated at updated is older than the one applied, or no newer than its
// deletion (a deletion is recorded with the version it removed: an update
// of that version or an older one, applied after it, is stale; a resource
// created again is newer): one round trip, with what w holds.
func lockSource(ctx context.Context, tx pgx.Tx, w *pg.Writes, ref string, updated time.Time) (source, error) {
	// Serialize work on one resource even before its first row exists. The
	// read is a statement of its own, after the lock: its snapshot sees
	// what the transaction that held the lock committed.
	w.Exec(`SELECT pg_advisory_xact_lock(hashtextextended('fhir.source:' || $1, 0))`, ref)
	type known struct {
		ThreadID    *uuid.UUID // nil: the resource changed nothing yet
		LastUpdated *time.Time
		Status      string
	}
	var rows []known
	err := w.FlushQuery(ctx, tx, func(r pgx.Rows) (err error) {
		rows, err = pgx.CollectRows(r, pgx.RowToStructByPos[known])
		return err
	}, `SELECT thread_id, last_updated, status FROM fhir_sources WHERE source_ref = $1`, ref)
	if err != nil || len(rows) == 0 {
		return source{}, err
	}
	applied := rows[0].LastUpdated
	src := source{stale: applied != nil && !updated.IsZero() &&
		(updated.Before(*applied) || (rows[0].Status == "deleted" && updated.Equal(*applied)))}
	if rows[0].ThreadID != nil {
		src.threadID = *rows[0].ThreadID
	}
	return src, nil
}

// saveSource queues in w the record of what ref did to its thread
// (uuid.Nil: none yet) and the version it was at.
func saveSource(w *pg.Writes, ref string, threadID uuid.UUID, status string, updated time.Time) {
	var u *time.Time
	if !updated.IsZero() {
		u = &updated
	}
	var thread *uuid.UUID
	if threadID != uuid.Nil {
		thread = &threadID
	}
	w.Exec(`INSERT INTO fhir_sources (source_ref, thread_id, status, last_updated) VALUES ($1, $2, $3, $4)
		ON CONFLICT (source_ref) DO UPDATE SET thread_id = coalesce($2, fhir_sources.thread_id), status = $3,
			last_updated = coalesce($4, fhir_sources.last_updated), updated_at = now()`,
		ref, thread, status, u)
}

// syncSource makes want the people ref keeps in the thread: those no longer
// kept by any source leave it. In a thread opened in this transaction
// (opened), ref keeps nobody yet: nothing to read.
func (s *Store) syncSource(ctx context.Context, tx pgx.Tx, w *pg.Writes, threadID uuid.UUID, ref string, want []uuid.UUID, opened bool) (int, int, error) {
	var have []uuid.UUID
	if !opened {
		err := w.FlushQuery(ctx, tx, func(rows pgx.Rows) (err error) {
			have, err = pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
			return err
		}, `SELECT user_id FROM fhir_thread_members WHERE thread_id = $1 AND source_ref = $2`, threadID, ref)
		if err != nil {
			return 0, 0, err
		}
	}
	var add, drop []uuid.UUID
	for _, id := range want {
		if !containsID(have, id) {
			add = append(add, id)
		}
	}
	for _, id := range have {
		if !containsID(want, id) {
			drop = append(drop, id)
		}
	}
	if len(drop) > 0 {
		w.Exec(`DELETE FROM fhir_thread_members WHERE thread_id = $1 AND source_ref = $2 AND user_id = ANY ($3)`, threadID, ref, drop)
	}
	if len(want) > 0 {
		w.Exec(`INSERT INTO fhir_thread_members (thread_id, source_ref, user_id) SELECT $1, $2, x FROM unnest($3::uuid[]) x
			ON CONFLICT DO NOTHING`, threadID, ref, want)
	}
	var leave []uuid.UUID
	if len(drop) > 0 {
		err := w.FlushQuery(ctx, tx, func(rows pgx.Rows) (err error) {
			leave, err = pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
			return err
		}, `SELECT x FROM unnest($2::uuid[]) x
			WHERE NOT EXISTS (SELECT 1 FROM fhir_thread_members m WHERE m.thread_id = $1 AND m.user_id = x)`, threadID, drop)
		if err != nil {
			return 0, 0, err
		}
	}
	// Everyone wanted is (re)added: someone who left by hand comes back
	// when the EHR says again they are on the team.
	added, removed, _, err := s.inbox.SyncMembers(ctx, tx, w, threadID, want, leave, map[string]any{"source": ref})
	return len(added), len(removed), err
}

// deletedChange is what a resource the EHR deleted changes: an Encounter's
// thread is archived (and written back), a CareTeam keeps nobody in its
// thread.
func (s *Store) deletedChange(typ string, raw json.RawMessage) change {
	var probe struct {
		ID   string `json:"id"`
		Meta struct {
			LastUpdated string `json:"lastUpdated"`
		} `json:"meta"`
	}
	json.Unmarshal(raw, &probe) //nolint:errcheck // resourceTypeOf checked it is an object
	ref := typ + "/" + probe.ID
	// The body is the version deleted (Medplum): the deletion is recorded
	// with it, so that an update of that version or an older one, applied
	// after the deletion (two batches at once, a retry), is skipped as
	// stale, even when the resource never changed a thread.
	version, _ := time.Parse(time.RFC3339Nano, probe.Meta.LastUpdated)
	return func(ctx context.Context, tx pgx.Tx, w *pg.Writes) (string, error) {
		src, err := lockSource(ctx, tx, w, ref, version)
		if err != nil {
			return "", err
		}
		if src.stale {
			return ref + " deleted: older than the version applied, skipped", nil
		}
		note := ref + " deleted: nothing to do"
		if src.threadID == uuid.Nil {
			saveSource(w, ref, uuid.Nil, "deleted", version)
			return note, nil
		}
		switch typ {
		case "Encounter":
			archived, err := s.inbox.ArchiveThread(ctx, tx, w, src.threadID)
			if err != nil {
				return "", err
			}
			if archived {
				if err := queueWriteBack(w, "thread", src.threadID, "archived"); err != nil {
					return "", err
				}
			}
			note = ref + " deleted: thread archived"
		case "CareTeam":
			_, removed, err := s.syncSource(ctx, tx, w, src.threadID, ref, nil, false)
			if err != nil {
				return "", err
			}
			note = fmt.Sprintf("%s deleted: -%d members", ref, removed)
		}
		saveSource(w, ref, src.threadID, "deleted", version)
		return note, nil
	}
}

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
// to patient threads. Re-running it is harmless: every step converges to the
// resource's state, and a resource older than the one applied is skipped.
type ProcessWorker struct {
	river.WorkerDefaults[ProcessArgs]
	Store *Store
}

// Timeout bounds one notification's processing (EHR reads included).
func (w *ProcessWorker) Timeout(*river.Job[ProcessArgs]) time.Duration { return 2 * time.Minute }

// Work processes the notification.
func (w *ProcessWorker) Work(ctx context.Context, job *river.Job[ProcessArgs]) error {
	return w.Store.process(ctx, job.Args.NotificationID)
}

type storedNotification struct {
	Subscription string     `db:"subscription"`
	Flavor       Flavor     `db:"flavor"`
	Body         []byte     `db:"body"`
	EventNumber  *int64     `db:"event_number"`
	Deleted      bool       `db:"deleted"`
	ProcessedAt  *time.Time `db:"processed_at"`
}

// syncSlack is how far back a search for changes reaches before the last
// read, for clocks that disagree and writes that commit late.
const syncSlack = 5 * time.Second

func (s *Store) process(ctx context.Context, id uuid.UUID) error {
	rows, _ := s.db.Query(ctx, `SELECT subscription, flavor, body, event_number, deleted, processed_at FROM fhir_notifications WHERE id = $1`, id)
	n, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[storedNotification])
	if errors.Is(err, pgx.ErrNoRows) {
		return river.JobCancel(fmt.Errorf("fhir notification %s is gone", id))
	}
	if err != nil {
		return err
	}
	if n.ProcessedAt != nil {
		return nil
	}
	finish := func(outcome string, state func(tx pgx.Tx) error) error {
		return pg.InTx(ctx, s.db, func(tx pgx.Tx) error {
			if state != nil {
				if err := state(tx); err != nil {
					return err
				}
			}
			if len(outcome) > 500 {
				outcome = outcome[:500]
			}
			_, err := tx.Exec(ctx, `UPDATE fhir_notifications SET processed_at = now(), outcome = $2 WHERE id = $1`, id, outcome)
			return err
		})
	}
	sub, ok := s.cfg.subscription(n.Subscription)
	if !ok {
		return finish("subscription no longer configured: ignored", nil)
	}
	var body []byte
	if n.Body != nil {
		if body, err = s.sealer.Open(ctx, n.Body, notificationAAD(id)); err != nil {
			return err
		}
	}
	started := s.now()
	var resources []json.RawMessage
	var notes []string
	var state func(tx pgx.Tx) error
	switch n.Flavor {
	case RestHookPayload, Medplum:
		resources = []json.RawMessage{body}
	case RestHookEmpty, Poll:
		if resources, err = s.changedSince(ctx, sub); err != nil {
			return err
		}
		notes = append(notes, fmt.Sprintf("searched changes: %d", len(resources)))
		state = s.readUpTo(sub, started)
	case Backport:
		var gap bool
		resources, gap, err = s.backportResources(ctx, sub, body)
		if err != nil {
			return err
		}
		if gap {
			changed, err := s.changedSince(ctx, sub)
			if err != nil {
				return err
			}
			resources = append(resources, changed...)
			notes = append(notes, fmt.Sprintf("gap in event numbers: re-read %d", len(changed)))
			s.log.Warn("fhir subscription missed events; re-read changes", "subscription", sub.Name)
		}
		last := int64(0)
		if n.EventNumber != nil {
			last = *n.EventNumber
		}
		readUpTo := s.readUpTo(sub, started)
		state = func(tx pgx.Tx) error {
			if gap {
				if err := readUpTo(tx); err != nil {
					return err
				}
			}
			_, err := tx.Exec(ctx, `INSERT INTO fhir_subscription_state (subscription, last_event_number) VALUES ($1, $2)
				ON CONFLICT (subscription) DO UPDATE SET last_event_number = greatest(fhir_subscription_state.last_event_number, $2), updated_at = now()`,
				sub.Name, last)
			return err
		}
	}
	r := s.newResolver()
	for _, raw := range resources {
		apply := s.apply
		if n.Deleted {
			apply = s.applyDeleted
		}
		note, err := apply(ctx, r, raw)
		var rej *Rejection
		if errors.As(err, &rej) {
			// A resource callroom cannot use is noted, not retried forever.
			notes = append(notes, "skipped: "+rej.Diagnostics)
			continue
		}
		if err != nil {
			return err
		}
		notes = append(notes, note)
	}
	return finish(strings.Join(notes, "; "), state)
}

// readUpTo records that changes up to t were read.
func (s *Store) readUpTo(sub Subscription, t time.Time) func(tx pgx.Tx) error {
	return func(tx pgx.Tx) error {
		_, err := tx.Exec(context.Background(), `INSERT INTO fhir_subscription_state (subscription, last_read_at) VALUES ($1, $2)
			ON CONFLICT (subscription) DO UPDATE SET last_read_at = greatest(fhir_subscription_state.last_read_at, $2), updated_at = now()`,
			sub.Name, t)
		return err
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
// (read from the EHR for id-only content) and whether event numbers jumped
// past the last one seen.
func (s *Store) backportResources(ctx context.Context, sub Subscription, body []byte) ([]json.RawMessage, bool, error) {
	b, err := decodeBundle(body, models.BundleTypeHistory)
	if err != nil {
		return nil, false, err
	}
	st, err := parseStatus(b.Entry[0].Resource)
	if err != nil {
		return nil, false, err
	}
	var last int64
	err = s.db.QueryRow(ctx, `SELECT last_event_number FROM fhir_subscription_state WHERE subscription = $1`, sub.Name).Scan(&last)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, false, err
	}
	gap := false
	if len(st.EventNumbers) > 0 && last > 0 && slices.Min(st.EventNumbers) > last+1 {
		gap = true
	}
	if len(st.EventNumbers) > 0 && last == 0 && slices.Min(st.EventNumbers) > 1 {
		gap = true
	}
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

// apply acts on one resource and says what it did (no PHI: references and
// counts only).
func (s *Store) apply(ctx context.Context, r *resolver, raw json.RawMessage) (string, error) {
	typ, err := resourceTypeOf(raw)
	if err != nil {
		return "", err
	}
	switch typ {
	case "Encounter":
		return s.applyEncounter(ctx, r, raw)
	case "CareTeam":
		return s.applyCareTeam(ctx, r, raw)
	}
	return "", reject(422, "not-supported", "callroom does not act on %s resources", typ)
}

var patientRef = regexp.MustCompile(`^Patient/[A-Za-z0-9\-.]{1,64}$`)

// Encounter classes that mean an emergency visit (v3 ActCode).
var emergencyClasses = []string{"EMER"}

func (s *Store) applyEncounter(ctx context.Context, r *resolver, raw json.RawMessage) (string, error) {
	e, status, err := decodeEncounter(raw)
	if err != nil {
		return "", err
	}
	ref := "Encounter/" + *e.Id
	if e.Subject == nil || !patientRef.MatchString(literalRef(str(e.Subject.Reference))) {
		return "", reject(422, "required", "%s has no Patient subject", ref)
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
			return "", err
		}
	}
	note := ""
	err = pg.InTx(ctx, s.db, func(tx pgx.Tx) error {
		src, err := lockSource(ctx, tx, ref, lastUpdatedOf(e.Meta))
		if err != nil || src.stale {
			note = ref + ": older than applied, skipped"
			return err
		}
		threadID := src.threadID
		switch {
		case starting:
			var opened bool
			if threadID, opened, err = s.inbox.OpenPatientThread(ctx, tx, inbox.PatientThread{PatientRef: patient, EncounterRef: ref}); err != nil {
				return err
			}
			if err := s.patientNamed(ctx, tx, patient, e.Subject.Identifier, opened); err != nil {
				return err
			}
			added, removed, err := s.syncSource(ctx, tx, threadID, ref, members)
			if err != nil {
				return err
			}
			note = fmt.Sprintf("%s %s: thread open, +%d -%d members", ref, status, added, removed)
		case ending && threadID != uuid.Nil:
			archived, err := s.inbox.ArchiveThread(ctx, tx, threadID)
			if err != nil {
				return err
			}
			if archived {
				// The conversation goes into the patient's record.
				if err := s.queueWriteBack(ctx, tx, "thread", threadID, "archived"); err != nil {
					return err
				}
			}
			note = fmt.Sprintf("%s %s: thread archived", ref, status)
		default:
			note = fmt.Sprintf("%s %s: nothing to do", ref, status)
			if threadID == uuid.Nil {
				return nil
			}
		}
		return saveSource(ctx, tx, ref, threadID, status, lastUpdatedOf(e.Meta))
	})
	return note, err
}

func (s *Store) applyCareTeam(ctx context.Context, r *resolver, raw json.RawMessage) (string, error) {
	c, status, err := decodeCareTeam(raw)
	if err != nil {
		return "", err
	}
	ref := "CareTeam/" + *c.Id
	if c.Subject == nil || !patientRef.MatchString(literalRef(str(c.Subject.Reference))) {
		return "", reject(422, "required", "%s has no Patient subject", ref)
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
			return "", err
		}
	}
	note := ""
	err = pg.InTx(ctx, s.db, func(tx pgx.Tx) error {
		src, err := lockSource(ctx, tx, ref, lastUpdatedOf(c.Meta))
		if err != nil || src.stale {
			note = ref + ": older than applied, skipped"
			return err
		}
		threadID := src.threadID
		if threadID == uuid.Nil {
			if !active {
				note = ref + " " + status + ": nothing to do"
				return nil
			}
			if encounter == "" {
				if threadID, err = inbox.LatestPatientThread(ctx, tx, patient); err != nil {
					return err
				}
			}
			if threadID == uuid.Nil {
				var opened bool
				if threadID, opened, err = s.inbox.OpenPatientThread(ctx, tx, inbox.PatientThread{PatientRef: patient, EncounterRef: encounter}); err != nil {
					return err
				}
				if err := s.patientNamed(ctx, tx, patient, c.Subject.Identifier, opened); err != nil {
					return err
				}
			}
		}
		added, removed, err := s.syncSource(ctx, tx, threadID, ref, members)
		if err != nil {
			return err
		}
		note = fmt.Sprintf("%s %s: +%d -%d members", ref, status, added, removed)
		return saveSource(ctx, tx, ref, threadID, status, lastUpdatedOf(c.Meta))
	})
	return note, err
}

type source struct {
	threadID uuid.UUID
	stale    bool
}

// lockSource locks what is known of ref and says whether a resource last
// updated at updated is older than the one applied.
func lockSource(ctx context.Context, tx pgx.Tx, ref string, updated time.Time) (source, error) {
	// Serialize work on one resource even before its first row exists.
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('fhir.source:' || $1, 0))`, ref); err != nil {
		return source{}, err
	}
	var src source
	var last *time.Time
	err := tx.QueryRow(ctx, `SELECT thread_id, last_updated FROM fhir_sources WHERE source_ref = $1`, ref).Scan(&src.threadID, &last)
	if errors.Is(err, pgx.ErrNoRows) {
		return src, nil
	}
	if err != nil {
		return src, err
	}
	src.stale = last != nil && !updated.IsZero() && updated.Before(*last)
	return src, nil
}

func saveSource(ctx context.Context, tx pgx.Tx, ref string, threadID uuid.UUID, status string, updated time.Time) error {
	var u *time.Time
	if !updated.IsZero() {
		u = &updated
	}
	_, err := tx.Exec(ctx, `INSERT INTO fhir_sources (source_ref, thread_id, status, last_updated) VALUES ($1, $2, $3, $4)
		ON CONFLICT (source_ref) DO UPDATE SET thread_id = $2, status = $3, last_updated = coalesce($4, fhir_sources.last_updated), updated_at = now()`,
		ref, threadID, status, u)
	return err
}

// syncSource makes want the people ref keeps in the thread: those no longer
// kept by any source leave it.
func (s *Store) syncSource(ctx context.Context, tx pgx.Tx, threadID uuid.UUID, ref string, want []uuid.UUID) (int, int, error) {
	rows, _ := tx.Query(ctx, `SELECT user_id FROM fhir_thread_members WHERE thread_id = $1 AND source_ref = $2`, threadID, ref)
	have, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return 0, 0, err
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
		if _, err := tx.Exec(ctx, `DELETE FROM fhir_thread_members WHERE thread_id = $1 AND source_ref = $2 AND user_id = ANY ($3)`,
			threadID, ref, drop); err != nil {
			return 0, 0, err
		}
	}
	if _, err := tx.Exec(ctx, `INSERT INTO fhir_thread_members (thread_id, source_ref, user_id) SELECT $1, $2, x FROM unnest($3::uuid[]) x
		ON CONFLICT DO NOTHING`, threadID, ref, want); err != nil {
		return 0, 0, err
	}
	var leave []uuid.UUID
	if len(drop) > 0 {
		rows, _ := tx.Query(ctx, `SELECT x FROM unnest($2::uuid[]) x
			WHERE NOT EXISTS (SELECT 1 FROM fhir_thread_members m WHERE m.thread_id = $1 AND m.user_id = x)`, threadID, drop)
		if leave, err = pgx.CollectRows(rows, pgx.RowTo[uuid.UUID]); err != nil {
			return 0, 0, err
		}
	}
	// Everyone wanted is (re)added: someone who left by hand comes back
	// when the EHR says again they are on the team.
	added, removed, _, err := s.inbox.SyncMembers(ctx, tx, threadID, want, leave, map[string]any{"source": ref})
	return len(added), len(removed), err
}

// applyDeleted acts on a resource the EHR deleted: an Encounter's thread is
// archived (and written back), a CareTeam keeps nobody in its thread.
func (s *Store) applyDeleted(ctx context.Context, _ *resolver, raw json.RawMessage) (string, error) {
	typ, err := resourceTypeOf(raw)
	if err != nil {
		return "", err
	}
	var probe struct {
		ID string `json:"id"`
	}
	json.Unmarshal(raw, &probe) //nolint:errcheck // resourceTypeOf checked it is an object
	ref := typ + "/" + probe.ID
	note := ref + " deleted: nothing to do"
	err = pg.InTx(ctx, s.db, func(tx pgx.Tx) error {
		src, err := lockSource(ctx, tx, ref, time.Time{})
		if err != nil || src.threadID == uuid.Nil {
			return err
		}
		switch typ {
		case "Encounter":
			archived, err := s.inbox.ArchiveThread(ctx, tx, src.threadID)
			if err != nil {
				return err
			}
			if archived {
				if err := s.queueWriteBack(ctx, tx, "thread", src.threadID, "archived"); err != nil {
					return err
				}
			}
			note = ref + " deleted: thread archived"
		case "CareTeam":
			_, removed, err := s.syncSource(ctx, tx, src.threadID, ref, nil)
			if err != nil {
				return err
			}
			note = fmt.Sprintf("%s deleted: -%d members", ref, removed)
		}
		return saveSource(ctx, tx, ref, src.threadID, "deleted", time.Time{})
	})
	return note, err
}

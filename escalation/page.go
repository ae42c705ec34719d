package escalation

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/callroom/callroom"
	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/events"
	"github.com/callroom/callroom/internal/pg"
	"github.com/callroom/callroom/notify"
	"github.com/callroom/callroom/patient"
	"github.com/callroom/callroom/worker"
)

// Priority is FHIR's request priority code.
type Priority string

const (
	Routine Priority = "routine"
	Urgent  Priority = "urgent"
	ASAP    Priority = "asap"
	Stat    Priority = "stat"
)

// urgent pages use every contact method at once instead of waiting out the
// recipient's notification rules.
func (p Priority) urgent() bool { return p == Stat || p == ASAP }

// Status is where a page is in its life.
type Status string

const (
	Open         Status = "open"
	Acknowledged Status = "acknowledged"
	Resolved     Status = "resolved"
	Cancelled    Status = "cancelled"
	Unanswered   Status = "unanswered"
)

// Page is a request for a clinician's attention.
type Page struct {
	ID             uuid.UUID  `json:"id" db:"id"`
	ServiceID      *uuid.UUID `json:"service_id,omitempty" db:"service_id"`
	ServiceName    *string    `json:"service_name,omitempty" db:"service_name"`
	UserID         *uuid.UUID `json:"user_id,omitempty" db:"user_id"`
	Priority       Priority   `json:"priority" db:"priority"`
	Summary        string     `json:"summary" db:"summary"`
	Body           string     `json:"body" db:"body"`
	PatientRef     *string    `json:"patient_ref,omitempty" db:"patient_ref"`
	EncounterRef   *string    `json:"encounter_ref,omitempty" db:"encounter_ref"`
	DedupKey       *string    `json:"dedup_key,omitempty" db:"dedup_key"`
	Status         Status     `json:"status" db:"status"`
	Step           int        `json:"step" db:"step"`
	Round          int        `json:"round" db:"round"`
	NextStepAt     *time.Time `json:"next_step_at,omitempty" db:"next_step_at"`
	CreatedBy      *uuid.UUID `json:"created_by,omitempty" db:"created_by"`
	CreatedAt      time.Time  `json:"created_at" db:"created_at"`
	AcknowledgedBy *uuid.UUID `json:"acknowledged_by,omitempty" db:"acknowledged_by"`
	AcknowledgedAt *time.Time `json:"acknowledged_at,omitempty" db:"acknowledged_at"`
	ResolvedBy     *uuid.UUID `json:"resolved_by,omitempty" db:"resolved_by"`
	ResolvedAt     *time.Time `json:"resolved_at,omitempty" db:"resolved_at"`
	UpdatedAt      time.Time  `json:"updated_at" db:"updated_at"`

	policyID  *uuid.UUID
	nextJobID *int64
	sealed    []byte // summary and body, sealed; opened only where shown
}

// PageDetail is a page with its timeline and notifications.
type PageDetail struct {
	Page
	Timeline      []TimelineEntry `json:"timeline"`
	Notifications []Notification  `json:"notifications"`
}

// NewPage is what sending a page takes: a service or a user, a priority and
// a summary; the rest is optional.
type NewPage struct {
	ServiceID    *uuid.UUID `json:"service_id,omitempty"`
	UserID       *uuid.UUID `json:"user_id,omitempty"`
	Priority     Priority   `json:"priority"`
	Summary      string     `json:"summary"`
	Body         string     `json:"body,omitempty"`
	PatientRef   string     `json:"patient_ref,omitempty"`
	EncounterRef string     `json:"encounter_ref,omitempty"`
	DedupKey     string     `json:"dedup_key,omitempty"`
}

// Limits on what a page says.
const (
	MaxSummary = 200
	MaxBody    = 10000
)

// A FHIR literal relative reference: Type/id, id per FHIR's id datatype.
var encounterRef = regexp.MustCompile(`^Encounter/[A-Za-z0-9\-.]{1,64}$`)

func (in *NewPage) validate() error {
	if (in.ServiceID == nil) == (in.UserID == nil) {
		return callroom.Invalid("service_id", "page either a service (service_id) or a person (user_id)")
	}
	switch in.Priority {
	case Routine, Urgent, ASAP, Stat:
	case "":
		return callroom.Invalid("priority", "is required: routine, urgent, asap or stat")
	default:
		return callroom.Invalid("priority", "must be routine, urgent, asap or stat")
	}
	in.Summary = strings.TrimSpace(in.Summary)
	if in.Summary == "" {
		return callroom.Invalid("summary", "is required")
	}
	if utf8.RuneCountInString(in.Summary) > MaxSummary {
		return callroom.Invalid("summary", "is longer than %d characters", MaxSummary)
	}
	if utf8.RuneCountInString(in.Body) > MaxBody {
		return callroom.Invalid("body", "is longer than %d characters", MaxBody)
	}
	if in.PatientRef != "" && !patient.IsLiteral(in.PatientRef) {
		return callroom.Invalid("patient_ref", "must be a FHIR reference such as Patient/123")
	}
	if in.EncounterRef != "" && !encounterRef.MatchString(in.EncounterRef) {
		return callroom.Invalid("encounter_ref", "must be a FHIR reference such as Encounter/456")
	}
	if len(in.DedupKey) > 200 {
		return callroom.Invalid("dedup_key", "is longer than 200 bytes")
	}
	return nil
}

func nullString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

const pageColumns = `p.id, p.service_id, (SELECT name FROM services WHERE id = p.service_id) AS service_name, p.user_id,
	p.priority, coalesce(p.summary, ''), coalesce(p.body, ''), p.patient_ref, p.encounter_ref, p.dedup_key, p.status, p.step, p.round, p.next_step_at,
	p.created_by, p.created_at, p.acknowledged_by, p.acknowledged_at, p.resolved_by, p.resolved_at, p.updated_at,
	p.policy_id, p.next_job_id, p.text_sealed`

func scanPage(row pgx.CollectableRow) (Page, error) { return scanPageWith(row) }

// scanPageWith scans pageColumns, then extra columns into extra.
func scanPageWith(row pgx.CollectableRow, extra ...any) (Page, error) {
	var p Page
	dest := append([]any{&p.ID, &p.ServiceID, &p.ServiceName, &p.UserID, &p.Priority, &p.Summary, &p.Body, &p.PatientRef,
		&p.EncounterRef, &p.DedupKey, &p.Status, &p.Step, &p.Round, &p.NextStepAt, &p.CreatedBy, &p.CreatedAt,
		&p.AcknowledgedBy, &p.AcknowledgedAt, &p.ResolvedBy, &p.ResolvedAt, &p.UpdatedAt, &p.policyID, &p.nextJobID, &p.sealed},
		extra...)
	err := row.Scan(dest...)
	return p, err
}

func getPage(ctx context.Context, q pg.Querier, id uuid.UUID, lock bool) (Page, error) {
	rows, _ := q.Query(ctx, pageSQL(lock), id)
	return collectPage(rows)
}

// pageSQL reads page $1, locked with lock.
func pageSQL(lock bool) string {
	sql := `SELECT ` + pageColumns + ` FROM pages p WHERE p.id = $1`
	if lock {
		// NO KEY UPDATE serialises the page's state changes with each other
		// but not with inserts that only reference the page: a delivery job
		// holding its notification row and adding a timeline entry takes a
		// KEY SHARE lock on the page (the foreign key check). FOR UPDATE
		// conflicted with that, and acknowledge (page, then notifications)
		// deadlocked with delivery (notification, then page).
		sql += ` FOR NO KEY UPDATE OF p`
	}
	return sql
}

// collectPage reads pageSQL's one row; none is callroom.ErrNotFound.
func collectPage(rows pgx.Rows) (Page, error) {
	p, err := pgx.CollectExactlyOneRow(rows, scanPage)
	if errors.Is(err, pgx.ErrNoRows) {
		return p, fmt.Errorf("page: %w", callroom.ErrNotFound)
	}
	return p, err
}

// readPageNotified sends w's queued writes and reads page id back with
// everyone it has notified so far, in one round trip.
func readPageNotified(ctx context.Context, tx pgx.Tx, w *pg.Writes, id uuid.UUID) (p Page, notified []uuid.UUID, err error) {
	err = w.FlushQuery(ctx, tx, func(rows pgx.Rows) error {
		var err error
		p, err = pgx.CollectExactlyOneRow(rows, func(row pgx.CollectableRow) (Page, error) { return scanPageWith(row, &notified) })
		return err
	}, `SELECT `+pageColumns+`, ARRAY(SELECT DISTINCT user_id FROM notifications n WHERE n.page_id = p.id)
		FROM pages p WHERE p.id = $1`, id)
	if errors.Is(err, pgx.ErrNoRows) {
		return p, nil, fmt.Errorf("page: %w", callroom.ErrNotFound)
	}
	return p, notified, err
}

// Create sends a page. The page row, its audit event, its timeline and its
// first step commit together or not at all.
//
// The first step fires in this same transaction: whoever is on call is
// resolved, their notifications planned, and the in-app ones published, so
// the 201 means the physician's device has been told, with no River pickup
// and no second commit on the way (docs/PERFORMANCE.md). The job for the
// next step (or for the page's timeout) is inserted with it. Should firing
// the first step fail, the page is sent the way every later step runs: the
// transaction is retried without it, and a River job fires the step.
//
// A page with the dedup key of an open page to the same service returns that
// page instead, with created false.
func (s *Store) Create(ctx context.Context, by audit.Actor, in NewPage) (p Page, created bool, err error) {
	if err := in.validate(); err != nil {
		return Page{}, false, err
	}
	defer s.paging()()
	grouping, leave := s.pages.Enter()
	defer leave()
	var a announcement
	err = pg.ErrNotCommitted
	if grouping && s.groupable(in) {
		if p, err = s.createInGroup(ctx, by, in, &a); err == nil {
			created = true
		} else {
			a = announcement{}
		}
	}
	if errors.Is(err, pg.ErrNotCommitted) {
		p, created, err = s.create(ctx, by, in, &a, true)
	}
	fired := err == nil && created
	var inline *firstStepError
	if errors.As(err, &inline) && ctx.Err() == nil {
		s.log.Warn("the first step of a new page failed; sending it through the escalation queue", "error", inline.err)
		a = announcement{}
		p, created, err = s.create(ctx, by, in, &a, false)
	}
	if errors.Is(err, errDedupRace) {
		var target uuid.UUID
		if in.ServiceID != nil {
			target = *in.ServiceID
		} else {
			target = *in.UserID
		}
		p, err = openByDedupKey(ctx, s.db, target, in.DedupKey)
		created = false
	}
	if err != nil {
		return p, false, err
	}
	if created {
		service := ""
		if p.ServiceName != nil {
			service = *p.ServiceName
		}
		s.observe().PageCreated(service, string(p.Priority))
		if fired {
			s.observe().StepFired(0)
			s.observeSent(a)
		}
	}
	return p, created, s.openText(ctx, &p)
}

// firstStepError is a failure of the first step fired inline by Create.
type firstStepError struct{ err error }

func (e *firstStepError) Error() string { return "first step: " + e.err.Error() }
func (e *firstStepError) Unwrap() error { return e.err }

// create is one attempt at Create; inline fires the first step in the
// transaction instead of scheduling its job.
func (s *Store) create(ctx context.Context, by audit.Actor, in NewPage, a *announcement, inline bool) (p Page, created bool, err error) {
	// The transaction's first read (the service's policy, or the person
	// paged) goes with its BEGIN, and its COMMIT with its last writes
	// (announce): pg.InTxPipelined.
	var policy Policy
	first, methods := firstReads(in, &policy, a)
	err = pg.InTxPipelined(ctx, s.db, first, func(tx pgx.Tx) error {
		if in.DedupKey != "" {
			target := in.UserID
			if in.ServiceID != nil {
				target = in.ServiceID
			}
			existing, err := openByDedupKey(ctx, tx, *target, in.DedupKey)
			if err == nil {
				p = existing
				return nil
			}
			if !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
		}
		if p, err = s.sendPage(ctx, tx, by, in, policy, a, inline, true); err != nil {
			return err
		}
		created = true
		return nil
	}, methods)
	return p, created, err
}

// firstReads are what sending in reads with its BEGIN: the service's policy
// (into policy), or whether the person paged is active; and the contact
// methods of those the first step names (into a.methods): the people a
// service's first step targets directly, or the person paged.
func firstReads(in NewPage, policy *Policy, a *announcement) (first, methods pg.Read) {
	if in.ServiceID != nil {
		return servicePolicyRead(*in.ServiceID, policy), notify.MethodsRead(firstStepUsersSQL, *in.ServiceID, &a.methods)
	}
	return pg.Read{SQL: `SELECT active FROM users WHERE id = $1`, Args: []any{*in.UserID}, Scan: func(rows pgx.Rows) error {
		active, err := pgx.CollectExactlyOneRow(rows, pgx.RowTo[bool])
		if errors.Is(err, pgx.ErrNoRows) || (err == nil && !active) {
			return callroom.Invalid("user_id", "no active user with this id")
		}
		return err
	}}, notify.MethodsRead(`SELECT $1::uuid`, *in.UserID, &a.methods)
}

// sendPage writes page in (its policy read) in tx, fires its first step
// (inline) or schedules it, and announces it, with the COMMIT if commit.
func (s *Store) sendPage(ctx context.Context, tx pgx.Tx, by audit.Actor, in NewPage, policy Policy, a *announcement, inline, commit bool) (Page, error) {
	id := uuid.New()
	sealed, keyID, err := s.sealText(ctx, id, in.Summary, in.Body)
	if err != nil {
		return Page{}, err
	}
	var policyID *uuid.UUID
	if in.ServiceID != nil {
		policyID = &policy.ID
	}
	// step -1 is "no step fired yet". When the first step fires below,
	// the row starts at step 0: advance then leaves step and round as
	// they are, and the response-time report's trigger on pages
	// (migrations/0013) has nothing to recompute.
	firstStep := -1
	if inline {
		firstStep = 0
	}
	// The page, its audit event and its first timeline entry go in one
	// round trip with the first step's writes (announcement.writes) and
	// its first notification, flushed before anything needs the page's
	// row.
	// next_job_id and next_step_at are filled in by the first step's
	// advance while this insert is still queued (announcement.newPage).
	a.writes.Exec(pageInsertSQL,
		id, in.ServiceID, in.UserID, policyID, in.Priority, sealed, keyID, nullString(in.PatientRef),
		nullString(in.EncounterRef), nullString(in.DedupKey), nullUser(by.UserID), firstStep, nil, nil)
	a.newPage, a.newPageID = a.writes.Last(), id
	if in.PatientRef == "" {
		a.fresh = &Page{ID: id, Priority: in.Priority, Status: Open, CreatedBy: nullUser(by.UserID)}
	}
	if err := audit.Queue(&a.writes, by, audit.Entry{Action: "page.create", ObjectType: "page", ObjectID: id.String(),
		PatientRef: in.PatientRef, Details: map[string]any{"priority": in.Priority}}); err != nil {
		return Page{}, err
	}
	// Queued last, so the first step's timeline entries join its insert.
	a.timeline(id, TimelineEntry{Kind: "created", UserID: nullUser(by.UserID)})
	// Filed before the first step, which adds whoever it reaches to
	// the patient's thread.
	if s.FilePage != nil && in.PatientRef != "" {
		if err := a.writes.Flush(ctx, tx); err != nil {
			return Page{}, dedupRace(err)
		}
		fp := FiledPage{PageID: id, PatientRef: in.PatientRef, EncounterRef: in.EncounterRef,
			Priority: string(in.Priority), Summary: in.Summary, SenderID: by.UserID}
		if in.UserID != nil {
			fp.RecipientIDs = []uuid.UUID{*in.UserID}
		}
		if err := s.FilePage(ctx, tx, fp); err != nil {
			return Page{}, err
		}
	}
	now := s.now()
	if inline {
		fresh := Page{ID: id, ServiceID: in.ServiceID, UserID: in.UserID, Priority: in.Priority,
			PatientRef: nullString(in.PatientRef), EncounterRef: nullString(in.EncounterRef), Status: Open,
			CreatedBy: nullUser(by.UserID), policyID: policyID}
		err := s.firstStepFault
		if err != nil {
			// a test's fault: fall through to the error path
		} else if in.UserID != nil {
			err = s.fireDirect(ctx, tx, fresh, a, 0, now, now)
		} else {
			err = s.fireStep(ctx, tx, fresh, policy, a, 0, 0, now, now)
		}
		if err != nil {
			if race := dedupRace(err); race == errDedupRace {
				return Page{}, race // the page's insert, flushed by the step
			}
			return Page{}, &firstStepError{err}
		}
	} else {
		if err := a.writes.Flush(ctx, tx); err != nil {
			return Page{}, dedupRace(err)
		}
		// The first step fires now, as a job: a crash after commit still fires it.
		if err := s.scheduleStep(ctx, tx, id, 0, 0, now); err != nil {
			return Page{}, err
		}
	}
	// Last, so the recipients' event counters are locked only for the
	// commit (events.Publish), which goes in the same round trip.
	p, err := s.announce(ctx, tx, id, a, commit)
	return p, dedupRace(err)
}

// firstStepUsersSQL returns the people the first step of service $1's
// policy targets directly (not through a schedule): whom a new page's first
// step reaches unless they are inactive.
const firstStepUsersSQL = `SELECT t.user_id FROM escalation_step_targets t
	WHERE t.policy_id = (SELECT escalation_policy_id FROM services WHERE id = $1)
	  AND t.position = (SELECT min(s.position) FROM escalation_steps s WHERE s.policy_id = t.policy_id)
	  AND t.user_id IS NOT NULL`

// dedupRace turns the unique violation of a page's dedup key into
// errDedupRace: another request with the same key committed first.
func dedupRace(err error) error {
	if pg.IsUniqueViolation(err, "pages_dedup_key") {
		return errDedupRace
	}
	return err
}

var errDedupRace = errors.New("dedup race")

func openByDedupKey(ctx context.Context, q pg.Querier, target uuid.UUID, key string) (Page, error) {
	rows, _ := q.Query(ctx, `SELECT `+pageColumns+` FROM pages p
		WHERE coalesce(p.service_id, p.user_id) = $1 AND p.dedup_key = $2 AND p.status IN ('open', 'acknowledged')`, target, key)
	return pgx.CollectExactlyOneRow(rows, scanPage)
}

func nullUser(id uuid.UUID) *uuid.UUID {
	if id == uuid.Nil {
		return nil
	}
	return &id
}

// scheduleStep inserts the job that fires (round, step) at due and records
// it on the page, so acknowledging can cancel it in its own transaction.
func (s *Store) scheduleStep(ctx context.Context, tx pgx.Tx, pageID uuid.UUID, round, step int, due time.Time) error {
	jobID, err := s.insertStep(ctx, tx, pageID, round, step, due)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `UPDATE pages SET next_job_id = $2, next_step_at = $3, updated_at = now() WHERE id = $1`,
		pageID, jobID, due)
	return err
}

// pageInsertColumns are a new page's columns, as pageInsertSQL and
// pageInsertWithJobSQL write them.
const pageInsertColumns = `INSERT INTO pages AS p (id, service_id, user_id, policy_id, priority, text_sealed, text_key_id, patient_ref, encounter_ref, dedup_key, created_by, step, next_job_id, next_step_at)`

// pageInsertSQL is a new page's insert. Its first step fills in step,
// next_job_id and next_step_at while it is still queued (advance), usually
// by making it pageInsertWithJobSQL.
const pageInsertSQL = pageInsertColumns + `
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`

// pageInsertWithJobSQL is pageInsertSQL that also writes the job of the
// page's next step (worker.JobInStatement, its parameters from $14) and
// takes its id: one statement, no round trip for the job.
const pageInsertWithJobSQL = `WITH job AS (%s)
	` + pageInsertColumns + `
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, (SELECT id FROM job), $13)`

// advanceWithJobSQL records a fired step and writes the next one's job
// (parameters from $5) in one statement.
const advanceWithJobSQL = `WITH job AS (%s)
	UPDATE pages SET step = $2, round = $3, next_job_id = (SELECT id FROM job), next_step_at = $4, updated_at = now() WHERE id = $1`

// advance records that (round, step) fired and schedules step+1 at next,
// with one write of the page (queued in a): every step of every page passes
// here. The next step's job is written by that same statement
// (worker.JobInStatement); a step due at once (a zero delay) is inserted
// through River instead, which wakes a worker for it.
func (s *Store) advance(ctx context.Context, tx pgx.Tx, a *announcement, pageID uuid.UUID, round, step int, next time.Time) error {
	args := StepArgs{PageID: pageID, Round: round, Step: step + 1}
	// A page sent in this transaction whose insert is still queued gets its
	// step and job in that insert: no update of the row just written (the
	// first step of most pages).
	newPage := a.newPage != nil && a.newPageID == pageID && round == 0 && a.writes.Queued(a.newPage)
	if wall := time.Now(); next.After(wall) {
		if newPage {
			job, err := worker.NewJobInStatement(args, *stepOpts(next), 14, wall)
			if err != nil {
				return err
			}
			q := a.newPage
			q.SQL = fmt.Sprintf(pageInsertWithJobSQL, job.SQL)
			q.Arguments = append(append(q.Arguments[:11:11], step, next), job.Args...)
			return nil
		}
		job, err := worker.NewJobInStatement(args, *stepOpts(next), 5, wall)
		if err != nil {
			return err
		}
		a.writes.Exec(fmt.Sprintf(advanceWithJobSQL, job.SQL), append([]any{pageID, step, round, next}, job.Args...)...)
		return nil
	}
	res, err := worker.InsertTxLater(ctx, s.river, tx, &a.writes, args, stepOpts(next))
	if err != nil {
		return err
	}
	if newPage {
		q := a.newPage.Arguments
		q[11], q[12], q[13] = step, res.Job.ID, next
		return nil
	}
	a.writes.Exec(`UPDATE pages SET step = $2, round = $3, next_job_id = $4, next_step_at = $5, updated_at = now() WHERE id = $1`,
		pageID, step, round, res.Job.ID, next)
	return nil
}

// insertStep inserts the job that fires (round, step) of a page at due: unique
// by those three, so a step is scheduled at most once.
func (s *Store) insertStep(ctx context.Context, tx pgx.Tx, pageID uuid.UUID, round, step int, due time.Time) (int64, error) {
	res, err := worker.InsertTx(ctx, s.river, tx, StepArgs{PageID: pageID, Round: round, Step: step}, stepOpts(due))
	if err != nil {
		return 0, err
	}
	return res.Job.ID, nil
}

// stepOpts are a step job's: unique by its arguments (page, round, step).
func stepOpts(due time.Time) *river.InsertOpts {
	return &river.InsertOpts{Queue: worker.QueueEscalation, ScheduledAt: due, MaxAttempts: 25,
		UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// publish tells the sender, everyone notified and the members of the
// thread the page was filed in that the page changed. Events carry ids
// only, never the page's text.
func (s *Store) publish(ctx context.Context, tx pgx.Tx, p Page, extra []uuid.UUID) error {
	rows, _ := tx.Query(ctx, `SELECT DISTINCT user_id FROM notifications WHERE page_id = $1`, p.ID)
	users, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return err
	}
	pub, err := s.pageUpdated(ctx, tx, p, append(users, extra...))
	if err != nil {
		return err
	}
	return events.PublishAll(ctx, tx, []events.Publication{pub})
}

// pageUpdated is p's page.updated event, to notified (everyone the page
// reached) and the sender, and to the members of the thread the page was
// filed in. A page that has settled is also handed to PageSettled.
func (s *Store) pageUpdated(ctx context.Context, tx pgx.Tx, p Page, notified []uuid.UUID) (events.Publication, error) {
	if s.PageSettled != nil && (p.Status == Acknowledged || p.Status == Resolved || p.Status == Unanswered) {
		if err := s.PageSettled(ctx, tx, p); err != nil {
			return events.Publication{}, err
		}
	}
	users := slices.Clone(notified)
	if s.ThreadMembers != nil && p.PatientRef != nil { // only pages about a patient are filed in a thread
		members, err := s.ThreadMembers(ctx, tx, p.ID)
		if err != nil {
			return events.Publication{}, err
		}
		users = append(users, members...)
	}
	if p.CreatedBy != nil {
		users = append(users, *p.CreatedBy)
	}
	return events.Publication{UserIDs: users, Type: EventPageUpdated,
		Data: map[string]any{"page_id": p.ID, "status": p.Status, "priority": p.Priority}}, nil
}

// announcement is what one transaction that moves a page's escalation (send,
// step, acknowledge, escalate...) has still to do before it commits: the
// writes it queued, and the in-app notifications it sent, to be announced
// as page.notify. They are collected while the transaction runs and sent
// together at the end (announce), so the writes cost one round trip and the
// recipients' event counters are locked only briefly.
type announcement struct {
	notices []notice
	// writes are the timeline entries and page updates the escalation
	// queued (pg.Writes): nothing in the transaction reads them before
	// announce, except that a notification's row needs its page's, so
	// planning notifications flushes them first.
	writes pg.Writes
	// newPage is the queued insert of page newPageID, sent in this
	// transaction; while it is queued, advance writes the first step into
	// it instead of updating the row afterwards.
	newPage   *pgx.QueuedQuery
	newPageID uuid.UUID
	// fresh is the page sent in this transaction while its events need no
	// read (announce): it is about no patient and still open.
	fresh *Page
	// reached are the people this transaction's notifications went to.
	reached []uuid.UUID
	// blind are the notifications queued for a page sent in this
	// transaction (notifyUsers).
	blind []blindKey
	// methods are the contact methods read with the transaction's first
	// statement (those of the people a new page's first step names), for
	// planning its notifications without a round trip of their own.
	methods notify.Methods
}

// timeline queues e on page's timeline. Entries queued one after another
// are one insert (pg.Writes.ExecRows): a step's entries cost one
// statement, and so do those of a group's pages.
func (a *announcement) timeline(pageID uuid.UUID, e TimelineEntry) {
	a.writes.ExecRows(timelineRowsSQL, -1, timelineRows(pageID, e)...)
}

// notice is one in-app notification sent as page.notify.
type notice struct {
	UserID, NotificationID uuid.UUID
}

// announce sends a's writes, reads page id back, and publishes its
// page.updated, then a's page.notify events: one round trip for a page sent
// in this transaction (see fresh), two otherwise. The events are one
// statement that locks each recipient's counter once, in user id order, so
// two transactions about one page cannot deadlock on them. It returns the
// page as announced.
//
// With commit, the transaction's COMMIT goes in announce's last round trip
// (pg.Writes.CommitOnFlush): announce must then be the transaction's last
// statement, in a transaction begun by pg.InTxPipelined.
func (s *Store) announce(ctx context.Context, tx pgx.Tx, id uuid.UUID, a *announcement, commit bool) (Page, error) {
	if f := a.fresh; f != nil && f.ID == id {
		// Everyone the page reached was notified in this transaction, and
		// it is still open and about no patient: its events are known
		// without reading it back, and go in the read's round trip.
		pub, err := s.pageUpdated(ctx, tx, *f, a.reached)
		if err != nil {
			return Page{}, err
		}
		if err := events.QueueAll(ctx, &a.writes, a.publications(pub, f)); err != nil {
			return Page{}, err
		}
		if commit {
			a.writes.CommitOnFlush()
		}
		if q := a.newPage; a.newPageID == id && a.writes.Queued(q) {
			// Its insert is still queued, and nothing after it changes the
			// row: the insert returns it, one statement fewer.
			var p Page
			q.SQL += ` RETURNING ` + pageColumns
			q.Query(func(rows pgx.Rows) (err error) {
				p, err = pgx.CollectExactlyOneRow(rows, scanPage)
				return err
			})
			return p, a.writes.Flush(ctx, tx)
		}
		p, _, err := readPageNotified(ctx, tx, &a.writes, id)
		return p, err
	}
	p, notified, err := readPageNotified(ctx, tx, &a.writes, id)
	if err != nil {
		return Page{}, err
	}
	pub, err := s.pageUpdated(ctx, tx, p, notified)
	if err != nil {
		return Page{}, err
	}
	if !commit {
		return p, events.PublishAll(ctx, tx, a.publications(pub, &p))
	}
	if err := events.QueueAll(ctx, &a.writes, a.publications(pub, &p)); err != nil {
		return Page{}, err
	}
	a.writes.CommitOnFlush()
	return p, a.writes.Flush(ctx, tx)
}

// publications are updated (p's page.updated), then a's page.notify events.
func (a *announcement) publications(updated events.Publication, p *Page) []events.Publication {
	pubs := []events.Publication{updated}
	for _, n := range a.notices {
		pubs = append(pubs, events.Publication{UserIDs: []uuid.UUID{n.UserID}, Type: EventPageNotify,
			Data: map[string]any{"page_id": p.ID, "notification_id": n.NotificationID, "priority": p.Priority}})
	}
	return pubs
}

// Filter narrows List.
type Filter struct {
	Status    Status
	ServiceID *uuid.UUID
	Limit     int
	Before    *time.Time // created before, for paging through history
	// Recipient keeps the pages that notified this user (or will: planned
	// notifications count), such as the pages in their inbox.
	Recipient *uuid.UUID
}

// List returns pages newest first.
func (s *Store) List(ctx context.Context, f Filter) ([]Page, error) {
	if f.Limit <= 0 || f.Limit > 500 {
		f.Limit = 100
	}
	rows, _ := s.db.Query(ctx, `SELECT `+pageColumns+` FROM pages p
		WHERE ($1 = '' OR p.status = $1) AND ($2::uuid IS NULL OR p.service_id = $2) AND ($3::timestamptz IS NULL OR p.created_at < $3)
		  AND ($5::uuid IS NULL OR EXISTS (SELECT 1 FROM notifications n WHERE n.page_id = p.id AND n.user_id = $5))
		ORDER BY p.created_at DESC, p.id LIMIT $4`, string(f.Status), f.ServiceID, f.Before, f.Limit, f.Recipient)
	pages, err := pgx.CollectRows(rows, scanPage)
	if err != nil {
		return nil, err
	}
	for i := range pages {
		if err := s.openText(ctx, &pages[i]); err != nil {
			return nil, err
		}
	}
	return pages, nil
}

// Get returns a page with its timeline and notifications.
func (s *Store) Get(ctx context.Context, id uuid.UUID) (PageDetail, error) {
	var d PageDetail
	err := pg.InTx(ctx, s.db, func(tx pgx.Tx) error {
		p, err := getPage(ctx, tx, id, false)
		if err != nil {
			return err
		}
		if err := s.openText(ctx, &p); err != nil {
			return err
		}
		d.Page = p
		if d.Timeline, err = timeline(ctx, tx, id); err != nil {
			return err
		}
		d.Notifications, err = notifications(ctx, tx, id)
		return err
	})
	return d, err
}

package inbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callroom/callroom"
	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/auth"
	"github.com/callroom/callroom/internal/pg"
	"github.com/callroom/callroom/oncall"
	"github.com/callroom/callroom/patient"
)

// Kind is what a thread is about.
type Kind string

const (
	// Patient: the care team's conversation about one patient (and
	// optionally one encounter). Pages about the patient post into it.
	Patient Kind = "patient"
	// Group: a named group of people, e.g. "4 West nurses".
	Group Kind = "group"
	// Direct: exactly two people. There is one per pair.
	Direct Kind = "direct"
)

// Kinds lists every kind.
var Kinds = []Kind{Patient, Group, Direct}

func checkKind(field string, k Kind) error {
	switch k {
	case Patient, Group, Direct:
		return nil
	case "":
		return callroom.Invalid(field, "is required: patient, group or direct")
	}
	return callroom.Invalid(field, "must be patient, group or direct")
}

// Thread is a conversation as one of its members sees it.
type Thread struct {
	ID                   uuid.UUID  `json:"id" db:"id"`
	Kind                 Kind       `json:"kind" db:"kind"`
	Name                 string     `json:"name" db:"name"`
	PatientRef           *string    `json:"patient_ref,omitempty" db:"patient_ref"`
	EncounterRef         *string    `json:"encounter_ref,omitempty" db:"encounter_ref"`
	HistoryForNewMembers bool       `json:"history_for_new_members" db:"history_for_new_members"`
	LegalHold            bool       `json:"legal_hold" db:"legal_hold"`
	CreatedBy            *uuid.UUID `json:"created_by,omitempty" db:"created_by"`
	CreatedAt            time.Time  `json:"created_at" db:"created_at"`
	UpdatedAt            time.Time  `json:"updated_at" db:"updated_at"`
	LastMessageAt        *time.Time `json:"last_message_at,omitempty" db:"last_message_at"`
	// ArchivedAt: the encounter the thread was about ended (package fhir).
	ArchivedAt *time.Time `json:"archived_at,omitempty" db:"archived_at"`

	// Current members, by when they joined.
	Members []Member `json:"members" db:"-"`
	// Messages the viewer can see and has not read (not their own, not recalled).
	Unread int `json:"unread" db:"-"`
	// The newest message the viewer can see, and who of its audience read it
	// ("read by 3 of 5"); only when one thread is opened.
	LastMessageID *uuid.UUID `json:"last_message_id,omitempty" db:"-"`
	ReadBy        *Tally     `json:"read_by,omitempty" db:"-"`
}

func (t Thread) patientRef() string {
	if t.PatientRef != nil {
		return *t.PatientRef
	}
	return ""
}

// Member is a person currently in a thread.
type Member struct {
	UserID   uuid.UUID  `json:"user_id" db:"user_id"`
	Name     string     `json:"name" db:"name"`
	JoinedAt time.Time  `json:"joined_at" db:"joined_at"`
	AddedBy  *uuid.UUID `json:"added_by,omitempty" db:"added_by"`
}

// NewThread is what starting a conversation takes. The creator is always a
// member; MemberIDs are the others.
type NewThread struct {
	Kind         Kind        `json:"kind"`
	Name         string      `json:"name,omitempty"`
	PatientRef   string      `json:"patient_ref,omitempty"`
	EncounterRef string      `json:"encounter_ref,omitempty"`
	MemberIDs    []uuid.UUID `json:"member_ids,omitempty"`
	// Whether people added later see what was said before they joined
	// (default true). A thread where that would overshare sets false.
	HistoryForNewMembers *bool `json:"history_for_new_members,omitempty"`
	// ScheduleID makes a group of everyone on an on-call schedule (see
	// oncall.People) besides MemberIDs, for a broadcast such as "need a
	// nurse for the 19:00 shift on 4 West" posted with ack_required. Only
	// active nurses and physicians on it join; the name defaults to the
	// schedule's.
	ScheduleID *uuid.UUID `json:"schedule_id,omitempty"`
}

// Limits on threads.
const (
	MaxNameLength = 200
	// MaxMembersPerRequest bounds member_ids and user_ids in one request.
	MaxMembersPerRequest = 100
)

// validate checks in and returns every member, the creator first.
func (in *NewThread) validate(creator uuid.UUID) ([]uuid.UUID, error) {
	if err := checkKind("kind", in.Kind); err != nil {
		return nil, err
	}
	in.Name = strings.TrimSpace(in.Name)
	if utf8.RuneCountInString(in.Name) > MaxNameLength {
		return nil, callroom.Invalid("name", "is longer than %d characters", MaxNameLength)
	}
	members, err := memberList("member_ids", creator, in.MemberIDs)
	if err != nil {
		return nil, err
	}
	switch in.Kind {
	case Patient:
		if err := checkPatientRef("patient_ref", in.PatientRef); err != nil {
			return nil, err
		}
		if err := checkEncounterRef("encounter_ref", in.EncounterRef); err != nil {
			return nil, err
		}
	case Group:
		if in.ScheduleID != nil && *in.ScheduleID == uuid.Nil {
			return nil, callroom.Invalid("schedule_id", "is the nil id")
		}
		if in.Name == "" && in.ScheduleID == nil {
			return nil, callroom.Invalid("name", "is required for a group thread")
		}
	case Direct:
		if in.Name != "" {
			return nil, callroom.Invalid("name", "a direct thread has no name")
		}
		if len(members) != 2 {
			return nil, callroom.Invalid("member_ids", "a direct thread is between you and exactly one other person")
		}
		if in.HistoryForNewMembers != nil {
			return nil, callroom.Invalid("history_for_new_members", "a direct thread never gets new members")
		}
	}
	if in.Kind != Group && in.ScheduleID != nil {
		return nil, callroom.Invalid("schedule_id", "is only for group threads")
	}
	if in.Kind != Patient {
		if in.PatientRef != "" {
			return nil, callroom.Invalid("patient_ref", "is only for patient threads")
		}
		if in.EncounterRef != "" {
			return nil, callroom.Invalid("encounter_ref", "is only for patient threads")
		}
	}
	return members, nil
}

// memberList returns first followed by ids, without duplicates.
func memberList(field string, first uuid.UUID, ids []uuid.UUID) ([]uuid.UUID, error) {
	if len(ids) > MaxMembersPerRequest {
		return nil, callroom.Invalid(field, "lists more than %d people", MaxMembersPerRequest)
	}
	out := []uuid.UUID{}
	if first != uuid.Nil {
		out = append(out, first)
	}
	for i, id := range ids {
		if id == uuid.Nil {
			return nil, callroom.Invalid(fmt.Sprintf("%s.%d", field, i), "is the nil id")
		}
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out, nil
}

// orderedPair is how a direct thread stores its two people, in PostgreSQL's
// uuid order (bytewise), so either can ask for it.
func orderedPair(a, b uuid.UUID) (lo, hi uuid.UUID) {
	if bytes.Compare(a[:], b[:]) < 0 {
		return a, b
	}
	return b, a
}

func nullString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

const threadColumns = `t.id, t.kind, t.name, t.patient_ref, t.encounter_ref, t.history_for_new_members, t.legal_hold,
	t.created_by, t.created_at, t.updated_at, t.last_message_at, t.archived_at`

// getThread reads a thread's row; lock is "" or a locking clause.
func getThread(ctx context.Context, q pg.Querier, id uuid.UUID, lock string) (Thread, error) {
	var b pgx.Batch
	var ts []Thread
	queueThread(&b, id, lock, &ts)
	if err := q.SendBatch(ctx, &b).Close(); err != nil {
		return Thread{}, err
	}
	return oneThread(ts)
}

// queuer is a pgx.Batch or a pg.Writes.
type queuer interface {
	Queue(sql string, args ...any) *pgx.QueuedQuery
}

// queueThread queues getThread's read into out, for a batch of reads.
func queueThread(b queuer, id uuid.UUID, lock string, out *[]Thread) {
	b.Queue(`SELECT `+threadColumns+` FROM threads t WHERE t.id = $1 `+lock, id).Query(func(rows pgx.Rows) error {
		var err error
		*out, err = pgx.CollectRows(rows, pgx.RowToStructByName[Thread])
		return err
	})
}

// oneThread is the thread queueThread found, or ErrNotFound.
func oneThread(ts []Thread) (Thread, error) {
	if len(ts) == 0 {
		return Thread{}, fmt.Errorf("thread: %w", callroom.ErrNotFound)
	}
	return ts[0], nil
}

// CreateThread starts a conversation. Asking for a direct thread between two
// people who already have one returns theirs, with created false.
func (s *Store) CreateThread(ctx context.Context, who auth.Principal, in NewThread) (Thread, bool, error) {
	if !isClinician(who.User) {
		return Thread{}, false, s.refuse(ctx, who.Actor(), &denial{action: "thread.create", objectType: "thread",
			reason: "only nurses and physicians start conversations"})
	}
	members, err := in.validate(who.User.ID)
	if err != nil {
		return Thread{}, false, err
	}
	var out Thread
	created := false
	err = s.inTx(ctx, who.Actor(), func(tx pgx.Tx) error {
		if err := checkInvitees(ctx, tx, "member_ids", members[1:]); err != nil {
			return err
		}
		if in.ScheduleID != nil {
			var err error
			if members, err = s.addSchedulePeople(ctx, tx, &in, members); err != nil {
				return err
			}
		}
		var id uuid.UUID
		if in.Kind == Direct {
			lo, hi := orderedPair(members[0], members[1])
			err := tx.QueryRow(ctx, `INSERT INTO threads (kind, direct_low, direct_high, created_by) VALUES ('direct', $1, $2, $3)
				ON CONFLICT (direct_low, direct_high) WHERE kind = 'direct' DO NOTHING RETURNING id`, lo, hi, who.User.ID).Scan(&id)
			if errors.Is(err, pgx.ErrNoRows) {
				// The pair already has a thread (perhaps committed a moment
				// ago by the other person): this is opening it.
				if err := tx.QueryRow(ctx, `SELECT id FROM threads WHERE kind = 'direct' AND direct_low = $1 AND direct_high = $2`,
					lo, hi).Scan(&id); err != nil {
					return err
				}
				if out, err = s.view(ctx, tx, id, who.User.ID, true); err != nil {
					return err
				}
				return audit.Record(ctx, tx, who.Actor(), audit.Entry{Action: "thread.read", ObjectType: "thread", ObjectID: id.String()})
			}
			if err != nil {
				return err
			}
		} else {
			history := in.HistoryForNewMembers == nil || *in.HistoryForNewMembers
			err := tx.QueryRow(ctx, `INSERT INTO threads (kind, name, patient_ref, encounter_ref, history_for_new_members, created_by)
				VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
				in.Kind, in.Name, nullString(in.PatientRef), nullString(in.EncounterRef), history, who.User.ID).Scan(&id)
			if err != nil {
				return err
			}
		}
		if _, err := addMembers(ctx, tx, id, members, &who.User.ID); err != nil {
			return err
		}
		if err := audit.Record(ctx, tx, who.Actor(), audit.Entry{Action: "thread.create", ObjectType: "thread", ObjectID: id.String(),
			PatientRef: in.PatientRef, Details: threadDetails(in, len(members))}); err != nil {
			return err
		}
		if err := announce(ctx, tx, id, EventThreadUpdated, threadEvent{ThreadID: id}); err != nil {
			return err
		}
		var err error
		out, err = s.view(ctx, tx, id, who.User.ID, true)
		created = true
		return err
	})
	return out, created, err
}

// Thread opens one thread (members only; audited).
func (s *Store) Thread(ctx context.Context, who auth.Principal, id uuid.UUID) (Thread, error) {
	var out Thread
	err := s.inTx(ctx, who.Actor(), func(tx pgx.Tx) error {
		t, _, err := readThread(ctx, tx, id, who, "thread.read")
		if err != nil {
			return err
		}
		ts := []Thread{t}
		if err := s.fill(ctx, tx, who.User.ID, ts, true); err != nil {
			return err
		}
		out = ts[0]
		return audit.Record(ctx, tx, who.Actor(), audit.Entry{Action: "thread.read", ObjectType: "thread", ObjectID: id.String(),
			PatientRef: t.patientRef()})
	})
	return out, err
}

// ThreadFilter narrows Threads.
type ThreadFilter struct {
	Kind  Kind // all kinds when empty
	Limit int  // 1..500, default 100
}

// Threads lists the caller's current threads, most recently active first.
// Listing shows patient references, so each patient whose thread is listed
// gets an audit event naming them.
func (s *Store) Threads(ctx context.Context, who auth.Principal, f ThreadFilter) ([]Thread, error) {
	if f.Kind != "" {
		if err := checkKind("kind", f.Kind); err != nil {
			return nil, err
		}
	}
	if f.Limit == 0 {
		f.Limit = 100
	}
	if f.Limit < 1 || f.Limit > 500 {
		return nil, callroom.Invalid("limit", "must be between 1 and 500")
	}
	var out []Thread
	err := s.inTx(ctx, who.Actor(), func(tx pgx.Tx) error {
		rows, _ := tx.Query(ctx, `SELECT `+threadColumns+` FROM threads t
			JOIN thread_members me ON me.thread_id = t.id AND me.user_id = $1 AND me.left_at IS NULL
			WHERE ($2 = '' OR t.kind = $2)
			ORDER BY coalesce(t.last_message_at, t.created_at) DESC, t.id LIMIT $3`, who.User.ID, string(f.Kind), f.Limit)
		var err error
		if out, err = pgx.CollectRows(rows, pgx.RowToStructByName[Thread]); err != nil {
			return err
		}
		if err := s.fill(ctx, tx, who.User.ID, out, false); err != nil {
			return err
		}
		return auditList(ctx, tx, who, out, "")
	})
	return out, err
}

// PatientThreads is the chart view: the patient's threads the caller is in,
// or all of them for holders of auth.ReadAudit (auditors, administrators),
// who investigate without being members, and for a clinician holding
// emergency access to the patient (see BreakGlass). Always audited with the patient_ref,
// also when nothing is found.
func (s *Store) PatientThreads(ctx context.Context, who auth.Principal, ref string) ([]Thread, error) {
	if err := checkPatientRef("ref", ref); err != nil {
		return nil, err
	}
	var out []Thread
	err := s.inTx(ctx, who.Actor(), func(tx pgx.Tx) error {
		// The caller's threads and any emergency access of theirs are read
		// in one round trip; emergency access (rare) reads again, all of them.
		all := mayReadVersions(who)
		var b pgx.Batch
		var grant emergencyGrant
		if !all {
			queueEmergency(&b, who.User.ID, ref, &grant)
		}
		queuePatientThreads(&b, ref, who.User.ID, all, &out)
		if err := tx.SendBatch(ctx, &b).Close(); err != nil {
			return err
		}
		if grant.ok {
			if err := useEmergency(ctx, tx, who, grant.id, ref, "thread.list", ""); err != nil {
				return err
			}
			b = pgx.Batch{}
			queuePatientThreads(&b, ref, who.User.ID, true, &out)
			if err := tx.SendBatch(ctx, &b).Close(); err != nil {
				return err
			}
		}
		if err := s.fill(ctx, tx, who.User.ID, out, false); err != nil {
			return err
		}
		return auditList(ctx, tx, who, out, ref)
	})
	return out, err
}

// queuePatientThreads queues the read of the patient's threads into out:
// all of them, or those the user is in.
func queuePatientThreads(b *pgx.Batch, ref string, user uuid.UUID, all bool, out *[]Thread) {
	b.Queue(`SELECT `+threadColumns+` FROM threads t
		WHERE t.kind = 'patient' AND t.patient_ref IN `+patient.SameAs("$1")+`
		  AND ($3 OR EXISTS (SELECT 1 FROM thread_members me WHERE me.thread_id = t.id AND me.user_id = $2 AND me.left_at IS NULL))
		ORDER BY coalesce(t.last_message_at, t.created_at) DESC, t.id LIMIT 500`, ref, user, all).Query(func(rows pgx.Rows) error {
		var err error
		*out, err = pgx.CollectRows(rows, pgx.RowToStructByName[Thread])
		return err
	})
}

// auditList records a listing: one event with the count, and one per
// patient listed, so the patient's access report shows it.
func auditList(ctx context.Context, tx pgx.Tx, who auth.Principal, ts []Thread, ref string) error {
	refs := map[string]int{}
	if ref != "" {
		refs[ref] = 0
	}
	for _, t := range ts {
		if r := t.patientRef(); r != "" {
			refs[r]++
		}
	}
	var w pg.Writes
	if ref == "" {
		if err := audit.Queue(&w, who.Actor(), audit.Entry{Action: "thread.list", ObjectType: "thread",
			Details: map[string]any{"count": len(ts)}}); err != nil {
			return err
		}
	}
	keys := make([]string, 0, len(refs))
	for r := range refs {
		keys = append(keys, r)
	}
	slices.Sort(keys)
	for _, r := range keys {
		if err := audit.Queue(&w, who.Actor(), audit.Entry{Action: "thread.list", ObjectType: "thread", PatientRef: r,
			Details: map[string]any{"count": refs[r]}}); err != nil {
			return err
		}
	}
	return w.Flush(ctx, tx)
}

// view reads a thread with its members and the viewer's unread count;
// detail adds the newest message the viewer can see and who read it.
func (s *Store) view(ctx context.Context, q pg.Querier, id, viewer uuid.UUID, detail bool) (Thread, error) {
	t, err := getThread(ctx, q, id, "")
	if err != nil {
		return t, err
	}
	ts := []Thread{t}
	if err := s.fill(ctx, q, viewer, ts, detail); err != nil {
		return t, err
	}
	return ts[0], nil
}

// fill adds members and unread counts to ts in one round trip whatever
// their number.
func (s *Store) fill(ctx context.Context, q pg.Querier, viewer uuid.UUID, ts []Thread, detail bool) error {
	if len(ts) == 0 {
		return nil
	}
	ids := make([]uuid.UUID, len(ts))
	for i, t := range ts {
		ids[i] = t.ID
	}
	type memberRow struct {
		ThreadID uuid.UUID `db:"thread_id"`
		Member
	}
	type unreadRow struct {
		ThreadID uuid.UUID `db:"thread_id"`
		Unread   int       `db:"unread"`
	}
	var members []memberRow
	var unread []unreadRow
	var b pgx.Batch
	b.Queue(`SELECT tm.thread_id, tm.user_id, u.name, tm.joined_at, tm.added_by
		FROM thread_members tm JOIN users u ON u.id = tm.user_id
		WHERE tm.thread_id = ANY($1) AND tm.left_at IS NULL ORDER BY tm.joined_at, tm.id`, ids).Query(func(rows pgx.Rows) error {
		var err error
		members, err = pgx.CollectRows(rows, pgx.RowToStructByName[memberRow])
		return err
	})
	// Counted thread by thread (the thread row is read once per thread,
	// not once per message): half the planning and execution time of a
	// join grouped by thread.
	b.Queue(`SELECT me.thread_id, (SELECT count(*)::int FROM messages m
			WHERE m.thread_id = me.thread_id AND m.seq > me.read_seq
			  AND m.author_id IS DISTINCT FROM $2 AND m.recalled_at IS NULL AND m.purged_at IS NULL
			  AND NOT EXISTS (SELECT 1 FROM message_receipts r WHERE r.message_id = m.id AND r.user_id = $2 AND r.read_at IS NOT NULL)
			  AND `+visibleSQL("$2")+`) AS unread
		FROM unnest($1::uuid[]) AS x (id)
		JOIN thread_members me ON me.thread_id = x.id AND me.user_id = $2 AND me.left_at IS NULL
		JOIN threads t ON t.id = me.thread_id`, ids, viewer).Query(func(rows pgx.Rows) error {
		var err error
		unread, err = pgx.CollectRows(rows, pgx.RowToStructByName[unreadRow])
		return err
	})
	if err := q.SendBatch(ctx, &b).Close(); err != nil {
		return err
	}
	for i := range ts {
		ts[i].Members = []Member{}
		for _, m := range members {
			if m.ThreadID == ts[i].ID {
				ts[i].Members = append(ts[i].Members, m.Member)
			}
		}
		for _, u := range unread {
			if u.ThreadID == ts[i].ID {
				ts[i].Unread = u.Unread
			}
		}
	}
	if !detail {
		return nil
	}
	for i := range ts {
		rows, _ := q.Query(ctx, messageSelect+` WHERE m.thread_id = $1 AND `+visibleSQL("$2")+` ORDER BY m.seq DESC LIMIT 1`, ts[i].ID, viewer)
		last, err := pgx.CollectRows(rows, pgx.RowToStructByName[messageRow])
		if err != nil {
			return err
		}
		if len(last) == 0 {
			continue
		}
		var b pgx.Batch
		var a audience
		var receipts []receipt
		queueAudience(&b, ts[i], &a)
		queueReceipts(&b, last, &receipts)
		if err := q.SendBatch(ctx, &b).Close(); err != nil {
			return err
		}
		read, _, _ := tallies(a, last, receipts)
		tally := read[last[0].ID]
		ts[i].LastMessageID, ts[i].ReadBy = &last[0].ID, &tally
	}
	return nil
}

// visibleSQL is the condition "message m of thread t is visible to the user
// u" for a current member u: the thread shows its history to new members, or
// u was a member when m was posted.
func visibleSQL(u string) string {
	return `(t.history_for_new_members OR EXISTS (SELECT 1 FROM thread_members vp
		WHERE vp.thread_id = m.thread_id AND vp.user_id = ` + u + `
		  AND vp.joined_at <= m.created_at AND (vp.left_at IS NULL OR m.created_at < vp.left_at)))`
}

// addSchedulePeople adds to members the active nurses and physicians on
// in.ScheduleID, and names the group after the schedule when in has no name.
func (s *Store) addSchedulePeople(ctx context.Context, tx pgx.Tx, in *NewThread, members []uuid.UUID) ([]uuid.UUID, error) {
	name, people, err := oncall.People(ctx, tx, *in.ScheduleID, time.Now())
	if errors.Is(err, callroom.ErrNotFound) {
		return nil, callroom.Invalid("schedule_id", "no such schedule")
	}
	if err != nil {
		return nil, err
	}
	rows, _ := tx.Query(ctx, `SELECT id FROM unnest($1::uuid[]) WITH ORDINALITY AS p (id, ord)
		WHERE EXISTS (SELECT 1 FROM users u WHERE u.id = p.id AND u.active AND u.roles && ARRAY['nurse', 'physician'])
		ORDER BY ord`, people)
	clinicians, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return nil, err
	}
	if len(clinicians) == 0 {
		return nil, callroom.Invalid("schedule_id", "has no active nurse or physician on it")
	}
	for _, id := range clinicians {
		if !slices.Contains(members, id) {
			members = append(members, id)
		}
	}
	if in.Name == "" {
		in.Name = name
	}
	return members, nil
}

// threadDetails is what the audit event of a new thread says about it.
func threadDetails(in NewThread, members int) map[string]any {
	d := map[string]any{"kind": in.Kind, "members": members}
	if in.ScheduleID != nil {
		d["schedule_id"] = in.ScheduleID.String()
	}
	return d
}

package inbox

import (
	"context"
	"errors"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callroom/callroom"
	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/auth"
	"github.com/callroom/callroom/internal/pg"
)

// PageInfo is what a page tells its patient's thread. The inbox does not
// import escalation (escalation calls the inbox), so the page is described
// by value.
type PageInfo struct {
	PageID                   uuid.UUID
	PatientRef, EncounterRef string
	Priority, Summary        string
	SenderID                 uuid.UUID // uuid.Nil when the system sent it
	RecipientIDs             []uuid.UUID
}

// PostPage files a page in its patient's thread, in the page's own
// transaction tx: the page and its message commit together or not at all. It
// finds the patient's newest thread for the same encounter (or creates one),
// adds the sender and recipients as members, and posts a system message
// that references the page, so the conversation about the page happens next
// to the patient's others and members can acknowledge the page from there.
//
// A page without a patient has no patient thread: PostPage does nothing.
// Calling it again for the same page only adds new recipients (a page
// escalating to more people): the page is posted once.
func (s *Store) PostPage(ctx context.Context, tx pgx.Tx, p PageInfo) error {
	if p.PatientRef == "" {
		return nil
	}
	if err := checkPatientRef("patient_ref", p.PatientRef); err != nil {
		return err
	}
	if err := checkEncounterRef("encounter_ref", p.EncounterRef); err != nil {
		return err
	}
	// Two pages about one patient at once must find one thread, not make two.
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('inbox.patient:' || $1, 0))`, p.PatientRef); err != nil {
		return err
	}
	var sender *uuid.UUID
	members := []uuid.UUID{}
	if p.SenderID != uuid.Nil {
		sender = &p.SenderID
		members = append(members, p.SenderID)
	}
	for _, id := range p.RecipientIDs {
		if id != uuid.Nil && !slices.Contains(members, id) {
			members = append(members, id)
		}
	}
	actor := audit.Actor{UserID: p.SenderID}

	var threadID uuid.UUID
	err := tx.QueryRow(ctx, `SELECT thread_id FROM messages WHERE page_id = $1`, p.PageID).Scan(&threadID)
	if err == nil {
		// Posted before: bring new recipients in.
		t, err := getThread(ctx, tx, threadID, "FOR NO KEY UPDATE")
		if err != nil {
			return err
		}
		added, err := addMembers(ctx, tx, t.ID, members, sender)
		if err != nil || len(added) == 0 {
			return err
		}
		if err := audit.Record(ctx, tx, actor, audit.Entry{Action: "thread.member_add", ObjectType: "thread", ObjectID: t.ID.String(),
			PatientRef: t.patientRef(), Details: map[string]any{"user_ids": added, "page_id": p.PageID}}); err != nil {
			return err
		}
		return announce(ctx, tx, t.ID, EventThreadUpdated, threadEvent{ThreadID: t.ID})
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return err
	}

	err = tx.QueryRow(ctx, `SELECT id FROM threads WHERE kind = 'patient' AND patient_ref = $1 AND encounter_ref IS NOT DISTINCT FROM $2
		ORDER BY created_at DESC, id LIMIT 1 FOR NO KEY UPDATE`, p.PatientRef, nullString(p.EncounterRef)).Scan(&threadID)
	if errors.Is(err, pgx.ErrNoRows) {
		err = tx.QueryRow(ctx, `INSERT INTO threads (kind, patient_ref, encounter_ref, created_by) VALUES ('patient', $1, $2, $3) RETURNING id`,
			p.PatientRef, nullString(p.EncounterRef), sender).Scan(&threadID)
		if err != nil {
			return err
		}
		if err := audit.Record(ctx, tx, actor, audit.Entry{Action: "thread.create", ObjectType: "thread", ObjectID: threadID.String(),
			PatientRef: p.PatientRef, Details: map[string]any{"kind": Patient, "page_id": p.PageID}}); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	added, err := addMembers(ctx, tx, threadID, members, sender)
	if err != nil {
		return err
	}
	priority := Priority(p.Priority)
	if !priority.valid() {
		priority = Routine
	}
	id, err := s.insertMessage(ctx, tx, draft{threadID: threadID, priority: priority, text: pageText(p.Summary), pageID: &p.PageID})
	if err != nil {
		return err
	}
	if err := audit.Record(ctx, tx, actor, audit.Entry{Action: "message.create", ObjectType: "message", ObjectID: id.String(),
		PatientRef: p.PatientRef, Details: map[string]any{"thread_id": threadID, "page_id": p.PageID, "priority": priority,
			"members_added": len(added)}}); err != nil {
		return err
	}
	// One publication: message.created tells new members of the thread too.
	return announce(ctx, tx, threadID, EventMessageCreated, messageEvent{ThreadID: threadID, MessageID: id})
}

// pageText is the system message's text: the page's summary, which pages
// already bound to 200 characters.
func pageText(summary string) string {
	summary = strings.TrimSpace(summary)
	if summary == "" {
		return "Page"
	}
	if utf8.RuneCountInString(summary) > MaxTextLength {
		summary = string([]rune(summary)[:MaxTextLength])
	}
	return summary
}

// PageThreadMember reports whether userID is a current member of the thread
// a page was posted into. Escalation uses it to let thread members
// acknowledge the page (POST /api/v1/pages/{id}/acknowledge) although the
// page did not notify them.
func PageThreadMember(ctx context.Context, q pg.Querier, pageID, userID uuid.UUID) (bool, error) {
	var ok bool
	err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM messages m
		JOIN thread_members tm ON tm.thread_id = m.thread_id AND tm.user_id = $2 AND tm.left_at IS NULL
		WHERE m.page_id = $1)`, pageID, userID).Scan(&ok)
	return ok, err
}

// ReplyToPage posts text from who into the thread the page was filed in, as
// a reply to the page's message there. The mail gateway calls it for a reply
// to a notification email that is not a command, so the answer lands next to
// the page where the care team reads it. ErrNotFound means the page has no
// thread (it named no patient).
func (s *Store) ReplyToPage(ctx context.Context, who auth.Principal, pageID uuid.UUID, text string) (Message, error) {
	var threadID, messageID uuid.UUID
	err := s.db.QueryRow(ctx, `SELECT thread_id, id FROM messages WHERE page_id = $1 ORDER BY seq LIMIT 1`, pageID).Scan(&threadID, &messageID)
	if errors.Is(err, pgx.ErrNoRows) {
		return Message{}, callroom.ErrNotFound
	}
	if err != nil {
		return Message{}, err
	}
	return s.Post(ctx, who, threadID, NewMessage{Text: text, Priority: Routine, ReplyTo: &messageID})
}

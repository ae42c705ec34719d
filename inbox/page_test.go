package inbox_test

import (
	"slices"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callroom/callroom/auth"
	"github.com/callroom/callroom/inbox"
)

// page inserts a page row as escalation would, and files it with PostPage in
// the same transaction.
func (e *env) page(sender auth.Principal, recipients []auth.Principal, patient, encounter, summary string) uuid.UUID {
	e.t.Helper()
	var id uuid.UUID
	err := e.inTx(func(tx pgx.Tx) error {
		var enc *string
		if encounter != "" {
			enc = &encounter
		}
		if err := tx.QueryRow(e.ctx, `INSERT INTO pages (user_id, priority, summary, patient_ref, encounter_ref, created_by)
			VALUES ($1, 'stat', $2, $3, $4, $5) RETURNING id`, recipients[0].User.ID, summary, patient, enc, sender.User.ID).Scan(&id); err != nil {
			return err
		}
		return e.store.PostPage(e.ctx, tx, inbox.PageInfo{PageID: id, PatientRef: patient, EncounterRef: encounter,
			Priority: "stat", Summary: summary, SenderID: sender.User.ID, RecipientIDs: ids(recipients...)})
	})
	if err != nil {
		e.t.Fatalf("page: %v", err)
	}
	return id
}

func TestPostPageFilesPagesInThePatientsThread(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	nina, ana, ben := e.user("Nina RN", "nurse"), e.user("Dr Ana", "physician"), e.user("Dr Ben", "physician")
	cat := e.user("Cat RN", "nurse")

	first := e.page(nina, []auth.Principal{ana}, "Patient/123", "", "chest pain bed 4")
	threads, err := e.store.PatientThreads(e.ctx, ana, "Patient/123")
	if err != nil || len(threads) != 1 {
		t.Fatalf("after the first page: %d threads (%v), want 1", len(threads), err)
	}
	th := threads[0]
	if th.Kind != inbox.Patient || !slices.Equal(memberIDs(th), ids(nina, ana)) {
		t.Errorf("thread %+v, members %v", th, memberIDs(th))
	}
	page, err := e.store.Messages(e.ctx, ana, th.ID, inbox.MessageQuery{})
	if err != nil || len(page.Messages) != 1 {
		t.Fatalf("messages: %+v %v", page, err)
	}
	m := page.Messages[0]
	if !m.System || m.AuthorID != nil || m.PageID == nil || *m.PageID != first || m.Text != "chest pain bed 4" || m.Priority != inbox.Stat {
		t.Errorf("page message %+v", m)
	}

	// The next page about the patient goes to the same thread and brings its recipient in.
	second := e.page(nina, []auth.Principal{ben}, "Patient/123", "", "troponin back")
	if got, _ := e.store.PatientThreads(e.ctx, ana, "Patient/123"); len(got) != 1 || got[0].ID != th.ID {
		t.Fatalf("the second page made another thread: %+v", got)
	}
	if texts := e.texts(ben, th); !slices.Equal(texts, []string{"chest pain bed 4", "troponin back"}) {
		t.Errorf("ben sees %q", texts)
	}

	// Filing a page again only adds new recipients; it posts once.
	if err := e.inTx(func(tx pgx.Tx) error {
		return e.store.PostPage(e.ctx, tx, inbox.PageInfo{PageID: second, PatientRef: "Patient/123", Priority: "stat",
			Summary: "troponin back", SenderID: nina.User.ID, RecipientIDs: ids(ben, cat)})
	}); err != nil {
		t.Fatal(err)
	}
	if n := e.count(`SELECT count(*) FROM messages WHERE page_id = $1`, second); n != 1 {
		t.Errorf("page posted %d times, want once", n)
	}
	if view, _ := e.store.Thread(e.ctx, cat, th.ID); len(view.Members) != 4 {
		t.Errorf("cat did not join: %v", memberIDs(view))
	}

	// Members of the thread may act on its pages; others may not.
	for _, tc := range []struct {
		who  auth.Principal
		want bool
	}{{ana, true}, {ben, true}, {cat, true}, {e.user("Dan RN", "nurse"), false}} {
		got, err := inbox.PageThreadMember(e.ctx, e.db.Pool, first, tc.who.User.ID)
		if err != nil || got != tc.want {
			t.Errorf("%s may act on the page: %v (%v), want %v", tc.who.User.Name, got, err, tc.want)
		}
	}

	// Another encounter is another conversation; no patient, no thread.
	e.page(nina, []auth.Principal{ana}, "Patient/123", "Encounter/9", "new admission")
	if got, _ := e.store.PatientThreads(e.ctx, ana, "Patient/123"); len(got) != 2 {
		t.Errorf("%d threads after a page for another encounter, want 2", len(got))
	}
	before := e.count(`SELECT count(*) FROM threads`)
	if err := e.inTx(func(tx pgx.Tx) error {
		return e.store.PostPage(e.ctx, tx, inbox.PageInfo{PageID: uuid.New(), Summary: "no patient", SenderID: nina.User.ID})
	}); err != nil {
		t.Errorf("a page without a patient: %v", err)
	}
	if n := e.count(`SELECT count(*) FROM threads`); n != before {
		t.Error("a page without a patient made a thread")
	}
}

func TestPostPageJoinsAnExistingCareTeamThread(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	nina, ana, ben := e.user("Nina RN", "nurse"), e.user("Dr Ana", "physician"), e.user("Dr Ben", "physician")
	team := e.thread(ana, inbox.NewThread{Kind: inbox.Patient, PatientRef: "urn:oid:1.2.3|MRN42", MemberIDs: ids(nina)})
	e.page(nina, []auth.Principal{ben}, "urn:oid:1.2.3|MRN42", "", "pain 8/10")
	view, err := e.store.Thread(e.ctx, ben, team.ID)
	if err != nil || len(view.Members) != 3 {
		t.Fatalf("the page did not join the care team's thread: %+v %v", view, err)
	}
	if n := e.count(`SELECT count(*) FROM threads`); n != 1 {
		t.Errorf("%d threads, want 1", n)
	}
}

package inbox_test

import (
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/inbox"
)

func TestDirectThreadIsOnePerPair(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ana, ben := e.user("Dr Ana", "physician"), e.user("Ben RN", "nurse")

	first, created, err := e.store.CreateThread(e.ctx, ana, inbox.NewThread{Kind: inbox.Direct, MemberIDs: ids(ben)})
	if err != nil || !created {
		t.Fatalf("first: created %v, %v", created, err)
	}
	if len(first.Members) != 2 || first.Name != "" || first.PatientRef != nil {
		t.Errorf("direct thread %+v", first)
	}
	for _, tc := range []struct {
		name string
		who  inbox.NewThread
		by   string
	}{
		{"the other person asks", inbox.NewThread{Kind: inbox.Direct, MemberIDs: ids(ana)}, "ben"},
		{"the same person asks again", inbox.NewThread{Kind: inbox.Direct, MemberIDs: ids(ben)}, "ana"},
		{"listing themselves too", inbox.NewThread{Kind: inbox.Direct, MemberIDs: ids(ana, ben)}, "ana"},
	} {
		by := ana
		if tc.by == "ben" {
			by = ben
		}
		again, created, err := e.store.CreateThread(e.ctx, by, tc.who)
		if err != nil || created || again.ID != first.ID {
			t.Errorf("%s: %v created=%v err=%v, want the existing %v", tc.name, again.ID, created, err, first.ID)
		}
	}
	if n := e.count(`SELECT count(*) FROM threads WHERE kind = 'direct'`); n != 1 {
		t.Errorf("%d direct threads, want 1", n)
	}
	// A direct thread keeps its two people.
	cat := e.user("Cat RN", "nurse")
	_, err = e.store.AddMembers(e.ctx, ana, first.ID, ids(cat))
	conflict(t, "adding a third person", err)
	conflict(t, "leaving a direct thread", e.store.RemoveMember(e.ctx, ana, first.ID, ana.User.ID))
}

func TestCreateThreadValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ana, ben, cat := e.user("Dr Ana", "physician"), e.user("Ben RN", "nurse"), e.user("Cat RN", "nurse")
	sched := e.user("Sam Scheduler", "scheduler")
	no := false
	for _, tc := range []struct {
		name  string
		in    inbox.NewThread
		field string
	}{
		{"no kind", inbox.NewThread{Name: "x"}, "kind"},
		{"unknown kind", inbox.NewThread{Kind: "channel", Name: "x"}, "kind"},
		{"group without a name", inbox.NewThread{Kind: inbox.Group, Name: "  "}, "name"},
		{"name too long", inbox.NewThread{Kind: inbox.Group, Name: strings.Repeat("n", 201)}, "name"},
		{"group with a patient", inbox.NewThread{Kind: inbox.Group, Name: "x", PatientRef: "Patient/1"}, "patient_ref"},
		{"patient without a ref", inbox.NewThread{Kind: inbox.Patient}, "patient_ref"},
		{"patient ref of another type", inbox.NewThread{Kind: inbox.Patient, PatientRef: "Practitioner/1"}, "patient_ref"},
		{"identifier without a value", inbox.NewThread{Kind: inbox.Patient, PatientRef: "urn:oid:1.2.3|"}, "patient_ref"},
		{"identifier with a space", inbox.NewThread{Kind: inbox.Patient, PatientRef: "urn:oid:1.2.3|12 34"}, "patient_ref"},
		{"bad encounter", inbox.NewThread{Kind: inbox.Patient, PatientRef: "Patient/1", EncounterRef: "Visit/9"}, "encounter_ref"},
		{"direct with nobody", inbox.NewThread{Kind: inbox.Direct}, "member_ids"},
		{"direct with two others", inbox.NewThread{Kind: inbox.Direct, MemberIDs: ids(ben, cat)}, "member_ids"},
		{"direct with a name", inbox.NewThread{Kind: inbox.Direct, Name: "us", MemberIDs: ids(ben)}, "name"},
		{"direct with a history setting", inbox.NewThread{Kind: inbox.Direct, MemberIDs: ids(ben), HistoryForNewMembers: &no}, "history_for_new_members"},
		{"a member who is not a clinician", inbox.NewThread{Kind: inbox.Group, Name: "x", MemberIDs: ids(ben, sched)}, "member_ids"},
		{"an unknown member", inbox.NewThread{Kind: inbox.Group, Name: "x", MemberIDs: []uuid.UUID{uuid.New()}}, "member_ids"},
		{"the nil id", inbox.NewThread{Kind: inbox.Group, Name: "x", MemberIDs: []uuid.UUID{uuid.Nil}}, "member_ids.0"},
	} {
		_, _, err := e.store.CreateThread(e.ctx, ana, tc.in)
		invalid(t, tc.name, err, tc.field)
	}
	if n := e.count(`SELECT count(*) FROM threads`); n != 0 {
		t.Errorf("rejected input wrote %d threads", n)
	}
	for _, ref := range []string{"Patient/123", "urn:oid:2.16.840.1.113883.3.1|MRN-0042", "http://hospital.example.org/mrn|0042"} {
		th := e.thread(ana, inbox.NewThread{Kind: inbox.Patient, PatientRef: ref, EncounterRef: "Encounter/9", MemberIDs: ids(ben)})
		if th.PatientRef == nil || *th.PatientRef != ref || !th.HistoryForNewMembers {
			t.Errorf("patient thread for %s: %+v", ref, th)
		}
	}
}

func TestOnlyCliniciansStartThreads(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ben := e.user("Ben RN", "nurse")
	for _, role := range []string{"scheduler", "auditor", "admin"} {
		who := e.user("Not a clinician", role)
		_, _, err := e.store.CreateThread(e.ctx, who, inbox.NewThread{Kind: inbox.Direct, MemberIDs: ids(ben)})
		forbidden(t, role, err)
		if got := e.denied(who, "thread.create"); len(got) != 1 {
			t.Errorf("%s: %d audited refusals, want 1", role, len(got))
		}
	}
}

func TestPatientThreadReadsAreAudited(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ana, ben, dan := e.user("Dr Ana", "physician"), e.user("Ben RN", "nurse"), e.user("Dan RN", "nurse")
	aud := e.user("Avi Auditor", "auditor")
	const ref = "Patient/123"
	th := e.thread(ana, inbox.NewThread{Kind: inbox.Patient, PatientRef: ref, MemberIDs: ids(ben)})
	e.thread(ana, inbox.NewThread{Kind: inbox.Patient, PatientRef: "Patient/999"})
	e.post(ana, th, "K+ 6.8, repeat draw?")

	if _, err := e.store.Thread(e.ctx, ben, th.ID); err != nil {
		t.Fatal(err)
	}
	e.texts(ben, th)
	mine, err := e.store.PatientThreads(e.ctx, ben, ref)
	if err != nil || len(mine) != 1 || mine[0].ID != th.ID || len(mine[0].Members) != 2 {
		t.Fatalf("ben's chart view: %+v %v", mine, err)
	}
	if mine[0].Unread != 1 {
		t.Errorf("unread %d, want 1: listing delivers a message, it does not read it", mine[0].Unread)
	}
	for _, action := range []string{"thread.read", "message.list", "thread.list"} {
		evs := e.audits(audit.Filter{ActorID: &ben.User.ID, Action: action, PatientRef: ref})
		if len(evs) != 1 || evs[0].Outcome != audit.Success {
			t.Errorf("%s by ben about %s: %d events, want 1", action, ref, len(evs))
		}
	}

	// Someone outside the thread sees nothing, is still audited, and is
	// refused opening it, with the patient named in the refusal.
	none, err := e.store.PatientThreads(e.ctx, dan, ref)
	if err != nil || len(none) != 0 {
		t.Errorf("dan's chart view: %+v %v", none, err)
	}
	if evs := e.audits(audit.Filter{ActorID: &dan.User.ID, Action: "thread.list", PatientRef: ref}); len(evs) != 1 {
		t.Errorf("dan's empty chart view audited %d times, want 1", len(evs))
	}
	_, err = e.store.Thread(e.ctx, dan, th.ID)
	forbidden(t, "non-member opening", err)
	_, err = e.store.Messages(e.ctx, dan, th.ID, inbox.MessageQuery{})
	forbidden(t, "non-member listing", err)
	for _, action := range []string{"thread.read", "message.list"} {
		got := e.denied(dan, action)
		if len(got) != 1 || got[0].PatientRef == nil || *got[0].PatientRef != ref || got[0].ObjectID != th.ID.String() {
			t.Errorf("refused %s: %+v", action, got)
		}
	}

	// An auditor investigates every thread about the patient.
	all, err := e.store.PatientThreads(e.ctx, aud, ref)
	if err != nil || len(all) != 1 {
		t.Errorf("auditor's chart view: %d threads, %v", len(all), err)
	}
	_, err = e.store.PatientThreads(e.ctx, ben, "123")
	invalid(t, "a bare id", err, "ref")

	// The caller's own list names each patient listed in the trail.
	if _, err := e.store.Threads(e.ctx, ana, inbox.ThreadFilter{}); err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{ref, "Patient/999"} {
		if evs := e.audits(audit.Filter{ActorID: &ana.User.ID, Action: "thread.list", PatientRef: r}); len(evs) != 1 {
			t.Errorf("ana's list: %d events about %s, want 1", len(evs), r)
		}
	}
}

func TestThreadsListsCurrentThreadsNewestActivityFirst(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ana, ben := e.user("Dr Ana", "physician"), e.user("Ben RN", "nurse")
	old := e.group(ana, true, ben)
	quiet := e.thread(ana, inbox.NewThread{Kind: inbox.Direct, MemberIDs: ids(ben)})
	e.post(ana, old, "newest activity")
	got, err := e.store.Threads(e.ctx, ben, inbox.ThreadFilter{})
	if err != nil || len(got) != 2 || got[0].ID != old.ID || got[1].ID != quiet.ID {
		t.Fatalf("ben's threads: %+v %v", got, err)
	}
	if got[0].Unread != 1 || got[1].Unread != 0 {
		t.Errorf("unread %d, %d; want 1, 0", got[0].Unread, got[1].Unread)
	}
	direct, err := e.store.Threads(e.ctx, ben, inbox.ThreadFilter{Kind: inbox.Direct})
	if err != nil || len(direct) != 1 || direct[0].ID != quiet.ID {
		t.Errorf("direct only: %+v %v", direct, err)
	}
	_, err = e.store.Threads(e.ctx, ben, inbox.ThreadFilter{Kind: "channel"})
	invalid(t, "unknown kind", err, "kind")
	if err := e.store.RemoveMember(e.ctx, ben, old.ID, ben.User.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.store.Threads(e.ctx, ben, inbox.ThreadFilter{}); len(got) != 1 {
		t.Errorf("after leaving: %d threads, want 1", len(got))
	}
}

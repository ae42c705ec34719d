package inbox_test

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/auth"
	"github.com/callroom/callroom/inbox"
)

func TestPostValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ana, ben := e.user("Dr Ana", "physician"), e.user("Ben RN", "nurse")
	th := e.group(ana, true, ben)
	other := e.thread(ana, inbox.NewThread{Kind: inbox.Direct, MemberIDs: ids(ben)})
	elsewhere := e.post(ana, other, "in another thread")
	before := e.count(`SELECT count(*) FROM messages`)
	for _, tc := range []struct {
		name  string
		in    inbox.NewMessage
		field string
	}{
		{"empty", inbox.NewMessage{}, "text"},
		{"blank", inbox.NewMessage{Text: " \n\t "}, "text"},
		{"too long", inbox.NewMessage{Text: strings.Repeat("é", inbox.MaxTextLength+1)}, "text"},
		{"bad priority", inbox.NewMessage{Text: "x", Priority: "whenever"}, "priority"},
		{"reply to another thread", inbox.NewMessage{Text: "x", ReplyTo: &elsewhere.ID}, "reply_to"},
		{"reply to nothing", inbox.NewMessage{Text: "x", ReplyTo: ptr(uuid.New())}, "reply_to"},
		{"unknown attachment", inbox.NewMessage{Text: "x", AttachmentIDs: []uuid.UUID{uuid.New()}}, "attachment_ids.0"},
		{"attachment twice", inbox.NewMessage{Text: "x", AttachmentIDs: []uuid.UUID{elsewhere.ID, elsewhere.ID}}, "attachment_ids.1"},
	} {
		_, err := e.store.Post(e.ctx, ana, th.ID, tc.in)
		invalid(t, tc.name, err, tc.field)
	}
	if n := e.count(`SELECT count(*) FROM messages`); n != before {
		t.Errorf("rejected posts wrote %d messages", n-before)
	}

	longest := strings.Repeat("é", inbox.MaxTextLength)
	m, err := e.store.Post(e.ctx, ana, th.ID, inbox.NewMessage{Text: longest, Priority: inbox.Stat})
	if err != nil || m.Text != longest || m.Priority != inbox.Stat || m.Version != 1 || m.System {
		t.Fatalf("longest message: %v", err)
	}
	reply, err := e.store.Post(e.ctx, ben, th.ID, inbox.NewMessage{Text: "on my way", ReplyTo: &m.ID})
	if err != nil || reply.ReplyTo == nil || *reply.ReplyTo != m.ID || reply.Priority != inbox.Routine {
		t.Fatalf("reply: %+v %v", reply, err)
	}
	if evs := e.audits(audit.Filter{Action: "message.create", ObjectID: reply.ID.String()}); len(evs) != 1 {
		t.Errorf("%d audit events for the reply, want 1", len(evs))
	}
}

func TestTextIsSealedAtRest(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ana, ben := e.user("Dr Ana", "physician"), e.user("Ben RN", "nurse")
	th := e.thread(ana, inbox.NewThread{Kind: inbox.Patient, PatientRef: "Patient/123", MemberIDs: ids(ben)})
	const secret = "Potassium 6.8 for Jane Doe in bed 12"
	m := e.post(ana, th, secret)
	other := e.post(ana, th, "unrelated")

	var body []byte
	var keyID uuid.UUID
	if err := e.db.Pool.QueryRow(e.ctx, `SELECT body, key_id FROM message_versions WHERE message_id = $1`, m.ID).Scan(&body, &keyID); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(body, []byte(secret)) || bytes.Contains(body, []byte("Potassium")) {
		t.Fatal("message_versions.body holds the plaintext")
	}
	if keyID != e.sealer.keyID {
		t.Errorf("key_id %v, want the sealer's %v", keyID, e.sealer.keyID)
	}
	if n := e.count(`SELECT count(*) FROM message_versions WHERE position($1::bytea IN body) > 0`, []byte("Jane Doe")); n != 0 {
		t.Errorf("%d rows contain the patient's name", n)
	}
	if got := e.texts(ben, th); !slices.Equal(got, []string{secret, "unrelated"}) {
		t.Errorf("ben reads %q", got)
	}

	// A blob moved onto another row does not open there: the associated
	// data names the message and version it was sealed for.
	if _, err := e.db.Pool.Exec(e.ctx, `UPDATE message_versions SET body = $2 WHERE message_id = $1`, other.ID, body); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Message(e.ctx, ben, th.ID, other.ID); err == nil {
		t.Error("a blob copied from another message opened")
	}
}

func TestEditKeepsEveryVersion(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ana, ben := e.user("Dr Ana", "physician"), e.user("Ben RN", "nurse")
	aud, admin := e.user("Avi Auditor", "auditor"), e.user("Ada Admin", "admin")
	th := e.thread(ana, inbox.NewThread{Kind: inbox.Patient, PatientRef: "Patient/7", MemberIDs: ids(ben)})
	m := e.post(ana, th, "give 10 mg")
	for _, text := range []string{"give 1 mg", "give 1 mg IV"} {
		if _, err := e.store.Edit(e.ctx, ana, th.ID, m.ID, text); err != nil {
			t.Fatal(err)
		}
	}
	seen, err := e.store.Message(e.ctx, ben, th.ID, m.ID)
	if err != nil || seen.Text != "give 1 mg IV" || seen.Version != 3 || seen.EditedAt == nil {
		t.Fatalf("ben sees %+v %v", seen, err)
	}

	_, err = e.store.Edit(e.ctx, ben, th.ID, m.ID, "give 100 mg")
	forbidden(t, "editing someone else's message", err)
	if len(e.denied(ben, "message.edit")) != 1 {
		t.Error("the refused edit was not audited")
	}
	_, err = e.store.Edit(e.ctx, ana, th.ID, m.ID, "")
	invalid(t, "emptying a message", err, "text")
	_, err = e.store.Edit(e.ctx, ana, th.ID, uuid.New(), "x")
	if err == nil {
		t.Error("edited a message that does not exist")
	}

	for _, tc := range []struct {
		name string
		who  auth.Principal
		ok   bool
	}{
		{"auditor", aud, true},
		{"admin", admin, true},
		{"member", ben, false},
	} {
		h, err := e.store.Versions(e.ctx, tc.who, th.ID, m.ID)
		if !tc.ok {
			forbidden(t, tc.name+" reading versions", err)
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var texts []string
		for _, v := range h.Versions {
			texts = append(texts, v.Text)
		}
		if !slices.Equal(texts, []string{"give 10 mg", "give 1 mg", "give 1 mg IV"}) {
			t.Errorf("%s reads versions %q", tc.name, texts)
		}
		evs := e.audits(audit.Filter{ActorID: &tc.who.User.ID, Action: "message.versions", PatientRef: "Patient/7"})
		if len(evs) != 1 {
			t.Errorf("%s's read of the versions audited %d times, want 1", tc.name, len(evs))
		}
	}
	if n := e.count(`SELECT count(*) FROM message_versions WHERE message_id = $1`, m.ID); n != 3 {
		t.Errorf("%d versions stored, want 3", n)
	}
	if _, err := e.db.Pool.Exec(e.ctx, `DELETE FROM message_versions WHERE message_id = $1`, m.ID); err == nil {
		t.Error("the database let a version be deleted")
	}
}

func TestRecallHidesTextAndKeepsVersions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ana, ben := e.user("Dr Ana", "physician"), e.user("Ben RN", "nurse")
	aud, admin := e.user("Avi Auditor", "auditor"), e.user("Ada Admin", "admin")
	th := e.group(ana, true, ben)
	m := e.post(ana, th, "wrong patient, sorry")
	if _, err := e.store.Edit(e.ctx, ana, th.ID, m.ID, "wrong patient!"); err != nil {
		t.Fatal(err)
	}

	_, err := e.store.Recall(e.ctx, ben, th.ID, m.ID)
	forbidden(t, "a member recalling someone else's message", err)
	if len(e.denied(ben, "message.recall")) != 1 {
		t.Error("the refused recall was not audited")
	}
	r, err := e.store.Recall(e.ctx, ana, th.ID, m.ID)
	if err != nil || !r.Recalled || r.Text != "" || r.RecalledBy == nil || *r.RecalledBy != ana.User.ID {
		t.Fatalf("recall: %+v %v", r, err)
	}
	if _, err := e.store.Recall(e.ctx, ana, th.ID, m.ID); err != nil {
		t.Errorf("recalling twice: %v", err)
	}
	seen, err := e.store.Message(e.ctx, ben, th.ID, m.ID)
	if err != nil || !seen.Recalled || seen.Text != "" {
		t.Errorf("ben sees %+v %v", seen, err)
	}
	_, err = e.store.Edit(e.ctx, ana, th.ID, m.ID, "unrecall")
	conflict(t, "editing a recalled message", err)

	h, err := e.store.Versions(e.ctx, aud, th.ID, m.ID)
	if err != nil || len(h.Versions) != 2 || h.Versions[0].Text != "wrong patient, sorry" || h.RecalledAt == nil {
		t.Errorf("auditor's history %+v %v", h, err)
	}

	// An administrator recalls any message, member or not.
	other := e.post(ben, th, "posted in error")
	if r, err := e.store.Recall(e.ctx, admin, th.ID, other.ID); err != nil || !r.Recalled {
		t.Errorf("admin recall: %+v %v", r, err)
	}
	if got := e.texts(ana, th); !slices.Equal(got, []string{"", ""}) {
		t.Errorf("texts after recalls %q, want none", got)
	}
}

func TestMessagesPageNewestFirst(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ana, ben := e.user("Dr Ana", "physician"), e.user("Ben RN", "nurse")
	th := e.group(ana, true, ben)
	for _, text := range []string{"1", "2", "3", "4", "5"} {
		e.post(ana, th, text)
	}
	var got [][]string
	q := inbox.MessageQuery{Limit: 2}
	for {
		page, err := e.store.Messages(e.ctx, ben, th.ID, q)
		if err != nil {
			t.Fatal(err)
		}
		var texts []string
		for _, m := range page.Messages {
			texts = append(texts, m.Text)
		}
		got = append(got, texts)
		if page.NextBefore == "" {
			break
		}
		q.Before = page.NextBefore
	}
	if want := [][]string{{"5", "4"}, {"3", "2"}, {"1"}}; !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("pages %q, want %q", got, want)
	}
	for _, tc := range []struct {
		q     inbox.MessageQuery
		field string
	}{
		{inbox.MessageQuery{Before: "not-a-cursor"}, "before"},
		{inbox.MessageQuery{Before: "czA"}, "before"},
		{inbox.MessageQuery{Limit: inbox.MaxPageSize + 1}, "limit"},
		{inbox.MessageQuery{Limit: -1}, "limit"},
	} {
		_, err := e.store.Messages(e.ctx, ben, th.ID, tc.q)
		invalid(t, tc.field, err, tc.field)
	}
	if n := e.count(`SELECT count(*) FROM message_receipts WHERE user_id = $1 AND delivered_at IS NOT NULL`, ben.User.ID); n != 5 {
		t.Errorf("%d messages delivered to ben after reading every page, want 5", n)
	}
}

func ptr[T any](v T) *T { return &v }

package inbox_test

import (
	"testing"
	"time"

	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/inbox"
)

func TestRetentionPurgeRespectsLegalHold(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ana, ben, cat := e.user("Dr Ana", "physician"), e.user("Ben RN", "nurse"), e.user("Cat RN", "nurse")
	admin := e.user("Ada Admin", "admin")

	withBen := e.thread(ana, inbox.NewThread{Kind: inbox.Direct, MemberIDs: ids(ben)})
	withCat := e.thread(ana, inbox.NewThread{Kind: inbox.Direct, MemberIDs: ids(cat)})
	group := e.group(ana, true, ben)
	photo, err := e.store.Upload(e.ctx, ana, withBen.ID, "wound.png", pngBytes(100))
	if err != nil {
		t.Fatal(err)
	}
	gone, err := e.store.Post(e.ctx, ana, withBen.ID, inbox.NewMessage{Text: "photo of the wound", AttachmentIDs: ids2(photo.ID)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Edit(e.ctx, ana, withBen.ID, gone.ID, "photo of the wound, day 2"); err != nil {
		t.Fatal(err)
	}
	held := e.post(ana, withCat, "held for litigation")
	e.post(ana, group, "groups have no policy")
	unsent, err := e.store.Upload(e.ctx, ana, group.ID, "", pngBytes(50))
	if err != nil {
		t.Fatal(err)
	}

	// Only administrators set policies and holds; refusals are audited.
	_, err = e.store.SetRetention(e.ctx, ana, inbox.Direct, 30)
	forbidden(t, "a physician setting retention", err)
	_, err = e.store.SetLegalHold(e.ctx, ana, withCat.ID, true)
	forbidden(t, "a physician placing a hold", err)
	if len(e.denied(ana, "retention.set")) != 1 || len(e.denied(ana, "thread.legal_hold")) != 1 {
		t.Error("refusals not audited")
	}
	for _, tc := range []struct {
		kind  inbox.Kind
		days  int
		field string
	}{{"channel", 30, "kind"}, {inbox.Direct, 0, "days"}, {inbox.Direct, inbox.MaxRetentionDays + 1, "days"}} {
		_, err := e.store.SetRetention(e.ctx, admin, tc.kind, tc.days)
		invalid(t, tc.field, err, tc.field)
	}
	if p, err := e.store.SetRetention(e.ctx, admin, inbox.Direct, 30); err != nil || p.Days != 30 || p.Kind != inbox.Direct {
		t.Fatalf("policy: %+v %v", p, err)
	}
	if th, err := e.store.SetLegalHold(e.ctx, admin, withCat.ID, true); err != nil || !th.LegalHold {
		t.Fatalf("hold: %+v %v", th, err)
	}

	auditRows := e.count(`SELECT count(*) FROM audit_events`)
	days := func(n int) time.Time { return time.Now().Add(time.Duration(n) * 24 * time.Hour) }
	for _, tc := range []struct {
		name string
		at   time.Time
		want inbox.PurgeResult
	}{
		{"within every limit", days(6), inbox.PurgeResult{}},
		{"an upload no message took, after a week", days(29), inbox.PurgeResult{Attachments: 1}},
		{"direct messages, after the policy's 30 days", days(31), inbox.PurgeResult{Messages: 1, Attachments: 1}},
		{"again: nothing left", days(31), inbox.PurgeResult{}},
	} {
		res, err := e.store.Purge(e.ctx, tc.at)
		if err != nil || res != tc.want {
			t.Fatalf("%s: purged %+v (%v), want %+v", tc.name, res, err, tc.want)
		}
	}
	// Two purges erased something: two audit events, nothing else touched.
	if n := e.count(`SELECT count(*) FROM audit_events`); n != auditRows+2 {
		t.Errorf("audit rows %d, want %d: a purge only adds its own", n, auditRows+2)
	}
	if n := e.count(`SELECT count(*) FROM message_versions WHERE message_id = $1 AND body IS NULL AND key_id IS NULL`, gone.ID); n != 2 {
		t.Errorf("%d of 2 versions erased", n)
	}
	if n := e.count(`SELECT count(*) FROM attachments WHERE id = ANY($1) AND content IS NULL AND filename IS NULL`, ids2(photo.ID, unsent.ID)); n != 2 {
		t.Errorf("%d of 2 attachments erased", n)
	}
	m, err := e.store.Message(e.ctx, ben, withBen.ID, gone.ID)
	if err != nil || !m.Purged || m.Text != "" || len(m.Attachments) != 0 {
		t.Errorf("purged message as ben sees it: %+v %v", m, err)
	}
	if got := e.texts(cat, withCat); len(got) != 1 || got[0] != held.Text {
		t.Errorf("the held thread lost its text: %q", got)
	}
	if got := e.texts(ben, group); len(got) != 1 || got[0] != "groups have no policy" {
		t.Errorf("a kind without a policy lost its text: %q", got)
	}
	h, err := e.store.Versions(e.ctx, admin, withBen.ID, gone.ID)
	if err != nil || len(h.Versions) != 2 || !h.Versions[0].Purged || h.Versions[0].Text != "" || h.PurgedAt == nil {
		t.Errorf("history after purge: %+v %v", h, err)
	}

	// Each purge that erased something is audited, by the system, with
	// counts only.
	evs := e.audits(audit.Filter{Action: "retention.purge"})
	if len(evs) != 2 || evs[0].ActorID != nil || evs[0].Details["unsent_attachments"] != float64(1) ||
		evs[1].ObjectID != "direct" || evs[1].Details["messages"] != float64(1) || evs[1].Details["attachments"] != float64(1) {
		t.Errorf("purge audit events %+v", evs)
	}

	// Lifting the hold lets the next purge in.
	if _, err := e.store.SetLegalHold(e.ctx, admin, withCat.ID, false); err != nil {
		t.Fatal(err)
	}
	if res, _ := e.store.Purge(e.ctx, days(31)); res.Messages != 1 {
		t.Errorf("after lifting the hold: %+v, want 1 message", res)
	}
}

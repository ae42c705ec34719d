package inbox_test

import (
	"slices"
	"testing"

	"github.com/google/uuid"

	"github.com/callroom/callroom/inbox"
)

func TestHistoryForNewMembers(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		history bool
		catSees []string
	}{
		{true, []string{"before cat", "after cat"}},
		{false, []string{"after cat"}},
	} {
		e := newEnv(t)
		ana, ben, cat := e.user("Dr Ana", "physician"), e.user("Ben RN", "nurse"), e.user("Cat RN", "nurse")
		th := e.group(ana, tc.history, ben)
		e.post(ana, th, "before cat")
		if _, err := e.store.AddMembers(e.ctx, ben, th.ID, ids(cat)); err != nil {
			t.Fatal(err)
		}
		e.post(ana, th, "after cat")
		if got := e.texts(cat, th); !slices.Equal(got, tc.catSees) {
			t.Errorf("history %v: cat sees %q, want %q", tc.history, got, tc.catSees)
		}
		if got := e.texts(ben, th); len(got) != 2 {
			t.Errorf("history %v: ben sees %q, want both", tc.history, got)
		}
		view, err := e.store.Thread(e.ctx, cat, th.ID)
		if err != nil || view.Unread != len(tc.catSees) {
			t.Errorf("history %v: cat's unread %d (%v), want %d", tc.history, view.Unread, err, len(tc.catSees))
		}
	}
}

func TestMembershipGatesReadingAndPosting(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ana, ben, dan := e.user("Dr Ana", "physician"), e.user("Ben RN", "nurse"), e.user("Dan RN", "nurse")
	th := e.group(ana, false, ben)
	first := e.post(ana, th, "first")

	// Not a member: every read and write is refused and audited; nothing is written.
	before := e.count(`SELECT count(*) FROM messages`)
	for _, tc := range []struct {
		action string
		do     func() error
	}{
		{"thread.read", func() error { _, err := e.store.Thread(e.ctx, dan, th.ID); return err }},
		{"message.list", func() error { _, err := e.store.Messages(e.ctx, dan, th.ID, inbox.MessageQuery{}); return err }},
		{"message.read", func() error { _, err := e.store.Message(e.ctx, dan, th.ID, first.ID); return err }},
		{"message.create", func() error {
			_, err := e.store.Post(e.ctx, dan, th.ID, inbox.NewMessage{Text: "let me in"})
			return err
		}},
		{"message.mark_read", func() error { _, err := e.store.MarkRead(e.ctx, dan, th.ID, first.ID); return err }},
		{"thread.member_add", func() error { _, err := e.store.AddMembers(e.ctx, dan, th.ID, ids(dan)); return err }},
		{"thread.member_remove", func() error { return e.store.RemoveMember(e.ctx, dan, th.ID, ben.User.ID) }},
		{"attachment.upload", func() error { _, err := e.store.Upload(e.ctx, dan, th.ID, "", pngBytes(10)); return err }},
		{"attachment.list", func() error { _, err := e.store.Attachments(e.ctx, dan, th.ID); return err }},
	} {
		forbidden(t, tc.action, tc.do())
		if got := e.denied(dan, tc.action); len(got) != 1 {
			t.Errorf("%s: %d audited refusals, want 1", tc.action, len(got))
		}
	}
	if n := e.count(`SELECT count(*) FROM messages`); n != before {
		t.Errorf("refused posts wrote %d messages", n-before)
	}
	if _, err := e.store.Thread(e.ctx, dan, uuid.New()); err == nil {
		t.Error("opening a thread that does not exist succeeded")
	}

	// Removed: refused at once.
	if err := e.store.RemoveMember(e.ctx, ana, th.ID, ben.User.ID); err != nil {
		t.Fatal(err)
	}
	_, err := e.store.Post(e.ctx, ben, th.ID, inbox.NewMessage{Text: "still here?"})
	forbidden(t, "removed member posting", err)
	e.post(ana, th, "while ben was away")

	// Back again, ben sees what he saw before, not what was said while he
	// was out (this thread hides history from new members).
	if _, err := e.store.AddMembers(e.ctx, ana, th.ID, ids(ben)); err != nil {
		t.Fatal(err)
	}
	e.post(ana, th, "welcome back")
	if got, want := e.texts(ben, th), []string{"first", "welcome back"}; !slices.Equal(got, want) {
		t.Errorf("ben sees %q, want %q", got, want)
	}
	if n := e.count(`SELECT count(*) FROM thread_members WHERE thread_id = $1 AND user_id = $2`, th.ID, ben.User.ID); n != 2 {
		t.Errorf("ben has %d membership periods, want 2 (both kept)", n)
	}

	// Members must be clinicians; removing a non-member is not found.
	sched := e.user("Sam Scheduler", "scheduler")
	_, err = e.store.AddMembers(e.ctx, ana, th.ID, ids(sched))
	invalid(t, "adding a scheduler", err, "user_ids")
	_, err = e.store.AddMembers(e.ctx, ana, th.ID, nil)
	invalid(t, "adding nobody", err, "user_ids")
	if err := e.store.RemoveMember(e.ctx, ana, th.ID, dan.User.ID); err == nil {
		t.Error("removing a non-member succeeded")
	}
	// Leaving oneself.
	if err := e.store.RemoveMember(e.ctx, ben, th.ID, ben.User.ID); err != nil {
		t.Fatal(err)
	}
	view, err := e.store.Thread(e.ctx, ana, th.ID)
	if err != nil || !slices.Equal(memberIDs(view), ids(ana)) {
		t.Errorf("members after ben left: %v %v", memberIDs(view), err)
	}
}

func memberIDs(th inbox.Thread) []uuid.UUID {
	out := []uuid.UUID{}
	for _, m := range th.Members {
		out = append(out, m.UserID)
	}
	return out
}

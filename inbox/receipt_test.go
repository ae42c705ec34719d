package inbox_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/auth"
	"github.com/callroom/callroom/inbox"
)

func TestReadReceipts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ana := e.user("Dr Ana", "physician")
	ben, cat, dan, eve := e.user("Ben RN", "nurse"), e.user("Cat RN", "nurse"), e.user("Dan RN", "nurse"), e.user("Eve RN", "nurse")
	th := e.group(ana, true, ben, cat, dan, eve)
	m1, m2, m3 := e.post(ana, th, "one"), e.post(ana, th, "two"), e.post(ana, th, "three")

	for _, r := range []struct {
		who  auth.Principal
		upTo uuid.UUID
	}{{ben, m3.ID}, {cat, m2.ID}, {dan, m3.ID}} {
		if _, err := e.store.MarkRead(e.ctx, r.who, th.ID, r.upTo); err != nil {
			t.Fatal(err)
		}
	}
	page, err := e.store.Messages(e.ctx, ana, th.ID, inbox.MessageQuery{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[uuid.UUID][]uuid.UUID{
		m3.ID: ids(ben, dan),
		m2.ID: ids(ben, cat, dan),
		m1.ID: ids(ben, cat, dan),
	}
	for _, m := range page.Messages {
		var readers []uuid.UUID
		for _, u := range m.ReadBy.Users {
			readers = append(readers, u.UserID)
		}
		slices.SortFunc(readers, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
		w := slices.Clone(want[m.ID])
		slices.SortFunc(w, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
		// The audience is everyone but the author: "read by N of 4".
		if m.ReadBy.Of != 4 || m.ReadBy.Count != len(w) || !slices.Equal(readers, w) {
			t.Errorf("%q read by %d of %d %v, want %d of 4 %v", m.Text, m.ReadBy.Count, m.ReadBy.Of, readers, len(w), w)
		}
	}

	// The thread view shows the newest message's receipts and each caller's unread.
	view, err := e.store.Thread(e.ctx, ana, th.ID)
	if err != nil || view.LastMessageID == nil || *view.LastMessageID != m3.ID || view.ReadBy == nil || view.ReadBy.Count != 2 || view.ReadBy.Of != 4 {
		t.Errorf("thread view: last %v read by %+v (%v)", view.LastMessageID, view.ReadBy, err)
	}
	for _, tc := range []struct {
		name   string
		who    auth.Principal
		unread int
	}{{"ana, the author", ana, 0}, {"ben", ben, 0}, {"cat", cat, 1}, {"eve", eve, 3}} {
		v, err := e.store.Thread(e.ctx, tc.who, th.ID)
		if err != nil || v.Unread != tc.unread {
			t.Errorf("%s: unread %d (%v), want %d", tc.name, v.Unread, err, tc.unread)
		}
	}

	// Marking read again changes nothing and announces nothing new.
	before := len(e.audits(audit.Filter{ActorID: &ben.User.ID, Action: "message.mark_read"}))
	if _, err := e.store.MarkRead(e.ctx, ben, th.ID, m2.ID); err != nil {
		t.Fatal(err)
	}
	if after := len(e.audits(audit.Filter{ActorID: &ben.User.ID, Action: "message.mark_read"})); after != before {
		t.Errorf("a no-op mark-read was audited")
	}
	other := e.thread(ana, inbox.NewThread{Kind: inbox.Direct, MemberIDs: ids(ben)})
	elsewhere := e.post(ana, other, "elsewhere")
	_, err = e.store.MarkRead(e.ctx, ben, th.ID, elsewhere.ID)
	invalid(t, "a message of another thread", err, "message_id")

	// Who leaves stops counting.
	if err := e.store.RemoveMember(e.ctx, ana, th.ID, dan.User.ID); err != nil {
		t.Fatal(err)
	}
	after, _ := e.store.Message(e.ctx, ana, th.ID, m3.ID)
	if after.ReadBy.Count != 1 || after.ReadBy.Of != 3 {
		t.Errorf("after dan left: read by %d of %d, want 1 of 3", after.ReadBy.Count, after.ReadBy.Of)
	}
}

func TestAcknowledgementRequired(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ana, ben, cat := e.user("Dr Ana", "physician"), e.user("Ben RN", "nurse"), e.user("Cat RN", "nurse")
	th := e.group(ana, true, ben, cat)
	broadcast, err := e.store.Post(e.ctx, ana, th.ID, inbox.NewMessage{Text: "Code cart moved to room 4", AckRequired: true})
	if err != nil || broadcast.AcknowledgedBy == nil || broadcast.AcknowledgedBy.Of != 2 || broadcast.AcknowledgedBy.Count != 0 {
		t.Fatalf("broadcast: %+v %v", broadcast.AcknowledgedBy, err)
	}
	plain := e.post(ana, th, "fyi")
	if plain.AcknowledgedBy != nil {
		t.Errorf("a plain message shows acknowledgements: %+v", plain.AcknowledgedBy)
	}

	for range 2 { // twice: harmless
		m, err := e.store.Acknowledge(e.ctx, ben, th.ID, broadcast.ID)
		if err != nil {
			t.Fatal(err)
		}
		if m.AcknowledgedBy.Count != 1 || m.AcknowledgedBy.Users[0].UserID != ben.User.ID || m.ReadBy.Count != 1 {
			t.Errorf("after ben: acknowledged %+v, read %+v", m.AcknowledgedBy, m.ReadBy)
		}
	}
	if evs := e.audits(audit.Filter{ActorID: &ben.User.ID, Action: "message.acknowledge"}); len(evs) != 1 {
		t.Errorf("%d acknowledgements audited, want 1", len(evs))
	}
	_, err = e.store.Acknowledge(e.ctx, ana, th.ID, broadcast.ID)
	conflict(t, "the author acknowledging", err)
	_, err = e.store.Acknowledge(e.ctx, ben, th.ID, plain.ID)
	conflict(t, "acknowledging a message that does not ask", err)
	outsider := e.user("Dan RN", "nurse")
	_, err = e.store.Acknowledge(e.ctx, outsider, th.ID, broadcast.ID)
	forbidden(t, "a non-member acknowledging", err)
}

// TestDeliveredInOneBatch: one call records a message's deliveries to all
// of a thread's members, and only those a delivery receipt is for: not the
// author, not a non-member, not a member who left, not a member who joined
// after the message in a thread that hides its history; a delivery recorded
// twice (two devices, or a batch tried again) keeps the first time.
func TestDeliveredInOneBatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ana := e.user("Dr Ana", "physician")
	var members []auth.Principal
	for i := range 50 {
		members = append(members, e.user(fmt.Sprintf("Nurse %d", i), "nurse"))
	}
	th := e.group(ana, false, members...)
	m := e.post(ana, th, "hello")
	outsider, late := e.user("Dan RN", "nurse"), e.user("Lee RN", "nurse")
	if _, err := e.store.AddMembers(e.ctx, ana, th.ID, ids(late)); err != nil {
		t.Fatal(err)
	}
	if err := e.store.RemoveMember(e.ctx, ana, th.ID, members[49].User.ID); err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	var batch []inbox.Delivery
	for _, u := range append(slices.Clone(members), ana, outsider, late, members[0]) {
		batch = append(batch, inbox.Delivery{UserID: u.User.ID, MessageID: m.ID, At: at})
	}
	batch[len(batch)-1].At = at.Add(time.Second) // members[0]'s second device
	if err := e.store.Delivered(e.ctx, batch...); err != nil {
		t.Fatal(err)
	}
	want := ids(members[:49]...)
	if got := e.delivered(m.ID); !sameIDs(got, want) {
		t.Errorf("delivered to %d people, want the 49 current members who saw it posted", len(got))
	}
	if n := e.count(`SELECT count(*) FROM message_receipts WHERE message_id = $1 AND delivered_at <> $2`, m.ID, at); n != 0 {
		t.Errorf("%d receipts not at the time of the (first) delivery", n)
	}
	// Again, later: nothing changes.
	for i := range batch {
		batch[i].At = at.Add(time.Hour)
	}
	if err := e.store.Delivered(e.ctx, batch...); err != nil {
		t.Fatal(err)
	}
	if n := e.count(`SELECT count(*) FROM message_receipts WHERE message_id = $1 AND delivered_at = $2`, m.ID, at); n != 49 {
		t.Errorf("after recording again, %d receipts keep their time, want 49", n)
	}
	if err := e.store.Delivered(e.ctx); err != nil {
		t.Errorf("nothing to record: %v", err)
	}
}

// delivered lists who has a delivery receipt of the message.
func (e *env) delivered(messageID uuid.UUID) []uuid.UUID {
	e.t.Helper()
	rows, _ := e.db.Pool.Query(e.ctx, `SELECT user_id FROM message_receipts WHERE message_id = $1 AND delivered_at IS NOT NULL`, messageID)
	got, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		e.t.Fatal(err)
	}
	return got
}

func sameIDs(a, b []uuid.UUID) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	cmp := func(x, y uuid.UUID) int { return slices.Compare(x[:], y[:]) }
	slices.SortFunc(a, cmp)
	slices.SortFunc(b, cmp)
	return slices.Equal(a, b)
}

// TestDeliveryReceipts: a message shows whose devices received it, out of
// its audience, apart from who read it; reading counts as delivery.
func TestDeliveryReceipts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ana := e.user("Dr Ana", "physician")
	ben, cat, dan := e.user("Ben RN", "nurse"), e.user("Cat RN", "nurse"), e.user("Dan RN", "nurse")
	th := e.group(ana, true, ben, cat, dan)
	m := e.post(ana, th, "bed 12 is back from CT")
	if m.DeliveredTo.Of != 3 || m.DeliveredTo.Count != 0 {
		t.Fatalf("new message delivered to %+v, want 0 of 3", m.DeliveredTo)
	}
	// Ben's stream carries it (the server records it with Delivered); Cat
	// reads the thread without it having been delivered first.
	if err := e.store.Delivered(e.ctx, inbox.Delivery{UserID: ben.User.ID, MessageID: m.ID, At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.MarkRead(e.ctx, cat, th.ID, m.ID); err != nil {
		t.Fatal(err)
	}
	got, err := e.store.Message(e.ctx, ana, th.ID, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	var to []uuid.UUID
	for _, u := range got.DeliveredTo.Users {
		to = append(to, u.UserID)
	}
	slices.SortFunc(to, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
	want := ids(ben, cat)
	slices.SortFunc(want, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
	if got.DeliveredTo.Count != 2 || got.DeliveredTo.Of != 3 || !slices.Equal(to, want) {
		t.Errorf("delivered to %+v, want Ben and Cat of 3", got.DeliveredTo)
	}
	if got.ReadBy.Count != 1 || got.ReadBy.Users[0].UserID != cat.User.ID {
		t.Errorf("read by %+v, want Cat only", got.ReadBy)
	}
	// The author's own receipt would not count: the audience excludes them.
	if err := e.store.Delivered(e.ctx, inbox.Delivery{UserID: ana.User.ID, MessageID: m.ID, At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if got, err = e.store.Message(e.ctx, ana, th.ID, m.ID); err != nil || got.DeliveredTo.Count != 2 {
		t.Errorf("after the author's own delivery: %+v %v", got.DeliveredTo, err)
	}
}

// TestListingDelivers: a page of messages counts as delivered to whoever
// lists it, but their own; listing again keeps the first delivery's time.
func TestListingDelivers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ana, ben := e.user("Dr Ana", "physician"), e.user("Ben RN", "nurse")
	th := e.group(ana, true, ben)
	m1, m2 := e.post(ana, th, "one"), e.post(ana, th, "two")
	mine := e.post(ben, th, "mine")
	for range 2 {
		for _, who := range []auth.Principal{ben, ana} {
			if _, err := e.store.Messages(e.ctx, who, th.ID, inbox.MessageQuery{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, c := range []struct {
		m    inbox.Message
		want []uuid.UUID
	}{{m1, ids(ben)}, {m2, ids(ben)}, {mine, ids(ana)}} {
		if got := e.delivered(c.m.ID); !sameIDs(got, c.want) {
			t.Errorf("%q delivered to %v, want %v", c.m.Text, got, c.want)
		}
	}
	if n := e.count(`SELECT count(DISTINCT delivered_at) FROM message_receipts WHERE user_id = $1`, ben.User.ID); n != 1 {
		t.Errorf("ben's receipts have %d delivery times, want the one of his first listing", n)
	}
}

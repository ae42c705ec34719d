package inbox

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callroom/callroom"
	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/auth"
	"github.com/callroom/callroom/internal/pg"
)

// Tally is "read by 3 of 5": how many of a message's audience did it, out of
// how many, and who, in the order they did it. The audience is the thread's
// current members who can see the message, except its author.
type Tally struct {
	Count int    `json:"count"`
	Of    int    `json:"of"`
	Users []Mark `json:"users"`
}

// Mark is one person's receipt.
type Mark struct {
	UserID uuid.UUID `json:"user_id"`
	At     time.Time `json:"at"`
}

// audience is a thread's current members with every membership period of
// theirs, which is what decides who a message is for.
type audience struct {
	history bool
	periods map[uuid.UUID][]membership
}

// queueAudience queues the read of t's audience into a, to be sent with
// other reads in one round trip.
func queueAudience(b *pgx.Batch, t Thread, a *audience) {
	b.Queue(`SELECT id, user_id, joined_at, left_at, read_seq FROM thread_members
		WHERE thread_id = $1 AND user_id IN (SELECT user_id FROM thread_members WHERE thread_id = $1 AND left_at IS NULL)`, t.ID).
		Query(func(rows pgx.Rows) error {
			ps, err := pgx.CollectRows(rows, pgx.RowToStructByName[membership])
			if err != nil {
				return err
			}
			*a = audience{history: t.HistoryForNewMembers, periods: map[uuid.UUID][]membership{}}
			for _, p := range ps {
				a.periods[p.UserID] = append(a.periods[p.UserID], p)
			}
			return nil
		})
}

// sees mirrors visibleSQL for a current member.
func (a audience) sees(user uuid.UUID, at time.Time) bool {
	ps, ok := a.periods[user]
	if !ok {
		return false
	}
	if a.history {
		return true
	}
	for _, p := range ps {
		if !p.JoinedAt.After(at) && (p.LeftAt == nil || at.Before(*p.LeftAt)) {
			return true
		}
	}
	return false
}

func (a audience) isFor(r messageRow, user uuid.UUID) bool {
	return (r.AuthorID == nil || *r.AuthorID != user) && a.sees(user, r.CreatedAt)
}

// receipt is a receipt row of a message; its delivery is also its read or
// acknowledgement when no delivery was recorded first.
type receipt struct {
	MessageID      uuid.UUID  `db:"message_id"`
	UserID         uuid.UUID  `db:"user_id"`
	DeliveredAt    *time.Time `db:"delivered_at"`
	ReadAt         *time.Time `db:"read_at"`
	AcknowledgedAt *time.Time `db:"acknowledged_at"`
}

// queueReceipts queues the read of rows' receipts into out.
func queueReceipts(b *pgx.Batch, rows []messageRow, out *[]receipt) {
	if len(rows) == 0 {
		return
	}
	ids := make([]uuid.UUID, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	b.Queue(`SELECT message_id, user_id, coalesce(delivered_at, read_at, acknowledged_at) AS delivered_at,
			read_at, acknowledged_at
		FROM message_receipts
		WHERE message_id = ANY($1) AND (delivered_at IS NOT NULL OR read_at IS NOT NULL OR acknowledged_at IS NOT NULL)`, ids).
		Query(func(res pgx.Rows) error {
			var err error
			*out, err = pgx.CollectRows(res, pgx.RowToStructByName[receipt])
			return err
		})
}

// tallies counts deliveries, reads and acknowledgements of rows among their
// audiences, from their receipts. A message read or acknowledged counts as
// delivered, also when its delivery (to a stream, or in a page of messages)
// was not recorded first.
// Receipts of people no longer in the audience stay in the table (and the
// audit trail) but are not counted.
func tallies(a audience, rows []messageRow, receipts []receipt) (read, delivered, acks map[uuid.UUID]Tally) {
	read, delivered, acks = map[uuid.UUID]Tally{}, map[uuid.UUID]Tally{}, map[uuid.UUID]Tally{}
	for _, r := range rows {
		of := 0
		for user := range a.periods {
			if a.isFor(r, user) {
				of++
			}
		}
		rt, dt, at := Tally{Of: of, Users: []Mark{}}, Tally{Of: of, Users: []Mark{}}, Tally{Of: of, Users: []Mark{}}
		for _, rc := range receipts {
			if rc.MessageID != r.ID || !a.isFor(r, rc.UserID) {
				continue
			}
			if rc.DeliveredAt != nil {
				dt.Users = append(dt.Users, Mark{UserID: rc.UserID, At: *rc.DeliveredAt})
			}
			if rc.ReadAt != nil {
				rt.Users = append(rt.Users, Mark{UserID: rc.UserID, At: *rc.ReadAt})
			}
			if rc.AcknowledgedAt != nil {
				at.Users = append(at.Users, Mark{UserID: rc.UserID, At: *rc.AcknowledgedAt})
			}
		}
		for _, t := range []*Tally{&rt, &dt, &at} {
			slices.SortFunc(t.Users, func(x, y Mark) int { return x.At.Compare(y.At) })
			t.Count = len(t.Users)
		}
		read[r.ID], delivered[r.ID], acks[r.ID] = rt, dt, at
	}
	return read, delivered, acks
}

// MarkRead marks every message of the thread the caller can see, up to and
// including messageID, as read by them (members only).
func (s *Store) MarkRead(ctx context.Context, who auth.Principal, threadID, messageID uuid.UUID) (Thread, error) {
	var out Thread
	err := s.inTx(ctx, who.Actor(), func(tx pgx.Tx) error {
		t, err := getThread(ctx, tx, threadID, "")
		if err != nil {
			return err
		}
		if _, err := requireMember(ctx, tx, t, who.User.ID, "message.mark_read"); err != nil {
			return err
		}
		r, err := s.visibleRow(ctx, tx, t.ID, messageID, who.User.ID)
		if errors.Is(err, callroom.ErrNotFound) {
			return callroom.Invalid("message_id", "no such message in this thread")
		}
		if err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO message_receipts AS r (message_id, user_id, delivered_at, read_at)
			SELECT m.id, $2, now(), now() FROM messages m JOIN threads t ON t.id = m.thread_id
			WHERE m.thread_id = $1 AND m.seq <= $3 AND m.author_id IS DISTINCT FROM $2 AND `+visibleSQL("$2")+`
			  AND NOT EXISTS (SELECT 1 FROM message_receipts x WHERE x.message_id = m.id AND x.user_id = $2 AND x.read_at IS NOT NULL)
			ON CONFLICT (message_id, user_id) DO UPDATE SET read_at = now(), delivered_at = coalesce(r.delivered_at, now())`,
			t.ID, who.User.ID, r.Seq)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE thread_members SET read_seq = greatest(read_seq, $3)
			WHERE thread_id = $1 AND user_id = $2 AND left_at IS NULL`, t.ID, who.User.ID, r.Seq); err != nil {
			return err
		}
		if n := tag.RowsAffected(); n > 0 {
			if err := audit.Record(ctx, tx, who.Actor(), audit.Entry{Action: "message.mark_read", ObjectType: "thread", ObjectID: t.ID.String(),
				PatientRef: t.patientRef(), Details: map[string]any{"up_to": r.ID, "count": n}}); err != nil {
				return err
			}
			if err := announce(ctx, tx, t.ID, EventReceiptUpdated, receiptEvent{ThreadID: t.ID, MessageID: r.ID, UserID: who.User.ID}); err != nil {
				return err
			}
		}
		out, err = s.view(ctx, tx, t.ID, who.User.ID, true)
		return err
	})
	return out, err
}

// Acknowledge records that the caller (a member the message is for) has
// acknowledged a message that asks for it. Acknowledging twice is harmless.
func (s *Store) Acknowledge(ctx context.Context, who auth.Principal, threadID, id uuid.UUID) (Message, error) {
	var out Message
	err := s.inTx(ctx, who.Actor(), func(tx pgx.Tx) error {
		t, err := getThread(ctx, tx, threadID, "")
		if err != nil {
			return err
		}
		if _, err := requireMember(ctx, tx, t, who.User.ID, "message.acknowledge"); err != nil {
			return err
		}
		r, err := s.visibleRow(ctx, tx, t.ID, id, who.User.ID)
		if err != nil {
			return err
		}
		switch {
		case !r.AckRequired:
			return callroom.Conflict("", "this message does not ask for acknowledgement")
		case r.RecalledAt != nil:
			return callroom.Conflict("", "the message was recalled")
		case r.AuthorID != nil && *r.AuthorID == who.User.ID:
			return callroom.Conflict("", "you sent this message")
		}
		tag, err := tx.Exec(ctx, `INSERT INTO message_receipts AS r (message_id, user_id, delivered_at, read_at, acknowledged_at)
			VALUES ($1, $2, now(), now(), now())
			ON CONFLICT (message_id, user_id) DO UPDATE SET acknowledged_at = now(),
				read_at = coalesce(r.read_at, now()), delivered_at = coalesce(r.delivered_at, now())
			WHERE r.acknowledged_at IS NULL`, id, who.User.ID)
		if err != nil {
			return err
		}
		if tag.RowsAffected() > 0 {
			if err := audit.Record(ctx, tx, who.Actor(), audit.Entry{Action: "message.acknowledge", ObjectType: "message", ObjectID: id.String(),
				PatientRef: t.patientRef(), Details: map[string]any{"thread_id": t.ID}}); err != nil {
				return err
			}
			if err := announce(ctx, tx, t.ID, EventReceiptUpdated, receiptEvent{ThreadID: t.ID, MessageID: id, UserID: who.User.ID}); err != nil {
				return err
			}
		}
		out, err = s.messageView(ctx, tx, t, id)
		return err
	})
	return out, err
}

// queueDelivered queues, for w's transaction, the record that messages,
// just read by user, reached them: those not their own that show no
// delivery to them yet. A message read or acknowledged shows as delivered
// (see tallies), so reading a page of messages already delivered writes
// nothing.
func queueDelivered(w *pg.Writes, user uuid.UUID, ms []Message) {
	var ids []uuid.UUID
	for _, m := range ms {
		if m.AuthorID != nil && *m.AuthorID == user {
			continue
		}
		if !slices.ContainsFunc(m.DeliveredTo.Users, func(k Mark) bool { return k.UserID == user }) {
			ids = append(ids, m.ID)
		}
	}
	if len(ids) == 0 {
		return
	}
	w.Exec(`INSERT INTO message_receipts AS r (message_id, user_id, delivered_at)
		SELECT x, $2, now() FROM unnest($1::uuid[]) AS x
		WHERE NOT EXISTS (SELECT 1 FROM message_receipts d WHERE d.message_id = x AND d.user_id = $2 AND d.delivered_at IS NOT NULL)
		ON CONFLICT (message_id, user_id) DO UPDATE SET delivered_at = now() WHERE r.delivered_at IS NULL`, ids, user)
}

// Delivery is one message reaching one of a user's devices, e.g. a live
// event stream writing its message.created event, at At.
type Delivery struct {
	UserID    uuid.UUID
	MessageID uuid.UUID
	At        time.Time
}

// Delivered records deliveries, all in one statement (the server collects a
// few milliseconds' worth from every stream: a message to 50 members is one
// commit, not 50). Each is recorded only for a current member who can see
// the message and is not its author, and only if that member had no
// delivery of it yet; the rest are ignored, so recording twice is harmless.
// It reads no content, so it is not audited.
func (s *Store) Delivered(ctx context.Context, ds ...Delivery) error {
	// One row per (message, user), its first delivery: ON CONFLICT DO UPDATE
	// cannot touch a row twice in one statement. Rows go in in key order, so
	// two instances' batches lock them in the same order.
	first := make(map[[2]uuid.UUID]time.Time, len(ds))
	for _, d := range ds {
		k := [2]uuid.UUID{d.MessageID, d.UserID}
		if at, ok := first[k]; !ok || d.At.Before(at) {
			first[k] = d.At
		}
	}
	if len(first) == 0 {
		return nil
	}
	messages, users, ats := make([]uuid.UUID, 0, len(first)), make([]uuid.UUID, 0, len(first)), make([]time.Time, 0, len(first))
	for k, at := range first {
		messages, users, ats = append(messages, k[0]), append(users, k[1]), append(ats, at)
	}
	_, err := s.db.Exec(ctx, `INSERT INTO message_receipts AS r (message_id, user_id, delivered_at)
		SELECT m.id, d.user_id, d.at
		FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[]) AS d (message_id, user_id, at)
		JOIN messages m ON m.id = d.message_id JOIN threads t ON t.id = m.thread_id
		WHERE m.author_id IS DISTINCT FROM d.user_id
		  AND EXISTS (SELECT 1 FROM thread_members me WHERE me.thread_id = m.thread_id AND me.user_id = d.user_id AND me.left_at IS NULL)
		  AND `+visibleSQL("d.user_id")+`
		ORDER BY m.id, d.user_id
		ON CONFLICT (message_id, user_id) DO UPDATE SET delivered_at = excluded.delivered_at WHERE r.delivered_at IS NULL`,
		messages, users, ats)
	return err
}

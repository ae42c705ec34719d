package inbox

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callroom/callroom"
	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/auth"
	"github.com/callroom/callroom/internal/pg"
)

// Priority is FHIR's request priority, as for pages.
type Priority string

const (
	Routine Priority = "routine"
	Urgent  Priority = "urgent"
	ASAP    Priority = "asap"
	Stat    Priority = "stat"
)

func (p Priority) valid() bool { return p == Routine || p == Urgent || p == ASAP || p == Stat }

// Limits on messages.
const (
	MaxTextLength = 10000 // characters
	// MaxAttachmentsPerMessage bounds attachment_ids.
	MaxAttachmentsPerMessage = 10
	// DefaultPageSize and MaxPageSize bound a page of Messages.
	DefaultPageSize = 50
	MaxPageSize     = 200
)

// NewMessage is what posting takes.
type NewMessage struct {
	Text     string     `json:"text"`
	Priority Priority   `json:"priority,omitempty"` // routine when empty
	ReplyTo  *uuid.UUID `json:"reply_to,omitempty"` // a message of the same thread
	// AckRequired asks every member to acknowledge (a broadcast such as
	// "code cart moved"); the message then shows who has.
	AckRequired bool `json:"ack_required,omitempty"`
	// AttachmentIDs are uploads of the author's to this thread not yet sent.
	AttachmentIDs []uuid.UUID `json:"attachment_ids,omitempty"`
}

func checkText(field, text string) error {
	if strings.TrimSpace(text) == "" {
		return callroom.Invalid(field, "is required")
	}
	if !utf8.ValidString(text) {
		return callroom.Invalid(field, "is not valid UTF-8")
	}
	if utf8.RuneCountInString(text) > MaxTextLength {
		return callroom.Invalid(field, "is longer than %d characters", MaxTextLength)
	}
	return nil
}

func (in *NewMessage) validate() error {
	if err := checkText("text", in.Text); err != nil {
		return err
	}
	if in.Priority == "" {
		in.Priority = Routine
	}
	if !in.Priority.valid() {
		return callroom.Invalid("priority", "must be routine, urgent, asap or stat")
	}
	if len(in.AttachmentIDs) > MaxAttachmentsPerMessage {
		return callroom.Invalid("attachment_ids", "lists more than %d attachments", MaxAttachmentsPerMessage)
	}
	for i, id := range in.AttachmentIDs {
		for _, other := range in.AttachmentIDs[:i] {
			if id == other {
				return callroom.Invalid(fmt.Sprintf("attachment_ids.%d", i), "is listed twice")
			}
		}
	}
	return nil
}

// Message is a message as a member sees it: the latest version's text, or no
// text once recalled or purged.
type Message struct {
	ID       uuid.UUID  `json:"id"`
	ThreadID uuid.UUID  `json:"thread_id"`
	AuthorID *uuid.UUID `json:"author_id,omitempty"`
	// System messages have no author: a page posted into the thread.
	System      bool             `json:"system"`
	Priority    Priority         `json:"priority"`
	Text        string           `json:"text,omitempty"`
	ReplyTo     *uuid.UUID       `json:"reply_to,omitempty"`
	PageID      *uuid.UUID       `json:"page_id,omitempty"`
	AckRequired bool             `json:"ack_required"`
	Attachments []AttachmentInfo `json:"attachments"`
	Version     int              `json:"version"`
	CreatedAt   time.Time        `json:"created_at"`
	EditedAt    *time.Time       `json:"edited_at,omitempty"`
	Recalled    bool             `json:"recalled"`
	RecalledAt  *time.Time       `json:"recalled_at,omitempty"`
	RecalledBy  *uuid.UUID       `json:"recalled_by,omitempty"`
	// Purged: retention erased the text and attachments.
	Purged bool `json:"purged"`
	// Who of the message's audience (current members who can see it, but
	// its author) read it.
	ReadBy Tally `json:"read_by"`
	// Whose devices of the same audience received it (an open event stream
	// carried it, or they listed it); reading implies it.
	DeliveredTo Tally `json:"delivered_to"`
	// Who of the audience acknowledged it; only when AckRequired.
	AcknowledgedBy *Tally `json:"acknowledged_by,omitempty"`
}

// messageRow is a message with its current version's sealed text (nil when
// recalled or purged).
type messageRow struct {
	ID          uuid.UUID  `db:"id"`
	Seq         int64      `db:"seq"`
	ThreadID    uuid.UUID  `db:"thread_id"`
	AuthorID    *uuid.UUID `db:"author_id"`
	Priority    Priority   `db:"priority"`
	ReplyTo     *uuid.UUID `db:"reply_to"`
	PageID      *uuid.UUID `db:"page_id"`
	AckRequired bool       `db:"ack_required"`
	Version     int        `db:"version"`
	CreatedAt   time.Time  `db:"created_at"`
	EditedAt    *time.Time `db:"edited_at"`
	RecalledAt  *time.Time `db:"recalled_at"`
	RecalledBy  *uuid.UUID `db:"recalled_by"`
	PurgedAt    *time.Time `db:"purged_at"`
	Body        []byte     `db:"body"`
}

// messageSelect reads messageRows; the text of a recalled message is not
// even fetched.
const messageSelect = `SELECT m.id, m.seq, m.thread_id, m.author_id, m.priority, m.reply_to, m.page_id, m.ack_required,
	m.version, m.created_at, m.edited_at, m.recalled_at, m.recalled_by, m.purged_at,
	CASE WHEN m.recalled_at IS NULL THEN v.body END AS body
	FROM messages m JOIN threads t ON t.id = m.thread_id
	JOIN message_versions v ON v.message_id = m.id AND v.version = m.version`

// draft is a message about to be inserted.
type draft struct {
	threadID    uuid.UUID
	author      *uuid.UUID
	priority    Priority
	text        string
	replyTo     *uuid.UUID
	pageID      *uuid.UUID
	ackRequired bool
	attachments []uuid.UUID
}

// insertMessage seals and stores d as version 1 and moves the thread's
// activity time; the author has read everything up to their own message.
func (s *Store) insertMessage(ctx context.Context, tx pgx.Tx, d draft) (uuid.UUID, error) {
	id := uuid.New()
	blob, keyID, err := s.sealer.Seal(ctx, []byte(d.text), messageAAD(id, 1))
	if err != nil {
		return id, fmt.Errorf("sealing message: %w", err)
	}
	var seq int64
	err = tx.QueryRow(ctx, `INSERT INTO messages (id, thread_id, author_id, priority, reply_to, page_id, ack_required)
		VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING seq`,
		id, d.threadID, d.author, d.priority, d.replyTo, d.pageID, d.ackRequired).Scan(&seq)
	if err != nil {
		return id, err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO message_versions (message_id, version, body, key_id, created_by) VALUES ($1, 1, $2, $3, $4)`,
		id, blob, keyID, d.author); err != nil {
		return id, err
	}
	if len(d.attachments) > 0 {
		if _, err := tx.Exec(ctx, `UPDATE attachments SET message_id = $1 WHERE id = ANY($2)`, id, d.attachments); err != nil {
			return id, err
		}
	}
	if _, err := tx.Exec(ctx, `UPDATE threads SET last_message_at = now(), updated_at = now() WHERE id = $1`, d.threadID); err != nil {
		return id, err
	}
	if d.author != nil {
		if _, err := tx.Exec(ctx, `UPDATE thread_members SET read_seq = greatest(read_seq, $3)
			WHERE thread_id = $1 AND user_id = $2 AND left_at IS NULL`, d.threadID, *d.author, seq); err != nil {
			return id, err
		}
	}
	return id, nil
}

// Post adds a message to a thread (members only).
func (s *Store) Post(ctx context.Context, who auth.Principal, threadID uuid.UUID, in NewMessage) (Message, error) {
	var out Message
	err := s.inTx(ctx, who.Actor(), func(tx pgx.Tx) error {
		// Locking the thread orders its posts (seq follows commit order
		// within a thread) and keeps a concurrent removal from letting a
		// just-removed member post.
		t, err := getThread(ctx, tx, threadID, "FOR NO KEY UPDATE")
		if err != nil {
			return err
		}
		if _, err := requireMember(ctx, tx, t, who.User.ID, "message.create"); err != nil {
			return err
		}
		if err := in.validate(); err != nil {
			return err
		}
		if in.ReplyTo != nil {
			if _, err := s.visibleRow(ctx, tx, t.ID, *in.ReplyTo, who.User.ID); errors.Is(err, callroom.ErrNotFound) {
				return callroom.Invalid("reply_to", "no such message in this thread")
			} else if err != nil {
				return err
			}
		}
		if err := claimAttachments(ctx, tx, t.ID, who.User.ID, in.AttachmentIDs); err != nil {
			return err
		}
		id, err := s.insertMessage(ctx, tx, draft{threadID: t.ID, author: &who.User.ID, priority: in.Priority, text: in.Text,
			replyTo: in.ReplyTo, ackRequired: in.AckRequired, attachments: in.AttachmentIDs})
		if err != nil {
			return err
		}
		if err := audit.Record(ctx, tx, who.Actor(), audit.Entry{Action: "message.create", ObjectType: "message", ObjectID: id.String(),
			PatientRef: t.patientRef(), Details: map[string]any{"thread_id": t.ID, "priority": in.Priority,
				"attachments": len(in.AttachmentIDs), "ack_required": in.AckRequired}}); err != nil {
			return err
		}
		if err := announce(ctx, tx, t.ID, EventMessageCreated, messageEvent{ThreadID: t.ID, MessageID: id}); err != nil {
			return err
		}
		out, err = s.messageView(ctx, tx, t, id)
		return err
	})
	return out, err
}

// claimAttachments checks that ids are the author's own unsent, unpurged
// uploads to this thread, and locks them until the message takes them.
func claimAttachments(ctx context.Context, tx pgx.Tx, threadID, author uuid.UUID, ids []uuid.UUID) error {
	if len(ids) == 0 {
		return nil
	}
	rows, _ := tx.Query(ctx, `SELECT id FROM attachments
		WHERE id = ANY($1) AND thread_id = $2 AND uploaded_by = $3 AND message_id IS NULL AND purged_at IS NULL
		FOR UPDATE`, ids, threadID, author)
	found, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return err
	}
	for i, id := range ids {
		ok := false
		for _, f := range found {
			ok = ok || f == id
		}
		if !ok {
			return callroom.Invalid(fmt.Sprintf("attachment_ids.%d", i), "is not an unsent upload of yours to this thread")
		}
	}
	return nil
}

// visibleRow reads one message of the thread that viewer can see.
func (s *Store) visibleRow(ctx context.Context, q pg.Querier, threadID, id, viewer uuid.UUID) (messageRow, error) {
	rows, _ := q.Query(ctx, messageSelect+` WHERE m.id = $1 AND m.thread_id = $2 AND `+visibleSQL("$3"), id, threadID, viewer)
	r, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[messageRow])
	if errors.Is(err, pgx.ErrNoRows) {
		return r, fmt.Errorf("message: %w", callroom.ErrNotFound)
	}
	return r, err
}

// anyRow reads one message of the thread whoever may see it, for authors,
// administrators and auditors acting on it.
func anyRow(ctx context.Context, q pg.Querier, threadID, id uuid.UUID, lock string) (messageRow, error) {
	rows, _ := q.Query(ctx, messageSelect+` WHERE m.id = $1 AND m.thread_id = $2 `+lock, id, threadID)
	r, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[messageRow])
	if errors.Is(err, pgx.ErrNoRows) {
		return r, fmt.Errorf("message: %w", callroom.ErrNotFound)
	}
	return r, err
}

// messageView reads one message as members see it; callers decide who may
// look.
func (s *Store) messageView(ctx context.Context, q pg.Querier, t Thread, id uuid.UUID) (Message, error) {
	r, err := anyRow(ctx, q, t.ID, id, "")
	if err != nil {
		return Message{}, err
	}
	ms, err := s.views(ctx, q, t, []messageRow{r})
	if err != nil {
		return Message{}, err
	}
	return ms[0], nil
}

// views opens the text of rows and adds attachments, read and
// acknowledgement tallies, reading what it needs in one round trip.
func (s *Store) views(ctx context.Context, q pg.Querier, t Thread, rows []messageRow) ([]Message, error) {
	var shown []uuid.UUID
	for _, r := range rows {
		if r.RecalledAt == nil && r.PurgedAt == nil {
			shown = append(shown, r.ID)
		}
	}
	var b pgx.Batch
	var a audience
	var receipts []receipt
	var attRows []attachmentRow
	queueAudience(&b, t, &a)
	queueReceipts(&b, rows, &receipts)
	queueAttachments(&b, shown, &attRows)
	if err := q.SendBatch(ctx, &b).Close(); err != nil {
		return nil, err
	}
	read, delivered, acks := tallies(a, rows, receipts)
	atts, err := s.attachmentInfos(ctx, attRows)
	if err != nil {
		return nil, err
	}
	out := make([]Message, 0, len(rows))
	for _, r := range rows {
		m := Message{ID: r.ID, ThreadID: r.ThreadID, AuthorID: r.AuthorID, System: r.AuthorID == nil, Priority: r.Priority,
			ReplyTo: r.ReplyTo, PageID: r.PageID, AckRequired: r.AckRequired, Version: r.Version, CreatedAt: r.CreatedAt,
			EditedAt: r.EditedAt, Recalled: r.RecalledAt != nil, RecalledAt: r.RecalledAt, RecalledBy: r.RecalledBy,
			Purged: r.PurgedAt != nil, Attachments: atts[r.ID], ReadBy: read[r.ID],
			DeliveredTo: delivered[r.ID]}
		if m.Attachments == nil {
			m.Attachments = []AttachmentInfo{}
		}
		if r.Body != nil {
			text, err := s.sealer.Open(ctx, r.Body, messageAAD(r.ID, r.Version))
			if err != nil {
				return nil, fmt.Errorf("opening message %s version %d: %w", r.ID, r.Version, err)
			}
			m.Text = string(text)
		}
		if r.AckRequired {
			ack := acks[r.ID]
			m.AcknowledgedBy = &ack
		}
		out = append(out, m)
	}
	return out, nil
}

// MessageQuery pages through a thread, newest first.
type MessageQuery struct {
	// Before is the cursor from the previous page's NextBefore; empty for
	// the newest messages.
	Before string
	Limit  int // 1..MaxPageSize, DefaultPageSize when 0
}

// MessagePage is one page of messages, newest first.
type MessagePage struct {
	Messages []Message `json:"messages"`
	// NextBefore fetches the next (older) page; absent on the last.
	NextBefore string `json:"next_before,omitempty"`
}

// The cursor is opaque to clients so that what it encodes (today the
// position in the thread) can change without breaking them.
func encodeCursor(seq int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte("s" + strconv.FormatInt(seq, 10)))
}

func decodeCursor(field, c string) (int64, error) {
	if c == "" {
		return math.MaxInt64, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err == nil && len(b) > 1 && b[0] == 's' {
		if seq, err := strconv.ParseInt(string(b[1:]), 10, 64); err == nil && seq > 0 {
			return seq, nil
		}
	}
	return 0, callroom.Invalid(field, "is not a cursor this API returned")
}

// Messages returns a page of the thread's messages the caller can see,
// newest first (members, or emergency access to the patient; audited). Returning them counts as delivering
// them to the caller.
func (s *Store) Messages(ctx context.Context, who auth.Principal, threadID uuid.UUID, mq MessageQuery) (MessagePage, error) {
	var out MessagePage
	limit := mq.Limit
	if limit == 0 {
		limit = DefaultPageSize
	}
	if limit < 1 || limit > MaxPageSize {
		return out, callroom.Invalid("limit", "must be between 1 and %d", MaxPageSize)
	}
	before, err := decodeCursor("before", mq.Before)
	if err != nil {
		return out, err
	}
	err = s.inTx(ctx, who.Actor(), func(tx pgx.Tx) error {
		t, emergency, err := readThread(ctx, tx, threadID, who, "message.list")
		if err != nil {
			return err
		}
		rows, _ := tx.Query(ctx, messageSelect+` WHERE m.thread_id = $1 AND m.seq < $2 AND ($5 OR `+visibleSQL("$3")+`)
			ORDER BY m.seq DESC LIMIT $4`, t.ID, before, who.User.ID, limit+1, emergency)
		page, err := pgx.CollectRows(rows, pgx.RowToStructByName[messageRow])
		if err != nil {
			return err
		}
		if len(page) > limit {
			page = page[:limit]
			out.NextBefore = encodeCursor(page[limit-1].Seq)
		}
		if out.Messages, err = s.views(ctx, tx, t, page); err != nil {
			return err
		}
		var w pg.Writes
		if !emergency {
			queueDelivered(&w, who.User.ID, out.Messages)
		}
		if err := audit.Queue(&w, who.Actor(), audit.Entry{Action: "message.list", ObjectType: "thread", ObjectID: t.ID.String(),
			PatientRef: t.patientRef(), Details: map[string]any{"count": len(page)}}); err != nil {
			return err
		}
		return w.Flush(ctx, tx)
	})
	return out, err
}

// Message returns one message the caller can see (members, or emergency
// access to the patient; audited),
// for a client that heard of it through an event.
func (s *Store) Message(ctx context.Context, who auth.Principal, threadID, id uuid.UUID) (Message, error) {
	var out Message
	err := s.inTx(ctx, who.Actor(), func(tx pgx.Tx) error {
		t, emergency, err := readThread(ctx, tx, threadID, who, "message.read")
		if err != nil {
			return err
		}
		var r messageRow
		if emergency {
			r, err = anyRow(ctx, tx, t.ID, id, "")
		} else {
			r, err = s.visibleRow(ctx, tx, t.ID, id, who.User.ID)
		}
		if err != nil {
			return err
		}
		ms, err := s.views(ctx, tx, t, []messageRow{r})
		if err != nil {
			return err
		}
		out = ms[0]
		var w pg.Writes
		if !emergency {
			queueDelivered(&w, who.User.ID, ms)
		}
		if err := audit.Queue(&w, who.Actor(), audit.Entry{Action: "message.read", ObjectType: "message", ObjectID: id.String(),
			PatientRef: t.patientRef(), Details: map[string]any{"thread_id": t.ID}}); err != nil {
			return err
		}
		return w.Flush(ctx, tx)
	})
	return out, err
}

package inbox

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callroom/callroom"
	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/auth"
)

// Edit replaces a message's text by adding a version; the earlier versions
// stay (members see the latest, auditors every one). Only the author edits,
// while still a member, and not once the message is recalled or purged.
func (s *Store) Edit(ctx context.Context, who auth.Principal, threadID, id uuid.UUID, text string) (Message, error) {
	var out Message
	err := s.inTx(ctx, who.Actor(), func(tx pgx.Tx) error {
		t, err := getThread(ctx, tx, threadID, "")
		if err != nil {
			return err
		}
		if _, err := requireMember(ctx, tx, t, who.User.ID, "message.edit"); err != nil {
			return err
		}
		r, err := anyRow(ctx, tx, t.ID, id, "FOR NO KEY UPDATE OF m")
		if err != nil {
			return err
		}
		if r.AuthorID == nil || *r.AuthorID != who.User.ID {
			return &denial{action: "message.edit", objectType: "message", objectID: id.String(), patientRef: t.patientRef(),
				reason: "only its author may edit a message"}
		}
		switch {
		case r.RecalledAt != nil:
			return callroom.Conflict("", "the message was recalled")
		case r.PurgedAt != nil:
			return callroom.Conflict("", "the message was purged by retention")
		}
		if err := checkText("text", text); err != nil {
			return err
		}
		version := r.Version + 1
		blob, keyID, err := s.sealer.Seal(ctx, []byte(text), messageAAD(id, version))
		if err != nil {
			return fmt.Errorf("sealing message: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO message_versions (message_id, version, body, key_id, created_by) VALUES ($1, $2, $3, $4, $5)`,
			id, version, blob, keyID, who.User.ID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE messages SET version = $2, edited_at = now() WHERE id = $1`, id, version); err != nil {
			return err
		}
		if err := audit.Record(ctx, tx, who.Actor(), audit.Entry{Action: "message.edit", ObjectType: "message", ObjectID: id.String(),
			PatientRef: t.patientRef(), Details: map[string]any{"thread_id": t.ID, "version": version}}); err != nil {
			return err
		}
		if err := announce(ctx, tx, t.ID, EventMessageUpdated, messageEvent{ThreadID: t.ID, MessageID: id}); err != nil {
			return err
		}
		out, err = s.messageView(ctx, tx, t, id)
		return err
	})
	return out, err
}

// Recall hides a message from members: they see that it was recalled, by
// whom and when, but no longer its text or attachments. Every version is
// kept for auditors. The author or an administrator recalls; recalling
// twice is harmless.
func (s *Store) Recall(ctx context.Context, who auth.Principal, threadID, id uuid.UUID) (Message, error) {
	var out Message
	err := s.inTx(ctx, who.Actor(), func(tx pgx.Tx) error {
		t, err := getThread(ctx, tx, threadID, "")
		if err != nil {
			return err
		}
		r, err := anyRow(ctx, tx, t.ID, id, "FOR NO KEY UPDATE OF m")
		if err != nil {
			return err
		}
		author := r.AuthorID != nil && *r.AuthorID == who.User.ID
		if !author && !isAdmin(who.User) {
			return &denial{action: "message.recall", objectType: "message", objectID: id.String(), patientRef: t.patientRef(),
				reason: "only its author or an administrator may recall a message"}
		}
		if r.RecalledAt == nil {
			if _, err := tx.Exec(ctx, `UPDATE messages SET recalled_at = now(), recalled_by = $2 WHERE id = $1`, id, who.User.ID); err != nil {
				return err
			}
			if err := audit.Record(ctx, tx, who.Actor(), audit.Entry{Action: "message.recall", ObjectType: "message", ObjectID: id.String(),
				PatientRef: t.patientRef(), Details: map[string]any{"thread_id": t.ID}}); err != nil {
				return err
			}
			if err := announce(ctx, tx, t.ID, EventMessageUpdated, messageEvent{ThreadID: t.ID, MessageID: id}); err != nil {
				return err
			}
		}
		out, err = s.messageView(ctx, tx, t, id)
		return err
	})
	return out, err
}

// Version is one version of a message's text.
type Version struct {
	Version int `json:"version"`
	// Text is absent once retention purged it.
	Text      string     `json:"text,omitempty"`
	Purged    bool       `json:"purged"`
	CreatedBy *uuid.UUID `json:"created_by,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
}

// History is everything ever said in one message, for auditors.
type History struct {
	MessageID  uuid.UUID  `json:"message_id"`
	ThreadID   uuid.UUID  `json:"thread_id"`
	AuthorID   *uuid.UUID `json:"author_id,omitempty"`
	PageID     *uuid.UUID `json:"page_id,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	RecalledAt *time.Time `json:"recalled_at,omitempty"`
	RecalledBy *uuid.UUID `json:"recalled_by,omitempty"`
	PurgedAt   *time.Time `json:"purged_at,omitempty"`
	Versions   []Version  `json:"versions"`
}

// Versions returns every version of a message, recalled or not, oldest
// first, to auditors and administrators (auth.ReadAudit), who need not be
// members. Audited with the thread's patient_ref.
func (s *Store) Versions(ctx context.Context, who auth.Principal, threadID, id uuid.UUID) (History, error) {
	var out History
	err := s.inTx(ctx, who.Actor(), func(tx pgx.Tx) error {
		t, err := getThread(ctx, tx, threadID, "")
		if err != nil {
			return err
		}
		if !mayReadVersions(who) {
			return &denial{action: "message.versions", objectType: "message", objectID: id.String(), patientRef: t.patientRef(),
				reason: "only auditors and administrators read a message's versions"}
		}
		r, err := anyRow(ctx, tx, t.ID, id, "")
		if err != nil {
			return err
		}
		out = History{MessageID: r.ID, ThreadID: r.ThreadID, AuthorID: r.AuthorID, PageID: r.PageID, CreatedAt: r.CreatedAt,
			RecalledAt: r.RecalledAt, RecalledBy: r.RecalledBy, PurgedAt: r.PurgedAt, Versions: []Version{}}
		type versionRow struct {
			Version   int        `db:"version"`
			Body      []byte     `db:"body"`
			CreatedBy *uuid.UUID `db:"created_by"`
			CreatedAt time.Time  `db:"created_at"`
		}
		rows, _ := tx.Query(ctx, `SELECT version, body, created_by, created_at FROM message_versions
			WHERE message_id = $1 ORDER BY version`, id)
		vs, err := pgx.CollectRows(rows, pgx.RowToStructByName[versionRow])
		if err != nil {
			return err
		}
		for _, v := range vs {
			out.Versions = append(out.Versions, Version{Version: v.Version, Purged: v.Body == nil, CreatedBy: v.CreatedBy, CreatedAt: v.CreatedAt})
			if v.Body != nil {
				text, err := s.sealer.Open(ctx, v.Body, messageAAD(id, v.Version))
				if err != nil {
					return fmt.Errorf("opening message %s version %d: %w", id, v.Version, err)
				}
				out.Versions[len(out.Versions)-1].Text = string(text)
			}
		}
		return audit.Record(ctx, tx, who.Actor(), audit.Entry{Action: "message.versions", ObjectType: "message", ObjectID: id.String(),
			PatientRef: t.patientRef(), Details: map[string]any{"thread_id": t.ID, "versions": len(vs)}})
	})
	return out, err
}

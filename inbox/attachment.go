package inbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callroom/callroom"
	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/auth"
)

// MaxAttachmentBytes bounds one attachment: a photographed wound or a
// scanned ECG fits easily; a video does not belong here.
const MaxAttachmentBytes = 20 << 20

// ErrTooLarge is returned for an attachment over MaxAttachmentBytes (the HTTP
// layer answers 413).
var ErrTooLarge = errors.New("the attachment is larger than 20 MiB")

// Sniff returns the content type of b judged from its first bytes (the
// same signatures http.DetectContentType uses), or "" when b is not one of
// the accepted kinds: PNG, JPEG, GIF and WebP images, and PDF. The type a
// client declares, and a file name's extension, are never trusted: a file
// served back as image/png must be one, or a browser could be made to run
// it.
func Sniff(b []byte) string {
	switch {
	case bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")):
		return "image/png"
	case bytes.HasPrefix(b, []byte{0xFF, 0xD8, 0xFF}):
		return "image/jpeg"
	case bytes.HasPrefix(b, []byte("GIF87a")), bytes.HasPrefix(b, []byte("GIF89a")):
		return "image/gif"
	case len(b) >= 14 && string(b[:4]) == "RIFF" && string(b[8:14]) == "WEBPVP":
		return "image/webp"
	case bytes.HasPrefix(b, []byte("%PDF-")):
		return "application/pdf"
	}
	return ""
}

// MaxFilenameBytes bounds an attachment's file name.
const MaxFilenameBytes = 255

// cleanFilename keeps the last path element of name, so a name can never
// point anywhere when a client saves the file.
func cleanFilename(field, name string) (string, error) {
	name = strings.ReplaceAll(name, `\`, "/")
	name = strings.TrimSpace(path.Base("/" + name))
	if name == "/" || name == "." || name == ".." {
		name = ""
	}
	if !utf8.ValidString(name) || strings.IndexFunc(name, unicode.IsControl) >= 0 {
		return "", callroom.Invalid(field, "contains control characters")
	}
	if len(name) > MaxFilenameBytes {
		return "", callroom.Invalid(field, "is longer than %d bytes", MaxFilenameBytes)
	}
	return name, nil
}

// Attachment is an uploaded file's description.
type Attachment struct {
	ID          uuid.UUID  `json:"id"`
	ThreadID    uuid.UUID  `json:"thread_id"`
	MessageID   *uuid.UUID `json:"message_id,omitempty"`
	UploadedBy  uuid.UUID  `json:"uploaded_by"`
	ContentType string     `json:"content_type"`
	Size        int        `json:"size"`
	Filename    string     `json:"filename,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
}

// AttachmentInfo is an attachment as a message shows it.
type AttachmentInfo struct {
	ID          uuid.UUID `json:"id"`
	ContentType string    `json:"content_type"`
	Size        int       `json:"size"`
	Filename    string    `json:"filename,omitempty"`
}

type attachmentRow struct {
	ID          uuid.UUID  `db:"id"`
	ThreadID    uuid.UUID  `db:"thread_id"`
	MessageID   *uuid.UUID `db:"message_id"`
	UploadedBy  uuid.UUID  `db:"uploaded_by"`
	ContentType string     `db:"content_type"`
	Size        int        `db:"size_bytes"`
	Filename    []byte     `db:"filename"`
	CreatedAt   time.Time  `db:"created_at"`
}

const attachmentColumns = `a.id, a.thread_id, a.message_id, a.uploaded_by, a.content_type, a.size_bytes, a.filename, a.created_at`

func (s *Store) openAttachment(ctx context.Context, r attachmentRow) (Attachment, error) {
	a := Attachment{ID: r.ID, ThreadID: r.ThreadID, MessageID: r.MessageID, UploadedBy: r.UploadedBy,
		ContentType: r.ContentType, Size: r.Size, CreatedAt: r.CreatedAt}
	if r.Filename != nil {
		name, err := s.sealer.Open(ctx, r.Filename, attachmentNameAAD(r.ID))
		if err != nil {
			return a, fmt.Errorf("opening attachment %s file name: %w", r.ID, err)
		}
		a.Filename = string(name)
	}
	return a, nil
}

// Upload stores a file for the caller to send in a message of this thread
// (members only). Its type is detected from its content; only images (PNG,
// JPEG, GIF, WebP) and PDF are accepted. Bytes and file name are sealed.
func (s *Store) Upload(ctx context.Context, who auth.Principal, threadID uuid.UUID, filename string, content []byte) (Attachment, error) {
	var out Attachment
	err := s.inTx(ctx, who.Actor(), func(tx pgx.Tx) error {
		t, err := getThread(ctx, tx, threadID, "")
		if err != nil {
			return err
		}
		if _, err := requireMember(ctx, tx, t, who.User.ID, "attachment.upload"); err != nil {
			return err
		}
		if len(content) > MaxAttachmentBytes {
			return ErrTooLarge
		}
		if len(content) == 0 {
			return callroom.Invalid("body", "is empty: send the file as the request body")
		}
		typ := Sniff(content)
		if typ == "" {
			return callroom.Invalid("body", "is not a PNG, JPEG, GIF or WebP image or a PDF (judged by its content)")
		}
		name, err := cleanFilename("filename", filename)
		if err != nil {
			return err
		}
		id := uuid.New()
		blob, keyID, err := s.sealer.Seal(ctx, content, attachmentAAD(id))
		if err != nil {
			return fmt.Errorf("sealing attachment: %w", err)
		}
		var nameBlob []byte
		var nameKey *uuid.UUID
		if name != "" {
			b, k, err := s.sealer.Seal(ctx, []byte(name), attachmentNameAAD(id))
			if err != nil {
				return fmt.Errorf("sealing attachment name: %w", err)
			}
			nameBlob, nameKey = b, &k
		}
		if _, err := tx.Exec(ctx, `INSERT INTO attachments (id, thread_id, uploaded_by, content_type, size_bytes, content, key_id, filename, filename_key_id)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			id, t.ID, who.User.ID, typ, len(content), blob, keyID, nameBlob, nameKey); err != nil {
			return err
		}
		if err := audit.Record(ctx, tx, who.Actor(), audit.Entry{Action: "attachment.upload", ObjectType: "attachment", ObjectID: id.String(),
			PatientRef: t.patientRef(), Details: map[string]any{"thread_id": t.ID, "content_type": typ, "size": len(content)}}); err != nil {
			return err
		}
		out = Attachment{ID: id, ThreadID: t.ID, UploadedBy: who.User.ID, ContentType: typ, Size: len(content), Filename: name}
		return tx.QueryRow(ctx, `SELECT created_at FROM attachments WHERE id = $1`, id).Scan(&out.CreatedAt)
	})
	return out, err
}

// visibleAttachments is the condition "attachment a is one viewer $2 may
// see": part of a message they can see that is neither recalled nor purged,
// or an unsent upload of their own.
func visibleAttachments(viewer string) string {
	return `a.purged_at IS NULL AND (
		(a.message_id IS NULL AND a.uploaded_by = ` + viewer + `)
		OR EXISTS (SELECT 1 FROM messages m JOIN threads t ON t.id = m.thread_id
			WHERE m.id = a.message_id AND m.recalled_at IS NULL AND m.purged_at IS NULL AND ` + visibleSQL(viewer) + `))`
}

// readableAttachments is visibleAttachments for a member, or, when the
// boolean parameter emergency is true, every attachment of a message that
// is neither recalled nor purged (what the care team sees).
func readableAttachments(viewer, emergency string) string {
	return `((NOT ` + emergency + ` AND ` + visibleAttachments(viewer) + `) OR (` + emergency + ` AND a.purged_at IS NULL
		AND EXISTS (SELECT 1 FROM messages m WHERE m.id = a.message_id AND m.recalled_at IS NULL AND m.purged_at IS NULL)))`
}

// Attachments lists the thread's attachments the caller may see (members,
// or emergency access to the patient; audited).
func (s *Store) Attachments(ctx context.Context, who auth.Principal, threadID uuid.UUID) ([]Attachment, error) {
	out := []Attachment{}
	err := s.inTx(ctx, who.Actor(), func(tx pgx.Tx) error {
		t, emergency, err := readThread(ctx, tx, threadID, who, "attachment.list")
		if err != nil {
			return err
		}
		rows, _ := tx.Query(ctx, `SELECT `+attachmentColumns+` FROM attachments a
			WHERE a.thread_id = $1 AND `+readableAttachments("$2", "$3")+` ORDER BY a.created_at DESC, a.id LIMIT 1000`, t.ID, who.User.ID, emergency)
		as, err := pgx.CollectRows(rows, pgx.RowToStructByName[attachmentRow])
		if err != nil {
			return err
		}
		for _, r := range as {
			a, err := s.openAttachment(ctx, r)
			if err != nil {
				return err
			}
			out = append(out, a)
		}
		return audit.Record(ctx, tx, who.Actor(), audit.Entry{Action: "attachment.list", ObjectType: "thread", ObjectID: t.ID.String(),
			PatientRef: t.patientRef(), Details: map[string]any{"count": len(out)}})
	})
	return out, err
}

// Download returns an attachment and its bytes (members who may see it, or
// emergency access to the patient; audited).
func (s *Store) Download(ctx context.Context, who auth.Principal, threadID, id uuid.UUID) (Attachment, []byte, error) {
	var out Attachment
	var content []byte
	err := s.inTx(ctx, who.Actor(), func(tx pgx.Tx) error {
		t, emergency, err := readThread(ctx, tx, threadID, who, "attachment.download")
		if err != nil {
			return err
		}
		type contentRow struct {
			attachmentRow
			Content []byte `db:"content"`
		}
		rows, _ := tx.Query(ctx, `SELECT `+attachmentColumns+`, a.content FROM attachments a
			WHERE a.id = $1 AND a.thread_id = $3 AND `+readableAttachments("$2", "$4"), id, who.User.ID, t.ID, emergency)
		r, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[contentRow])
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("attachment: %w", callroom.ErrNotFound)
		}
		if err != nil {
			return err
		}
		if out, err = s.openAttachment(ctx, r.attachmentRow); err != nil {
			return err
		}
		if content, err = s.sealer.Open(ctx, r.Content, attachmentAAD(id)); err != nil {
			return fmt.Errorf("opening attachment %s: %w", id, err)
		}
		return audit.Record(ctx, tx, who.Actor(), audit.Entry{Action: "attachment.download", ObjectType: "attachment", ObjectID: id.String(),
			PatientRef: t.patientRef(), Details: map[string]any{"thread_id": t.ID, "message_id": r.MessageID}})
	})
	return out, content, err
}

// queueAttachments queues the read of the attachments of messageIDs (for
// message views) into out.
func queueAttachments(b *pgx.Batch, messageIDs []uuid.UUID, out *[]attachmentRow) {
	if len(messageIDs) == 0 {
		return
	}
	b.Queue(`SELECT `+attachmentColumns+` FROM attachments a
		WHERE a.message_id = ANY($1) AND a.purged_at IS NULL ORDER BY a.created_at, a.id`, messageIDs).
		Query(func(rows pgx.Rows) error {
			var err error
			*out, err = pgx.CollectRows(rows, pgx.RowToStructByName[attachmentRow])
			return err
		})
}

// attachmentInfos opens the file names of rows, by message.
func (s *Store) attachmentInfos(ctx context.Context, rows []attachmentRow) (map[uuid.UUID][]AttachmentInfo, error) {
	out := map[uuid.UUID][]AttachmentInfo{}
	for _, r := range rows {
		a, err := s.openAttachment(ctx, r)
		if err != nil {
			return nil, err
		}
		out[*r.MessageID] = append(out[*r.MessageID], AttachmentInfo{ID: a.ID, ContentType: a.ContentType, Size: a.Size, Filename: a.Filename})
	}
	return out, nil
}

package inbox

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callroom/callroom/audit"
)

// Transcript is a thread as the patient's record keeps it: who took part
// and what was said (current versions; recalled and purged messages are
// counted but not shown).
type Transcript struct {
	ThreadID     uuid.UUID
	PatientRef   string
	EncounterRef string
	Participants []Participant
	Messages     []TranscriptLine
	// Withheld counts recalled and purged messages.
	Withheld int
}

// Participant is someone who was ever a member of the thread.
type Participant struct {
	UserID uuid.UUID `db:"user_id"`
	Name   string    `db:"name"`
	NPI    *string   `db:"npi"`
}

// TranscriptLine is one message.
type TranscriptLine struct {
	At       time.Time
	AuthorID *uuid.UUID
	Author   string // "" for a system message (a page)
	Priority Priority
	Text     string
}

// Transcript reads a thread for the patient's record (callroom writing back
// to the EHR): no person reads it here, so there is no membership check; the
// read is audited with the system as actor and the patient named. Messages
// posted up to until (zero: all).
func (s *Store) Transcript(ctx context.Context, threadID uuid.UUID, until time.Time) (Transcript, error) {
	var out Transcript
	err := s.inTx(ctx, audit.System, func(tx pgx.Tx) error {
		t, err := getThread(ctx, tx, threadID, "")
		if err != nil {
			return err
		}
		out = Transcript{ThreadID: t.ID, PatientRef: t.patientRef()}
		if t.EncounterRef != nil {
			out.EncounterRef = *t.EncounterRef
		}
		rows, _ := tx.Query(ctx, `SELECT DISTINCT ON (u.id) u.id AS user_id, u.name, u.npi FROM thread_members tm JOIN users u ON u.id = tm.user_id
			WHERE tm.thread_id = $1 ORDER BY u.id`, threadID)
		if out.Participants, err = pgx.CollectRows(rows, pgx.RowToStructByName[Participant]); err != nil {
			return err
		}
		cut := until
		if cut.IsZero() {
			cut = time.Now().Add(time.Hour)
		}
		rows, _ = tx.Query(ctx, messageSelect+` WHERE m.thread_id = $1 AND m.created_at <= $2 ORDER BY m.seq`, threadID, cut)
		msgs, err := pgx.CollectRows(rows, pgx.RowToStructByName[messageRow])
		if err != nil {
			return err
		}
		names := map[uuid.UUID]string{}
		for _, p := range out.Participants {
			names[p.UserID] = p.Name
		}
		for _, m := range msgs {
			if m.RecalledAt != nil || m.PurgedAt != nil || m.Body == nil {
				out.Withheld++
				continue
			}
			text, err := s.sealer.Open(ctx, m.Body, messageAAD(m.ID, m.Version))
			if err != nil {
				return err
			}
			line := TranscriptLine{At: m.CreatedAt, AuthorID: m.AuthorID, Priority: m.Priority, Text: string(text)}
			if m.AuthorID != nil {
				line.Author = names[*m.AuthorID]
			}
			out.Messages = append(out.Messages, line)
		}
		return audit.Record(ctx, tx, audit.System, audit.Entry{Action: "thread.transcript", ObjectType: "thread",
			ObjectID: threadID.String(), PatientRef: out.PatientRef, Details: map[string]any{"messages": len(out.Messages)}})
	})
	return out, err
}

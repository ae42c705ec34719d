package inbox

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/callroom/callroom"
	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/auth"
	"github.com/callroom/callroom/internal/pg"
)

// RetentionPolicy says how many days messages of a thread kind are kept
// before retention erases their text and attachments. A kind without a
// policy is kept for ever.
type RetentionPolicy struct {
	Kind      Kind       `json:"kind" db:"kind"`
	Days      int        `json:"days" db:"days"`
	UpdatedBy *uuid.UUID `json:"updated_by,omitempty" db:"updated_by"`
	UpdatedAt time.Time  `json:"updated_at" db:"updated_at"`
}

// MaxRetentionDays is a hundred years: longer is for ever, which is no policy.
const MaxRetentionDays = 36500

// SetRetention sets the policy for kind (administrators only).
func (s *Store) SetRetention(ctx context.Context, who auth.Principal, kind Kind, days int) (RetentionPolicy, error) {
	var out RetentionPolicy
	if !isAdmin(who.User) {
		return out, s.refuse(ctx, who.Actor(), &denial{action: "retention.set", objectType: "retention_policy", objectID: string(kind),
			reason: "only administrators set retention policies"})
	}
	if err := checkKind("kind", kind); err != nil {
		return out, err
	}
	if days < 1 || days > MaxRetentionDays {
		return out, callroom.Invalid("days", "must be between 1 and %d", MaxRetentionDays)
	}
	err := pg.InTx(ctx, s.db, func(tx pgx.Tx) error {
		rows, _ := tx.Query(ctx, `INSERT INTO retention_policies (kind, days, updated_by) VALUES ($1, $2, $3)
			ON CONFLICT (kind) DO UPDATE SET days = $2, updated_by = $3, updated_at = now()
			RETURNING kind, days, updated_by, updated_at`, kind, days, who.User.ID)
		var err error
		if out, err = pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[RetentionPolicy]); err != nil {
			return err
		}
		return audit.Record(ctx, tx, who.Actor(), audit.Entry{Action: "retention.set", ObjectType: "retention_policy",
			ObjectID: string(kind), Details: map[string]any{"days": days}})
	})
	return out, err
}

// RetentionPolicies lists the policies by kind.
func (s *Store) RetentionPolicies(ctx context.Context) ([]RetentionPolicy, error) {
	rows, _ := s.db.Query(ctx, `SELECT kind, days, updated_by, updated_at FROM retention_policies ORDER BY kind`)
	return pgx.CollectRows(rows, pgx.RowToStructByName[RetentionPolicy])
}

// SetLegalHold puts a thread under legal hold, or lifts it (administrators
// only). Under hold, retention erases nothing of the thread.
func (s *Store) SetLegalHold(ctx context.Context, who auth.Principal, threadID uuid.UUID, hold bool) (Thread, error) {
	var out Thread
	err := s.inTx(ctx, who.Actor(), func(tx pgx.Tx) error {
		t, err := getThread(ctx, tx, threadID, "FOR NO KEY UPDATE")
		if err != nil {
			return err
		}
		if !isAdmin(who.User) {
			return denyThread(t, "thread.legal_hold", "only administrators place or lift a legal hold")
		}
		if t.LegalHold != hold {
			if _, err := tx.Exec(ctx, `UPDATE threads SET legal_hold = $2, updated_at = now() WHERE id = $1`, t.ID, hold); err != nil {
				return err
			}
			if err := audit.Record(ctx, tx, who.Actor(), audit.Entry{Action: "thread.legal_hold", ObjectType: "thread", ObjectID: t.ID.String(),
				PatientRef: t.patientRef(), Details: map[string]any{"legal_hold": hold}}); err != nil {
				return err
			}
			if err := announce(ctx, tx, t.ID, EventThreadUpdated, threadEvent{ThreadID: t.ID}); err != nil {
				return err
			}
		}
		out, err = s.view(ctx, tx, t.ID, who.User.ID, false)
		return err
	})
	return out, err
}

// UnsentRetention is how long an upload that no message took is kept: it was
// abandoned, and sealed PHI nobody can reach should not linger.
const UnsentRetention = 7 * 24 * time.Hour

// purgeBatch bounds each purge transaction (rows locked, WAL written).
const purgeBatch = 500

// PurgeResult counts what a purge erased.
type PurgeResult struct {
	Messages    int64 `json:"messages"`
	Attachments int64 `json:"attachments"`
}

// Purge erases, as of now, the text (every version) and attachments of
// messages older than their thread kind's policy, and unsent uploads older
// than UnsentRetention, except in threads under legal hold. Message rows,
// receipts and the audit trail stay: the conversation's shape remains, its
// content does not. Each batch commits with an audit event that counts what
// it erased.
func (s *Store) Purge(ctx context.Context, now time.Time) (PurgeResult, error) {
	var total PurgeResult
	policies, err := s.RetentionPolicies(ctx)
	if err != nil {
		return total, err
	}
	for _, p := range policies {
		cutoff := now.Add(-time.Duration(p.Days) * 24 * time.Hour)
		for {
			n, err := s.purgeMessages(ctx, p, cutoff)
			total.Messages += n.Messages
			total.Attachments += n.Attachments
			if err != nil {
				return total, err
			}
			if n.Messages < purgeBatch {
				break
			}
		}
	}
	for {
		n, err := s.purgeUnsent(ctx, now.Add(-UnsentRetention))
		total.Attachments += n
		if err != nil {
			return total, err
		}
		if n < purgeBatch {
			break
		}
	}
	return total, nil
}

// purgeMessages erases one batch. The thread rows are share-locked, so a
// legal hold committed while the batch waits is seen and respected.
func (s *Store) purgeMessages(ctx context.Context, p RetentionPolicy, cutoff time.Time) (PurgeResult, error) {
	var n PurgeResult
	err := pg.InTx(ctx, s.db, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `WITH victims AS (
				SELECT m.id FROM messages m JOIN threads t ON t.id = m.thread_id
				WHERE t.kind = $1 AND NOT t.legal_hold AND m.purged_at IS NULL AND m.created_at < $2
				ORDER BY m.created_at LIMIT $3
				FOR NO KEY UPDATE OF m FOR SHARE OF t
			), versions AS (
				UPDATE message_versions SET body = NULL, key_id = NULL
				WHERE message_id IN (SELECT id FROM victims) AND body IS NOT NULL
			), files AS (
				UPDATE attachments SET content = NULL, key_id = NULL, filename = NULL, filename_key_id = NULL, purged_at = now()
				WHERE message_id IN (SELECT id FROM victims) AND purged_at IS NULL
				RETURNING 1
			), msgs AS (
				UPDATE messages SET purged_at = now() WHERE id IN (SELECT id FROM victims)
				RETURNING 1
			)
			SELECT (SELECT count(*) FROM msgs), (SELECT count(*) FROM files)`,
			p.Kind, cutoff, purgeBatch).Scan(&n.Messages, &n.Attachments)
		if err != nil || n.Messages == 0 {
			return err
		}
		return audit.Record(ctx, tx, audit.System, audit.Entry{Action: "retention.purge", ObjectType: "retention_policy",
			ObjectID: string(p.Kind), Details: map[string]any{"days": p.Days, "messages": n.Messages, "attachments": n.Attachments}})
	})
	return n, err
}

func (s *Store) purgeUnsent(ctx context.Context, cutoff time.Time) (int64, error) {
	var n int64
	err := pg.InTx(ctx, s.db, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `WITH victims AS (
				SELECT a.id FROM attachments a JOIN threads t ON t.id = a.thread_id
				WHERE a.message_id IS NULL AND a.purged_at IS NULL AND a.created_at < $1 AND NOT t.legal_hold
				ORDER BY a.created_at LIMIT $2
				FOR NO KEY UPDATE OF a FOR SHARE OF t
			), files AS (
				UPDATE attachments SET content = NULL, key_id = NULL, filename = NULL, filename_key_id = NULL, purged_at = now()
				WHERE id IN (SELECT id FROM victims)
				RETURNING 1
			)
			SELECT count(*) FROM files`, cutoff, purgeBatch).Scan(&n)
		if err != nil || n == 0 {
			return err
		}
		return audit.Record(ctx, tx, audit.System, audit.Entry{Action: "retention.purge", ObjectType: "attachment",
			Details: map[string]any{"unsent_attachments": n}})
	})
	return n, err
}

// PurgeArgs asks for a retention purge.
type PurgeArgs struct{}

func (PurgeArgs) Kind() string { return "inbox.purge" }

// PurgeWorker runs Purge.
type PurgeWorker struct {
	river.WorkerDefaults[PurgeArgs]
	Store *Store
}

func (w *PurgeWorker) Work(ctx context.Context, _ *river.Job[PurgeArgs]) error {
	res, err := w.Store.Purge(ctx, time.Now())
	if err != nil {
		return fmt.Errorf("inbox purge: %w", err)
	}
	if res.Messages > 0 || res.Attachments > 0 {
		w.Store.log.Info("retention purge", "messages", res.Messages, "attachments", res.Attachments)
	}
	return nil
}

// PurgePeriodic runs the purge hourly on the elected leader: retention is in
// days, so an hour's lateness is immaterial.
func PurgePeriodic() *river.PeriodicJob {
	return river.NewPeriodicJob(river.PeriodicInterval(time.Hour),
		func() (river.JobArgs, *river.InsertOpts) { return PurgeArgs{}, nil },
		&river.PeriodicJobOpts{RunOnStart: true})
}

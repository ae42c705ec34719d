package audit

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/callroom/callroom/internal/pg"
)

// HIPAA keeps the documentation of security activity six years
// (45 CFR 164.316(b)(2)(i)). No retention job purges audit rows younger than
// that: Purge refuses, and a database trigger refuses the DELETE itself
// (migrations/0008), so neither a bug here nor a hand-written DELETE can.

// RetentionYears is how long audit rows are kept at least.
const RetentionYears = 6

// RetentionCutoff is the instant before which audit rows may be purged.
func RetentionCutoff(now time.Time) time.Time { return now.AddDate(-RetentionYears, 0, 0) }

// Purge deletes the oldest sealed audit rows recorded before before, which
// must be at least RetentionYears ago, and records how many it deleted. Only
// a prefix of the chain goes (rows up to the first one that must stay), so
// Verify still checks what remains. It must run as the database owner: the
// application role has no DELETE on audit_events.
func Purge(ctx context.Context, db *pgxpool.Pool, before time.Time) (int64, error) {
	if cutoff := RetentionCutoff(time.Now()); before.After(cutoff) {
		return 0, fmt.Errorf("audit purge: rows are kept %d years; %s is after %s", RetentionYears,
			before.Format(time.DateOnly), cutoff.Format(time.DateOnly))
	}
	var n int64
	err := pg.InTx(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL callroom.audit_purge = 'on'`); err != nil {
			return err
		}
		// Hold the chain still: no sealing while its start is cut.
		if _, err := tx.Exec(ctx, `SELECT 1 FROM audit_chain_head FOR UPDATE`); err != nil {
			return err
		}
		var keepFrom int64
		if err := tx.QueryRow(ctx, `SELECT coalesce(
			(SELECT min(seq) FROM audit_events WHERE seq IS NOT NULL AND at >= $1),
			(SELECT seq + 1 FROM audit_chain_head))`, before).Scan(&keepFrom); err != nil {
			return err
		}
		var through []byte
		err := tx.QueryRow(ctx, `SELECT hash FROM audit_events WHERE seq = $1`, keepFrom-1).Scan(&through)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // nothing (left) to purge
		}
		if err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `DELETE FROM audit_events WHERE seq < $1`, keepFrom)
		if err != nil {
			return err
		}
		n = tag.RowsAffected()
		// The chain now starts after through; Verify accepts that start only
		// because this (sealed) event vouches for it.
		return Record(ctx, tx, System, Entry{Action: "audit.purge", ObjectType: "audit_events",
			Details: map[string]any{"rows": n, "before": before.UTC().Format(time.RFC3339),
				"through_seq": keepFrom - 1, "through_hash": hex.EncodeToString(through)}})
	})
	return n, err
}

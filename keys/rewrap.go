package keys

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/callroom/callroom/audit"
	"github.com/callroom/callroom/internal/pg"
)

// Rewrap re-wraps every data key not yet wrapped by mk's current master key
// under it, and returns how many it changed. The data itself is not touched:
// data keys stay the same, only their wrapping changes.
//
// Each data key is re-wrapped in its own short transaction (locking only
// its row), so running instances keep serving: they hold their data keys
// unwrapped, and can unwrap a re-wrapped key as long as their key file has
// the new master key. Rewrap is idempotent; after a failure, running it
// again continues where it stopped. Running it again once every instance
// has the new key file also catches data keys that an instance with the old
// file rotated in meanwhile; after that the old master key may be removed.
func Rewrap(ctx context.Context, pool *pgxpool.Pool, mk *MasterKeys) (n int, err error) {
	if mk == nil || len(mk.ids) == 0 {
		return 0, ErrNoMasterKey
	}
	to := mk.Current()
	rows, err := pool.Query(ctx, `SELECT id FROM data_keys WHERE master_key_id <> $1 ORDER BY created_at, id`, to)
	if err != nil {
		return 0, fmt.Errorf("keys: listing data keys: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return 0, fmt.Errorf("keys: listing data keys: %w", err)
	}
	for _, id := range ids {
		changed, err := rewrapOne(ctx, pool, mk, id)
		if err != nil {
			return n, fmt.Errorf("re-wrapping data key %s (%d re-wrapped before it): %w", id, n, err)
		}
		if changed {
			n++
		}
	}
	return n, nil
}

func rewrapOne(ctx context.Context, pool *pgxpool.Pool, mk *MasterKeys, id uuid.UUID) (changed bool, err error) {
	to := mk.Current()
	err = pg.InTx(ctx, pool, func(tx pgx.Tx) error {
		var (
			from    string
			wrapped []byte
		)
		err := tx.QueryRow(ctx, `SELECT master_key_id, wrapped FROM data_keys WHERE id = $1 FOR UPDATE`, id).Scan(&from, &wrapped)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // deleted meanwhile
		}
		if err != nil {
			return err
		}
		if from == to {
			return nil // a concurrent Rewrap got there first
		}
		dk, err := unwrap(mk, from, id, wrapped)
		if err != nil {
			return err
		}
		rewrapped, err := wrap(mk, to, id, dk)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE data_keys SET master_key_id = $2, wrapped = $3, rewrapped_at = now() WHERE id = $1`,
			id, to, rewrapped); err != nil {
			return err
		}
		changed = true
		return audit.Record(ctx, tx, audit.System, audit.Entry{Action: "data_key.rewrap", ObjectType: "data_key", ObjectID: id.String(),
			Details: map[string]any{"from_master_key_id": from, "to_master_key_id": to}})
	})
	return changed, err
}

// CheckMasterKeys returns an error wrapping ErrMasterKeyMissing, naming the
// missing ids, when some data key is wrapped by a master key mk lacks.
// 'callroom keys rotate' checks this before it changes the key file, so a
// rotation that could not finish does not begin.
func CheckMasterKeys(ctx context.Context, pool *pgxpool.Pool, mk *MasterKeys) error {
	rows, err := pool.Query(ctx, `SELECT DISTINCT master_key_id FROM data_keys ORDER BY 1`)
	if err != nil {
		return fmt.Errorf("keys: reading data keys: %w", err)
	}
	used, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("keys: reading data keys: %w", err)
	}
	var missing []string
	for _, id := range used {
		if !mk.Has(id) {
			missing = append(missing, strconv.Quote(id))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: data keys are wrapped by master key(s) %s; this key file holds %s",
			ErrMasterKeyMissing, strings.Join(missing, ", "), strings.Join(mk.ids, ", "))
	}
	return nil
}

package pg_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/callroom/callroom/internal/pg"
)

// Lockstep: functions that each read, write and read back in three steps
// take three round trips together, see what they wrote themselves, and get
// the error of a step that fails; a function that uses its transaction
// directly is refused.
func TestLockstep(t *testing.T) {
	ctx := context.Background()
	pool, rt := tracedPool(t)
	const n = 10
	// Each: is its row there (no), write it, read it back, then queue a
	// note and flush it.
	steps := func(id int, seen *int, note *string) func(pgx.Tx, *pg.Writes) error {
		return func(_ pgx.Tx, w *pg.Writes) error {
			if err := w.FlushQuery(ctx, nil, func(rows pgx.Rows) (err error) {
				*seen, err = pgx.CollectExactlyOneRow(rows, pgx.RowTo[int])
				return err
			}, `SELECT count(*)::int FROM pipelined WHERE id = $1`, id); err != nil {
				return err
			}
			w.Exec(`INSERT INTO pipelined (id) VALUES ($1)`, id)
			if err := w.FlushQuery(ctx, nil, func(rows pgx.Rows) (err error) {
				*seen, err = pgx.CollectExactlyOneRow(rows, pgx.RowTo[int])
				return err
			}, `SELECT count(*)::int FROM pipelined WHERE id = $1`, id); err != nil {
				return err
			}
			w.Queue(`UPDATE pipelined SET note = $2 WHERE id = $1 RETURNING note`, id, fmt.Sprint("note ", id)).QueryRow(func(row pgx.Row) error {
				return row.Scan(note)
			})
			return w.Flush(ctx, nil)
		}
	}
	seen := make([]int, n)
	notes := make([]string, n)
	fns := make([]func(pgx.Tx, *pg.Writes) error, n)
	for i := range n {
		fns[i] = steps(i, &seen[i], &notes[i])
	}
	err := pg.InTx(ctx, pool, func(tx pgx.Tx) error {
		rt.n.Store(0)
		err := pg.Lockstep(ctx, tx, fns)
		if got := rt.n.Load(); got != 3 {
			t.Errorf("%d functions of 3 steps: %d round trips, want 3", n, got)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if seen[i] != 1 || notes[i] != fmt.Sprint("note ", i) {
			t.Errorf("function %d saw its row %d times, its note %q", i, seen[i], notes[i])
		}
	}
	if got := count(t, pool); got != n {
		t.Errorf("%d rows, want %d", got, n)
	}

	// A failing statement (a duplicate key) fails its step for everyone.
	err = pg.InTx(ctx, pool, func(tx pgx.Tx) error {
		return pg.Lockstep(ctx, tx, []func(pgx.Tx, *pg.Writes) error{
			func(_ pgx.Tx, w *pg.Writes) error {
				w.Exec(`INSERT INTO pipelined (id) VALUES (100)`)
				return w.Flush(ctx, nil)
			},
			func(_ pgx.Tx, w *pg.Writes) error {
				w.Exec(`INSERT INTO pipelined (id) VALUES (1)`)
				return w.Flush(ctx, nil)
			},
		})
	})
	if !pg.IsUniqueViolation(err, "pipelined_pkey") {
		t.Errorf("a duplicate in one function: %v", err)
	}
	if got := count(t, pool); got != n {
		t.Errorf("%d rows after the failed step, want %d", got, n)
	}

	// Direct use of the transaction, and a panic, are errors, not hangs.
	err = pg.InTx(ctx, pool, func(tx pgx.Tx) error {
		return pg.Lockstep(ctx, tx, []func(pgx.Tx, *pg.Writes) error{
			func(tx pgx.Tx, _ *pg.Writes) error {
				_, err := tx.Exec(ctx, `INSERT INTO pipelined (id) VALUES (200)`)
				return err
			},
			func(_ pgx.Tx, w *pg.Writes) error {
				w.Exec(`INSERT INTO pipelined (id) VALUES (201)`)
				return w.Flush(ctx, nil)
			},
			func(tx pgx.Tx, _ *pg.Writes) error {
				tx.Conn().Exec(ctx, `INSERT INTO pipelined (id) VALUES (202)`) //nolint:errcheck
				return nil
			},
			func(tx pgx.Tx, _ *pg.Writes) error {
				rows, _ := tx.Query(ctx, `SELECT id FROM pipelined`)
				_, err := pgx.CollectRows(rows, pgx.RowTo[int])
				return err
			},
			func(tx pgx.Tx, _ *pg.Writes) error {
				return tx.SendBatch(ctx, &pgx.Batch{}).Close()
			},
		})
	})
	// Each refused use is ErrLockstep; the panic (Conn, not refused one by
	// one) an error of its own.
	if n := strings.Count(err.Error(), pg.ErrLockstep.Error()); !errors.Is(err, pg.ErrLockstep) || n != 3 {
		t.Errorf("a transaction used directly: %d refusals in %v", n, err)
	}
	if got := count(t, pool); got != n {
		t.Errorf("%d rows after the refused use, want %d", got, n)
	}
}

package pg_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/callroom/callroom/internal/pg"
)

// rowsSQL inserts its rows with a note saying which execution of a
// statement wrote them (a sequence taken once per statement).
const rowsSQL = `WITH s AS (SELECT nextval('executions') AS n)
	INSERT INTO pipelined (id, note) SELECT x, (SELECT n FROM s)::text FROM unnest($1::int[]) AS x`

// TestExecRowsInLockstep: the functions' ExecRows of the same SQL at the
// same place are one statement; statements that differ, or functions whose
// statements differ, are not merged; each function's order holds; the
// rows each must affect are added up.
func TestExecRowsInLockstep(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name string
		fns  []func(w *pg.Writes)
		// executions is how many statements wrote the rows.
		executions int
		fails      bool
	}{
		{name: "alike: one statement per shape", executions: 2, fns: []func(w *pg.Writes){
			func(w *pg.Writes) { w.ExecRows(rowsSQL, 1, []int{1}) },
			func(w *pg.Writes) { w.ExecRows(rowsSQL, 2, []int{2, 3}) },
			func(w *pg.Writes) { w.ExecRows(rowsSQL, -1, []int{4}) }, // not checked: a shape of its own
			func(w *pg.Writes) { w.ExecRows(rowsSQL, 1, []int{5}) },
		}},
		{name: "one statement each place", executions: 2, fns: []func(w *pg.Writes){
			func(w *pg.Writes) {
				w.ExecRows(rowsSQL, 1, []int{1})
				w.Exec(`UPDATE pipelined SET note = note || '+' WHERE id = $1`, 1) // after its own insert
				w.ExecRows(rowsSQL, 1, []int{11})
			},
			func(w *pg.Writes) {
				w.ExecRows(rowsSQL, 1, []int{2})
				w.Exec(`UPDATE pipelined SET note = note || '+' WHERE id = $1`, 2)
				w.ExecRows(rowsSQL, 1, []int{12})
			},
		}},
		{name: "shapes differ: apart", executions: 2, fns: []func(w *pg.Writes){
			func(w *pg.Writes) { w.ExecRows(rowsSQL, 1, []int{1}) },
			func(w *pg.Writes) { w.ExecRows(rowsSQL, 1, []int{2}); w.Exec(`SELECT 1`) },
		}},
		{name: "a row not written fails the step", fails: true, fns: []func(w *pg.Writes){
			func(w *pg.Writes) { w.ExecRows(rowsSQL+` ON CONFLICT DO NOTHING`, 1, []int{1}) },
			func(w *pg.Writes) { w.ExecRows(rowsSQL+` ON CONFLICT DO NOTHING`, 1, []int{1}) },
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			pool, _ := tracedPool(t)
			if _, err := pool.Exec(ctx, `CREATE SEQUENCE executions`); err != nil {
				t.Fatal(err)
			}
			var fns []func(pgx.Tx, *pg.Writes) error
			for _, f := range c.fns {
				fns = append(fns, func(tx pgx.Tx, w *pg.Writes) error {
					f(w)
					return w.Flush(ctx, tx)
				})
			}
			err := pg.InTx(ctx, pool, func(tx pgx.Tx) error { return pg.Lockstep(ctx, tx, fns) })
			if c.fails {
				if err == nil {
					t.Fatal("a merged statement that wrote fewer rows than its members must did not fail")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var executions int
			if err := pool.QueryRow(ctx, `SELECT count(DISTINCT trim(trailing '+' FROM note)) FROM pipelined`).Scan(&executions); err != nil {
				t.Fatal(err)
			}
			if executions != c.executions {
				t.Errorf("rows written by %d statements, want %d", executions, c.executions)
			}
			var updated int
			if err := pool.QueryRow(ctx, `SELECT count(*) FROM pipelined WHERE note LIKE '%+'`).Scan(&updated); err != nil {
				t.Fatal(err)
			}
			if want := map[bool]int{true: 2, false: 0}[c.name == "one statement each place"]; updated != want {
				t.Errorf("%d rows updated after their insert, want %d", updated, want)
			}
		})
	}
}

// ExecRows alone is a statement like any other, its count checked.
func TestExecRows(t *testing.T) {
	ctx := context.Background()
	pool, _ := tracedPool(t)
	var w pg.Writes
	w.ExecRows(`INSERT INTO pipelined (id) SELECT * FROM unnest($1::int[])`, 2, []int{1, 2})
	if err := w.Flush(ctx, pool); err != nil {
		t.Fatal(err)
	}
	w.ExecRows(`INSERT INTO pipelined (id) SELECT * FROM unnest($1::int[]) ON CONFLICT DO NOTHING`, 2, []int{2, 3})
	if err := w.Flush(ctx, pool); err == nil {
		t.Fatal("a statement that wrote 1 of its 2 rows did not fail")
	}
	if n := count(t, pool); n != 3 {
		t.Errorf("%d rows, want 3", n)
	}
}

// ExecRows of the same SQL queued one after another are one statement, the
// rows each must affect added up; one queued after another statement is
// not widened.
func TestExecRowsWidened(t *testing.T) {
	ctx := context.Background()
	pool, _ := tracedPool(t)
	if _, err := pool.Exec(ctx, `CREATE SEQUENCE executions`); err != nil {
		t.Fatal(err)
	}
	var w pg.Writes
	w.ExecRows(rowsSQL, 1, []int{1})
	w.ExecRows(rowsSQL, 2, []int{2, 3})
	w.Exec(`SELECT 1`)
	w.ExecRows(rowsSQL, 1, []int{4})
	if err := w.Flush(ctx, pool); err != nil {
		t.Fatal(err)
	}
	var executions int
	if err := pool.QueryRow(ctx, `SELECT count(DISTINCT note) FROM pipelined`).Scan(&executions); err != nil {
		t.Fatal(err)
	}
	if n := count(t, pool); n != 4 || executions != 2 {
		t.Errorf("%d rows by %d statements, want 4 by 2", n, executions)
	}
	w.ExecRows(rowsSQL+` ON CONFLICT DO NOTHING`, 1, []int{5})
	w.ExecRows(rowsSQL+` ON CONFLICT DO NOTHING`, 1, []int{1}) // there already
	if err := w.Flush(ctx, pool); err == nil {
		t.Fatal("a widened statement that wrote 1 of the 2 rows its parts must did not fail")
	}
}

package pg_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/callroom/callroom/internal/pg"
	"github.com/callroom/callroom/internal/pgtest"
)

// roundTrips counts what a pool sends: each statement outside a batch and
// each batch is one round trip.
type roundTrips struct{ n atomic.Int64 }

func (r *roundTrips) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	if ctx.Value(inBatch{}) == nil {
		r.n.Add(1)
	}
	return ctx
}
func (r *roundTrips) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (r *roundTrips) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	r.n.Add(1)
	return context.WithValue(ctx, inBatch{}, true)
}
func (r *roundTrips) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (r *roundTrips) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}

type inBatch struct{}

func tracedPool(t *testing.T) (*pgxpool.Pool, *roundTrips) {
	t.Helper()
	db := pgtest.New(t)
	cfg, err := pgxpool.ParseConfig(db.URL)
	if err != nil {
		t.Fatal(err)
	}
	pg.Configure(cfg)
	rt := &roundTrips{}
	cfg.ConnConfig.Tracer = rt
	cfg.MaxConns = 2
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, err := pool.Exec(context.Background(), `CREATE TABLE pipelined (id int PRIMARY KEY, note text)`); err != nil {
		t.Fatal(err)
	}
	// Both connections open (each sends statements of its own when it
	// connects) before counting.
	a, err := pool.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	b, err := pool.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	a.Release()
	b.Release()
	rt.n.Store(0)
	return pool, rt
}

func count(t *testing.T, pool *pgxpool.Pool) (n int) {
	t.Helper()
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM pipelined`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// InTxPipelined: BEGIN goes with the first read and COMMIT with the last
// writes; anything that fails before the commit leaves nothing written; and
// the connection goes back to the pool outside a transaction.
func TestInTxPipelined(t *testing.T) {
	ctx := context.Background()
	boom := errors.New("boom")
	cases := []struct {
		name       string
		first      string
		fn         func(tx pgx.Tx) error
		want       error // nil: committed
		roundTrips int64
	}{
		{"commit with the last writes", `SELECT 1`, func(tx pgx.Tx) error {
			var w pg.Writes
			w.Exec(`INSERT INTO pipelined VALUES (1, 'a')`)
			w.Exec(`INSERT INTO pipelined VALUES (2, 'b')`)
			w.CommitOnFlush()
			return w.Flush(ctx, tx)
		}, nil, 2},
		{"commit after a read-back", `SELECT 1`, func(tx pgx.Tx) error {
			var w pg.Writes
			w.Exec(`INSERT INTO pipelined VALUES (1, 'a')`)
			w.CommitOnFlush()
			return w.FlushQuery(ctx, tx, func(rows pgx.Rows) error {
				n, err := pgx.CollectExactlyOneRow(rows, pgx.RowTo[int])
				if err == nil && n != 1 {
					t.Errorf("read back %d rows, want the insert's 1", n)
				}
				return err
			}, `SELECT count(*) FROM pipelined`)
		}, nil, 2},
		{"committed by InTxPipelined when not with the writes", `SELECT 1`, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO pipelined VALUES (1, 'a')`)
			return err
		}, nil, 3},
		{"a failing write skips the commit", `SELECT 1`, func(tx pgx.Tx) error {
			var w pg.Writes
			w.Exec(`INSERT INTO pipelined VALUES (1, 'a')`)
			w.Exec(`INSERT INTO pipelined VALUES (1, 'duplicate')`)
			w.Exec(`INSERT INTO pipelined VALUES (3, 'c')`)
			w.CommitOnFlush()
			return w.Flush(ctx, tx)
		}, errors.New("unique violation"), 3},
		{"fn's error rolls back", `SELECT 1`, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `INSERT INTO pipelined VALUES (1, 'a')`); err != nil {
				return err
			}
			return boom
		}, boom, 3},
		{"a failing first read runs nothing", `SELECT 1/0`, func(tx pgx.Tx) error {
			t.Error("fn ran after its first read failed")
			return nil
		}, errors.New("division by zero"), 2}, // and the rollback
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pool, rt := tracedPool(t)
			err := pg.InTxPipelined(ctx, pool, pg.Read{SQL: c.first, Scan: func(rows pgx.Rows) error {
				_, err := pgx.CollectRows(rows, pgx.RowTo[int])
				return err
			}}, c.fn)
			sent := rt.n.Load()
			if (err == nil) != (c.want == nil) || (errors.Is(c.want, boom) && !errors.Is(err, boom)) {
				t.Fatalf("error %v, want %v", err, c.want)
			}
			if n := count(t, pool); (c.want == nil) != (n > 0) {
				t.Fatalf("%d rows after error %v", n, err)
			}
			if sent != c.roundTrips {
				t.Errorf("%d round trips, want %d", sent, c.roundTrips)
			}
			if s := pool.Stat(); s.AcquiredConns() != 0 {
				t.Fatalf("%d connections still acquired", s.AcquiredConns())
			}
			// Every connection left is outside a transaction: a new
			// transaction on it sees nothing of this one's.
			for range 2 {
				c, err := pool.Acquire(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if st := c.Conn().PgConn().TxStatus(); st != 'I' {
					t.Fatalf("a pooled connection is in transaction state %c", st)
				}
				defer c.Release()
			}
		})
	}
}

// A statement a callback queues after the COMMIT went is not run outside the
// transaction: Flush refuses it (what went with the COMMIT is committed).
func TestWritesRefuseStatementsAfterCommit(t *testing.T) {
	ctx := context.Background()
	pool, _ := tracedPool(t)
	err := pg.InTxPipelined(ctx, pool, pg.Read{SQL: `SELECT 1`, Scan: func(rows pgx.Rows) error { rows.Close(); return rows.Err() }},
		func(tx pgx.Tx) error {
			var w pg.Writes
			w.Queue(`INSERT INTO pipelined VALUES (1, 'a') RETURNING id`).QueryRow(func(row pgx.Row) error {
				var id int
				if err := row.Scan(&id); err != nil {
					return err
				}
				w.Exec(`INSERT INTO pipelined VALUES (2, 'late')`)
				return nil
			})
			w.CommitOnFlush()
			return w.Flush(ctx, tx)
		})
	if err == nil || !strings.Contains(err.Error(), "after the transaction's COMMIT") {
		t.Errorf("a statement queued after the COMMIT: %v", err)
	}
	if n := count(t, pool); n != 1 {
		t.Errorf("%d rows, want the one committed", n)
	}
}

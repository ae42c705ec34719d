package pg

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Read is a statement whose rows Scan reads (and closes).
type Read struct {
	SQL  string
	Args []any
	Scan func(pgx.Rows) error
}

// InTxPipelined is InTx for the hottest transactions (sending a page): its
// BEGIN goes to PostgreSQL in one round trip with the transaction's first
// statement, first, and, when the transaction queues its COMMIT with its
// last writes (Writes.CommitOnFlush), the COMMIT goes with them. fn then
// runs with first's rows already read.
//
// Why: every round trip costs both processes a write, a read and a wake-up,
// and on this kind of machine the wake-ups (context switches, counted at
// ~75 per page sent) cost as much CPU as the statements. BEGIN and COMMIT
// alone were 2 of a page's 7 round trips.
//
// A failed statement makes PostgreSQL skip the rest of its round trip, the
// COMMIT included, and the transaction is rolled back as with InTx. A
// COMMIT sent with the last writes runs before fn's code has looked at their
// results: queue it only with writes whose results cannot change the
// decision to commit (see Writes.CommitOnFlush).
//
// Further reads (more) go in the same first round trip, after first: what
// the transaction will need that does not depend on first's answer.
func InTxPipelined(ctx context.Context, pool *pgxpool.Pool, first Read, fn func(tx pgx.Tx) error, more ...Read) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	tx, errs, err := begin(ctx, conn, [][]Read{append([]Read{first}, more...)})
	// Not once committed: the COMMIT may have gone with the last writes,
	// which the transaction object does not know about.
	defer rollbackOpen(ctx, conn, tx)
	if err != nil {
		return err
	}
	if errs[0] != nil {
		return errs[0]
	}
	if err := fn(tx); err != nil {
		return err
	}
	if conn.Conn().PgConn().TxStatus() == 'I' {
		return nil // committed with the last writes
	}
	return tx.Commit(ctx)
}

// begin sends BEGIN and every set of reads in one round trip on conn, and
// scans them: errs[i] is the first error of set i, whose later reads are
// then skipped. err is the round trip's: the transaction is unusable. The
// caller defers rollbackOpen.
func begin(ctx context.Context, conn *pgxpool.Conn, sets [][]Read) (tx pgx.Tx, errs []error, err error) {
	var b pgx.Batch
	b.BeginTx(pgx.TxOptions{})
	for _, reads := range sets {
		for _, r := range reads {
			b.Queue(r.SQL, r.Args...)
		}
	}
	br := conn.SendBatch(ctx, &b)
	tx = br.Tx()
	if _, err := br.Exec(); err != nil { // BEGIN
		br.Close()
		return tx, nil, err
	}
	errs = make([]error, len(sets))
	for i, reads := range sets {
		for _, r := range reads {
			rows, _ := br.Query()
			if errs[i] != nil {
				rows.Close()
				continue
			}
			errs[i] = r.Scan(rows)
		}
	}
	return tx, errs, br.Close()
}

// rollbackOpen rolls back tx if conn is still in it (or in its failed
// state): a transaction that ended in error, or whose caller gave up.
func rollbackOpen(ctx context.Context, conn *pgxpool.Conn, tx pgx.Tx) {
	if conn.Conn().PgConn().TxStatus() != 'I' {
		tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // the error that got us here is returned
	}
}

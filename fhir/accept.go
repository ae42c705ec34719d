package fhir

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/callroom/callroom/internal/pg"
)

// Notifications accepted at once are committed together (pg.Group), as
// pages sent at once are: in a burst from the EHR each notification's
// statement goes with the others' in one round trip, and one commit (one
// WAL flush, one pooled connection) answers for all of them, where each
// took a connection and a commit of its own while the batches applying
// them waited for connections (docs/PERFORMANCE.md).
//
// Only while acceptInGroupsFrom notifications or more are being accepted:
// one alone costs a round trip, a group of one three.
const (
	acceptInGroupsFrom = 4
	acceptGroupSize    = 64
)

// accept runs sql (a notification's one statement) committed, with scan
// reading its rows: in a group when many are being accepted, else alone. A
// group that could not commit leaves nothing written, and sql runs alone.
func (s *Store) accept(ctx context.Context, sql string, args []any, scan func(pgx.Rows) error) error {
	grouping, leave := s.accepts.Enter()
	defer leave()
	if grouping {
		err := s.accepts.InTx(ctx, nil, func(_ pgx.Tx, w *pg.Writes) error {
			w.Queue(sql, args...).Query(scan)
			return w.Flush(ctx, nil)
		}, struct{}{})
		if !errors.Is(err, pg.ErrNotCommitted) {
			return err
		}
	}
	rows, _ := s.db.Query(ctx, sql, args...)
	return scan(rows)
}

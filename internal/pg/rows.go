package pg

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ExecRows queues sql, a statement that takes every parameter as an array
// with one element per row (INSERT ... SELECT * FROM unnest($1::uuid[],
// ...)), with args, each a slice of one element per row. rows, unless
// negative, is how many rows it must affect (its command tag's count), an
// error otherwise.
//
// Statements of the same sql are sent as one, each parameter's arrays
// concatenated (and the rows each must affect added up): one queued right
// after another in w (a page's timeline entries of one step), and, in a
// step of Lockstep, those the functions queued at the same place among
// statements alike (a group of 30 pages writes its 30 audit rows with one
// insert).
//
// Why: a statement's executor start-up and end (its plan, constraint
// expressions, indexes opened, triggers set up) cost about as much as a
// row's own work; 16 rows in one insert cost about 35 % less than 16
// inserts. In a group of pages one backend runs every page's statements,
// one group's at a time, so that is what a group's pages wait for
// (docs/PERFORMANCE.md).
//
// Statements only: nothing reads their results but the count, which is
// checked when they are sent.
func (w *Writes) ExecRows(sql string, rows int, args ...any) {
	if q := w.Last(); q != nil && q.SQL == sql {
		if n, ok := w.rows[q]; ok && (n < 0) == (rows < 0) {
			if more, ok := appendRows(q.Arguments, args); ok {
				q.Arguments = more
				w.rows[q] = max(n+rows, -1)
				return
			}
		}
	}
	q := w.b.Queue(sql, args...)
	if w.rows == nil {
		w.rows = map[*pgx.QueuedQuery]int{}
	}
	w.rows[q] = rows
}

// appendRows is args with the rows of more after each array's, in new
// arrays; not ok if they do not match (other counts, or not slices of the
// same types).
func appendRows(args, more []any) ([]any, bool) {
	if len(args) != len(more) {
		return nil, false
	}
	out := make([]any, len(args))
	for i, a := range args {
		t := reflect.TypeOf(a)
		if t == nil || t.Kind() != reflect.Slice || reflect.TypeOf(more[i]) != t {
			return nil, false
		}
		v := reflect.ValueOf(a)
		out[i] = reflect.AppendSlice(v.Slice3(0, v.Len(), v.Len()), reflect.ValueOf(more[i])).Interface()
	}
	return out, true
}

// checkRows sets the check of each statement of rows (ExecRows's counts),
// before they are sent.
func checkRows(rows map[*pgx.QueuedQuery]int) {
	for q, n := range rows {
		checkRow(q, n)
	}
}

// checkRow makes q fail unless it affects n rows (none: n < 0).
func checkRow(q *pgx.QueuedQuery, n int) {
	if n >= 0 {
		q.Exec(affects(n))
	}
}

// affects is the check of a statement that must affect n rows.
func affects(n int) func(pgconn.CommandTag) error {
	return func(tag pgconn.CommandTag) error {
		if tag.RowsAffected() != int64(n) {
			return fmt.Errorf("pg: %d rows affected, want %d", tag.RowsAffected(), n)
		}
		return nil
	}
}

// mergeStep is the batch of one Lockstep step: the functions' statements,
// with those of functions that queued alike statements (the same SQL, in
// the same order) merged where ExecRows allows. Each function's
// statements keep their order; functions do not depend on one another's.
func mergeStep(fs []*stepFlush) pgx.Batch {
	var b pgx.Batch
	var sets [][]*stepFlush
	index := map[string]int{}
	for _, f := range fs {
		k := shape(f)
		i, ok := index[k]
		if !ok {
			i = len(sets)
			index[k] = i
			sets = append(sets, nil)
		}
		sets[i] = append(sets[i], f)
	}
	for _, set := range sets {
		for j, q := range set[0].b.QueuedQueries {
			if _, ok := set[0].rows[q]; ok && len(set) > 1 {
				if m, ok := mergeRows(set, j); ok {
					b.QueuedQueries = append(b.QueuedQueries, m)
					continue
				}
			}
			for _, f := range set {
				q := f.b.QueuedQueries[j]
				if n, ok := f.rows[q]; ok {
					checkRow(q, n)
				}
				b.QueuedQueries = append(b.QueuedQueries, q)
			}
		}
	}
	return b
}

// shape is what flushes must share for their statements to merge: each
// statement's SQL, whether it merges (ExecRows) and whether its count is
// checked.
func shape(f *stepFlush) string {
	var s strings.Builder
	for _, q := range f.b.QueuedQueries {
		rows, ok := f.rows[q]
		switch {
		case !ok:
			s.WriteString("-")
		case rows < 0:
			s.WriteString("m")
		default:
			s.WriteString("c")
		}
		s.WriteString(q.SQL)
		s.WriteByte(0)
	}
	return s.String()
}

// mergeRows is statement j of each flush of set as one: its arrays
// concatenated, the rows each must affect added up. Not ok if their
// arguments do not match (appendRows).
func mergeRows(set []*stepFlush, j int) (*pgx.QueuedQuery, bool) {
	first := set[0].b.QueuedQueries[j]
	args, n := first.Arguments, set[0].rows[first]
	for _, f := range set[1:] {
		q := f.b.QueuedQueries[j]
		var ok bool
		if args, ok = appendRows(args, q.Arguments); !ok {
			return nil, false
		}
		n = max(n+f.rows[q], -1)
	}
	m := &pgx.QueuedQuery{SQL: first.SQL, Arguments: args}
	checkRow(m, n)
	return m, true
}

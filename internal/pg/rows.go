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
// Sent on its own it is one statement like any other. In a step of
// Lockstep, the statements of the same sql that the functions queued at
// the same place among statements alike are sent as one, each parameter's
// arrays concatenated in the functions' order (and the rows each must
// affect added up): a group of 30 pages writes its 30 audit rows with one
// insert.
//
// Why: a statement's executor start-up and end (its plan, constraint
// expressions, indexes opened, triggers set up) cost about as much as a
// row's own work; 16 rows in one insert cost about 35 % less than 16
// inserts. In a group of pages one backend runs every page's statements,
// one group's at a time, so that is what a group's pages wait for
// (docs/PERFORMANCE.md).
//
// Statements only: nothing reads their results but the count.
func (w *Writes) ExecRows(sql string, rows int, args ...any) {
	q := w.b.Queue(sql, args...)
	if rows >= 0 {
		q.Exec(affects(rows))
	}
	if w.rows == nil {
		w.rows = map[*pgx.QueuedQuery]int{}
	}
	w.rows[q] = rows
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
				b.QueuedQueries = append(b.QueuedQueries, f.b.QueuedQueries[j])
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
// concatenated. Not ok if an argument is not a slice, or not of the same
// type in every flush.
func mergeRows(set []*stepFlush, j int) (*pgx.QueuedQuery, bool) {
	first := set[0].b.QueuedQueries[j]
	args := make([]any, len(first.Arguments))
	for i, a := range first.Arguments {
		t := reflect.TypeOf(a)
		if t == nil || t.Kind() != reflect.Slice {
			return nil, false
		}
		out := reflect.MakeSlice(t, 0, reflect.ValueOf(a).Len()*len(set))
		for _, f := range set {
			q := f.b.QueuedQueries[j]
			if len(q.Arguments) != len(args) || reflect.TypeOf(q.Arguments[i]) != t {
				return nil, false
			}
			out = reflect.AppendSlice(out, reflect.ValueOf(q.Arguments[i]))
		}
		args[i] = out.Interface()
	}
	m := &pgx.QueuedQuery{SQL: first.SQL, Arguments: args}
	if set[0].rows[first] >= 0 {
		n := 0
		for _, f := range set {
			n += f.rows[f.b.QueuedQueries[j]]
		}
		m.Exec(affects(n))
	}
	return m, true
}

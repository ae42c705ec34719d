package worker

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivershared/uniquestates"
	"github.com/riverqueue/river/rivertype"
)

// JobInStatement is a River job that one of callroom's own statements
// writes, as a data-modifying CTE (`WITH job AS (<SQL>) ...`), instead of
// River's insert.
//
// Why: sending a page schedules its next escalation step. Through River
// that is a round trip of its own in the middle of the transaction (River's
// insert, whose id the page row needs), then an update marking the job
// available (InsertTx), then the page's update with the job id: ~0.35 ms of
// PostgreSQL per page, the largest cost after the page itself
// (docs/PERFORMANCE.md). Written as a CTE of the statement that stores the
// job's id, the job costs one plain insert and no round trip.
//
// The row is the one River would write for the same arguments and options,
// unique key included (the same hash, so River's insert of the same job
// finds this one and the other way round), except that it is `available`
// at once with its due time as scheduled_at: River's fetch takes a job only
// once scheduled_at has passed, so the job runs when due, within its
// queue's poll interval, and does not wait for River's scheduler (see
// InsertTx). A job due now (no ScheduledAt, or one past) also sends River's
// insert notification, as River's insert does, so that a worker of its
// queue wakes at once rather than at its next poll.
//
// Only what callroom's statements need is supported: unique by its
// arguments or not unique, default priority or a given one, no tags or
// metadata. Anything else is refused, not approximated.
type JobInStatement struct {
	// SQL is the insert, returning the job's id (the existing job's id when
	// a unique job with the same key exists, as River's insert returns it).
	// Its parameters are numbered from the first given to NewJobInStatement.
	SQL  string
	Args []any
}

// jobInStatementSQL's parameters are numbered by NewJobInStatementFrom
// (%[n]d is $first+n-1); %[9]s is its FROM clause and %[10]s River's insert
// notification for a job due now. A scheduled_at of NULL is the database's
// now(), as in River's insert: the job's clock is the one River's fetch
// compares it with. The ON CONFLICT clause is River's (JobInsertFastMany):
// it names the partial unique index, and updating the existing row makes it
// returned.
const jobInStatementSQL = `INSERT INTO river_job (args, kind, max_attempts, priority, queue, scheduled_at, state, unique_key, unique_states)
	SELECT $%[1]d::jsonb, $%[2]d::text, $%[3]d::smallint, $%[4]d::smallint, $%[5]d::text, coalesce($%[6]d::timestamptz, now()), 'available'::river_job_state, $%[7]d::bytea, $%[8]d::integer::bit(8)%[9]s
	ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL AND unique_states IS NOT NULL AND river_job_state_in_bitmask(unique_states, state)
	DO UPDATE SET kind = river_job.kind
	RETURNING id%[10]s`

// wakeSQL is River's insert notification (its PGNotifyMany, topic
// river_insert, payload {"queue": ...}), sent by the job's own insert, once
// per row it writes; River's producers for the queue fetch at once.
const wakeSQL = `, pg_notify(current_schema() || '.river_insert', json_build_object('queue', $%[5]d::text)::text)`

// NewJobInStatement returns the insert of a River job with args and opts,
// its parameters numbered from first ($first, $first+1, ...) so that it can
// precede a statement's own parameters.
func NewJobInStatement(args river.JobArgs, opts river.InsertOpts, first int, now time.Time) (JobInStatement, error) {
	return NewJobInStatementFrom("", args, opts, first, now)
}

// NewJobInStatementFrom is NewJobInStatement for a job written once per row
// of from, another CTE of the statement, and not at all if it has none: the
// job that processes a notification, when its insert did not find it a
// duplicate.
func NewJobInStatementFrom(from string, args river.JobArgs, opts river.InsertOpts, first int, now time.Time) (JobInStatement, error) {
	switch {
	case len(opts.Tags) > 0 || len(opts.Metadata) > 0 || opts.Pending:
		return JobInStatement{}, errors.New("worker: a job in a statement takes no tags, metadata or pending state")
	case opts.UniqueOpts.ByPeriod != 0 || opts.UniqueOpts.ByQueue || len(opts.UniqueOpts.ByState) > 0 || opts.UniqueOpts.ExcludeKind:
		return JobInStatement{}, errors.New("worker: a job in a statement is unique by its arguments or not at all")
	}
	queue, maxAttempts, priority := opts.Queue, opts.MaxAttempts, opts.Priority
	if queue == "" {
		queue = river.QueueDefault
	}
	if maxAttempts == 0 {
		maxAttempts = river.MaxAttemptsDefault
	}
	if priority == 0 {
		priority = river.PriorityDefault
	}
	encoded, err := json.Marshal(args)
	if err != nil {
		return JobInStatement{}, fmt.Errorf("worker: encoding %s's arguments: %w", args.Kind(), err)
	}
	var key []byte    // NULL: not unique
	var states *int32 // NULL: not unique
	if opts.UniqueOpts.ByArgs {
		k, err := uniqueKeyByArgs(args.Kind(), encoded)
		if err != nil {
			return JobInStatement{}, err
		}
		bits := defaultUniqueStates
		key, states = k[:], &bits
	}
	n := make([]any, 10)
	for i := range 8 {
		n[i] = first + i
	}
	if from != "" {
		n[8] = " FROM " + from
	} else {
		n[8] = ""
	}
	var due *time.Time // now, by the database's clock
	if opts.ScheduledAt.After(now) {
		at := opts.ScheduledAt.UTC()
		due, n[9] = &at, ""
	} else {
		n[9] = fmt.Sprintf(wakeSQL, n...)
	}
	return JobInStatement{SQL: fmt.Sprintf(jobInStatementSQL, n...), Args: []any{string(encoded), args.Kind(), int16(maxAttempts), int16(priority),
		queue, due, key, states}}, nil
}

// defaultUniqueStates is River's bitmask of the states in which a unique job
// blocks another with its key (rivertype.UniqueOptsByStateDefault).
var defaultUniqueStates = int32(uniquestates.UniqueStatesToBitmask(rivertype.UniqueOptsByStateDefault()))

// uniqueKeyByArgs is River's unique key for a job unique by its arguments
// (river internal/dbunique, UniqueOpts{ByArgs: true} and no `unique` struct
// tags): the SHA-256 of "&kind=<kind>&args=<the arguments' object with its
// keys sorted>". TestJobInStatementUniqueKeyIsRivers holds it to River's.
func uniqueKeyByArgs(kind string, encoded []byte) ([32]byte, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(encoded, &fields); err != nil || fields == nil {
		return [32]byte{}, errors.New("worker: unique arguments must encode a JSON object")
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteString("&kind=" + kind + "&args={")
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		if strings.ContainsFunc(k, func(r rune) bool { return r < ' ' || r > 0x7f || r == '"' || r == '\\' }) {
			return [32]byte{}, fmt.Errorf("worker: argument name %q is not plain ASCII", k)
		}
		b.WriteString(`"` + k + `":`)
		b.Write(fields[k])
	}
	b.WriteByte('}')
	return sha256.Sum256([]byte(b.String())), nil
}

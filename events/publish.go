package events

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/callroom/callroom/internal/pg"
)

// MaxDataBytes bounds an event's data. Events carry ids and codes; anything
// bigger is almost certainly text that does not belong in a stream that
// bypasses the API's permission checks.
const MaxDataBytes = 4096

// ErrInvalidEvent is wrapped by Publish's refusals of a malformed event. It is
// a programming error in the publisher, not bad user input.
var ErrInvalidEvent = errors.New("events: invalid event")

// typePattern is "domain.change", e.g. page.notify, receipt.updated.
var typePattern = regexp.MustCompile(`^[a-z]+(\.[a-z_]+)+$`)

// reserved keys are the envelope fields the HTTP stream adds to data; a data
// field of the same name would be shadowed, so it is refused up front.
var reserved = []string{"seq", "type", "at"}

// publishSQL does the whole publication in one round trip, however many
// recipients: it bumps each user's counter (taking the row lock that orders
// this user's publishers until our transaction ends), stores the rows, and
// queues one NOTIFY per row. Recipients are locked in the order given, which
// Publish sorts, so two publishers with overlapping recipients lock in the
// same order and cannot deadlock each other.
const publishSQL = `WITH n AS (
	INSERT INTO user_event_counters AS c (user_id, seq)
	SELECT u.id, 1 FROM unnest($1::uuid[]) WITH ORDINALITY AS u (id, ord) ORDER BY u.ord
	ON CONFLICT (user_id) DO UPDATE SET seq = c.seq + 1
	RETURNING c.user_id, c.seq
), e AS (
	INSERT INTO user_events (user_id, seq, type, data)
	SELECT n.user_id, n.seq, $2::text, $3::jsonb FROM n
	RETURNING user_id, seq
)
SELECT pg_notify('` + Channel + `', e.user_id::text || ':' || e.seq) FROM e`

// Publish appends an event of type typ with data (marshalled to a JSON object
// of ids and codes, at most MaxDataBytes) to each user's stream.
//
// q must be the transaction that makes the change the event announces: the
// rows and the NOTIFY then exist exactly when the change does, and a rolled
// back transaction announces nothing. Duplicate user ids are ignored.
//
// Publishing locks each recipient's counter row until q's transaction ends,
// which is what keeps each stream in commit order; publish late in the
// transaction, ideally just before commit, and at most once per transaction
// for the same users, so the lock is short and lock order stays sorted. Under
// REPEATABLE READ or SERIALIZABLE, a concurrent publisher to the same user
// makes the later one fail with a serialization error, to be retried like
// any other.
//
// Under a context from Defer, the event is checked now and queued; it is
// written by the Deferred's Flush.
func Publish(ctx context.Context, q pg.Querier, userIDs []uuid.UUID, typ string, data any) error {
	ids, b, err := prepare(userIDs, typ, data)
	if err != nil || len(ids) == 0 {
		return err
	}
	if d := deferredFrom(ctx); d != nil {
		d.add(ids, typ, b)
		return nil
	}
	tag, err := q.Exec(ctx, publishSQL, ids, typ, json.RawMessage(b))
	if err != nil {
		return fmt.Errorf("publish %s: %w", typ, err)
	}
	return checkWritten(typ, tag.RowsAffected(), len(ids))
}

// Publication is one event for PublishAll: its type and data, and to whom.
type Publication struct {
	UserIDs []uuid.UUID
	Type    string
	Data    any
}

// PublishAll is Publish for several events, in the order given, in one
// statement (a transaction announcing a page change and the notifications it
// sent publishes two or more). A user who gets several of them has their
// counter raised once, by that many, and their events numbered in the order
// given; counters are locked in user id order, as Publish locks them, so
// publishers with overlapping recipients cannot deadlock each other.
//
// Under a context from Defer, the events are checked now and queued; they
// are written by the Deferred's Flush.
func PublishAll(ctx context.Context, tx pgx.Tx, ps []Publication) error {
	st, err := publication(ps)
	if err != nil || st.n == 0 {
		return err
	}
	if d := deferredFrom(ctx); d != nil {
		d.addAll(st)
		return nil
	}
	tag, err := tx.Exec(ctx, st.sql, st.args...)
	if err != nil {
		return fmt.Errorf("publish %s: %w", st.kinds, err)
	}
	return checkWritten(st.kinds, tag.RowsAffected(), st.n)
}

// QueueAll is PublishAll queued in w, to be sent with the caller's other
// writes (pg.Writes): the publication then costs no round trip of its own.
// It locks the recipients' counters when w is flushed, so flush it last,
// just before commit. Under a context from Defer, the events are queued in
// the Deferred instead, as PublishAll does.
func QueueAll(ctx context.Context, w *pg.Writes, ps []Publication) error {
	st, err := publication(ps)
	if err != nil || st.n == 0 {
		return err
	}
	if d := deferredFrom(ctx); d != nil {
		d.addAll(st)
		return nil
	}
	w.ExecCheck(func(tag pgconn.CommandTag) error { return checkWritten(st.kinds, tag.RowsAffected(), st.n) }, st.sql, st.args...)
	return nil
}

// statement is the SQL that publishes some events, n rows in all.
type statement struct {
	sql   string
	args  []any
	n     int
	kinds string // the events' types, for errors
	// The events one per recipient, as publishAllSQL takes them.
	users       []uuid.UUID
	types, data []string
}

// publication checks ps and returns the statement that publishes them:
// Publish's when one publication has recipients (it needs no grouping),
// publishAllSQL for more.
func publication(ps []Publication) (statement, error) {
	var users []uuid.UUID
	var types, data []string
	var kinds []string
	var one []any // publishSQL's arguments, for the last publication with recipients
	for _, p := range ps {
		ids, b, err := prepare(p.UserIDs, p.Type, p.Data)
		if err != nil {
			return statement{}, err
		}
		for _, id := range ids {
			users = append(users, id)
			types = append(types, p.Type)
			data = append(data, string(b))
		}
		if len(ids) > 0 {
			kinds = append(kinds, p.Type)
			one = []any{ids, p.Type, json.RawMessage(b)}
		}
	}
	st := statement{sql: publishAllSQL, args: []any{users, types, data}, n: len(users), kinds: strings.Join(kinds, ", "),
		users: users, types: types, data: data}
	if len(kinds) == 1 {
		st.sql, st.args = publishSQL, one
	}
	return st, nil
}

// publishAllSQL is publishSQL for several events, given as parallel arrays
// of (user, type, data) in publication order. Each user's counter goes up
// by their number of events in one upsert (an upsert cannot touch a row
// twice), in user id order; their events take the new numbers in order.
// The NOTIFYs are sent in (user, seq) order: volatile functions in the
// target list run after the sort.
const publishAllSQL = `WITH ev AS (
	SELECT u.user_id, u.type, u.data, u.ord
	FROM unnest($1::uuid[], $2::text[], $3::text[]) WITH ORDINALITY AS u (user_id, type, data, ord)
), n AS (
	INSERT INTO user_event_counters AS c (user_id, seq)
	SELECT user_id, count(*) FROM ev GROUP BY user_id ORDER BY user_id
	ON CONFLICT (user_id) DO UPDATE SET seq = c.seq + EXCLUDED.seq
	RETURNING c.user_id, c.seq
), e AS (
	INSERT INTO user_events (user_id, seq, type, data)
	SELECT ev.user_id, n.seq - count(*) OVER w + row_number() OVER w, ev.type, ev.data::jsonb
	FROM ev JOIN n ON n.user_id = ev.user_id
	WINDOW w AS (PARTITION BY ev.user_id ORDER BY ev.ord ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
	RETURNING user_id, seq
)
SELECT pg_notify('` + Channel + `', e.user_id::text || ':' || e.seq) FROM e ORDER BY e.user_id, e.seq`

// prepare checks an event and returns its recipients sorted without
// repeats (the lock order) and its data as JSON.
func prepare(userIDs []uuid.UUID, typ string, data any) ([]uuid.UUID, []byte, error) {
	if !typePattern.MatchString(typ) {
		return nil, nil, fmt.Errorf("%w: type %q does not match %s", ErrInvalidEvent, typ, typePattern)
	}
	b, err := encodeData(data)
	if err != nil {
		return nil, nil, err
	}
	ids := slices.Clone(userIDs)
	slices.SortFunc(ids, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
	ids = slices.Compact(ids)
	if len(ids) > 0 && ids[0] == uuid.Nil {
		return nil, nil, fmt.Errorf("%w: the nil user id", ErrInvalidEvent)
	}
	return ids, b, nil
}

func checkWritten(typ string, n int64, want int) error {
	if n != int64(want) {
		return fmt.Errorf("publish %s: %d events written for %d users", typ, n, want)
	}
	return nil
}

// encodeData marshals data and checks that it is a small JSON object without
// envelope keys. nil means no data ({}).
func encodeData(data any) ([]byte, error) {
	if data == nil {
		return []byte("{}"), nil
	}
	b, err := json.Marshal(data)
	if err != nil {
		return nil, fmt.Errorf("%w: data: %v", ErrInvalidEvent, err)
	}
	if len(b) > MaxDataBytes {
		return nil, fmt.Errorf("%w: data is %d bytes, over %d: send ids, not content", ErrInvalidEvent, len(b), MaxDataBytes)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil || fields == nil {
		return nil, fmt.Errorf("%w: data must be a JSON object", ErrInvalidEvent)
	}
	for _, k := range reserved {
		if _, ok := fields[k]; ok {
			return nil, fmt.Errorf("%w: data field %q is reserved for the stream envelope", ErrInvalidEvent, k)
		}
	}
	return b, nil
}

package reports

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callroom/callroom"
	"github.com/callroom/callroom/internal/pg"
)

// MaxPeriod bounds a report's period: a year and a bit, so a yearly report
// (leap years included) fits and nobody asks the database for a decade.
const MaxPeriod = 400 * 24 * time.Hour

// Filter chooses the pages a report covers: those sent in [From, To), to
// ServiceID when set.
type Filter struct {
	From, To  time.Time
	ServiceID *uuid.UUID
}

// Validate names the field at fault.
func (f Filter) Validate() error {
	switch {
	case f.From.IsZero():
		return callroom.Invalid("from", "required (RFC 3339)")
	case f.To.IsZero():
		return callroom.Invalid("to", "required (RFC 3339)")
	case !f.From.Before(f.To):
		return callroom.Invalid("to", "must be after from")
	case f.To.Sub(f.From) > MaxPeriod:
		return callroom.Invalid("to", "the period may span at most %d days", int(MaxPeriod.Hours()/24))
	}
	return nil
}

// ResponseTimes is the quality committee's report for one period.
type ResponseTimes struct {
	From      time.Time        `json:"from"`
	To        time.Time        `json:"to"`
	ServiceID *uuid.UUID       `json:"service_id,omitempty"`
	Services  []ServiceSummary `json:"services"`
	People    []PersonSummary  `json:"people"`
	Gaps      []CoverageGap    `json:"coverage_gaps"`
}

// ServiceSummary is one (service, priority): pages sent to the service with
// that priority, what became of them, and how long acknowledgement took.
// A page sent to a person directly has no service.
type ServiceSummary struct {
	ServiceID   *uuid.UUID `json:"service_id" db:"service_id"`
	ServiceName string     `json:"service_name" db:"service_name"`
	Priority    string     `json:"priority" db:"priority"`
	Sent        int64      `json:"sent" db:"sent"`
	// Acknowledged counts pages someone acknowledged (also late, after the
	// page had gone unanswered).
	Acknowledged int64 `json:"acknowledged" db:"acknowledged"`
	// Escalated counts pages that went past their first step.
	Escalated int64 `json:"escalated" db:"escalated"`
	// Unanswered counts pages whose escalation ran out without an
	// acknowledgement, acknowledged later or not.
	Unanswered int64 `json:"unanswered" db:"unanswered"`
	// Time to acknowledge in seconds, over the acknowledged pages; null when
	// none was.
	AckMedianSeconds *float64 `json:"ack_median_seconds" db:"ack_median_seconds"`
	AckP90Seconds    *float64 `json:"ack_p90_seconds" db:"ack_p90_seconds"`
}

// PersonSummary is one person's share: pages that reached them (a
// notification was sent, not cancelled before it went out), pages they
// acknowledged, and their median response: from the first notification
// that reached them to their acknowledgement.
type PersonSummary struct {
	UserID                uuid.UUID `json:"user_id" db:"user_id"`
	Name                  string    `json:"name" db:"name"`
	Received              int64     `json:"received" db:"received"`
	Acknowledged          int64     `json:"acknowledged" db:"acknowledged"`
	MedianResponseSeconds *float64  `json:"median_response_seconds" db:"median_response_seconds"`
}

// CoverageGap is an escalation step that found nobody on call, with the
// number of pages it happened to: the gaps that actually hurt.
type CoverageGap struct {
	ServiceID   *uuid.UUID `json:"service_id" db:"service_id"`
	ServiceName string     `json:"service_name" db:"service_name"`
	Step        int        `json:"step" db:"step"`
	Pages       int64      `json:"pages" db:"pages"`
	// Details say whose schedule was empty ("no one on call for Night
	// cardiology").
	Details []string `json:"details" db:"details"`
}

// the pages the report covers, as a WHERE clause over pages p with $1..$3.
const covered = `p.created_at >= $1 AND p.created_at < $2 AND ($3::uuid IS NULL OR p.service_id = $3)`

const byServiceSQL = `
SELECT p.service_id, coalesce(s.name, '(direct)') AS service_name, p.priority,
	count(*) AS sent,
	count(p.acknowledged_at) AS acknowledged,
	count(*) FILTER (WHERE p.step > 0 OR p.round > 0) AS escalated,
	count(*) FILTER (WHERE p.status = 'unanswered' OR EXISTS (
		SELECT 1 FROM page_events e WHERE e.page_id = p.id AND e.kind = 'unanswered')) AS unanswered,
	percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM p.acknowledged_at - p.created_at))::float8 AS ack_median_seconds,
	percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM p.acknowledged_at - p.created_at))::float8 AS ack_p90_seconds
FROM pages p LEFT JOIN services s ON s.id = p.service_id
WHERE ` + covered + `
GROUP BY p.service_id, s.name, p.priority
ORDER BY s.name NULLS LAST, array_position(ARRAY['stat', 'asap', 'urgent', 'routine'], p.priority)`

const byPersonSQL = `
WITH received AS (
	SELECT n.user_id, min(n.created_at) AS first_at,
		bool_or(p.acknowledged_by = n.user_id) AS acknowledged, min(p.acknowledged_at) AS acknowledged_at
	FROM notifications n JOIN pages p ON p.id = n.page_id
	WHERE ` + covered + ` AND n.status <> 'cancelled'
	GROUP BY n.user_id, n.page_id
), per_user AS (
	SELECT user_id, count(*) AS received, count(*) FILTER (WHERE acknowledged) AS acknowledged,
		(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM greatest(acknowledged_at - first_at, interval '0')))
			FILTER (WHERE acknowledged))::float8 AS median_response_seconds
	FROM received GROUP BY user_id
)
SELECT r.user_id, u.name, r.received, r.acknowledged, r.median_response_seconds
FROM per_user r JOIN users u ON u.id = r.user_id
ORDER BY u.name, r.user_id`

const gapsSQL = `
SELECT p.service_id, coalesce(s.name, '(direct)') AS service_name, e.step,
	count(DISTINCT p.id) AS pages, array_agg(DISTINCT e.detail ORDER BY e.detail) AS details
FROM page_events e JOIN pages p ON p.id = e.page_id LEFT JOIN services s ON s.id = p.service_id
WHERE e.kind = 'no_one_on_call' AND ` + covered + `
GROUP BY p.service_id, s.name, e.step
ORDER BY pages DESC, s.name, e.step`

// Report computes the response-time report for f, in one repeatable-read
// transaction so its three parts agree.
func Report(ctx context.Context, db pg.Beginner, f Filter) (ResponseTimes, error) {
	if err := f.Validate(); err != nil {
		return ResponseTimes{}, err
	}
	out := ResponseTimes{From: f.From, To: f.To, ServiceID: f.ServiceID}
	err := pg.InTx(ctx, db, func(tx pgx.Tx) error {
		// JIT compilation costs more than a second here and saves less;
		// the sorts behind the percentiles want memory rather than disk.
		if _, err := tx.Exec(ctx, `SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET LOCAL jit = off; SET LOCAL work_mem = '64MB'`); err != nil {
			return err
		}
		args := []any{f.From, f.To, f.ServiceID}
		rows, _ := tx.Query(ctx, byServiceSQL, args...)
		var err error
		if out.Services, err = pgx.CollectRows(rows, pgx.RowToStructByName[ServiceSummary]); err != nil {
			return err
		}
		rows, _ = tx.Query(ctx, byPersonSQL, args...)
		if out.People, err = pgx.CollectRows(rows, pgx.RowToStructByName[PersonSummary]); err != nil {
			return err
		}
		rows, _ = tx.Query(ctx, gapsSQL, args...)
		out.Gaps, err = pgx.CollectRows(rows, pgx.RowToStructByName[CoverageGap])
		return err
	})
	return out, err
}

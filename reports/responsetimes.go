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

// ExactPeriod is the longest period whose percentiles are exact. Longer
// periods take them from a log-scale histogram (see bucketSQL): within one
// bucket, about 5 %, and a year reads no sort of a million rows.
const ExactPeriod = 31 * 24 * time.Hour

// the pages the report covers, as a WHERE clause over pages p with $1..$3.
const covered = `p.created_at >= $1 AND p.created_at < $2 AND ($3::uuid IS NULL OR p.service_id = $3)`

// the same over the narrow rows o (page_outcomes, page_recipients) that
// migration 0013 keeps up to date by trigger.
const coveredNarrow = `o.created_at >= $1 AND o.created_at < $2 AND ($3::uuid IS NULL OR o.service_id = $3)`

// bucketSQL maps seconds s to a histogram bucket: 20 buckets per e-fold of
// (1 + s), each about 5 % wide; bucketValueSQL is a bucket's middle (in log
// scale) in seconds.
func bucketSQL(s string) string {
	return `CASE WHEN ` + s + ` IS NOT NULL THEN floor(20 * ln(1 + greatest(` + s + `, 0)))::int END`
}

func bucketValueSQL(b string) string { return `(exp((` + b + ` + 0.5) / 20.0) - 1)::float8` }

// percentileSQL: the bucket holding the p-quantile's rank (as
// percentile_cont counts it, 1 + p·(n-1)), from cumulative counts cum over
// n values.
func percentileSQL(p string) string {
	return bucketValueSQL(`min(b) FILTER (WHERE b IS NOT NULL AND cum >= 1 + ` + p + ` * (n_ack - 1))`)
}

const byServiceSQL = `
SELECT o.service_id, coalesce(s.name, '(direct)') AS service_name, o.priority,
	count(*) AS sent,
	count(o.ack_seconds) AS acknowledged,
	count(*) FILTER (WHERE o.escalated) AS escalated,
	count(*) FILTER (WHERE o.unanswered) AS unanswered,
	percentile_cont(0.5) WITHIN GROUP (ORDER BY o.ack_seconds)::float8 AS ack_median_seconds,
	percentile_cont(0.9) WITHIN GROUP (ORDER BY o.ack_seconds)::float8 AS ack_p90_seconds
FROM page_outcomes o LEFT JOIN services s ON s.id = o.service_id
WHERE ` + coveredNarrow + `
GROUP BY o.service_id, s.name, o.priority
ORDER BY s.name NULLS LAST, array_position(ARRAY['stat', 'asap', 'urgent', 'routine'], o.priority)`

var byServiceHistogramSQL = `
WITH h AS (
	SELECT o.service_id, o.priority, ` + bucketSQL("o.ack_seconds") + ` AS b,
		count(*) AS n, count(*) FILTER (WHERE o.escalated) AS escalated, count(*) FILTER (WHERE o.unanswered) AS unanswered
	FROM page_outcomes o WHERE ` + coveredNarrow + `
	GROUP BY 1, 2, 3
), c AS (
	SELECT h.*, sum(n) FILTER (WHERE b IS NOT NULL) OVER (PARTITION BY service_id, priority ORDER BY b) AS cum,
		coalesce(sum(n) FILTER (WHERE b IS NOT NULL) OVER (PARTITION BY service_id, priority), 0) AS n_ack
	FROM h
)
SELECT c.service_id, coalesce(s.name, '(direct)') AS service_name, c.priority,
	sum(n)::bigint AS sent, max(n_ack)::bigint AS acknowledged,
	sum(escalated)::bigint AS escalated, sum(unanswered)::bigint AS unanswered,
	` + percentileSQL("0.5") + ` AS ack_median_seconds,
	` + percentileSQL("0.9") + ` AS ack_p90_seconds
FROM c LEFT JOIN services s ON s.id = c.service_id
GROUP BY c.service_id, s.name, c.priority
ORDER BY s.name NULLS LAST, array_position(ARRAY['stat', 'asap', 'urgent', 'routine'], c.priority)`

const byPersonSQL = `
SELECT o.user_id, u.name, count(*) AS received, count(o.response_seconds) AS acknowledged,
	percentile_cont(0.5) WITHIN GROUP (ORDER BY o.response_seconds)::float8 AS median_response_seconds
FROM page_recipients o JOIN users u ON u.id = o.user_id
WHERE ` + coveredNarrow + `
GROUP BY o.user_id, u.name
ORDER BY u.name, o.user_id`

var byPersonHistogramSQL = `
WITH h AS (
	SELECT o.user_id, ` + bucketSQL("o.response_seconds") + ` AS b, count(*) AS n
	FROM page_recipients o WHERE ` + coveredNarrow + `
	GROUP BY 1, 2
), c AS (
	SELECT h.*, sum(n) FILTER (WHERE b IS NOT NULL) OVER (PARTITION BY user_id ORDER BY b) AS cum,
		coalesce(sum(n) FILTER (WHERE b IS NOT NULL) OVER (PARTITION BY user_id), 0) AS n_ack
	FROM h
)
SELECT c.user_id, u.name, sum(n)::bigint AS received, max(n_ack)::bigint AS acknowledged,
	` + percentileSQL("0.5") + ` AS median_response_seconds
FROM c JOIN users u ON u.id = c.user_id
GROUP BY c.user_id, u.name
ORDER BY u.name, c.user_id`

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
		serviceSQL, personSQL := byServiceSQL, byPersonSQL
		if f.To.Sub(f.From) > ExactPeriod {
			serviceSQL, personSQL = byServiceHistogramSQL, byPersonHistogramSQL
		}
		rows, _ := tx.Query(ctx, serviceSQL, args...)
		var err error
		if out.Services, err = pgx.CollectRows(rows, pgx.RowToStructByName[ServiceSummary]); err != nil {
			return err
		}
		rows, _ = tx.Query(ctx, personSQL, args...)
		if out.People, err = pgx.CollectRows(rows, pgx.RowToStructByName[PersonSummary]); err != nil {
			return err
		}
		rows, _ = tx.Query(ctx, gapsSQL, args...)
		out.Gaps, err = pgx.CollectRows(rows, pgx.RowToStructByName[CoverageGap])
		return err
	})
	return out, err
}

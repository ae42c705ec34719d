package reports_test

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/callroom/callroom/internal/pgtest"
	"github.com/callroom/callroom/reports"
)

// BenchmarkResponseTimesReport: the report over a year of pages
// (CALLROOM_REPORT_BENCH_PAGES, default 1,000,000, spread evenly over 365
// days, 10 services, 50 people; 95 % acknowledged, 1 in 7 escalated, 1 in 20
// unanswered, 1 in 100 hit an empty step; one notification per page, two for
// escalated ones). Target: under 1 s for the whole year (docs/PERFORMANCE.md).
// Generating the data takes about a minute and is not timed.
func BenchmarkResponseTimesReport(b *testing.B) {
	n := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("CALLROOM_REPORT_BENCH_PAGES")); err == nil && v > 0 {
		n = v
	}
	db := pgtest.New(b)
	ctx := context.Background()
	end := time.Now().UTC().Truncate(24 * time.Hour)
	start := end.AddDate(0, 0, -365)
	for _, q := range []string{
		`INSERT INTO users (email, name, roles) SELECT 'bench' || i || '@example.org', 'Dr ' || i, '{physician}' FROM generate_series(1, 50) i`,
		`INSERT INTO escalation_policies (name) VALUES ('bench')`,
		`INSERT INTO services (name, escalation_policy_id) SELECT 'Service ' || i, (SELECT id FROM escalation_policies) FROM generate_series(1, 10) i`,
		`CREATE TEMP TABLE bench_users AS SELECT row_number() OVER (ORDER BY id) - 1 AS k, id FROM users`,
		`CREATE TEMP TABLE bench_services AS SELECT row_number() OVER (ORDER BY id) - 1 AS k, id FROM services`,
		`INSERT INTO pages (service_id, policy_id, priority, summary, status, step, created_at, acknowledged_by, acknowledged_at)
		 SELECT s.id, (SELECT id FROM escalation_policies), (ARRAY['routine', 'urgent', 'asap', 'stat'])[1 + i % 4], 'bench',
			CASE WHEN i % 20 = 0 THEN 'unanswered' ELSE 'acknowledged' END, CASE WHEN i % 7 = 0 THEN 1 ELSE 0 END,
			$1::timestamptz + (i * $3::float8) * interval '1 second',
			CASE WHEN i % 20 = 0 THEN NULL ELSE u.id END,
			CASE WHEN i % 20 = 0 THEN NULL ELSE $1::timestamptz + (i * $3::float8 + 5 + i % 900) * interval '1 second' END
		 FROM generate_series(1, $2::int) i JOIN bench_services s ON s.k = i % 10 JOIN bench_users u ON u.k = i % 50`,
		`INSERT INTO notifications (page_id, user_id, channel, round, step, status, due_at, created_at)
		 SELECT p.id, coalesce(p.acknowledged_by, (SELECT id FROM users LIMIT 1)), 'in_app', 0, 0, 'delivered', p.created_at, p.created_at FROM pages p`,
		`INSERT INTO notifications (page_id, user_id, channel, round, step, status, due_at, created_at)
		 SELECT p.id, (SELECT id FROM users ORDER BY id DESC LIMIT 1), 'in_app', 0, 1, 'delivered', p.created_at, p.created_at + interval '5 minutes'
		 FROM pages p WHERE p.step = 1`,
		`INSERT INTO page_events (page_id, kind, round, at) SELECT id, 'unanswered', 0, created_at + interval '30 minutes' FROM pages WHERE status = 'unanswered'`,
		`INSERT INTO page_events (page_id, kind, round, step, detail, at)
		 SELECT id, 'no_one_on_call', 0, 0, 'no one on call for Nights', created_at FROM pages WHERE extract(epoch FROM created_at)::bigint % 100 = 0`,
		`ANALYZE`,
	} {
		var args []any
		if len(q) > 30 && q[:18] == "INSERT INTO pages " {
			args = []any{start, n, end.Sub(start).Seconds() / float64(n)}
		}
		if _, err := db.Pool.Exec(ctx, q, args...); err != nil {
			b.Fatalf("%s: %v", q[:40], err)
		}
	}
	if os.Getenv("CALLROOM_REPORT_EXPLAIN") != "" {
		conn, err := db.Pool.Acquire(ctx)
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Release()
		if _, err := conn.Exec(ctx, "SET jit = off; SET work_mem = '64MB'"); err != nil {
			b.Fatal(err)
		}
		for _, q := range reports.Queries {
			rows, _ := conn.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS) "+q, start, end, nil)
			lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				b.Fatal(err)
			}
			b.Log(strings.Join(lines, "\n"))
		}
	}
	var someService uuid.UUID
	if err := db.Pool.QueryRow(ctx, `SELECT id FROM services LIMIT 1`).Scan(&someService); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		f    reports.Filter
	}{
		{"year", reports.Filter{From: start, To: end}},
		{"month", reports.Filter{From: end.AddDate(0, -1, 0), To: end}},
		{"month_one_service", reports.Filter{From: end.AddDate(0, -1, 0), To: end, ServiceID: &someService}},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				r, err := reports.Report(ctx, db.Pool, c.f)
				if err != nil {
					b.Fatal(err)
				}
				if len(r.Services) == 0 || len(r.People) == 0 {
					b.Fatalf("empty report: %+v", r)
				}
			}
		})
	}
}

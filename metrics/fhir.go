package metrics

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// fhirCollector reads, at scrape time, how many EHR notifications wait to
// be applied and for how long the oldest has: the figures to alert on when
// processing falls behind or a notification keeps failing. Like the queue
// depth, it is whole-cluster, the same from every instance.
type fhirCollector struct {
	db      *pgxpool.Pool
	waiting *prometheus.Desc
	oldest  *prometheus.Desc
	failing *prometheus.Desc
}

// WatchFHIR adds callroom_fhir_notifications_waiting{subscription},
// callroom_fhir_notifications_failing{subscription} (waiting after a failed
// attempt) and callroom_fhir_oldest_waiting_seconds{subscription} to m, read
// from db on each scrape. Subscription names come from the configuration: a
// bounded set, not ids.
func (m *Metrics) WatchFHIR(db *pgxpool.Pool) {
	l := []string{"subscription"}
	m.Registry.MustRegister(&fhirCollector{db: db,
		waiting: prometheus.NewDesc("callroom_fhir_notifications_waiting", "EHR notifications recorded and not yet applied (whole cluster).", l, nil),
		failing: prometheus.NewDesc("callroom_fhir_notifications_failing", "Waiting EHR notifications whose last attempt failed (whole cluster).", l, nil),
		oldest:  prometheus.NewDesc("callroom_fhir_oldest_waiting_seconds", "Age of the oldest EHR notification not yet applied (whole cluster).", l, nil),
	})
}

func (c *fhirCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.waiting
	ch <- c.failing
	ch <- c.oldest
}

type fhirWaiting struct {
	Subscription string  `db:"subscription"`
	Waiting      int64   `db:"waiting"`
	Failing      int64   `db:"failing"`
	Oldest       float64 `db:"oldest"`
}

func (c *fhirCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	rows, _ := c.db.Query(ctx, `SELECT subscription, count(*) AS waiting, count(*) FILTER (WHERE failures > 0) AS failing,
			extract(epoch FROM now() - min(received_at))::float8 AS oldest
		FROM fhir_notifications WHERE processed_at IS NULL GROUP BY 1`)
	got, err := pgx.CollectRows(rows, pgx.RowToStructByName[fhirWaiting])
	if err != nil {
		return // callroom_database_up says why
	}
	for _, w := range got {
		ch <- prometheus.MustNewConstMetric(c.waiting, prometheus.GaugeValue, float64(w.Waiting), w.Subscription)
		ch <- prometheus.MustNewConstMetric(c.failing, prometheus.GaugeValue, float64(w.Failing), w.Subscription)
		ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, w.Oldest, w.Subscription)
	}
}

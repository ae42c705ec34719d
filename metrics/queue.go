package metrics

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// queueCollector reads River's queue depth from the database at scrape
// time: the jobs are in Postgres, shared by every instance, so any instance
// reports the same (whole-cluster) figure.
type queueCollector struct {
	db   *pgxpool.Pool
	desc *prometheus.Desc
	up   *prometheus.Desc
}

// WatchQueues adds callroom_river_jobs{queue,state} (jobs waiting or running)
// to m, read from db on each scrape with a short timeout.
func (m *Metrics) WatchQueues(db *pgxpool.Pool) {
	m.Registry.MustRegister(&queueCollector{db: db,
		desc: prometheus.NewDesc("callroom_river_jobs", "River jobs not yet finished, by queue and state (whole cluster).", []string{"queue", "state"}, nil),
		up:   prometheus.NewDesc("callroom_database_up", "1 when the last scrape could read the database.", nil, nil),
	})
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc; ch <- c.up }

type queueDepth struct {
	Queue string `db:"queue"`
	State string `db:"state"`
	N     int64  `db:"n"`
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	rows, _ := c.db.Query(ctx, `SELECT queue, state::text AS state, count(*) AS n FROM river_job
		WHERE state IN ('available', 'scheduled', 'retryable', 'running') GROUP BY 1, 2`)
	depths, err := pgx.CollectRows(rows, pgx.RowToStructByName[queueDepth])
	if err != nil {
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	for _, d := range depths {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(d.N), d.Queue, d.State)
	}
}

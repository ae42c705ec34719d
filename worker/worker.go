// Package worker builds callroom's River client: the queues that run every
// timed and asynchronous piece of work (escalation steps, notifications, FHIR
// processing, retention) as jobs stored in PostgreSQL, so that work survives
// a crash and is shared by every running instance.
package worker

import (
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
)

// Queue names. Escalation has its own queue so a burst of notifications or
// FHIR work never delays an escalation step. Notifications from the EHR
// (QueueFHIR) and calls to the EHR (QueueEHR: reading a patient, writing
// summaries back) are apart for the same reason: an EHR that is slow or down
// holds up only the calls made to it, never what it tells callroom.
const (
	QueueDefault    = river.QueueDefault
	QueueEscalation = "escalation"
	QueueNotify     = "notify"
	QueueFHIR       = "fhir"
	QueueEHR        = "ehr"
)

// Client is the River client callroom uses everywhere.
type Client = river.Client[pgx.Tx]

// Config says what the client runs.
type Config struct {
	Pool     *pgxpool.Pool
	Log      *slog.Logger
	Workers  *river.Workers
	Periodic []*river.PeriodicJob
	// InsertOnly builds a client that inserts jobs but runs none (the CLI).
	InsertOnly bool
	// EscalationPoll is how often the escalation queue polls for due jobs.
	// River's scheduler promotes scheduled jobs only every 5 s (looking 5 s
	// ahead), so for a step due 5 s or more from now, the poll interval is
	// what decides how late it fires. 50 ms gives ~60 ms worst-case lateness.
	EscalationPoll time.Duration
}

// New returns a River client for cfg.
func New(cfg Config) (*Client, error) {
	rc := &river.Config{
		Logger:       cfg.Log,
		Workers:      cfg.Workers,
		PeriodicJobs: cfg.Periodic,
		JobTimeout:   time.Minute,
		// A job that was running when its instance died (kill -9, a lost
		// machine) stays "running" until River's rescuer gives it back. By
		// default that is an hour after the job timeout: an escalation step
		// would fire an hour late. Step jobs re-check the page and delivery
		// jobs time out at 45 s, so 90 s is safe.
		RescueStuckJobsAfter: 90 * time.Second,
		// The client-level FetchCooldown also spaces the insert
		// notifications this client sends per queue (River's
		// insertNotifyLimiter): at the default 100 ms, a page created
		// within 100 ms of the previous one wakes no worker and waits
		// for the queue's poll (measured: created -> step fired p50 32 ms
		// at 200 pages/s). Queues keep their own cooldowns below.
		FetchCooldown: 2 * time.Millisecond,
	}
	if !cfg.InsertOnly {
		poll := cfg.EscalationPoll
		if poll <= 0 {
			poll = 50 * time.Millisecond
		}
		// The default FetchCooldown (100 ms) caps a queue at MaxWorkers per
		// 100 ms and adds ~50 ms to every pickup; paging cannot afford that.
		// The fhir queue's workers claim and prepare batches; how many of
		// them write at once is fhir.Priority's to say (16 while the
		// instance sends no pages, 4 while it does, by default).
		rc.Queues = map[string]river.QueueConfig{
			QueueEscalation: {MaxWorkers: 20, FetchPollInterval: poll, FetchCooldown: 2 * time.Millisecond},
			QueueNotify:     {MaxWorkers: 30, FetchPollInterval: 100 * time.Millisecond, FetchCooldown: 5 * time.Millisecond},
			QueueFHIR:       {MaxWorkers: 20, FetchPollInterval: 500 * time.Millisecond, FetchCooldown: 10 * time.Millisecond},
			QueueEHR:        {MaxWorkers: 10, FetchPollInterval: 500 * time.Millisecond, FetchCooldown: 10 * time.Millisecond},
			QueueDefault:    {MaxWorkers: 10},
		}
	} else {
		rc.Workers = nil
		rc.PeriodicJobs = nil
	}
	return river.NewClient(riverpgxv5.New(cfg.Pool), rc)
}

// Package metrics exposes callroom's Prometheus metrics. Every instance has
// its own registry (several instances may share a process in tests).
//
// Labels are bounded and never carry PHI: route patterns (not raw paths),
// status codes, service names (configured by administrators), priorities,
// channels, job kinds and queue names. Never a user, patient or page id.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is one instance's metrics. A nil *Metrics records nothing, so
// parts built without metrics (unit tests) need no checks.
type Metrics struct {
	Registry *prometheus.Registry

	httpRequests   *prometheus.CounterVec
	httpDuration   *prometheus.HistogramVec
	pagesCreated   *prometheus.CounterVec
	ackSeconds     *prometheus.HistogramVec
	lateness       prometheus.Histogram
	notifications  *prometheus.CounterVec
	jobFailures    *prometheus.CounterVec
	sseConnections prometheus.Gauge
	fhir           *prometheus.CounterVec
}

// New returns metrics registered on a fresh registry, with the Go runtime
// and process collectors.
func New() *Metrics {
	m := &Metrics{Registry: prometheus.NewRegistry()}
	m.httpRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "callroom_http_requests_total", Help: "HTTP requests answered, by route pattern, method and status.",
	}, []string{"route", "method", "status"})
	m.httpDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "callroom_http_request_duration_seconds", Help: "Time to answer HTTP requests (event streams excluded), by route pattern and method.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"route", "method"})
	m.pagesCreated = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "callroom_pages_created_total", Help: "Pages created, by service (\"(direct)\" for a page to a person) and priority.",
	}, []string{"service", "priority"})
	m.ackSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "callroom_page_time_to_acknowledge_seconds", Help: "Time from a page's creation to its acknowledgement, by priority.",
		Buckets: []float64{5, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200},
	}, []string{"priority"})
	m.lateness = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "callroom_escalation_lateness_seconds", Help: "How late escalation steps fire: when the step ran minus when it was due.",
		Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
	})
	m.notifications = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "callroom_notifications_total", Help: "Notifications that reached a final status, by channel and status (sent, delivered, failed).",
	}, []string{"channel", "status"})
	m.jobFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "callroom_river_job_failures_total", Help: "River job attempts that failed, by job kind.",
	}, []string{"kind"})
	m.sseConnections = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "callroom_sse_connections", Help: "Event streams open on this instance.",
	})
	m.fhir = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "callroom_fhir_operations_total", Help: "FHIR notifications received and write-backs sent, by operation and outcome.",
	}, []string{"operation", "outcome"})
	m.Registry.MustRegister(m.httpRequests, m.httpDuration, m.pagesCreated, m.ackSeconds, m.lateness,
		m.notifications, m.jobFailures, m.sseConnections, m.fhir,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// HTTPRequest records one answered request. route must be the router's
// pattern (e.g. /api/v1/pages/{id}), never the raw path.
func (m *Metrics) HTTPRequest(route, method string, status int, took time.Duration, stream bool) {
	if m == nil {
		return
	}
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
	default:
		method = "other" // a client may send any token: keep the label bounded
	}
	if status == 0 {
		status = http.StatusOK // the handler wrote nothing; net/http answers 200
	}
	m.httpRequests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	if !stream {
		m.httpDuration.WithLabelValues(route, method).Observe(took.Seconds())
	}
}

// PageCreated counts a new page; service is the service's name, empty for a
// page sent directly to a person.
func (m *Metrics) PageCreated(service, priority string) {
	if m == nil {
		return
	}
	if service == "" {
		service = "(direct)"
	}
	m.pagesCreated.WithLabelValues(service, priority).Inc()
}

// PageAcknowledged records how long a page waited for its acknowledgement.
func (m *Metrics) PageAcknowledged(priority string, after time.Duration) {
	if m == nil {
		return
	}
	m.ackSeconds.WithLabelValues(priority).Observe(after.Seconds())
}

// StepFired records an escalation step's lateness (fired minus due).
func (m *Metrics) StepFired(late time.Duration) {
	if m == nil {
		return
	}
	m.lateness.Observe(max(late, 0).Seconds())
}

// NotificationSettled counts a notification that reached a final status.
func (m *Metrics) NotificationSettled(channel, status string) {
	if m == nil {
		return
	}
	m.notifications.WithLabelValues(channel, status).Inc()
}

// JobFailed counts a failed River job attempt.
func (m *Metrics) JobFailed(kind string) {
	if m == nil {
		return
	}
	m.jobFailures.WithLabelValues(kind).Inc()
}

// StreamOpened counts an open event stream; call the returned func when it closes.
func (m *Metrics) StreamOpened() (closed func()) {
	if m == nil {
		return func() {}
	}
	m.sseConnections.Inc()
	return m.sseConnections.Dec
}

// FHIR counts a FHIR operation: operation is "notification" (received from
// the EHR: accepted, duplicate, rejected, error), "processing" (applied to
// threads: applied, failed, given_up), "batch" (one_by_one: applying a
// batch together failed) or "write_back" (sent to it: ok, failed). It
// implements fhir.Observer.
func (m *Metrics) FHIR(operation, outcome string) {
	if m == nil {
		return
	}
	m.fhir.WithLabelValues(operation, outcome).Inc()
}

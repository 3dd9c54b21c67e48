// Package metrics defines the service's Prometheus series. A nil *Metrics is
// valid and records nothing, so packages can take one optionally.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds every series. Safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	httpDuration    *prometheus.HistogramVec
	commands        *prometheus.CounterVec
	appendDuration  prometheus.Histogram
	projected       map[string]prometheus.Counter // by event type
	projectorErrors prometheus.Counter
	lagEvents       prometheus.Gauge
	lagSeconds      prometheus.Gauge
	rywWaits        prometheus.Counter
	rywTimeouts     prometheus.Counter
	rywDuration     prometheus.Histogram

	webhookDeliveries *prometheus.CounterVec
	webhookLatency    prometheus.Histogram
	webhookLag        *prometheus.GaugeVec
}

// New registers every series (and the Go and process collectors) in a new
// registry. eventTypes are the CloudEvents types the projector counts (the
// event registry's): the label's values are exactly these, created at zero,
// so the series are bounded and present from the start.
func New(eventTypes ...string) *Metrics {
	reg := prometheus.NewRegistry()
	f := func(c prometheus.Collector) { reg.MustRegister(c) }
	m := &Metrics{reg: reg}
	m.httpDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "crm_http_request_duration_seconds", Help: "HTTP request latency by route, method and status.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"route", "method", "status"})
	m.commands = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "crm_commands_total", Help: "Commands by kind (create, update, delete) and outcome (ok, noop, replayed, error, or the error kind: invalid, forbidden, not_found, conflict, precondition_failed, unprocessable, unavailable).",
	}, []string{"kind", "outcome"})
	m.appendDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "crm_event_append_duration_seconds", Help: "Latency of a command from load to JetStream acknowledgement.",
		Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .25, 1, 5},
	})
	projected := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "crm_projector_events_total", Help: "Events applied to the read model, by CloudEvents type."}, []string{"type"})
	m.projected = make(map[string]prometheus.Counter, len(eventTypes))
	for _, t := range eventTypes {
		m.projected[t] = projected.WithLabelValues(t)
	}
	m.projectorErrors = prometheus.NewCounter(prometheus.CounterOpts{Name: "crm_projector_errors_total", Help: "Projector failures (store or NATS errors, unappliable events)."})
	m.lagEvents = prometheus.NewGauge(prometheus.GaugeOpts{Name: "crm_projector_lag_events", Help: "Events in the stream not yet in the read model."})
	m.lagSeconds = prometheus.NewGauge(prometheus.GaugeOpts{Name: "crm_projector_lag_seconds", Help: "Age of the oldest event not yet in the read model (0 when caught up)."})
	m.rywWaits = prometheus.NewCounter(prometheus.CounterOpts{Name: "crm_read_your_writes_waits_total", Help: "Command responses that waited for the read model."})
	m.rywTimeouts = prometheus.NewCounter(prometheus.CounterOpts{Name: "crm_read_your_writes_timeouts_total", Help: "Waits for the read model that timed out (response says X-Read-Model: behind)."})
	m.rywDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "crm_read_your_writes_wait_seconds", Help: "How long command responses waited for the read model.",
		Buckets: []float64{.0001, .0005, .001, .0025, .005, .01, .05, .1, .5, 1, 3},
	})
	m.webhookDeliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "crm_webhook_deliveries_total", Help: "Webhook delivery attempts by outcome (delivered, failed, gone).",
	}, []string{"outcome"})
	for _, o := range []string{"delivered", "failed", "gone"} {
		m.webhookDeliveries.WithLabelValues(o)
	}
	m.webhookLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "crm_webhook_delivery_latency_seconds", Help: "Time from an event's append to its delivery (the endpoint's 2xx).",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5, 30, 300},
	})
	m.webhookLag = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "crm_webhook_lag_events", Help: "Events a webhook subscription has not delivered yet, by subscription id (on the replica delivering it).",
	}, []string{"subscription"})
	for _, c := range []prometheus.Collector{m.httpDuration, m.commands, m.appendDuration, projected, m.projectorErrors,
		m.lagEvents, m.lagSeconds, m.rywWaits, m.rywTimeouts, m.rywDuration,
		m.webhookDeliveries, m.webhookLatency, m.webhookLag,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		f(c)
	}
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// HTTPRequest records one request. route must come from a fixed set (the
// router's patterns, or one value for unmatched paths); the method and the
// status are bounded here, so that no request can create series at will: a
// method outside the standard ones counts as "other", a status outside
// 100-599 as "other".
func (m *Metrics) HTTPRequest(route, method string, status int, d time.Duration) {
	if m != nil {
		m.httpDuration.WithLabelValues(route, Method(method), statusLabel(status)).Observe(d.Seconds())
	}
}

// Method returns method when it is one of the standard HTTP methods, else
// "other".
func Method(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return method
	}
	return "other"
}

func statusLabel(status int) string {
	if status < 100 || status > 599 {
		return "other"
	}
	return strconv.Itoa(status)
}

// Command records a command's outcome.
func (m *Metrics) Command(kind, outcome string) {
	if m != nil {
		m.commands.WithLabelValues(kind, outcome).Inc()
	}
}

// Append records the latency of a successful append.
func (m *Metrics) Append(d time.Duration) {
	if m != nil {
		m.appendDuration.Observe(d.Seconds())
	}
}

// Projected records applied events (count by CloudEvents type; types New
// was not given are not counted) and the lag after them.
func (m *Metrics) Projected(byType map[string]int, lagEvents uint64, lag time.Duration) {
	if m != nil {
		for t, n := range byType {
			if c, ok := m.projected[t]; ok {
				c.Add(float64(n))
			}
		}
		m.lagEvents.Set(float64(lagEvents))
		m.lagSeconds.Set(lag.Seconds())
	}
}

// ProjectorError records a projector failure.
func (m *Metrics) ProjectorError() {
	if m != nil {
		m.projectorErrors.Inc()
	}
}

// ReadYourWrites records one wait for the read model.
func (m *Metrics) ReadYourWrites(d time.Duration, caughtUp bool) {
	if m != nil {
		m.rywWaits.Inc()
		m.rywDuration.Observe(d.Seconds())
		if !caughtUp {
			m.rywTimeouts.Inc()
		}
	}
}

// WebhookDelivery counts one webhook attempt by outcome (delivered,
// failed, gone).
func (m *Metrics) WebhookDelivery(outcome string) {
	if m != nil {
		m.webhookDeliveries.WithLabelValues(outcome).Inc()
	}
}

// WebhookLatency records the time from an event's append to its delivery.
func (m *Metrics) WebhookLatency(d time.Duration) {
	if m != nil {
		m.webhookLatency.Observe(d.Seconds())
	}
}

// WebhookLag sets the events a subscription has not delivered yet (its
// label is the subscription id: bounded by the subscriptions' limit).
func (m *Metrics) WebhookLag(subscription string, pending uint64) {
	if m != nil {
		m.webhookLag.WithLabelValues(subscription).Set(float64(pending))
	}
}

// ForgetWebhook drops the series of a deleted subscription.
func (m *Metrics) ForgetWebhook(subscription string) {
	if m != nil {
		m.webhookLag.DeleteLabelValues(subscription)
	}
}

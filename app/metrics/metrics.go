// Package metrics is Immunity's own Prometheus instrumentation: what operators alert on.
//
// The model: the engine is not instrumented. Metrics is a pipeline.Listener and derives
// the run, stage, verdict and judge-look series from the transitions the engine reports
// anyway; the state that must be true after a restart (the release live on each host,
// the locks held, the runs in flight) is read from the engine at scrape time, so it is
// never a stale copy; so are the immunity_dora_* gauges, each app's delivery report over
// the last 30 days (read at most once a minute). The doors and the effects report to it
// through small calls made by their own packages: the webhook endpoint (Delivery), the
// command layer (Command), and the GitHub and Slack HTTP clients through a RoundTripper
// (Transport) plus Retry and RateLimitWait from their retry logic. Go runtime and
// process collectors are registered too.
package metrics

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/immunity-app/immunity/pipeline"
	"github.com/immunity-app/immunity/store"
)

// engine is what the scrape-time collector reads.
type engine interface {
	Status(ctx context.Context, app string) ([]pipeline.AppStatus, error)
	Runs(ctx context.Context, app string, activeOnly bool, limit int) ([]store.Run, error)
}

// Metrics holds Immunity's series. Its zero value is not usable: call New.
type Metrics struct {
	reg *prometheus.Registry

	runsStarted   *prometheus.CounterVec
	runsFinished  *prometheus.CounterVec
	stageSeconds  *prometheus.HistogramVec
	verdicts      *prometheus.CounterVec
	looks         *prometheus.CounterVec
	deliveries    *prometheus.CounterVec
	deliverySecs  *prometheus.HistogramVec
	commands      *prometheus.CounterVec
	apiCalls      *prometheus.CounterVec
	apiSeconds    *prometheus.HistogramVec
	apiRetries    *prometheus.CounterVec
	rateLimitWait *prometheus.CounterVec

	mu     sync.Mutex
	steps  map[stageKey]stepMark // the step each active stage is in, and since when
	closed map[int64]bool        // runs whose finish was counted
}

type stageKey struct {
	run    int64
	region string
}

type stepMark struct {
	step  store.StageState
	since time.Time
}

// New returns the metrics, registered with go and process collectors and, when eng is
// not nil, the scrape-time series read from it.
func New(eng engine) *Metrics {
	m := &Metrics{
		reg:    prometheus.NewRegistry(),
		steps:  map[stageKey]stepMark{},
		closed: map[int64]bool{},
		runsStarted: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "immunity_runs_started_total",
			Help: "Runs started, by app."}, []string{"app"}),
		runsFinished: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "immunity_runs_finished_total",
			Help: "Runs finished, by app and outcome (succeeded, failed, superseded, cancelled)."}, []string{"app", "outcome"}),
		stageSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "immunity_stage_duration_seconds",
			Help:    "Time a stage spent in a step (deploying, testing, monitoring) and, step=\"stage\", in all, by app, region, step and outcome.",
			Buckets: []float64{0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600}}, []string{"app", "region", "step", "outcome"}),
		verdicts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "immunity_verdicts_total",
			Help: "Final canary verdicts, by app, region and outcome (pass, marginal, fail, inconclusive, error)."}, []string{"app", "region", "outcome"}),
		looks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "immunity_judge_looks_total",
			Help: "Interim looks of the judge during monitoring, by app, region and interim outcome."}, []string{"app", "region", "outcome"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "immunity_webhook_deliveries_total",
			Help: "GitHub webhook deliveries, by event and outcome (accepted, duplicate, unauthorized, bad_request, too_large, error)."}, []string{"event", "outcome"}),
		deliverySecs: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "immunity_webhook_handling_seconds",
			Help:    "Time from a delivery's arrival to its acknowledgement, by event.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10}}, []string{"event"}),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "immunity_commands_total",
			Help: "Chat, comment, button, dashboard and CLI commands, by surface (slack, github, slack_button, github_button, dashboard, socket, api), command and outcome (ok, refused, not_understood)."}, []string{"surface", "command", "outcome"}),
		apiCalls: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "immunity_api_requests_total",
			Help: "HTTP requests to GitHub and Slack (each attempt), by service, method and status code (0: no answer)."}, []string{"service", "method", "status"}),
		apiSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "immunity_api_request_duration_seconds",
			Help: "Duration of HTTP requests to GitHub and Slack, by service.", Buckets: prometheus.DefBuckets}, []string{"service"}),
		apiRetries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "immunity_api_retries_total",
			Help: "GitHub and Slack calls retried after a failure worth retrying, by service."}, []string{"service"}),
		rateLimitWait: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "immunity_api_rate_limit_wait_seconds_total",
			Help: "Time spent waiting out GitHub and Slack rate limits, by service."}, []string{"service"}),
	}
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.runsStarted, m.runsFinished, m.stageSeconds, m.verdicts, m.looks, m.deliveries, m.deliverySecs,
		m.commands, m.apiCalls, m.apiSeconds, m.apiRetries, m.rateLimitWait)
	if eng != nil {
		m.reg.MustRegister(newStateCollector(eng))
		if rep, ok := eng.(reporter); ok {
			m.reg.MustRegister(newDoraCollector(eng, rep))
		}
	}
	return m
}

// Handler serves /metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Register adds a collector of another part (NewOutboxCollector).
func (m *Metrics) Register(c prometheus.Collector) error { return m.reg.Register(c) }

// Delivery counts one webhook delivery and the time to its answer.
func (m *Metrics) Delivery(event, outcome string, took time.Duration) {
	m.deliveries.WithLabelValues(event, outcome).Inc()
	m.deliverySecs.WithLabelValues(event).Observe(took.Seconds())
}

// Command counts one command run through the command layer.
func (m *Metrics) Command(surface, command, outcome string) {
	m.commands.WithLabelValues(surface, command, outcome).Inc()
}

// Retry counts a call to service retried.
func (m *Metrics) Retry(service string) { m.apiRetries.WithLabelValues(service).Inc() }

// RateLimitWait adds a wait for service's rate limit.
func (m *Metrics) RateLimitWait(service string, d time.Duration) {
	m.rateLimitWait.WithLabelValues(service).Add(d.Seconds())
}

// Transport counts and times every request next sends to service ("github", "slack").
func (m *Metrics) Transport(service string, next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		start := time.Now()
		resp, err := next.RoundTrip(req)
		status := 0
		if err == nil {
			status = resp.StatusCode
		}
		m.apiCalls.WithLabelValues(service, req.Method, strconv.Itoa(status)).Inc()
		m.apiSeconds.WithLabelValues(service).Observe(time.Since(start).Seconds())
		return resp, err
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// Notify derives the run, stage, verdict and look series from the engine's transitions.
func (m *Metrics) Notify(_ context.Context, ev pipeline.Event) {
	switch ev.Kind {
	case pipeline.RunCreated:
		m.runsStarted.WithLabelValues(ev.App).Inc()
	case pipeline.RunChanged:
		if ev.Run.State.Terminal() && !ev.Again { // a run told again after a start was counted by the server that ended it
			m.mu.Lock()
			first := !m.closed[ev.Run.ID]
			m.closed[ev.Run.ID] = true
			m.mu.Unlock()
			if first {
				m.runsFinished.WithLabelValues(ev.App, string(ev.Run.State)).Inc()
			}
		}
	case pipeline.StageChanged:
		if ev.Stage != nil {
			m.stage(ev)
		}
	case pipeline.Looked:
		if ev.Stage != nil {
			m.looks.WithLabelValues(ev.App, ev.Stage.Region, verdictOutcome(ev.Stage.Verdict)).Inc()
		}
	}
}

// stage observes the step a stage leaves and, when it ends, the whole stage and its verdict.
func (m *Metrics) stage(ev pipeline.Event) {
	s := ev.Stage
	k := stageKey{ev.Run.ID, s.Region}
	m.mu.Lock()
	prev, had := m.steps[k]
	if had && prev.step == s.State {
		m.mu.Unlock()
		return
	}
	if s.State.Active() {
		m.steps[k] = stepMark{s.State, ev.Time}
	} else {
		delete(m.steps, k)
	}
	m.mu.Unlock()
	ended := s.State.Terminal()
	if had {
		outcome := "ok"
		if ended && s.State != store.StageSucceeded {
			outcome = string(s.State)
		}
		m.stageSeconds.WithLabelValues(ev.App, s.Region, string(prev.step), outcome).Observe(ev.Time.Sub(prev.since).Seconds())
	}
	if !ended || s.State == store.StageSkipped {
		return
	}
	if !s.Started.IsZero() && !s.Finished.IsZero() {
		m.stageSeconds.WithLabelValues(ev.App, s.Region, "stage", string(s.State)).Observe(s.Finished.Sub(s.Started).Seconds())
	}
	if s.Verdict != "" {
		m.verdicts.WithLabelValues(ev.App, s.Region, verdictOutcome(s.Verdict)).Inc()
	}
	m.mu.Lock()
	if len(m.closed) > 10000 { // finished runs do not come back; keep the set small
		clear(m.closed)
	}
	m.mu.Unlock()
}

func verdictOutcome(js string) string {
	var v struct {
		Outcome string `json:"outcome"`
	}
	if js == "" || json.Unmarshal([]byte(js), &v) != nil || v.Outcome == "" {
		return "none"
	}
	return v.Outcome
}

package canary

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/immunity-app/immunity/canary/measure"
	"github.com/immunity-app/immunity/canary/mirror"
	"github.com/immunity-app/immunity/canary/mirrorsrc"
	"github.com/immunity-app/immunity/canary/prom"
	"github.com/immunity-app/immunity/canary/scrape"
	"github.com/immunity-app/immunity/deployers"
	"github.com/immunity-app/immunity/pipeline"
	"github.com/immunity-app/immunity/pipeline/judge"
)

// switcher turns the traffic mirrors in front of production hosts on and off.
// *mirror.Registry (in-process mirrors) and mirror.Sidecars (remote sidecars) do.
type switcher interface {
	SetShadow(ctx context.Context, h deployers.Host, targets []string) error
	Off(ctx context.Context, h deployers.Host) error
	Reset(ctx context.Context) error
}

// Monitor runs monitoring windows. It implements pipeline.Monitor.
type Monitor struct {
	// Mirrors switches mirroring; nil means the canary gets no mirrored traffic (its
	// metrics still are compared).
	Mirrors switcher
	// Registry gives the mirror source the in-process proxies' records (source: mirror).
	Registry *mirror.Registry
	// MirrorMethods are the methods the mirrors copy (their Options.Methods); default GET,
	// HEAD. A mirrored canary is compared on these methods' series only.
	MirrorMethods []string
	// Prometheus overrides query templates of source: prometheus, by metric name.
	Prometheus map[string]prom.Query
	HTTP       *http.Client
	// Alpha is the window's overall false-alarm rate; default 0.01.
	Alpha float64
	// MaxErrors is how many failed measurements of a metric in a row make the verdict
	// Error and end the window (judge.Options.MaxErrors); default 3.
	MaxErrors int
	Log       *slog.Logger
}

var _ pipeline.Monitor = (*Monitor)(nil)

// Reset turns every mirror off: call it at startup, since a window cut by a crash left
// its mirrors on.
func (m *Monitor) Reset(ctx context.Context) error {
	if m.Mirrors == nil {
		return nil
	}
	if err := m.Mirrors.Reset(ctx); err != nil {
		return fmt.Errorf("turn every traffic mirror off: %w", err)
	}
	return nil
}

// Monitor runs one window: mirroring on, a measurement and a look every Interval, a
// Fail (or persistent measurement errors) ends it early, mirroring off at the end.
func (m *Monitor) Monitor(ctx context.Context, req pipeline.MonitorRequest, look func(judge.Verdict)) (judge.Verdict, error) {
	name := fmt.Sprintf("monitor %s@%s in %s against %s", req.App, short(req.Release), req.Region, req.BaselineRegion)
	if req.Period <= 0 || req.Interval <= 0 || len(req.Canary) == 0 || len(req.Baseline) == 0 || len(req.Metrics) == 0 {
		return judge.Verdict{}, fmt.Errorf("%s: expected a period, an interval, canary and baseline hosts and metrics", name)
	}
	src, err := m.source(req)
	if err != nil {
		return judge.Verdict{}, fmt.Errorf("%s: %w", name, err)
	}
	if err := m.on(ctx, req); err != nil {
		return judge.Verdict{}, fmt.Errorf("%s: %w", name, err)
	}
	defer m.off(context.WithoutCancel(ctx), req)
	w := window(req)
	if mirrored(m, req) {
		w.Methods = m.MirrorMethods
		if len(w.Methods) == 0 {
			w.Methods = []string{"GET", "HEAD"}
		}
	}
	looks := max(1, int(req.Period/req.Interval))
	run := &run{w: w, src: src, seq: judge.NewSequence(w.JudgeMetrics(), judge.Options{Alpha: m.alpha(), Looks: looks, MaxErrors: m.MaxErrors}),
		log: m.logger().With("app", req.App, "region", req.Region, "sha", req.Release)}
	if req.Calibrate != "" {
		run.aa = m.aaWindow(req, run.log)
		if run.aa != nil {
			defer func() {
				if err := run.aa.close(); err != nil {
					run.log.Warn("recording the A/A window failed", "err", err)
				}
			}()
		}
	}
	v, err := run.loop(ctx, req.Interval, looks, look)
	if err != nil {
		return v, fmt.Errorf("%s: %w", name, err)
	}
	return v, nil
}

// aaWindow opens the A/A recording req asks for, with a source of its own (sources
// remember where counters stood); nil, logged, when it cannot be recorded: the canary's
// window goes on without it.
func (m *Monitor) aaWindow(req pipeline.MonitorRequest, log *slog.Logger) *aaWindow {
	if req.Source == "mirror" {
		log.Warn("no A/A window recorded: the mirror source measures only mirrored canaries")
		return nil
	}
	src, err := m.source(req)
	if err == nil {
		var a *aaWindow
		if a, err = newAAWindow(req, src, time.Now()); err == nil {
			return a
		}
	}
	log.Warn("no A/A window recorded", "err", err)
	return nil
}

func (m *Monitor) alpha() float64 {
	if m.Alpha > 0 {
		return m.Alpha
	}
	return 0.01
}

func (m *Monitor) logger() *slog.Logger {
	if m.Log != nil {
		return m.Log
	}
	return slog.Default()
}

// source picks the request's metric source.
func (m *Monitor) source(req pipeline.MonitorRequest) (measure.Source, error) {
	switch req.Source {
	case "", "scrape":
		return scrape.New(m.HTTP), nil
	case "prometheus":
		return prom.New(req.Prometheus, m.Prometheus)
	case "mirror":
		if req.Region == req.BaselineRegion {
			return nil, errors.New("source mirror: a canary in the baseline's region gets no mirrored traffic; use scrape or prometheus")
		}
		if m.Registry == nil {
			return nil, errors.New("source mirror: no in-process mirrors run here")
		}
		return mirrorsrc.New(m.Registry.Lookup), nil
	}
	return nil, fmt.Errorf("unknown metric source %q: expected scrape, prometheus or mirror", req.Source)
}

// window is what the sources measure: the request's hosts and its metrics, each with how
// it is judged and where its samples come from.
func window(req pipeline.MonitorRequest) measure.Window {
	w := measure.Window{App: req.App, Region: req.Region, BaselineRegion: req.BaselineRegion, Release: req.Release,
		Canary: req.Canary, Baseline: req.Baseline}
	for _, x := range req.Metrics {
		w.Metrics = append(w.Metrics, measure.Metric{Metric: x.Judge(), Spec: measure.Spec{Query: x.Query, TrialsQuery: x.TrialsQuery,
			Scrape: x.Scrape, TrialsScrape: x.TrialsScrape, Quantile: x.Quantile}})
	}
	return w
}

// on points every baseline host's mirror at the canary hosts; if one fails, those
// already on are turned off again.
func (m *Monitor) on(ctx context.Context, req pipeline.MonitorRequest) error {
	if !mirrored(m, req) {
		return nil
	}
	var targets []string
	for _, h := range req.Canary {
		targets = append(targets, h.URL)
	}
	for i, h := range req.Baseline {
		if err := m.Mirrors.SetShadow(ctx, h, targets); err != nil {
			for _, done := range req.Baseline[:i] {
				m.Mirrors.Off(context.WithoutCancel(ctx), done)
			}
			return fmt.Errorf("turn mirroring on from %s: %w", h, err)
		}
	}
	return nil
}

func (m *Monitor) off(ctx context.Context, req pipeline.MonitorRequest) {
	if !mirrored(m, req) {
		return
	}
	for _, h := range req.Baseline {
		if err := m.Mirrors.Off(ctx, h); err != nil {
			m.logger().ErrorContext(ctx, "turning the traffic mirror off failed", "app", req.App, "region", h.Region, "host", h.Name, "err", err)
		}
	}
}

// mirrored says whether the window mirrors traffic. A canary in the baseline's own
// region (a production rollout, host by host) already takes real traffic: nothing is
// mirrored there.
func mirrored(m *Monitor, req pipeline.MonitorRequest) bool {
	return m.Mirrors != nil && req.Region != req.BaselineRegion
}

func short(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	return sha
}

var (
	_ switcher = (*mirror.Registry)(nil)
	_ switcher = mirror.Sidecars{}
)

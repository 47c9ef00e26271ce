package metrics

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/immunity-app/immunity/store"
)

// reporter is what the delivery collector reads: the engine's delivery report.
type reporter interface {
	Report(ctx context.Context, app string, since, until time.Time) (store.Report, error)
}

// doraWindow is the period the immunity_dora_* gauges cover, back from the scrape.
const doraWindow = 30 * 24 * time.Hour

// doraEvery is how long one reading of the reports serves scrapes: the figures move by
// the day, and a report reads every production stage of the period.
const doraEvery = time.Minute

// doraCollector reads each app's delivery report (the one `immunity report APP --since
// 30d` prints) for the immunity_dora_* gauges, at most once a minute.
type doraCollector struct {
	eng    engine
	rep    reporter
	now    func() time.Time
	descs  map[string]*prometheus.Desc
	mu     sync.Mutex
	read   time.Time
	cached []prometheus.Metric
}

func newDoraCollector(eng engine, rep reporter) *doraCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("immunity_dora_"+name, help+" Over the last 30 days, by app.", []string{"app"}, nil)
	}
	return &doraCollector{eng: eng, rep: rep, now: time.Now, descs: map[string]*prometheus.Desc{
		"deploys":         d("deploys", "Releases that went live on every production host."),
		"lead_time":       d("lead_time_median_seconds", "Median time from a deployed release's commit to live on every production host (absent without one)."),
		"failure_ratio":   d("change_failure_ratio", "Production stages that failed or were rolled back, out of those that ended (absent without any)."),
		"failures":        d("change_failures", "Production stages that failed or were rolled back."),
		"restore":         d("time_to_restore_median_seconds", "Median time from a failed production stage's start to a healthy release live again in its region (absent without a restored failure)."),
		"restores_open":   d("restores_open", "Failed production stages whose region runs no healthy release again yet."),
		"canary_stops":    d("canary_stops", "Runs a canary verdict stopped before production."),
		"report_readable": d("report_ok", "1 when the app's delivery report could be read for this scrape."),
	}}
}

func (c *doraCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *doraCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := c.now(); c.cached == nil || now.Sub(c.read) >= doraEvery {
		c.cached, c.read = c.readAll(now), now
	}
	for _, m := range c.cached {
		ch <- m
	}
}

func (c *doraCollector) readAll(now time.Time) []prometheus.Metric {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	apps, err := c.eng.Status(ctx, "")
	if err != nil {
		return []prometheus.Metric{}
	}
	var out []prometheus.Metric
	gauge := func(name string, v float64, app string) {
		out = append(out, prometheus.MustNewConstMetric(c.descs[name], prometheus.GaugeValue, v, app))
	}
	for _, a := range apps {
		r, err := c.rep.Report(ctx, a.App, now.Add(-doraWindow), now)
		if err != nil {
			gauge("report_readable", 0, a.App)
			continue
		}
		gauge("report_readable", 1, a.App)
		gauge("deploys", float64(r.Deploys), a.App)
		gauge("failures", float64(r.Failures), a.App)
		gauge("restores_open", float64(r.RestoresOpen), a.App)
		gauge("canary_stops", float64(r.CanaryStops), a.App)
		if r.LeadTime.Median != nil {
			gauge("lead_time", *r.LeadTime.Median, a.App)
		}
		if r.ChangeFailureRate != nil {
			gauge("failure_ratio", *r.ChangeFailureRate, a.App)
		}
		if r.TimeToRestore.Median != nil {
			gauge("restore", *r.TimeToRestore.Median, a.App)
		}
	}
	if out == nil {
		out = []prometheus.Metric{}
	}
	return out
}

// Package measure is the contract between the monitoring window and the metric sources,
// and what the sources share.
//
// A Source measures both sides of a window (the canary hosts and the baseline hosts)
// over one interval and returns, per metric, the data of that interval only: counts of
// events and trials for Rate metrics and for a Gauge given as a share of counts (a
// cache's hits of its lookups: Metric.Counts), samples for other Latency and Gauge
// metrics (per-request samples, such as a histogram's bucket deltas or the mirror's
// records, marked Data.PerRequest). The window hands each interval to the judge as it comes: the judge
// keeps the intervals apart, since both sides of one interval saw the same moment. A source that cannot measure a metric sets that metric's
// Data.Err (a measurement error, judged as such); an error returned by Measure means
// nothing could be measured.
//
// The default metrics read the sample app's standard names: error_rate is
// http_requests_total with code 5xx (events) out of all of it (trials); latency is
// per-request durations reconstructed from http_request_duration_seconds bucket deltas
// (see Samples).
package measure

import (
	"context"
	"time"

	"github.com/immunity-app/immunity/deployers"
	"github.com/immunity-app/immunity/pipeline/judge"
)

// The default metrics and the series they are computed from.
const (
	ErrorRate = "error_rate" // Rate: 5xx requests out of all requests
	Latency   = "latency"    // Latency: seconds per request
	// MismatchRate (source mirror only) is the share of mirrored requests the canary
	// answered with another status (or body, when compared) than production.
	MismatchRate = "mismatch_rate"

	RequestsTotal   = "http_requests_total"           // counter {method,path,code}
	DurationSeconds = "http_request_duration_seconds" // histogram {method,path}
)

// Window is what a source measures: the canary hosts and the baseline hosts of one
// monitoring window, and the metrics wanted.
type Window struct {
	App            string
	Region         string // canary region
	BaselineRegion string
	Release        string // SHA on the canary hosts
	Canary         []deployers.Host
	Baseline       []deployers.Host
	Metrics        []Metric
	// Methods, when the canary receives only mirrored traffic, are the methods mirrored
	// (GET, HEAD): sources compare only those methods' series on both sides, unless a
	// configured selector names a method itself. Empty: every series counts.
	Methods []string
}

// Metric is one metric of the window: how it is judged and where its samples come from,
// as the app's config says. A metric named ErrorRate or Latency whose Spec names no
// series is read from the sample app's standard series.
type Metric struct {
	judge.Metric
	Spec
}

// JudgeMetrics is how the window's metrics are judged.
func (w Window) JudgeMetrics() []judge.Metric {
	out := make([]judge.Metric, len(w.Metrics))
	for i, m := range w.Metrics {
		out[i] = m.Metric
	}
	return out
}

// Counts tells whether the metric's data are counts of events out of trials: a rate's,
// or a gauge's given as a share of counts (its Spec names a trials' counter).
func (m Metric) Counts() bool {
	return m.Kind == judge.Rate || (m.Kind == judge.Gauge && (m.TrialsQuery != "" || m.TrialsScrape != ""))
}

// Spec is where one metric's samples come from: the app config's metric fields
// (config.Metric).
type Spec struct {
	// Query is a Prometheus query template ({{.Region}}, {{.Host}}, {{.Release}}, ...):
	// the events' counter of a rate, or of a gauge given as a share (TrialsQuery the
	// trials' counter), read as levels at both ends of the interval; for another latency
	// or gauge metric, an instant query at the interval's end whose every series' value is
	// one sample.
	Query, TrialsQuery string
	// Scrape is an exposition selector such as http_requests_total{code=~"5.."}: the
	// events' counter of a rate, or of a gauge given as a share (TrialsScrape the trials'
	// counter); for another latency or gauge metric, a histogram (per-request samples from
	// its bucket deltas, or with Quantile that quantile per host and interval) or a gauge
	// (its value per host and interval).
	Scrape, TrialsScrape string
	Quantile             float64
}

// Increase is an interval's events and trials from the levels of their counters at its
// start (events0, trials0) and at its end. A counter that went down means the app
// restarted during the interval: then both count from zero (their levels at the end),
// not only the one seen to go down, so a share's hits never outnumber its lookups and no
// count is negative.
func Increase(events0, trials0, events1, trials1 float64) (events, trials float64) {
	if events1 < events0 || trials1 < trials0 {
		return max(0, events1), max(0, trials1)
	}
	return events1 - events0, trials1 - trials0
}

// Source measures a window interval by interval.
type Source interface {
	// Measure returns both sides' data for the interval (from, to]. The first call of a
	// window has from == to and primes the source (stateful sources remember where the
	// counters stood); its result is not judged.
	Measure(ctx context.Context, w Window, from, to time.Time) (judge.Input, error)
}

// Empty returns an Input with empty maps.
func Empty() judge.Input {
	return judge.Input{Baseline: map[string]judge.Data{}, Canary: map[string]judge.Data{}}
}

// Failed returns an Input in which every metric of w carries err.
func Failed(w Window, err error) judge.Input {
	in := Empty()
	for _, m := range w.Metrics {
		in.Baseline[m.Name] = judge.Data{Err: err.Error()}
		in.Canary[m.Name] = judge.Data{Err: err.Error()}
	}
	return in
}

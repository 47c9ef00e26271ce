package config

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"text/template"

	"github.com/immunity-app/immunity/pipeline/judge"
)

// Metric is one application metric the judge compares between canary and baseline: how
// it is judged (kind, direction, allowed effect, critical, no_data) and where its samples
// come from (query for the Prometheus source, scrape for the hosts' /metrics).
//
// A latency or gauge metric gives one sample per interval and host: query is a
// Prometheus expression returning that value; scrape names an exposition metric (a
// selector such as `http_request_duration_seconds{path="/api"}`), of which a histogram
// gives the interval's mean (or its Quantile), a gauge its value.
//
// A rate metric counts events out of trials (errors out of requests). Query and scrape
// select the events' counter and TrialsQuery / TrialsScrape the trials' counter; the
// source reports their increase over each interval (a counter that went down, the app
// restarted, counts from zero).
//
// A gauge may be a share of counts the same way (a cache's hits of its lookups): given
// TrialsQuery or TrialsScrape, Query or Scrape is the events' counter (hits) and the
// trials' counter (lookups) is beside it, and the judge compares the shares, each
// interval weighed by how many trials it holds (see package judge).
//
// Query templates may use {{.Region}}, {{.Host}} and {{.Release}}.
type Metric struct {
	Name          string  `yaml:"name"`
	Kind          string  `yaml:"kind"`           // latency, rate or gauge
	Direction     string  `yaml:"direction"`      // which change is bad: increase (default), decrease, either
	AllowedEffect float64 `yaml:"allowed_effect"` // relative change tolerated: 0.2 = 20% worse is still fine
	Critical      bool    `yaml:"critical"`       // a failing critical metric fails the stage
	NoData        string  `yaml:"no_data"`        // what no data means: inconclusive (default), pass, fail
	Unit          string  `yaml:"unit"`           // for explanations: s, ms, bytes, or any word

	Query        string  `yaml:"query"`         // Prometheus query template (events, for a rate or a share)
	TrialsQuery  string  `yaml:"trials_query"`  // rate or share gauge: the trials' query template
	Scrape       string  `yaml:"scrape"`        // exposition metric selector (events, for a rate or a share)
	TrialsScrape string  `yaml:"trials_scrape"` // rate or share gauge: the trials' selector
	Quantile     float64 `yaml:"quantile"`      // histogram samples: this quantile instead of the mean

	// Allowance is how much two production hosts on the same release differ on this
	// metric (noise, drift, offset, dispersion), as `immunity judge calibrate` measured it
	// from recorded A/A windows and wrote here; absent, the window's own data decide.
	Allowance judge.Allowance `yaml:"allowance"`
}

// Judge is the metric as the judge sees it, defaults applied.
func (m Metric) Judge() judge.Metric {
	dir := judge.Direction(m.Direction)
	if dir == "" {
		dir = judge.Increase
	}
	nd := judge.NoData(m.NoData)
	if nd == "" {
		nd = judge.NoDataInconclusive
	}
	return judge.Metric{
		Name: m.Name, Kind: judge.Kind(m.Kind), Direction: dir, AllowedEffect: m.AllowedEffect,
		Critical: m.Critical, NoData: nd, Unit: m.Unit, Allowance: m.Allowance,
	}
}

// DefaultMetrics are judged when an app configures none. They name no series: the metric
// sources read these two from the standard series of the Prometheus client's conventions
// (the sample app's too), http_requests_total{method,path,code} and the histogram
// http_request_duration_seconds{method,path}:
//   - error_rate (rate, critical): 5xx requests out of all requests; 20% worse is allowed.
//   - latency (latency, seconds): per-request durations reconstructed from the histogram's
//     bucket deltas, so the judge ranks requests rather than a few per-interval means; 20%
//     worse is allowed.
func DefaultMetrics() []Metric {
	return []Metric{
		{Name: "error_rate", Kind: "rate", Direction: "increase", AllowedEffect: 0.2, Critical: true},
		{Name: "latency", Kind: "latency", Direction: "increase", AllowedEffect: 0.2, Unit: "s"},
	}
}

var (
	metricKinds      = []string{"latency", "rate", "gauge"}
	metricDirections = []string{"increase", "decrease", "either"}
	metricNoData     = []string{"inconclusive", "pass", "fail"}
)

// check reports the metric's problems through add; path is its config path
// ("apps[0].metrics[1]").
func (m Metric) check(add func(path, format string, args ...any), path string) {
	name := m.Name
	if name == "" {
		add(path+".name", "metric: name: expected a name")
		name = path
	}
	if !slices.Contains(metricKinds, m.Kind) {
		add(path+".kind", "metric %s: kind: expected one of %s, got %q", name, strings.Join(metricKinds, ", "), m.Kind)
	}
	if m.Direction != "" && !slices.Contains(metricDirections, m.Direction) {
		add(path+".direction", "metric %s: direction: expected one of %s, got %q", name, strings.Join(metricDirections, ", "), m.Direction)
	}
	if m.NoData != "" && !slices.Contains(metricNoData, m.NoData) {
		add(path+".no_data", "metric %s: no_data: expected one of %s, got %q", name, strings.Join(metricNoData, ", "), m.NoData)
	}
	switch {
	case m.AllowedEffect < 0 || m.AllowedEffect > 100:
		add(path+".allowed_effect", "metric %s: allowed_effect: expected a fraction such as 0.2 (20%% worse tolerated), got %v", name, m.AllowedEffect)
	case m.AllowedEffect >= 1 && m.Direction != "" && m.Direction != "increase":
		add(path+".allowed_effect", "metric %s: allowed_effect: %v allows a drop of 100%% or more, so a decrease can never fail; expected less than 1", name, m.AllowedEffect)
	}
	switch {
	case m.Quantile < 0 || m.Quantile >= 1 || (m.Quantile > 0 && m.Kind == "rate"):
		add(path+".quantile", "metric %s: quantile: expected a number between 0 and 1 for a latency or gauge metric, got %v", name, m.Quantile)
	case m.Quantile > 0 && m.Share():
		add(path+".quantile", "metric %s: quantile: a gauge given as a share of counts (trials_query, trials_scrape) has no quantile", name)
	}
	m.checkAllowance(add, path, name)
	m.checkSources(add, path, name)
}

func (m Metric) checkAllowance(add func(path, format string, args ...any), path, name string) {
	a := m.Allowance
	for _, f := range []struct {
		key string
		v   float64
	}{{"noise", a.Noise}, {"drift", a.Drift}, {"offset", a.Offset}} {
		if f.v < 0 || f.v > 10 || math.IsNaN(f.v) {
			add(path+".allowance."+f.key, "metric %s: allowance.%s: expected a relative size from 0 to 10 (0.01 = 1%%), got %v", name, f.key, f.v)
		}
	}
	if a.DriftCorr < 0 || a.DriftCorr >= 1 || math.IsNaN(a.DriftCorr) {
		add(path+".allowance.drift_corr", "metric %s: allowance.drift_corr: expected a correlation from 0 to below 1, got %v", name, a.DriftCorr)
	}
	if a.Dispersion != 0 && (a.Dispersion < 1 || math.IsNaN(a.Dispersion)) {
		add(path+".allowance.dispersion", "metric %s: allowance.dispersion: expected 1 or more (how many times independent events vary), got %v", name, a.Dispersion)
	}
	if a.Inflation != 0 && (a.Inflation < 1 || a.Inflation > 100 || math.IsNaN(a.Inflation)) {
		add(path+".allowance.inflation", "metric %s: allowance.inflation: expected 1 or more (how many times wider the intervals are made), got %v", name, a.Inflation)
	}
	if a.Windows < 0 {
		add(path+".allowance.windows", "metric %s: allowance.windows: expected the number of A/A windows measured, got %d", name, a.Windows)
	}
}

// Share tells whether the metric is a gauge given as a share of counts (hits of
// lookups): it names a trials' counter.
func (m Metric) Share() bool {
	return m.Kind == "gauge" && (m.TrialsQuery != "" || m.TrialsScrape != "")
}

func (m Metric) checkSources(add func(path, format string, args ...any), path, name string) {
	for _, q := range []struct{ key, text string }{{"query", m.Query}, {"trials_query", m.TrialsQuery}} {
		if err := checkQueryTemplate(q.text); err != nil {
			add(path+"."+q.key, "metric %s: %s: %v", name, q.key, err)
		}
	}
	var what string
	switch {
	case m.Kind == "rate":
		what = "a rate needs both %s (events) and %s (trials), or neither"
	case m.Share():
		what = "a gauge given as a share of counts needs both %s (the events' counter, such as cache hits) and %s (the trials' counter, such as cache lookups)"
	case m.TrialsQuery != "" || m.TrialsScrape != "":
		add(path+".kind", "metric %s: trials_query and trials_scrape are for rates and for gauges given as a share of counts, this one is %s", name, m.Kind)
		return
	default:
		return
	}
	for _, p := range []struct{ events, trials, eventsKey, trialsKey string }{
		{m.Query, m.TrialsQuery, "query", "trials_query"},
		{m.Scrape, m.TrialsScrape, "scrape", "trials_scrape"},
	} {
		if (p.events == "") == (p.trials == "") {
			continue
		}
		given := p.eventsKey // the problem's line is the key that is there
		if p.events == "" {
			given = p.trialsKey
		}
		add(path+"."+given, "metric %s: "+what+"; got only %s", name, p.eventsKey, p.trialsKey, given)
	}
}

// checkQueryTemplate parses a query template and runs it on sample values, so a typo
// such as {{.Hots}} is reported when the config is loaded, not during a deploy.
func checkQueryTemplate(text string) error {
	if text == "" {
		return nil
	}
	t, err := template.New("query").Option("missingkey=error").Parse(text)
	if err != nil {
		return fmt.Errorf("parse template: %w", err)
	}
	vars := struct{ Region, Host, Release string }{"prod3", "host1", "1a2b3c4"}
	if err := t.Execute(&strings.Builder{}, vars); err != nil {
		return fmt.Errorf("template uses something other than {{.Region}}, {{.Host}}, {{.Release}}: %w", err)
	}
	return nil
}

// AppMetrics are the app's configured metrics, or DefaultMetrics when it configures none.
func (a *App) AppMetrics() []Metric {
	if len(a.Metrics) == 0 {
		return DefaultMetrics()
	}
	return a.Metrics
}

// JudgeMetrics is how the app's metrics are judged.
func (a *App) JudgeMetrics() []judge.Metric {
	var out []judge.Metric
	for _, m := range a.AppMetrics() {
		out = append(out, m.Judge())
	}
	return out
}

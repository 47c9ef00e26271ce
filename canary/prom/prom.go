// Package prom is the metric source that asks a Prometheus server (HTTP API, through
// client_golang's api/v1) instead of the hosts.
//
// Each metric has a Query: PromQL text/templates rendered once per host with the Vars
// below. A Rate metric has an Events and a Trials query, and so has a Gauge given as a
// share of counts (a cache's hits of its lookups), which the judge compares as the share
// Events/Trials; a Latency metric a Buckets
// query (cumulative histogram buckets by `le`, turned into per-request samples by
// measure.Samples); a Latency or Gauge metric a Sample query (an instant query at the
// interval's end: each series' value is one sample) or a Values query (a range query over
// the interval: every point is one sample).
//
// Events, Trials and Buckets are either levels of counters (Levels: true, e.g.
// `sum(http_requests_total{instance="{{.Host}}"})`), evaluated at both ends of the
// interval and differenced, which is exact, or increases over the interval
// (`sum(increase(x[{{.Range}}]))`), evaluated at its end. DefaultQueries use levels. When
// either of a metric's Events and Trials levels went down, the app restarted: both count
// from zero (measure.Increase).
//
// Where a metric's query comes from, first match wins: the queries given to New, the
// window's specs (the app config's query / trials_query: levels for a rate or a gauge
// with trials_query, a Sample query otherwise), DefaultQueries.
package prom

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/immunity-app/immunity/canary/measure"
	"github.com/immunity-app/immunity/deployers"
	"github.com/immunity-app/immunity/pipeline/judge"
)

// Query is how one metric is asked for. See the package comment.
type Query struct {
	Events  string `yaml:"events" json:"events,omitempty"`
	Trials  string `yaml:"trials" json:"trials,omitempty"`
	Buckets string `yaml:"buckets" json:"buckets,omitempty"`
	Sample  string `yaml:"sample" json:"sample,omitempty"`
	Values  string `yaml:"values" json:"values,omitempty"`
	Levels  bool   `yaml:"levels" json:"levels,omitempty"`
}

// Vars are what a query template can use.
type Vars struct {
	App, Region, Release string
	// Host and Instance are host:port of the host's URL, Prometheus's usual instance label.
	Host, Instance string
	Name           string // the host's name in the config, e.g. host1
	URL            string
	Range          string // the interval as a PromQL duration, e.g. 10s
	// Methods is a regexp of the methods compared: "GET|HEAD" when the canary only gets
	// mirrored traffic (measure.Window.Methods), ".*" otherwise.
	Methods string
}

// DefaultQueries read the sample app's standard series, by instance label; when the
// canary only gets mirrored traffic, only the mirrored methods' series count on both sides.
func DefaultQueries() map[string]Query {
	return map[string]Query{
		measure.ErrorRate: {
			Events: `sum(` + measure.RequestsTotal + `{instance="{{.Instance}}",method=~"{{.Methods}}",code=~"5.."})`,
			Trials: `sum(` + measure.RequestsTotal + `{instance="{{.Instance}}",method=~"{{.Methods}}"})`,
			Levels: true,
		},
		measure.Latency: {
			Buckets: `sum by (le) (` + measure.DurationSeconds + `_bucket{instance="{{.Instance}}",method=~"{{.Methods}}"})`,
			Levels:  true,
		},
	}
}

// Source queries one Prometheus server.
type Source struct {
	api   v1.API
	given map[string]Query
	Step  time.Duration // step of Values range queries; default 1s
}

// New returns a source for the Prometheus at base; queries (may be nil) override the
// window's specs and DefaultQueries.
func New(base string, queries map[string]Query) (*Source, error) {
	if u, err := url.Parse(base); err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("prometheus source: %q: expected the server's base URL, like http://prometheus:9090", base)
	}
	c, err := api.NewClient(api.Config{Address: base})
	if err != nil {
		return nil, fmt.Errorf("prometheus source %s: %w", base, err)
	}
	return &Source{api: v1.NewAPI(c), given: queries, Step: time.Second}, nil
}

// Measure asks Prometheus for each metric of each host over (from, to].
func (s *Source) Measure(ctx context.Context, w measure.Window, from, to time.Time) (judge.Input, error) {
	in := measure.Empty()
	if !to.After(from) {
		return in, nil
	}
	side := func(region, release string, hosts []deployers.Host, out map[string]judge.Data) {
		for _, m := range w.Metrics {
			d := judge.Data{}
			q, ok := s.queryFor(m)
			for _, h := range hosts {
				v := vars(w.App, region, release, h, to.Sub(from))
				v.Methods = methods(w.Methods)
				err := fmt.Errorf("no Prometheus query configured")
				if ok {
					err = s.measure(ctx, m.Metric, q, v, from, to, &d)
				}
				if err != nil {
					d.Err = join(d.Err, fmt.Sprintf("%s %s: %v", h, m.Name, err))
				}
			}
			out[m.Name] = d
		}
	}
	side(w.BaselineRegion, "", w.Baseline, in.Baseline)
	side(w.Region, w.Release, w.Canary, in.Canary)
	return in, nil
}

func vars(app, region, release string, h deployers.Host, d time.Duration) Vars {
	inst := h.URL
	if u, err := url.Parse(h.URL); err == nil && u.Host != "" {
		inst = u.Host
	}
	return Vars{App: app, Region: region, Release: release, Host: inst, Instance: inst, Name: h.Name, URL: h.URL,
		Range: model.Duration(d.Round(time.Millisecond)).String()}
}

func methods(ms []string) string {
	if len(ms) == 0 {
		return ".*"
	}
	q := make([]string, len(ms))
	for i, m := range ms {
		q[i] = regexp.QuoteMeta(strings.ToUpper(m))
	}
	return strings.Join(q, "|")
}

// queryFor finds metric m's query (see the package comment).
func (s *Source) queryFor(m measure.Metric) (Query, bool) {
	if q, ok := s.given[m.Name]; ok {
		return q, true
	}
	if sp := m.Spec; sp.Query != "" {
		if m.Kind == judge.Rate || (m.Kind == judge.Gauge && sp.TrialsQuery != "") {
			return Query{Events: sp.Query, Trials: sp.TrialsQuery, Levels: true}, true
		}
		return Query{Sample: sp.Query}, true
	}
	q, ok := DefaultQueries()[m.Name]
	return q, ok
}

// measure adds one host's data of metric m to d.
func (s *Source) measure(ctx context.Context, m judge.Metric, q Query, v Vars, from, to time.Time, d *judge.Data) error {
	switch {
	case (m.Kind == judge.Rate || m.Kind == judge.Gauge) && q.Events != "" && q.Trials != "":
		e, t, err := s.counts(ctx, q, v, from, to)
		if err != nil {
			return err
		}
		d.Events += e
		d.Trials += t
	case q.Buckets != "":
		vals, err := s.buckets(ctx, q, v, from, to)
		if err != nil {
			return err
		}
		d.Values = append(d.Values, vals...)
		d.PerRequest = true
	case q.Sample != "":
		vec, err := s.instant(ctx, q.Sample, v, to)
		if err != nil {
			return err
		}
		for _, x := range vec {
			if !math.IsNaN(float64(x.Value)) {
				d.Values = append(d.Values, float64(x.Value))
			}
		}
	case q.Values != "":
		vals, err := s.values(ctx, q.Values, v, from, to)
		if err != nil {
			return err
		}
		d.Values = append(d.Values, vals...)
	default:
		return fmt.Errorf("a %s metric needs events and trials, buckets, sample or values queries", m.Kind)
	}
	return nil
}

func render(tmpl string, v Vars) (string, error) {
	t, err := template.New("q").Option("missingkey=error").Parse(tmpl)
	if err != nil {
		return "", fmt.Errorf("query template %q: %w", tmpl, err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, v); err != nil {
		return "", fmt.Errorf("query template %q: %w", tmpl, err)
	}
	return b.String(), nil
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// instant runs an instant query and returns its series.
func (s *Source) instant(ctx context.Context, tmpl string, v Vars, at time.Time) (model.Vector, error) {
	q, err := render(tmpl, v)
	if err != nil {
		return nil, err
	}
	val, _, _, err := s.api.Query(ctx, q, at)
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", q, err)
	}
	switch r := val.(type) {
	case model.Vector:
		return r, nil
	case *model.Scalar:
		return model.Vector{{Value: r.Value, Timestamp: r.Timestamp}}, nil
	}
	return nil, fmt.Errorf("query %s: expected a vector or a scalar, got a %s", q, val.Type())
}

func sum(vec model.Vector) float64 {
	t := 0.0
	for _, s := range vec {
		if !math.IsNaN(float64(s.Value)) {
			t += float64(s.Value)
		}
	}
	return t
}

// counts is the events and trials of the interval: with Levels, from the counters'
// levels at both ends (measure.Increase), else the queries' increases at its end.
func (s *Source) counts(ctx context.Context, q Query, v Vars, from, to time.Time) (events, trials float64, err error) {
	at := func(t time.Time) (e, n float64, err error) {
		ev, err := s.instant(ctx, q.Events, v, t)
		if err != nil {
			return 0, 0, err
		}
		tr, err := s.instant(ctx, q.Trials, v, t)
		return sum(ev), sum(tr), err
	}
	e1, n1, err := at(to)
	if err != nil || !q.Levels {
		return e1, n1, err
	}
	e0, n0, err := at(from)
	if err != nil {
		return 0, 0, err
	}
	events, trials = measure.Increase(e0, n0, e1, n1)
	return events, trials, nil
}

// buckets reconstructs per-request samples from a histogram's buckets.
func (s *Source) buckets(ctx context.Context, q Query, v Vars, from, to time.Time) ([]float64, error) {
	end, err := s.instant(ctx, q.Buckets, v, to)
	if err != nil {
		return nil, err
	}
	var before []measure.Bucket
	if q.Levels {
		start, err := s.instant(ctx, q.Buckets, v, from)
		if err != nil {
			return nil, err
		}
		if before, err = byLe(start); err != nil {
			return nil, err
		}
	}
	now, err := byLe(end)
	if err != nil {
		return nil, err
	}
	return measure.Samples(before, now), nil
}

func byLe(vec model.Vector) ([]measure.Bucket, error) {
	var out []measure.Bucket
	for _, s := range vec {
		le, ok := s.Metric["le"]
		if !ok {
			return nil, fmt.Errorf("a buckets query must return series by le, got %s", s.Metric)
		}
		u, err := strconv.ParseFloat(strings.TrimSpace(string(le)), 64)
		if err != nil {
			return nil, fmt.Errorf("bucket le=%q: %w", le, err)
		}
		out = append(out, measure.Bucket{Upper: u, Count: float64(s.Value)})
	}
	return out, nil
}

// values runs a range query over the interval; every point is a sample.
func (s *Source) values(ctx context.Context, tmpl string, v Vars, from, to time.Time) ([]float64, error) {
	q, err := render(tmpl, v)
	if err != nil {
		return nil, err
	}
	val, _, _, err := s.api.QueryRange(ctx, q, v1.Range{Start: from, End: to, Step: s.Step})
	if err != nil {
		return nil, fmt.Errorf("range query %s: %w", q, err)
	}
	m, ok := val.(model.Matrix)
	if !ok {
		return nil, fmt.Errorf("range query %s: expected a matrix, got a %s", q, val.Type())
	}
	var out []float64
	for _, series := range m {
		for _, p := range series.Values {
			if !math.IsNaN(float64(p.Value)) {
				out = append(out, float64(p.Value))
			}
		}
	}
	return out, nil
}

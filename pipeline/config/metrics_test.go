package config

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"

	"github.com/immunity-app/immunity/pipeline/judge"
)

// problems collects what check reports, as "path: message".
type problems []string

func (p *problems) add(path, format string, args ...any) {
	*p = append(*p, path+": "+fmt.Sprintf(format, args...))
}

func TestDefaultMetricsAreValid(t *testing.T) {
	t.Parallel()
	var ps problems
	for i, m := range DefaultMetrics() {
		m.check(ps.add, fmt.Sprintf("apps[0].metrics[%d]", i))
	}
	if len(ps) > 0 {
		t.Errorf("default metrics have problems: %v", ps)
	}
	got := []judge.Metric{DefaultMetrics()[0].Judge(), DefaultMetrics()[1].Judge()}
	want := []judge.Metric{
		{Name: "error_rate", Kind: judge.Rate, Direction: judge.Increase, AllowedEffect: 0.2, Critical: true, NoData: judge.NoDataInconclusive},
		{Name: "latency", Kind: judge.Latency, Direction: judge.Increase, AllowedEffect: 0.2, NoData: judge.NoDataInconclusive, Unit: "s"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Judge() (-want +got):\n%s", diff)
	}
}

func TestMetricCheck(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		yaml string
		want string // "" for no problem
	}{
		{"{name: p99, kind: latency, allowed_effect: 0.2, query: 'histogram_quantile(0.99, rate(x{instance=\"{{.Host}}\",region=\"{{.Region}}\"}[1m]))'}", ""},
		{"{name: errors, kind: rate, critical: true, scrape: 'req{code=~\"5..\"}', trials_scrape: req}", ""},
		{"{kind: latency}", "apps[0].metrics[0].name: metric: name: expected a name"},
		{"{name: p99, kind: histogram}", "apps[0].metrics[0].kind: metric p99: kind: expected one of latency, rate, gauge, got \"histogram\""},
		{"{name: p99, kind: latency, direction: up}", "direction: expected one of increase, decrease, either"},
		{"{name: p99, kind: latency, no_data: ignore}", "no_data: expected one of inconclusive, pass, fail"},
		{"{name: p99, kind: latency, allowed_effect: -0.1}", "allowed_effect: expected a fraction"},
		{"{name: signups, kind: gauge, direction: decrease, allowed_effect: 1}", "a decrease can never fail"},
		{"{name: p99, kind: latency, query: 'x{instance=\"{{.Hots}}\"}'}", "apps[0].metrics[0].query: metric p99: query: template uses something other than"},
		{"{name: p99, kind: latency, query: 'x{instance=\"{{.Host}\"}'}", "query: parse template"},
		{"{name: errors, kind: rate, query: 'sum(errors)'}", "a rate needs both query (events) and trials_query"},
		{"{name: errors, kind: rate, trials_scrape: req}", "a rate needs both scrape (events) and trials_scrape"},
		{"{name: p99, kind: latency, trials_query: 'sum(x)'}", "apps[0].metrics[0].kind: metric p99: trials_query and trials_scrape are for rates and for gauges given as a share of counts, this one is latency"},
		{"{name: p99, kind: latency, scrape: x, trials_scrape: y}", "trials_query and trials_scrape are for rates and for gauges given as a share of counts"},
		{"{name: hit_ratio, kind: gauge, direction: decrease, query: 'sum(cache_hits_total{instance=\"{{.Host}}\"})', trials_query: 'sum(cache_lookups_total{instance=\"{{.Host}}\"})'}", ""},
		{"{name: hit_ratio, kind: gauge, direction: decrease, scrape: cache_hits_total, trials_scrape: cache_lookups_total}", ""},
		{"{name: hit_ratio, kind: gauge, scrape: cache_hits_total, trials_scrape: cache_lookups_total, query: 'sum(x)', trials_query: 'sum(y)'}", ""},
		{"{name: hit_ratio, kind: gauge, scrape: cache_hits_total}", ""}, // a plain gauge
		{"{name: hit_ratio, kind: gauge, trials_query: 'sum(cache_lookups_total)'}", "apps[0].metrics[0].trials_query: metric hit_ratio: a gauge given as a share of counts needs both query (the events' counter, such as cache hits) and trials_query (the trials' counter, such as cache lookups); got only trials_query"},
		{"{name: hit_ratio, kind: gauge, scrape: cache_hits_total, trials_query: 'sum(y)', query: 'sum(x)'}", "apps[0].metrics[0].scrape: metric hit_ratio: a gauge given as a share of counts needs both scrape (the events' counter, such as cache hits) and trials_scrape"},
		{"{name: hit_ratio, kind: gauge, trials_scrape: cache_lookups_total}", "got only trials_scrape"},
		{"{name: hit_ratio, kind: gauge, scrape: h, trials_scrape: l, quantile: 0.9}", "apps[0].metrics[0].quantile: metric hit_ratio: quantile: a gauge given as a share of counts (trials_query, trials_scrape) has no quantile"},
		{"{name: errors, kind: rate, trials_query: 'sum(x)'}", "apps[0].metrics[0].trials_query: metric errors: a rate needs both query (events) and trials_query (trials), or neither; got only trials_query"},
		{"{name: errors, kind: rate, quantile: 0.99}", "quantile: expected a number between 0 and 1"},
		{"{name: p99, kind: latency, allowance: {noise: 0.02, drift: 0.01, drift_corr: 0.7, offset: 0.005, windows: 20}}", ""},
		{"{name: p99, kind: latency, allowance: {noise: -0.02}}", "apps[0].metrics[0].allowance.noise: metric p99: allowance.noise: expected a relative size"},
		{"{name: p99, kind: latency, allowance: {drift_corr: 1}}", "allowance.drift_corr: expected a correlation from 0 to below 1"},
		{"{name: errors, kind: rate, allowance: {dispersion: 0.5}}", "allowance.dispersion: expected 1 or more"},
		{"{name: latency, kind: latency, allowance: {inflation: 0.8}}", "allowance.inflation: expected 1 or more"},
	} {
		var m Metric
		if err := yaml.Unmarshal([]byte(tc.yaml), &m); err != nil {
			t.Fatalf("%s: %v", tc.yaml, err)
		}
		var ps problems
		m.check(ps.add, "apps[0].metrics[0]")
		switch {
		case tc.want == "" && len(ps) > 0:
			t.Errorf("%s: unexpected problems %v", tc.yaml, ps)
		case tc.want != "" && (len(ps) != 1 || !strings.Contains(ps[0], tc.want)):
			t.Errorf("%s: problems %q, want one containing %q", tc.yaml, ps, tc.want)
		}
	}
}

// Through Parse, a metric's problems name the file and the line of the bad key.
func TestMetricProblemsInConfig(t *testing.T) {
	t.Parallel()
	_, err := Parse("immunity.yml", []byte(`
apps:
  - name: papi
    repo: {path: papi.git}
    build: {command: [make], artifacts: [bin]}
    run: {command: [bin/papi]}
    metrics:
      - name: error_rate
        kind: rate
        critical: true
        scrape: 'http_requests_total{code=~"5.."}'
        trials_scrape: http_requests_total
      - name: p99
        kind: latency
        no_data: ignore
        query: 'histogram_quantile(0.99, rate(x{instance="{{.Hots}}"}[1m]))'
      - name: hit_ratio
        kind: gauge
        direction: decrease
        scrape: cache_hits_total
        trials_scrape: cache_lookups_total
        query: 'sum(cache_hits_total{instance="{{.Host}}"})'
      - name: miss_ratio
        kind: gauge
        trials_query: 'sum(cache_lookups_total{instance="{{.Host}}"})'
      - name: p50
        kind: latency
        scrape: x
        trials_scrape: y
    regions:
      - name: prod3
        production: true
        hosts: [{name: host1, port: 4001}]
`))
	if err == nil {
		t.Fatal("expected problems")
	}
	for _, want := range []string{
		`immunity.yml:15: metric p99: no_data: expected one of inconclusive, pass, fail, got "ignore"`,
		`immunity.yml:16: metric p99: query: template uses something other than {{.Region}}, {{.Host}}, {{.Release}}`,
		"immunity.yml:22: metric hit_ratio: a gauge given as a share of counts needs both query (the events' counter, such as cache hits) and trials_query (the trials' counter, such as cache lookups); got only query",
		"immunity.yml:25: metric miss_ratio: a gauge given as a share of counts needs both query (the events' counter, such as cache hits) and trials_query (the trials' counter, such as cache lookups); got only trials_query",
		"immunity.yml:27: metric p50: trials_query and trials_scrape are for rates and for gauges given as a share of counts, this one is latency",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q\nwant it to contain %q", err, want)
		}
	}
}

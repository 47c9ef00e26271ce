package prom

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/immunity-app/immunity/internal/freeport"

	"github.com/immunity-app/immunity/canary/internal/testapp"
	"github.com/immunity-app/immunity/canary/measure"
	"github.com/immunity-app/immunity/canary/prom/promtest"
	"github.com/immunity-app/immunity/deployers"
	"github.com/immunity-app/immunity/pipeline/judge"
)

func startPrometheus(t *testing.T, targets []string) string { return promtest.Start(t, targets) }

func until(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	promtest.Until(t, what, limit, cond)
}

func hit(t *testing.T, u string, n int) {
	for range n {
		resp, err := http.Get(u + "/x")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
}

func post(t *testing.T, u string, n int) {
	for range n {
		resp, err := http.Post(u+"/x", "text/plain", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
}

func TestPrometheusSource(t *testing.T) {
	t.Parallel()
	base := httptest.NewServer(testapp.New(0, 0))
	defer base.Close()
	can := httptest.NewServer(testapp.New(3, 30*time.Millisecond))
	defer can.Close()
	b := deployers.Host{App: "papi", Region: "prod3", Name: "host1", URL: base.URL}
	c := deployers.Host{App: "papi", Region: "sandbox2", Name: "host1", URL: can.URL}
	promURL := startPrometheus(t, []string{strings.TrimPrefix(base.URL, "http://"), strings.TrimPrefix(can.URL, "http://")})

	src, err := New(promURL, map[string]Query{
		"requests_level": {Values: `sum(http_requests_total{instance="{{.Instance}}"})`},
		"broken":         {Values: `sum(rate(`},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	w := measure.Window{App: "papi", Region: "sandbox2", BaselineRegion: "prod3", Release: "1a2b3c4",
		Baseline: []deployers.Host{b}, Canary: []deployers.Host{c},
		Metrics: []measure.Metric{
			{Metric: judge.Metric{Name: measure.ErrorRate, Kind: judge.Rate}},
			{Metric: judge.Metric{Name: measure.Latency, Kind: judge.Latency}},
			{Metric: judge.Metric{Name: "requests_level", Kind: judge.Gauge}},
			{Metric: judge.Metric{Name: "broken", Kind: judge.Gauge}},
			{Metric: judge.Metric{Name: "unconfigured", Kind: judge.Gauge}},
			{Metric: judge.Metric{Name: "spec_errors", Kind: judge.Rate}, Spec: measure.Spec{Query: `sum(http_requests_total{instance="{{.Host}}",code="500"})`, TrialsQuery: `sum(http_requests_total{instance="{{.Host}}"})`}},
			{Metric: judge.Metric{Name: "spec_level", Kind: judge.Gauge}, Spec: measure.Spec{Query: `sum(http_requests_total{instance="{{.Host}}"})`}},
		}}
	// Both targets scraped before the window starts, so its start is a known level.
	level := func(u string) float64 {
		in, _ := src.instant(ctx, `count(up{instance="{{.Instance}}"} == 1)`, Vars{Instance: strings.TrimPrefix(u, "http://")}, time.Now())
		return sum(in)
	}
	until(t, "both targets up", 10*time.Second, func() bool { return level(base.URL) == 1 && level(can.URL) == 1 })
	from := time.Now()
	hit(t, base.URL, 30)
	hit(t, can.URL, 30)
	post(t, can.URL, 5) // not mirrored methods: left out of the comparison
	w.Methods = []string{"GET", "HEAD"}
	trials := func(u string) float64 {
		in, _ := src.instant(ctx, DefaultQueries()[measure.ErrorRate].Trials, Vars{Instance: strings.TrimPrefix(u, "http://"), Methods: ".*"}, time.Now())
		return sum(in)
	}
	until(t, "the traffic scraped", 10*time.Second, func() bool { return trials(base.URL) == 30 && trials(can.URL) == 35 })
	to := time.Now()

	in, err := src.Measure(ctx, w, from, to)
	if err != nil {
		t.Fatal(err)
	}
	if d := in.Baseline[measure.ErrorRate]; d.Events != 0 || d.Trials != 30 || d.Err != "" {
		t.Fatalf("baseline error_rate = %+v, want 0 of 30", d)
	}
	if d := in.Canary[measure.ErrorRate]; d.Events != 10 || d.Trials != 30 || d.Err != "" {
		t.Fatalf("canary error_rate = %+v, want 10 of 30", d)
	}
	bl, cl := in.Baseline[measure.Latency].Values, in.Canary[measure.Latency].Values
	// The canary sleeps 30 ms in every request, so each of its samples is 25 ms or more. The
	// baseline does no work: most of its samples are under 5 ms, but a loaded machine may hold
	// a few of its requests longer, so only its median is held to that.
	if len(bl) != 30 || len(cl) != 30 || median(bl) > 0.005 || cl[0] < 0.025 {
		t.Fatalf("latency samples: baseline %v canary %v; want 30 each, the baseline's median under 5 ms and every canary sample over 25 ms", bl, cl)
	}
	if d := in.Canary["requests_level"]; len(d.Values) == 0 || d.Err != "" {
		t.Fatalf("range query samples = %+v, want points", d)
	}
	// A range query's points are at from, from+1s, ...; the request counter's level.
	if vals, err := src.values(ctx, `sum(http_requests_total{instance="{{.Instance}}"})`, vars("", "", "", c, 0), from, to.Add(time.Second)); err != nil || vals[len(vals)-1] != 35 {
		t.Fatalf("range query to past the traffic = %v, %v; want the last point at 35", vals, err)
	}
	if d := in.Canary["spec_errors"]; d.Events < 10 || d.Trials != 35 || d.Err != "" {
		t.Fatalf("configured rate = %+v, want 10 or more of 35 (its query counts every method)", d)
	}
	if d := in.Baseline["spec_level"]; len(d.Values) != 1 || d.Values[0] != 30 {
		t.Fatalf("configured sample query = %+v, want one sample of 30", d)
	}
	if e := in.Canary["broken"].Err; !strings.Contains(e, "sandbox2/host1 broken: range query sum(rate(") {
		t.Fatalf("broken query err = %q, want a measurement error naming host and query", e)
	}
	if e := in.Baseline["unconfigured"].Err; !strings.Contains(e, "no Prometheus query configured") {
		t.Fatalf("unconfigured err = %q", e)
	}
	// The first call of a window only primes.
	if in, _ := src.Measure(ctx, w, to, to); len(in.Canary) != 0 {
		t.Fatalf("priming call measured %v", in.Canary)
	}
}

// A gauge given as a share of counts (a cache's hits of its lookups) gets each host's
// increase of both counters as Events and Trials. A host that restarts mid-window sets
// both back; its hits then count from zero with its lookups, though its lookups grew past
// their old level, so the share is neither negative nor above one.
func TestPrometheusShareGauge(t *testing.T) {
	t.Parallel()
	ba, ca := testapp.New(0, 0), testapp.New(0, 0)
	ba.MissEvery.Store(10)
	ca.MissEvery.Store(4)
	base, can := httptest.NewServer(ba), httptest.NewServer(ca)
	defer base.Close()
	defer can.Close()
	b := deployers.Host{App: "papi", Region: "prod3", Name: "host1", URL: base.URL}
	c := deployers.Host{App: "papi", Region: "sandbox2", Name: "host1", URL: can.URL}
	promURL := startPrometheus(t, []string{strings.TrimPrefix(base.URL, "http://"), strings.TrimPrefix(can.URL, "http://")})
	src, err := New(promURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	w := measure.Window{App: "papi", Region: "sandbox2", BaselineRegion: "prod3", Release: "1a2b3c4",
		Baseline: []deployers.Host{b}, Canary: []deployers.Host{c},
		Metrics: []measure.Metric{{Metric: judge.Metric{Name: "hit_ratio", Kind: judge.Gauge, Direction: judge.Decrease},
			Spec: measure.Spec{Query: `sum(cache_hits_total{instance="{{.Host}}"})`, TrialsQuery: `sum(cache_lookups_total{instance="{{.Host}}"})`}}}}
	level := func(q string, u string) float64 {
		in, _ := src.instant(ctx, q, Vars{Instance: strings.TrimPrefix(u, "http://")}, time.Now())
		return sum(in)
	}
	const lookups = `sum(cache_lookups_total{instance="{{.Instance}}"})`
	up := `count(up{instance="{{.Instance}}"} == 1)`
	until(t, "both targets up", 10*time.Second, func() bool { return level(up, base.URL) == 1 && level(up, can.URL) == 1 })
	from := time.Now()
	hit(t, base.URL, 40) // 36 hits
	hit(t, can.URL, 40)  // 30 hits
	until(t, "the lookups scraped", 10*time.Second, func() bool { return level(lookups, base.URL) == 40 && level(lookups, can.URL) == 40 })
	mid := time.Now()
	in, err := src.Measure(ctx, w, from, mid)
	if err != nil {
		t.Fatal(err)
	}
	if d := in.Baseline["hit_ratio"]; d.Events != 36 || d.Trials != 40 || len(d.Values) != 0 || d.Err != "" {
		t.Fatalf("baseline hit_ratio = %+v, want 36 of 40 and no values", d)
	}
	if d := in.Canary["hit_ratio"]; d.Events != 30 || d.Trials != 40 || len(d.Values) != 0 || d.Err != "" {
		t.Fatalf("canary hit_ratio = %+v, want 30 of 40 and no values", d)
	}

	// The canary restarts and misses one lookup in 2: 25 hits of 50 lookups, the hits
	// below their old level (30), the lookups above theirs (40).
	ca.Restart()
	ca.MissEvery.Store(2)
	hit(t, can.URL, 50)
	until(t, "the restarted canary scraped", 10*time.Second, func() bool { return level(lookups, can.URL) == 50 })
	to := time.Now()
	in, err = src.Measure(ctx, w, mid, to)
	if err != nil {
		t.Fatal(err)
	}
	if d := in.Canary["hit_ratio"]; d.Events != 25 || d.Trials != 50 || d.Err != "" {
		t.Fatalf("restarted canary hit_ratio = %+v, want 25 of 50 (not 25 of 10)", d)
	}
	if d := in.Baseline["hit_ratio"]; d.Events != 0 || d.Trials != 0 || d.Err != "" {
		t.Fatalf("idle baseline hit_ratio = %+v, want 0 of 0", d)
	}
}

func TestPrometheusDownIsAMeasurementError(t *testing.T) {
	t.Parallel()
	// A port nothing listens on, from below the ephemeral range (a closed test server's
	// port is free for another test's server to take meanwhile).
	addr, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + addr
	src, err := New(dead, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := measure.Window{Baseline: []deployers.Host{{Region: "prod3", Name: "host1", URL: "http://127.0.0.1:1"}},
		Canary:  []deployers.Host{{Region: "sandbox2", Name: "host1", URL: "http://127.0.0.1:2"}},
		Metrics: []measure.Metric{{Metric: judge.Metric{Name: measure.ErrorRate, Kind: judge.Rate}}}}
	in, err := src.Measure(context.Background(), w, time.Now().Add(-time.Second), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if e := in.Canary[measure.ErrorRate].Err; !strings.Contains(e, "connection refused") {
		t.Fatalf("err = %q, want connection refused", e)
	}
}

func TestNewRefusesBadURL(t *testing.T) {
	if _, err := New("prometheus:9090", nil); err == nil {
		t.Fatal("accepted a URL without a scheme")
	}
}

// median of sorted values.
func median(sorted []float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[len(sorted)/2]
}

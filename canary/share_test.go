package canary

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/immunity-app/immunity/canary/internal/testapp"
	"github.com/immunity-app/immunity/canary/prom/promtest"
	"github.com/immunity-app/immunity/deployers"
	"github.com/immunity-app/immunity/pipeline"
	"github.com/immunity-app/immunity/pipeline/config"
	"github.com/immunity-app/immunity/pipeline/judge"
)

// A canary whose cache hits grow slower than the baseline's, for as many lookups (75%
// of them against 90%), fails on its hit ratio: a gauge given as the counts of its hits
// and lookups, read from a real Prometheus scraping both hosts, judged as a share on
// each interval's lookups.
func TestCanaryFailsOnItsHitRatioFromPrometheus(t *testing.T) {
	t.Parallel()
	ba, ca := testapp.New(0, 0), testapp.New(0, 0)
	ba.MissEvery.Store(10)
	ca.MissEvery.Store(4)
	b := serve(t, "prod3", "host1", ba)
	c := serve(t, "sandbox2", "host1", ca)
	promURL := promtest.Start(t, []string{strings.TrimPrefix(b.URL, "http://"), strings.TrimPrefix(c.URL, "http://")})
	up := func(h deployers.Host) bool {
		s := promtest.Query(t, promURL, fmt.Sprintf(`up{instance=%q} == 1`, strings.TrimPrefix(h.URL, "http://")))
		return len(s) == 1
	}
	promtest.Until(t, "both hosts scraped", 15*time.Second, func() bool { return up(b) && up(c) })

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, h := range []deployers.Host{b, c} {
		wg.Add(1)
		go func() { defer wg.Done(); traffic(ctx, h.URL) }()
	}
	defer func() { cancel(); wg.Wait() }()

	hitRatio := config.Metric{Name: "hit_ratio", Kind: "gauge", Direction: "decrease", AllowedEffect: 0.05, Critical: true,
		Query:       `sum(cache_hits_total{instance="{{.Host}}"})`,
		TrialsQuery: `sum(cache_lookups_total{instance="{{.Host}}"})`}
	req := pipeline.MonitorRequest{App: "papi", Region: "sandbox2", Release: "1a2b3c4d5e", BaselineRegion: "prod3",
		Canary: []deployers.Host{c}, Baseline: []deployers.Host{b}, Period: 40 * time.Second, Interval: 2 * time.Second,
		Source: "prometheus", Prometheus: promURL, Metrics: []config.Metric{hitRatio}}
	v, err := (&Monitor{}).Monitor(context.Background(), req, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Metrics) != 1 {
		t.Fatalf("verdict metrics %+v", v.Metrics)
	}
	r := v.Metrics[0]
	if v.Outcome != judge.Fail || r.Outcome != judge.Fail || r.Classification != judge.Low {
		t.Fatalf("verdict %s, hit_ratio %s %s: %s", v.Outcome, r.Outcome, r.Classification, r.Why)
	}
	// Judged as a share: levels are hits out of lookups, n counts the lookups (a plain
	// gauge's would count one value per host and interval), and the explanation gives
	// the hits of the lookups.
	if !r.Share || r.EventsCanary <= 0 || r.Test != "paired intervals" || math.Abs(r.Baseline-0.9) > 0.02 || math.Abs(r.Canary-0.75) > 0.02 ||
		r.NBaseline < 20*r.Intervals || r.NCanary < 20*r.Intervals || r.Intervals < 1 {
		t.Fatalf("hit_ratio: %s, baseline %g, canary %g, n=%d/%d in %d intervals: %s",
			r.Test, r.Baseline, r.Canary, r.NCanary, r.NBaseline, r.Intervals, r.Why)
	}
	for _, want := range []string{
		fmt.Sprintf("hit_ratio: canary %s%% (%d of %d) vs baseline %s%% (%d of %d), ",
			g3(100*float64(r.EventsCanary)/float64(r.NCanary)), r.EventsCanary, r.NCanary,
			g3(100*float64(r.EventsBaseline)/float64(r.NBaseline)), r.EventsBaseline, r.NBaseline),
		fmt.Sprintf(", n=%d/%d in %d intervals (paired intervals), ", r.NCanary, r.NBaseline, r.Intervals),
		"significantly lower, beyond the allowed -5%: fail",
	} {
		if !strings.Contains(r.Why, want) {
			t.Errorf("why %q\nwant it to contain %q", r.Why, want)
		}
	}
	if math.Abs(r.Effect-(0.75/0.9-1)) > 0.03 {
		t.Errorf("effect %g, want about %g: %s", r.Effect, 0.75/0.9-1, r.Why)
	}
	t.Log(r.Why)
}

// g3 is a value, or a share in percent, as explanations print it: three significant
// digits.
func g3(x float64) string { return fmt.Sprintf("%.3g", x) }

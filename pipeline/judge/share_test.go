package judge

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
)

// shares is an interval of one gauge named hit given as counts: hits of requests.
func shares(xb, nb, xc, nc float64) Input {
	return Input{Baseline: map[string]Data{"hit": {Events: xb, Trials: nb}},
		Canary: map[string]Data{"hit": {Events: xc, Trials: nc}}}
}

var hitRatio = []Metric{{Name: "hit", Kind: Gauge, Direction: Decrease, AllowedEffect: 0.005, Critical: true}}

// A share's point is the log ratio of the two shares, with the binomial variance at the
// interval's pooled share (half an event added to each outcome) over its square.
func TestShareVarianceKnownAnswer(t *testing.T) {
	ps, ratio := pairLevels([]float64{0.9}, []float64{0.8}, []counts{{xb: 90, nb: 100, xc: 80, nc: 100}})
	if !ratio {
		t.Fatal("positive shares are compared as a ratio")
	}
	p := 170.5 / 201.0
	wantV := (1 - p) / p * (1.0/100 + 1.0/100)
	if math.Abs(ps[0].d-math.Log(0.8/0.9)) > 1e-12 || math.Abs(ps[0].v-wantV) > 1e-12 {
		t.Fatalf("point = %+v, want d = %g, v = %g", ps[0], math.Log(0.8/0.9), wantV)
	}
	if math.Abs(wantV-0.0035777) > 1e-6 {
		t.Fatalf("hand-computed variance %g", wantV)
	}
	// Without misses on either side the interval is still not exact.
	ps, _ = pairLevels([]float64{1}, []float64{1}, []counts{{xb: 20, nb: 20, xc: 20, nc: 20}})
	if ps[0].v <= 0 {
		t.Fatalf("an interval without misses got variance %g", ps[0].v)
	}
	// Values (no counts) keep no sampling variance.
	ps, _ = pairLevels([]float64{0.9}, []float64{0.8}, []counts{{}})
	if ps[0].v != 0 {
		t.Fatalf("a gauge of values got variance %g", ps[0].v)
	}
}

// Intervals of few requests count for less than those of many: ten intervals of 10,000
// requests a side with the same share, and ten of 20 where the canary had 2 fewer hits
// on average (14 to 18 of 20, as sampling gives them). With an allowance calibrated to
// nothing beyond sampling, the effect is the big intervals' (none) and the canary
// passes: the small intervals' mean log ratio (about -11%) must not pull the estimate, nor
// push the big intervals out as bursts.
func TestShareWeighsIntervalsByTheirRequests(t *testing.T) {
	var asCounts []Input
	for i := range 20 {
		xb, nb, xc, nc := 9000.0+float64(i%3), 10000.0, 9000.0+float64((i+1)%3), 10000.0
		if i%2 == 1 {
			xb, nb, xc, nc = 18, 20, 14+float64(i%5), 20 // 2 fewer on average
		}
		asCounts = append(asCounts, shares(xb, nb, xc, nc))
	}
	ms := []Metric{hitRatio[0]}
	ms[0].Allowance = Allowance{Windows: 20}
	c := Judge(ms, asCounts, Options{}).Metrics[0]
	if c.Outcome != Pass || math.Abs(c.Effect) > 0.002 {
		t.Fatalf("as counts: %s, effect %g, want a pass near no change: %s", c.Outcome, c.Effect, c.Why)
	}
	if c.NBaseline != 10*10000+10*20 || c.NCanary != c.NBaseline {
		t.Fatalf("requests counted: %d and %d", c.NBaseline, c.NCanary)
	}
}

// A drop of the hit ratio from 90% to 88% over 30 intervals of 2,000 requests is a
// clear regression.
func TestShareDropFails(t *testing.T) {
	var ins []Input
	for i := range 30 {
		ins = append(ins, shares(1800+float64(i%5), 2000, 1760+float64((i+2)%5), 2000))
	}
	r := Judge(hitRatio, ins, Options{}).Metrics[0]
	if r.Outcome != Fail || r.Classification != Low {
		t.Fatalf("%s %s: %s", r.Outcome, r.Classification, r.Why)
	}
	if math.Abs(r.Baseline-0.901) > 0.001 || math.Abs(r.Canary-0.881) > 0.001 {
		t.Fatalf("levels %g and %g", r.Baseline, r.Canary)
	}
	// The explanation gives the window's counts: 30·1800 + 6·(0+1+2+3+4) hits on the
	// baseline, 30·1760 + 60 on the canary, of 60,000 requests each.
	if want := "canary 88.1% (52860 of 60000) vs baseline 90.1% (54060 of 60000), "; !r.Share || !strings.Contains(r.Why, want) {
		t.Errorf("share %v, why %q\nwant it to contain %q", r.Share, r.Why, want)
	}
}

// Counts out of range are taken as a rate's are (rounded, events within the trials); an
// interval without requests on a side is no data for that interval.
func TestShareBadCounts(t *testing.T) {
	ins := []Input{shares(120, 100, 90, 100), shares(90, 0, 90, 100), shares(-3, 100, 90, 100)}
	for range 10 {
		ins = append(ins, shares(90, 100, 90, 100))
	}
	r := Judge(hitRatio, ins, Options{}).Metrics[0]
	if r.Intervals != 12 {
		t.Fatalf("intervals judged: %d, want 12 (one without baseline requests)", r.Intervals)
	}
	if r.Outcome != Pass {
		t.Fatalf("%s: %s", r.Outcome, r.Why)
	}
	if r.NBaseline != 1200 || r.NCanary != 1300 {
		t.Fatalf("requests counted: %d and %d", r.NBaseline, r.NCanary)
	}
}

// A recorded share gauge's NAME.events and NAME.trials rows are its counts.
func TestOfflineShareGauge(t *testing.T) {
	side := func(hits int) string {
		var b strings.Builder
		for k := 1; k <= 30; k++ {
			at := offlineStart + float64(10*k)
			fmt.Fprintf(&b, "%.1f,hit.events,%d\n%.1f,hit.trials,2000\n", at, hits+k%3, at)
		}
		return b.String()
	}
	rep, err := Offline{Metrics: hitRatio}.Run(context.Background(), strings.NewReader(side(1800)), strings.NewReader(side(1700)))
	if err != nil {
		t.Fatal(err)
	}
	r := rep.Verdict.Metrics[0]
	if len(rep.Ignored) != 0 || r.Test != testPaired || r.NBaseline%2000 != 0 || r.NBaseline < 2000*r.Intervals || r.Outcome != Fail || r.Classification != Low {
		t.Fatalf("ignored %v; %s %s, n=%d in %d intervals: %s", rep.Ignored, r.Outcome, r.Classification, r.NBaseline, r.Intervals, r.Why)
	}
	if math.Abs(r.Effect-(1700.0/1800-1)) > 0.002 {
		t.Fatalf("effect %g, want about %g", r.Effect, 1700.0/1800-1)
	}
}

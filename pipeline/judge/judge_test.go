package judge

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// A/A with each host's own slow drift: the windows looked at every interval are rarely
// failed. Alpha is 5% here so that 200 windows can show the rate is held: at most 4%
// fail (the binomial 99.9% bound for 200 windows at 1%... is 6; the judge's realized rate
// is well below its budget because metrics are split by Bonferroni).
func TestAAWithDriftIsRarelyFailed(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 1))
	a := host{errRate: 0.01, latency: 0.1, memory: 100e6, drift: 0.01}
	fails := 0
	for range 200 {
		if v := last(window(rng, simMetrics, a, a, 50, 30, Options{Looks: 30, Alpha: 0.05})); v.Outcome != Pass {
			fails++
		}
	}
	if fails > 8 {
		t.Errorf("%d of 200 A/A windows failed, want at most 8 (4%%) at alpha 5%%", fails)
	}
}

// Drift across intervals must widen the interval: two hosts whose levels drift by 3%
// (AR(1), φ 0.7) with 2,000 requests an interval differ by more than sampling says. With
// the drift calibrated, the window is not failed by its drift; without the sampling
// variance alone would call the drift a regression in many windows.
func TestDriftIsNotARegression(t *testing.T) {
	t.Parallel()
	ms := []Metric{{Name: "latency", Kind: Latency, Direction: Increase, AllowedEffect: 0.01, Critical: true}}
	b, c := host{latency: 0.1, drift: 0.03}, host{latency: 0.1, drift: 0.03}
	rng := rand.New(rand.NewPCG(2, 2))
	var aa [][]Input
	for range 20 {
		var w []Input
		for range 30 {
			w = append(w, simInterval(rng, &b, &c, 200))
		}
		aa = append(aa, w)
	}
	allow, err := Calibrate(ms, aa)
	if err != nil {
		t.Fatal(err)
	}
	a := allow["latency"]
	if total := math.Hypot(a.Noise, a.Drift); total < 0.025 || total > 0.06 {
		t.Errorf("calibrated %+v: want noise and drift together near 3%%·√2 = 4.2%%", a)
	}
	calibrated := []Metric{ms[0]}
	calibrated[0].Allowance = a
	failCal, failRaw := 0, 0
	for range 60 {
		var w []Input
		for range 30 {
			w = append(w, simInterval(rng, &b, &c, 200))
		}
		if Judge(calibrated, w, Options{}).Outcome == Fail {
			failCal++
		}
		if Judge(ms, w, Options{}).Outcome == Fail {
			failRaw++
		}
	}
	if failCal > 1 {
		t.Errorf("calibrated: %d of 60 drifting A/A windows failed, want at most 1", failCal)
	}
	t.Logf("uncalibrated (variance from the window alone): %d of 60 failed", failRaw)
}

// A clearly worse canary fails early, on its first allowed look.
func TestClearRegressionFailsEarly(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 3))
	b := host{errRate: 0.01, latency: 0.1, memory: 100e6, drift: 0.01}
	c := b
	c.latency = 0.15
	vs := window(rng, simMetrics, b, c, 50, 30, Options{Looks: 30})
	v := last(vs)
	if v.Outcome != Fail || v.Final || v.Look > 10 {
		t.Fatalf("got %s at look %d, want an early Fail\n%s", v.Outcome, v.Look, v.Table())
	}
	if m := v.Metrics[1]; m.Classification != High || m.Effect < 0.3 || m.Effect > 0.7 {
		t.Errorf("latency: %s %+.2f, want High near +50%%", m.Classification, m.Effect)
	}
}

// The decision rule: a non-critical metric flagged fails the verdict on its own (no
// score threshold), and the final verdict is never Marginal.
func TestAnyFlaggedMetricFails(t *testing.T) {
	t.Parallel()
	ms := []Metric{
		{Name: "errors", Kind: Rate, Direction: Increase, AllowedEffect: 0.2, Critical: true},
		{Name: "g", Kind: Gauge, Direction: Increase, AllowedEffect: 0.1},
	}
	var w []Input
	for k := range 30 {
		in := rates(10, 1000, 10, 1000)
		g := gauges(100+float64(k%3), 130+float64(k%3))
		in.Baseline["g"], in.Canary["g"] = g.Baseline["g"], g.Canary["g"]
		w = append(w, in)
	}
	v := Judge(ms, w, Options{})
	if v.Outcome != Fail || v.Metrics[1].Classification != High || v.Metrics[0].Classification != Passed {
		t.Fatalf("got %s, want Fail from the non-critical gauge alone\n%s", v.Outcome, v.Table())
	}
	if v.Score != 50 {
		t.Errorf("score %v, want 50", v.Score)
	}
	// Worse, but within the allowed effect: Pass at the end, Marginal before.
	w = w[:0]
	for k := range 30 {
		w = append(w, gauges(100+float64(k%3), 105+float64(k%3)))
	}
	ms = ms[1:]
	if v := Judge(ms, w, Options{}); v.Outcome != Pass || !strings.Contains(v.Metrics[0].Why, "within the allowed +10%") {
		t.Errorf("final: got %s, want Pass within the allowed effect\n%s", v.Outcome, v.Table())
	}
	s := NewSequence(ms, Options{Looks: 30})
	var iv Verdict
	for k := range 10 {
		iv = s.Look(w[k], false)
	}
	if iv.Outcome != Marginal || iv.Verdict != "Marginal" {
		t.Errorf("interim: got %s, want Marginal\n%s", iv.Outcome, iv.Table())
	}
}

// Sparse counts are weighed as the events they are. 3 errors against 0 out of 600
// requests a side: the canary's share of the 3 events is binomial(3, 1/2) if nothing
// changed, so all 3 on the canary has probability 1/8: no evidence at any sane level, and
// the interval's lower end is exactly Clopper-Pearson's, (a)^(1/3) as a share.
func TestSparseCounts(t *testing.T) {
	t.Parallel()
	k := counts{xb: 0, nb: 600, xc: 3, nc: 600}
	lo, hi := k.interval(0.05)
	p := math.Pow(0.05, 1.0/3)
	if want := p / (1 - p); math.Abs(lo-want) > 1e-9 || !math.IsInf(hi, 1) {
		t.Errorf("interval [%v, %v], want [%v, +Inf]", lo, hi, want)
	}
	v := Judge(simMetrics[:1], []Input{rates(0, 600, 3, 600)}, Options{})
	if v.Outcome != Pass || v.Metrics[0].Low >= 0 {
		t.Errorf("3 vs 0: got %s, want Pass\n%s", v.Outcome, v.Table())
	}
	// 15 against 0 is: (1/2)^15 = 3e-5.
	if v := Judge(simMetrics[:1], []Input{rates(0, 600, 15, 600)}, Options{}); v.Outcome != Fail || v.Metrics[0].Effect != maxEffect {
		t.Errorf("15 vs 0: got %s, want Fail with an unbounded effect\n%s", v.Outcome, v.Table())
	}
}

// A mostly-zero gauge is judged on when it is non-zero. The same number of spike
// episodes on each side is an effect of exactly 0, never significant, whatever the
// spikes' heights; spikes in many intervals of the canary alone fail it.
func TestZeroHeavyGauge(t *testing.T) {
	t.Parallel()
	ms := []Metric{{Name: "g", Kind: Gauge, Direction: Increase, AllowedEffect: 0.5}}
	var even, worse []Input
	for k := range 30 {
		b, c := 0.0, 0.0
		switch k % 6 {
		case 1:
			b = 40 // the baseline's spikes are taller
		case 4:
			c = 3
		}
		even = append(even, gauges(b, c))
		c = 0
		if k%2 == 0 {
			c = 2
		}
		worse = append(worse, gauges(0, c))
	}
	v := Judge(ms, even, Options{})
	m := v.Metrics[0]
	if v.Outcome != Pass || m.Test != testNonZero || m.Effect != 0 || m.Low >= 0 || m.EventsCanary != 5 || m.EventsBaseline != 5 {
		t.Errorf("even spikes: got %s %+v", v.Outcome, m)
	}
	if v := Judge(ms, worse, Options{}); v.Outcome != Fail || v.Metrics[0].Classification != High {
		t.Errorf("canary spiking in every other interval: got %s\n%s", v.Outcome, v.Table())
	}
}

// One-sided bursts (a flaky dependency on one host) are left out: an interval far from
// the bulk, whether latency, a gauge or errors, is not a regression.
func TestBurstsAreNotRegressions(t *testing.T) {
	t.Parallel()
	ms := []Metric{{Name: "g", Kind: Gauge, Direction: Increase, AllowedEffect: 0.05}}
	var w []Input
	rng := rand.New(rand.NewPCG(4, 4))
	for k := range 30 {
		c := 100 * math.Exp(0.02*rng.NormFloat64())
		if k == 7 || k == 8 || k == 20 {
			c *= 2.5
		}
		w = append(w, gauges(100*math.Exp(0.02*rng.NormFloat64()), c))
	}
	if v := Judge(ms, w, Options{}); v.Outcome != Pass {
		t.Errorf("gauge with 3 burst intervals: got %s\n%s", v.Outcome, v.Table())
	}
	var errs []Input
	for k := range 30 {
		xc := binomial(rng, 2000, 0.01)
		if k == 12 {
			xc += 60
		}
		errs = append(errs, rates(binomial(rng, 2000, 0.01), 2000, xc, 2000))
	}
	v := Judge(simMetrics[:1], errs, Options{})
	if v.Outcome != Pass || v.Metrics[0].Bursts != 1 {
		t.Errorf("errors with one burst: got %s with %d bursts\n%s", v.Outcome, v.Metrics[0].Bursts, v.Table())
	}
}

// Known answers of the pieces: the Mann-Whitney count, the AR(1) double sum, the
// variance of a combination without excess.
func TestKnownAnswers(t *testing.T) {
	t.Parallel()
	if u := mannWhitneyU(keys(1, 2, 3, 4), keys(3, 5, 6, 7)); u != 14.5 {
		t.Errorf("U = %v, want 14.5 (15 pairs above, one tie)", u)
	}
	if got := arSum([]float64{1, 1, 1}, 0.5); got != 3+2*(0.5+0.5+0.25) {
		t.Errorf("arSum = %v, want 5.5", got)
	}
	// Four intervals of sampling variance 0.04 each, calibrated to no excess: the mean
	// has variance 0.04/4.
	ps := []point{{0.1, 0.04}, {0.1, 0.04}, {0.1, 0.04}, {0.1, 0.04}}
	e := combine(ps, Allowance{Windows: 10})
	if math.Abs(e.est-0.1) > 1e-12 || math.Abs(e.se-0.1) > 1e-9 {
		t.Errorf("combine = %+v, want est 0.1, se 0.1", e)
	}
	// With an offset of 0.05 the variance grows by 0.05².
	e = combine(ps, Allowance{Windows: 10, Offset: 0.05})
	if want := math.Sqrt(0.01 + 0.0025); math.Abs(e.se-want) > 1e-9 {
		t.Errorf("se with offset = %v, want %v", e.se, want)
	}
	// A lognormal shift of exactly 10% in every interval reads +10% from the ranks.
	rng := rand.New(rand.NewPCG(5, 5))
	var w []Input
	for range 20 {
		b, c := make([]float64, 500), make([]float64, 500)
		for i := range b {
			b[i] = math.Exp(0.6 * rng.NormFloat64())
			c[i] = 1.1 * math.Exp(0.6*rng.NormFloat64())
		}
		w = append(w, Input{Baseline: map[string]Data{"l": {Values: b, PerRequest: true}}, Canary: map[string]Data{"l": {Values: c, PerRequest: true}}})
	}
	v := Judge([]Metric{{Name: "l", Kind: Latency, AllowedEffect: 0.02}}, w, Options{})
	if m := v.Metrics[0]; math.Abs(m.Effect-0.1) > 0.02 || m.Low > 0.1 || m.High < 0.1 || m.Test != testRanks {
		t.Errorf("ranks: %+.3f [%+.3f, %+.3f], want +10%% inside", m.Effect, m.Low, m.High)
	}
}

// No data: the policy decides at the end; before it, data may still come.
func TestNoDataPolicy(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		policy NoData
		want   Outcome
	}{{NoDataPass, Pass}, {NoDataFail, Fail}, {NoDataInconclusive, Inconclusive}, {"", Inconclusive}} {
		ms := []Metric{{Name: "g", Kind: Gauge, AllowedEffect: 0.1, NoData: tc.policy}}
		empty := Input{Baseline: map[string]Data{}, Canary: map[string]Data{}}
		s := NewSequence(ms, Options{Looks: 3})
		if v := s.Look(empty, false); v.Outcome != Pass || v.Metrics[0].Classification != Nodata {
			t.Errorf("%q interim: got %s %s, want Pass Nodata", tc.policy, v.Outcome, v.Metrics[0].Classification)
		}
		s.Look(empty, false)
		v := s.Look(empty, true)
		if v.Outcome != tc.want || v.Metrics[0].Classification != Nodata {
			t.Errorf("%q final: got %s %s, want %s Nodata", tc.policy, v.Outcome, v.Metrics[0].Classification, tc.want)
		}
	}
}

// MaxErrors failed measurements in a row make the verdict Error and stop the window.
func TestMeasurementErrors(t *testing.T) {
	t.Parallel()
	ms := []Metric{{Name: "g", Kind: Gauge, AllowedEffect: 0.1}}
	s := NewSequence(ms, Options{Looks: 10})
	bad := Input{Baseline: map[string]Data{"g": {Err: "scrape failed"}}, Canary: map[string]Data{"g": {Values: []float64{1}}}}
	for k := 1; k <= 3; k++ {
		v := s.Look(bad, false)
		if stop := k == 3; v.Stop() != stop {
			t.Fatalf("look %d: %s, stop %v, want stop %v", k, v.Outcome, v.Stop(), stop)
		}
		if k == 3 && (v.Outcome != Error || !strings.Contains(v.Metrics[0].Why, "scrape failed")) {
			t.Errorf("got %s: %s", v.Outcome, v.Metrics[0].Why)
		}
	}
}

func TestDecreaseDirection(t *testing.T) {
	t.Parallel()
	ms := []Metric{{Name: "g", Kind: Gauge, Direction: Decrease, AllowedEffect: 0.05}}
	var up, down []Input
	for k := range 30 {
		j := float64(k%4) / 100
		up = append(up, gauges(0.9+j, 0.99+j))
		down = append(down, gauges(0.9+j, 0.8+j))
	}
	if v := Judge(ms, up, Options{}); v.Outcome != Pass {
		t.Errorf("higher: got %s, want Pass", v.Outcome)
	}
	if v := Judge(ms, down, Options{}); v.Outcome != Fail || v.Metrics[0].Classification != Low {
		t.Errorf("lower: got %s %s, want Fail Low", v.Outcome, v.Metrics[0].Classification)
	}
}

func TestVerdictJSON(t *testing.T) {
	t.Parallel()
	v := Judge(simMetrics[:1], []Input{rates(0, 600, 15, 600)}, Options{})
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"verdict":"Fail"`, `"classification":"High"`, `"effect":1000000000`, `"n_canary":600`, `"reason":"significantly higher`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON %s lacks %s", b, want)
		}
	}
}

// Parallel judging (large intervals) gives what serial judging gives.
func TestParallelMatchesSerial(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(6, 6))
	var ms []Metric
	var w []Input
	for i := range 8 {
		ms = append(ms, Metric{Name: string(rune('a' + i)), Kind: Latency, AllowedEffect: 0.05})
	}
	for range 3 {
		in := Input{Baseline: map[string]Data{}, Canary: map[string]Data{}}
		for _, m := range ms {
			b, c := make([]float64, 2000), make([]float64, 2000)
			for j := range b {
				b[j], c[j] = math.Exp(rng.NormFloat64()), 1.02*math.Exp(rng.NormFloat64())
			}
			in.Baseline[m.Name], in.Canary[m.Name] = Data{Values: b, PerRequest: true}, Data{Values: c, PerRequest: true}
		}
		w = append(w, in)
	}
	par := Judge(ms, w, Options{}) // 32,000 samples an interval: judged on every core
	for i, m := range ms {         // one metric with its share of alpha: serial
		ser := Judge([]Metric{m}, w, Options{Alpha: 0.01 / 8})
		if par.Metrics[i].Why != ser.Metrics[0].Why {
			t.Errorf("parallel %q, serial %q", par.Metrics[i].Why, ser.Metrics[0].Why)
		}
	}
}

// The rate interval is the exact (Clopper-Pearson) one: with 10 events all in the canary
// and equal traffic, P(all 10 on one side | equal rates) = 2^-10, so at that error the
// interval's lower end is exactly a ratio of 1.
func TestRateIntervalIsExact(t *testing.T) {
	t.Parallel()
	k := newCounts(Data{Events: 0, Trials: 500}, Data{Events: 10, Trials: 500})
	lo, hi := k.interval(math.Pow(2, -10))
	if math.Abs(lo-1) > 1e-9 || !math.IsInf(hi, 1) {
		t.Errorf("interval = [%v, %v], want [1, +Inf]", lo, hi)
	}
}

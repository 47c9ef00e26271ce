package judge

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"gonum.org/v1/gonum/stat/distuv"
)

var testMetrics = []Metric{
	{Name: "errors", Kind: Rate, Direction: Increase, AllowedEffect: 0.2, Critical: true},
	{Name: "latency", Kind: Latency, Direction: Increase, AllowedEffect: 0.1, Critical: true, Unit: "s"},
	{Name: "memory", Kind: Gauge, Direction: Either, AllowedEffect: 0.2, Unit: "bytes"},
}

// window simulates one monitoring window of `looks` 10 s intervals at rps requests per
// second and returns the judge's verdict at every look (stopping at the first Fail).
type side struct {
	errRate, latency, memory float64
}

func window(rng *rand.Rand, base, can side, rps float64, looks int, o Options) []Verdict {
	s := NewSequence(testMetrics, o)
	in := Input{Baseline: map[string]Data{}, Canary: map[string]Data{}}
	var out []Verdict
	for k := 1; k <= looks; k++ {
		for _, p := range []struct {
			m  map[string]Data
			sd side
		}{{in.Baseline, base}, {in.Canary, can}} {
			n := poisson(rng, rps*10)
			e := p.m["errors"]
			e.Trials += n
			e.Events += binomial(rng, n, p.sd.errRate)
			p.m["errors"] = e
			l := p.m["latency"]
			for range int(n) {
				l.Values = append(l.Values, p.sd.latency*math.Exp(0.5*rng.NormFloat64()))
			}
			p.m["latency"] = l
			g := p.m["memory"]
			g.Values = append(g.Values, p.sd.memory*(1+0.05*rng.NormFloat64()))
			p.m["memory"] = g
		}
		v := s.Look(in, k == looks)
		out = append(out, v)
		if v.Stop() {
			break
		}
	}
	return out
}

func poisson(rng *rand.Rand, l float64) float64 {
	if l <= 0 {
		return 0
	}
	return distuv.Poisson{Lambda: l, Src: rng}.Rand()
}

func binomial(rng *rand.Rand, n, p float64) float64 {
	if n <= 0 || p <= 0 {
		return 0
	}
	return distuv.Binomial{N: n, P: p, Src: rng}.Rand()
}

// A/A: windows with no change are rarely failed by any of their 30 looks: the false-alarm
// rate over all looks and metrics is held at Alpha (1%), so 50 windows see at most 2.
func TestAAIsNotFailedByRepeatedLooks(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 1))
	base := side{errRate: 0.01, latency: 0.1, memory: 100e6}
	fails := 0
	for range 50 {
		vs := window(rng, base, base, 3, 30, Options{Looks: 30})
		if v := vs[len(vs)-1]; v.Outcome == Fail || v.Outcome == Error {
			fails++
			t.Logf("look %d: %s", v.Look, v.Table())
		}
	}
	if fails > 2 {
		t.Errorf("%d of 50 A/A windows failed, want at most 2", fails)
	}
}

// A clearly bad canary (latency doubled, errors ×10) fails in the first minute of five.
func TestClearlyBadCanaryFailsEarly(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(2, 2))
	base := side{errRate: 0.01, latency: 0.1, memory: 100e6}
	for _, tc := range []struct {
		name   string
		canary side
		failed string
	}{
		{"latency x2", side{0.01, 0.2, 100e6}, "latency"},
		{"errors x10", side{0.1, 0.1, 100e6}, "errors"},
	} {
		vs := window(rng, base, tc.canary, 20, 30, Options{Looks: 30})
		v := vs[len(vs)-1]
		if v.Outcome != Fail || v.Look > 6 || !strings.Contains(v.Reason, tc.failed) {
			t.Errorf("%s: %s at look %d (%s), want fail on %s by look 6", tc.name, v.Outcome, v.Look, v.Reason, tc.failed)
		}
	}
}

// A moderate regression is found before the window ends, and the explanation says why.
func TestModerateShiftFails(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 3))
	base := side{errRate: 0.01, latency: 0.1, memory: 100e6}
	vs := window(rng, base, side{0.01, 0.15, 100e6}, 10, 30, Options{Looks: 30})
	v := vs[len(vs)-1]
	r := v.Metrics[1]
	if v.Outcome != Fail || r.Outcome != Fail || r.Low <= 0 || r.Effect < 0.3 || r.Effect > 0.7 {
		t.Fatalf("latency +50%%: got %s, effect %.2f [%.2f, %.2f]\n%s", v.Outcome, r.Effect, r.Low, r.High, v.Table())
	}
	if !strings.Contains(r.Why, "significantly higher, beyond the allowed +10%: fail") {
		t.Errorf("why = %q", r.Why)
	}
}

func rates(bEvents, bTrials, cEvents, cTrials float64) Input {
	return Input{
		Baseline: map[string]Data{"errors": {Events: bEvents, Trials: bTrials}},
		Canary:   map[string]Data{"errors": {Events: cEvents, Trials: cTrials}},
	}
}

// Sparse counts are weighed as counts: 0 errors against 3 out of 600 requests is no
// evidence (3 events fall all on one side with chance 1/8), 0 against 30 is.
func TestSparseCounts(t *testing.T) {
	t.Parallel()
	ms := testMetrics[:1]
	for _, tc := range []struct {
		name string
		in   Input
		want Outcome
	}{
		{"0 vs 3 of 600", rates(0, 600, 3, 600), Pass},
		{"0 vs 0 of 600", rates(0, 600, 0, 600), Pass},
		{"0 vs 30 of 600", rates(0, 600, 30, 600), Fail},
		{"1% vs 3% of 30000", rates(300, 30000, 900, 30000), Fail},
		{"1% vs 1.1% of 30000", rates(300, 30000, 330, 30000), Pass},
		{"5 vs 15 of 600", rates(5, 600, 15, 600), Pass},
	} {
		v := Judge(ms, tc.in, Options{})
		if v.Outcome != tc.want {
			t.Errorf("%s: %s, want %s\n%s", tc.name, v.Outcome, tc.want, v.Table())
		}
	}
	v := Judge(ms, rates(0, 600, 3, 600), Options{})
	if w := v.Metrics[0].Why; !strings.Contains(w, "(3/600) vs baseline 0% (0/600)") || !strings.Contains(w, "+∞]") {
		t.Errorf("why = %q", w)
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

// No data is judged by the metric's policy on the final look, and is never a failure on
// an interim look (the data may still come).
func TestNoDataPolicy(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		policy NoData
		final  bool
		want   Outcome
	}{
		{NoDataPass, true, Pass},
		{NoDataFail, true, Fail},
		{NoDataInconclusive, true, Inconclusive},
		{"", true, Inconclusive},
		{NoDataFail, false, Inconclusive},
	} {
		m := []Metric{{Name: "latency", Kind: Latency, Critical: true, AllowedEffect: 0.1, NoData: tc.policy}}
		in := Input{Baseline: map[string]Data{"latency": {Values: []float64{1, 2, 3}}}, Canary: map[string]Data{}}
		s := NewSequence(m, Options{Looks: 2})
		if !tc.final {
			s.look = 0
		} else {
			s.Look(in, false)
		}
		v := s.Look(in, tc.final)
		if v.Outcome != tc.want || v.Metrics[0].Outcome != tc.want {
			t.Errorf("no_data %q final=%v: %s, want %s (%s)", tc.policy, tc.final, v.Outcome, tc.want, v.Metrics[0].Why)
		}
	}
}

// Failed measurements: tolerated (the last good look stands) until MaxErrors in a row,
// then the verdict is Error; a good measurement resets the count.
func TestMeasurementErrors(t *testing.T) {
	t.Parallel()
	m := testMetrics[:1]
	good := rates(10, 1000, 10, 1000)
	bad := Input{Baseline: map[string]Data{"errors": {Err: "query prometheus: connection refused"}}, Canary: good.Canary}
	s := NewSequence(m, Options{Looks: 10, MaxErrors: 3})
	for i, in := range []Input{good, bad, bad, good, bad, bad, bad} {
		v := s.Look(in, false)
		if (v.Outcome == Error) != (i == 6) {
			t.Fatalf("look %d: %s (%s)", i+1, v.Outcome, v.Metrics[0].Why)
		}
		if in.Baseline["errors"].Err != "" && !strings.Contains(v.Metrics[0].Why, "connection refused") {
			t.Errorf("look %d: why %q does not name the error", i+1, v.Metrics[0].Why)
		}
	}
}

// A metric where lower is worse fails on a drop, and passes a rise.
func TestDecreaseDirection(t *testing.T) {
	t.Parallel()
	m := []Metric{{Name: "signups", Kind: Gauge, Direction: Decrease, AllowedEffect: 0.1}}
	var b, up, down []float64
	for i := range 30 {
		x := 100 + float64(i%7)
		b, up, down = append(b, x), append(up, 2*x), append(down, x/2)
	}
	judge := func(c []float64) Outcome {
		return Judge(m, Input{Baseline: map[string]Data{"signups": {Values: b}}, Canary: map[string]Data{"signups": {Values: c}}}, Options{}).Metrics[0].Outcome
	}
	if got := judge(down); got != Fail {
		t.Errorf("halved: %s, want fail", got)
	}
	if got := judge(up); got != Pass {
		t.Errorf("doubled: %s, want pass", got)
	}
}

// The verdict is stored as JSON: an unbounded interval must still encode.
func TestVerdictEncodes(t *testing.T) {
	t.Parallel()
	v := Judge(testMetrics[:1], rates(0, 600, 3, 600), Options{})
	if _, err := json.Marshal(v); err != nil {
		t.Fatal(err)
	}
}

// Significantly worse but within the allowed effect is Marginal, not Fail: +5% latency at
// high traffic with 10% allowed.
func TestSmallRealShiftIsMarginal(t *testing.T) {
	t.Parallel()
	m := []Metric{{Name: "latency", Kind: Latency, AllowedEffect: 0.1, Critical: true, Unit: "s"}}
	in := Input{
		Baseline: map[string]Data{"latency": {Values: spread(3000, 0.1)}},
		Canary:   map[string]Data{"latency": {Values: spread(3000, 0.105)}},
	}
	v := Judge(m, in, Options{})
	r := v.Metrics[0]
	if v.Outcome != Marginal || r.Outcome != Marginal || math.Abs(r.Effect-0.05) > 0.005 {
		t.Errorf("got %s (%s), want marginal at +5%%", v.Outcome, r.Why)
	}
	if !strings.Contains(r.Why, "significantly worse, but within the allowed +10%: marginal") {
		t.Errorf("why = %q", r.Why)
	}
}

// Values that are zero or negative are compared as shifts relative to the baseline's
// median: a queue depth around 10 that grows by 5 is +50%.
func TestShiftModelForNonPositiveValues(t *testing.T) {
	t.Parallel()
	var b, c []float64
	for i := range 40 {
		x := float64(i%21) - 0 // 0..20, median 10
		b, c = append(b, x), append(c, x+5+0.001*float64(i))
	}
	m := []Metric{{Name: "queue", Kind: Gauge, Direction: Increase, AllowedEffect: 0.2}}
	v := Judge(m, Input{Baseline: map[string]Data{"queue": {Values: b}}, Canary: map[string]Data{"queue": {Values: c}}}, Options{})
	r := v.Metrics[0]
	if math.Abs(r.Effect-0.5) > 0.05 || r.Outcome != Fail {
		t.Errorf("effect %.3f (%s), want +50%% and fail", r.Effect, r.Why)
	}
}

// Large inputs are judged on all cores; the results are those of judging each metric
// alone.
func TestParallelJudgingMatchesSerial(t *testing.T) {
	t.Parallel()
	var ms []Metric
	in := Input{Baseline: map[string]Data{}, Canary: map[string]Data{}}
	for i := range 4 {
		name := string(rune('a' + i))
		ms = append(ms, Metric{Name: name, Kind: Latency, AllowedEffect: 0.1})
		in.Baseline[name] = Data{Values: spread(7000, 1)}
		in.Canary[name] = Data{Values: spread(7000, 1+0.05*float64(i))}
	}
	all := Judge(ms, in, Options{})
	for i, m := range ms {
		one := Judge([]Metric{m}, in, Options{Alpha: 0.01 / 4})
		if all.Metrics[i].Why != one.Metrics[0].Why {
			t.Errorf("metric %s: together %q, alone %q", m.Name, all.Metrics[i].Why, one.Metrics[0].Why)
		}
	}
}

// A gauge with one value on both sides passes and says so.
func TestIdenticalValues(t *testing.T) {
	t.Parallel()
	m := []Metric{{Name: "workers", Kind: Gauge, AllowedEffect: 0.1}}
	same := []float64{8, 8, 8, 8, 8}
	v := Judge(m, Input{Baseline: map[string]Data{"workers": {Values: same}}, Canary: map[string]Data{"workers": {Values: same}}}, Options{})
	if r := v.Metrics[0]; r.Outcome != Pass || r.Why != "workers: every value is 8 on both sides, n=5/5: pass" {
		t.Errorf("got %s: %q", r.Outcome, r.Why)
	}
}

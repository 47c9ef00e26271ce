package judge

import (
	"math"
	"math/rand/v2"
	"testing"
)

// goldenWindow is a fixed 30-interval window (seeded, so the golden files are stable) of
// every kind of metric: rates with sparse and ordinary counts, per-request latency, a
// latency quantile per interval, a gauge and a mostly-zero gauge. The canary's p99 is
// twice the baseline's; the rest is close.
func goldenWindow() ([]Metric, []Input) {
	ms := []Metric{
		{Name: "http_errors", Kind: Rate, Direction: Increase, AllowedEffect: 0.2, Critical: true},
		{Name: "checkout_errors", Kind: Rate, Direction: Increase, AllowedEffect: 0.2, Critical: true},
		{Name: "p99_latency", Kind: Latency, Direction: Increase, AllowedEffect: 0.2, Unit: "s"},
		{Name: "latency", Kind: Latency, Direction: Increase, AllowedEffect: 0.1, Critical: true, Unit: "s"},
		{Name: "heap|bytes", Kind: Gauge, Direction: Either, AllowedEffect: 0.25, Unit: "bytes"},
		{Name: "queue_depth", Kind: Gauge, Direction: Increase, AllowedEffect: 0.5, NoData: NoDataPass},
	}
	rng := rand.New(rand.NewPCG(12, 12))
	var w []Input
	for k := range 30 {
		in := Input{Baseline: map[string]Data{}, Canary: map[string]Data{}}
		load := 1 + 0.2*math.Sin(float64(k)/5)
		for side, m := range []map[string]Data{in.Baseline, in.Canary} {
			n := math.Round(200 * load)
			m["http_errors"] = Data{Events: binomial(rng, n, 0.002), Trials: n}
			m["checkout_errors"] = Data{Events: binomial(rng, n/10, 0.001+0.004*float64(side)), Trials: n / 10}
			lat := make([]float64, int(n)/4)
			for i := range lat {
				lat[i] = 0.040 * load * math.Exp(0.4*rng.NormFloat64())
			}
			m["latency"] = Data{Values: lat, PerRequest: true}
			m["p99_latency"] = Data{Values: []float64{0.1 * (1 + float64(side)) * load * math.Exp(0.05*rng.NormFloat64())}}
			m["heap|bytes"] = Data{Values: []float64{(200 + 10*float64(side)) * (1 << 20) * math.Exp(0.01*rng.NormFloat64())}}
			q := 0.0
			if rng.Float64() < 0.1 {
				q = math.Round(1 + 5*rng.Float64())
			}
			m["queue_depth"] = Data{Values: []float64{q}}
		}
		w = append(w, in)
	}
	return ms, w
}

// What users read of a verdict, final and interim (with a failed measurement), is
// checked against golden files (go test -update rewrites them).
func TestTableGolden(t *testing.T) {
	t.Parallel()
	ms, w := goldenWindow()
	final := Judge(ms, w, Options{Looks: 30})

	s := NewSequence(ms, Options{Looks: 30})
	for _, in := range w[:11] {
		s.Look(in, false)
	}
	in := w[11]
	in.Canary = map[string]Data{}
	for k, d := range w[11].Canary {
		in.Canary[k] = d
	}
	in.Canary["latency"] = Data{Err: "scrape http://127.0.0.1:9101/metrics: connection refused"}
	interim := s.Look(in, false)

	for name, v := range map[string]Verdict{"final.md": final, "interim.md": interim} {
		golden(t, name, v.Table())
	}
}

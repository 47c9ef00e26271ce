package judge

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// benchWindow is a window of looks intervals of ms, each per-request latency metric with
// perSide samples a side over the whole window, rates with trials alike, gauges one value
// an interval.
func benchWindow(ms []Metric, looks, perSide int) []Input {
	rng := rand.New(rand.NewPCG(42, 42))
	per := perSide / looks
	var w []Input
	for range looks {
		in := Input{Baseline: map[string]Data{}, Canary: map[string]Data{}}
		for _, side := range []map[string]Data{in.Baseline, in.Canary} {
			for _, m := range ms {
				switch m.Kind {
				case Rate:
					side[m.Name] = Data{Events: binomial(rng, float64(per), 0.01), Trials: float64(per)}
				case Latency:
					xs := make([]float64, per)
					for i := range xs {
						xs[i] = 0.1 * math.Exp(0.5*rng.NormFloat64())
					}
					side[m.Name] = Data{Values: xs, PerRequest: true}
				default:
					side[m.Name] = Data{Values: []float64{100 * math.Exp(0.02*rng.NormFloat64())}}
				}
			}
		}
		w = append(w, in)
	}
	return w
}

// 100 per-request latency metrics with 10,000 samples a side (30 intervals): the whole
// window judged at once. Target: under 50 ms on 2 cores.
func BenchmarkJudge100Metrics10kSamples(b *testing.B) {
	ms := make([]Metric, 100)
	for i := range ms {
		ms[i] = Metric{Name: fmt.Sprintf("latency_%d", i), Kind: Latency, Direction: Increase, AllowedEffect: 0.1, Unit: "s"}
	}
	w := benchWindow(ms, 30, 10000)
	b.ResetTimer()
	for range b.N {
		Judge(ms, w, Options{Looks: 30})
	}
}

// A 5-minute window replayed look by look at 200 req/s (2,000 requests an interval): 30
// looks of 10 metrics, as the live window and `immunity judge` run it. Target: under
// 100 ms.
func BenchmarkReplay30Looks200rps(b *testing.B) {
	ms := []Metric{
		{Name: "errors", Kind: Rate, Direction: Increase, AllowedEffect: 0.2, Critical: true},
		{Name: "timeouts", Kind: Rate, Direction: Increase, AllowedEffect: 0.5},
		{Name: "latency", Kind: Latency, Direction: Increase, AllowedEffect: 0.05, Critical: true, Unit: "s"},
		{Name: "p99", Kind: Latency, Direction: Increase, AllowedEffect: 0.1, Unit: "s"},
		{Name: "cpu", Kind: Gauge, Direction: Increase, AllowedEffect: 0.1},
		{Name: "memory", Kind: Gauge, Direction: Increase, AllowedEffect: 0.2},
		{Name: "queue", Kind: Gauge, Direction: Increase, AllowedEffect: 0.5},
		{Name: "cache_hit", Kind: Gauge, Direction: Decrease, AllowedEffect: 0.005},
		{Name: "db_queries", Kind: Gauge, Direction: Increase, AllowedEffect: 0.1},
		{Name: "requests", Kind: Gauge, Direction: Either, AllowedEffect: 0.2},
	}
	w := benchWindow(ms, 30, 60000)
	b.ResetTimer()
	for range b.N {
		s := NewSequence(ms, Options{Looks: 30})
		for k, in := range w {
			s.Look(in, k == len(w)-1)
		}
	}
}

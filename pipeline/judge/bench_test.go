package judge

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// BenchmarkJudge100x10000 judges 100 metrics of 10,000 samples per side (target: under
// 50 ms per op on 2 cores).
func BenchmarkJudge100x10000(b *testing.B) {
	rng := rand.New(rand.NewPCG(5, 5))
	var ms []Metric
	in := Input{Baseline: map[string]Data{}, Canary: map[string]Data{}}
	for i := range 100 {
		name := fmt.Sprintf("m%d", i)
		kind := Latency
		if i%10 == 0 {
			kind = Rate
		}
		ms = append(ms, Metric{Name: name, Kind: kind, Direction: Increase, AllowedEffect: 0.1})
		if kind == Rate {
			in.Baseline[name] = Data{Events: 100, Trials: 10000}
			in.Canary[name] = Data{Events: 120, Trials: 10000}
			continue
		}
		bv, cv := make([]float64, 10000), make([]float64, 10000)
		for j := range bv {
			bv[j] = math.Exp(rng.NormFloat64())
			cv[j] = 1.05 * math.Exp(rng.NormFloat64())
		}
		in.Baseline[name], in.Canary[name] = Data{Values: bv}, Data{Values: cv}
	}
	o := Options{Looks: 30}
	b.ResetTimer()
	for b.Loop() {
		s := NewSequence(ms, o)
		s.look = 14
		s.Look(in, false)
	}
}

package judge

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// BenchmarkJudge100x10000 judges 100 metrics (90 latency, 10 rates) of 10,000 samples
// (target: under 50 ms per op on 2 cores), counted per side and in all.
func BenchmarkJudge100x10000(b *testing.B) {
	for _, perSide := range []int{10000, 5000} {
		b.Run(fmt.Sprintf("per-side=%d", perSide), func(b *testing.B) { benchJudge(b, perSide) })
	}
}

func benchJudge(b *testing.B, perSide int) {
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
			in.Baseline[name] = Data{Events: 100, Trials: float64(perSide)}
			in.Canary[name] = Data{Events: 120, Trials: float64(perSide)}
			continue
		}
		bv, cv := make([]float64, perSide), make([]float64, perSide)
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

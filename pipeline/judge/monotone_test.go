package judge

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// A larger regression is never judged better than a smaller one. Per-request latency
// shifted by a constant factor in every interval, from a little beyond the allowed
// effect to a canary twenty times slower, with few and many requests an interval, a
// tight and a wide spread, a short and a long window, with and without a calibrated
// allowance: once a factor fails the canary, every larger factor fails it too. (Where
// every request of the canary is slower than every one of the baseline, the ranks
// saturate; their transform to an effect then scatters from interval to interval, and
// that scatter must not be taken for drift between the hosts.)
func TestLargerRegressionsNeverPass(t *testing.T) {
	t.Parallel()
	factors := []float64{1.5, 2, 3, 5, 10, 20}
	m := Metric{Name: "latency", Kind: Latency, Direction: Increase, AllowedEffect: 0.2, Unit: "s"}
	window := func(rng *rand.Rand, n, k int, sigma, f float64) []Input {
		var out []Input
		for range k {
			side := func(f float64) Data {
				vs := make([]float64, n)
				for j := range vs {
					vs[j] = 0.0025 * f * math.Exp(sigma*rng.NormFloat64())
				}
				return Data{Values: vs, PerRequest: true}
			}
			out = append(out, Input{Baseline: map[string]Data{"latency": side(1)}, Canary: map[string]Data{"latency": side(f)}})
		}
		return out
	}
	for _, n := range []int{10, 50, 500} {
		for _, k := range []int{8, 30} {
			for _, sigma := range []float64{0.3, 0.6} {
				for _, calibrated := range []bool{false, true} {
					name := fmt.Sprintf("%d requests × %d intervals, σ %g, calibrated %v", n, k, sigma, calibrated)
					mm := m
					if calibrated {
						var aa [][]Input
						for i := range 20 {
							aa = append(aa, window(rand.New(rand.NewPCG(uint64(i), 99)), n, k, sigma, 1))
						}
						allow, err := Calibrate([]Metric{m}, aa)
						if err != nil {
							t.Fatal(err)
						}
						mm.Allowance = allow["latency"]
					}
					failedAt := 0.0
					for _, f := range factors {
						rng := rand.New(rand.NewPCG(uint64(n*k), uint64(1000*f)))
						v := Judge([]Metric{mm}, window(rng, n, k, sigma, f), Options{Looks: k, Alpha: 0.01 / 6})
						r := v.Metrics[0]
						switch {
						case v.Outcome == Fail && failedAt == 0:
							failedAt = f
						case v.Outcome != Fail && failedAt > 0:
							t.Errorf("%s: ×%g fails the canary, ×%g %s it: %s", name, failedAt, f, v.Outcome, r.Why)
						}
					}
					if failedAt == 0 || (n >= 50 && failedAt > 1.5) {
						t.Errorf("%s: failed first at ×%g; want ×1.5 or less with 50 requests an interval or more (×%g = never)", name, failedAt, failedAt)
					}
				}
			}
		}
	}
}

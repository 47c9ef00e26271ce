package judge

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestSortFloats(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(7, 7))
	for _, n := range []int{0, 5, 1500, 20000} {
		xs := make([]float64, n)
		for i := range xs {
			switch i % 4 {
			case 0:
				xs[i] = rng.NormFloat64() * 1e6
			case 1:
				xs[i] = math.Exp(rng.NormFloat64())
			case 2:
				xs[i] = float64(rng.IntN(5)) // ties and zeros
			default:
				xs[i] = -rng.Float64() * 1e-9
			}
		}
		want := slices.Clone(xs)
		slices.Sort(want)
		sortFloats(xs)
		if !slices.Equal(xs, want) {
			t.Errorf("n=%d: radix sort differs from slices.Sort", n)
		}
	}
}

func BenchmarkSortFloats10k(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	xs := make([]float64, 10000)
	for i := range xs {
		xs[i] = math.Exp(rng.NormFloat64())
	}
	ys := make([]float64, len(xs))
	for b.Loop() {
		copy(ys, xs)
		sortFloats(ys)
	}
}

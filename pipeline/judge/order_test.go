package judge

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func keys(xs ...float64) []uint64 {
	ks := make([]uint64, len(xs))
	for i, x := range xs {
		ks[i] = orderKey(x)
	}
	return ks
}

// Samples of every shape the sort must order as slices.Sort does: lognormal latencies,
// heavy ties, negative values and both zeros, one far outlier that crowds the rest into
// one bucket, tiny and huge magnitudes, and values that are not finite.
func orderSamples(rng *rand.Rand) map[string][]float64 {
	out := map[string][]float64{}
	gen := func(name string, n int, f func(i int) float64) {
		xs := make([]float64, n)
		for i := range xs {
			xs[i] = f(i)
		}
		out[name] = xs
	}
	for _, n := range []int{0, 1, 2, 3, 31, 32, 33, 333, 2000} {
		gen("lognormal", n, func(int) float64 { return 0.1 * math.Exp(0.5*rng.NormFloat64()) })
		gen("ties", n, func(int) float64 { return float64(rng.IntN(5)) * 0.01 })
		gen("signed", n, func(int) float64 {
			switch rng.IntN(6) {
			case 0:
				return math.Copysign(0, -1)
			case 1:
				return 0
			}
			return rng.NormFloat64() * 100
		})
		gen("outlier", n, func(i int) float64 {
			if i == 0 {
				return 1e300
			}
			return 0.01 + rng.Float64()*1e-3
		})
		gen("magnitudes", n, func(int) float64 {
			return math.Ldexp(rng.Float64(), rng.IntN(2000)-1000) * float64(1-2*rng.IntN(2))
		})
		gen("not finite", n, func(int) float64 {
			switch rng.IntN(8) {
			case 0:
				return math.NaN()
			case 1:
				return math.Inf(1)
			case 2:
				return math.Inf(-1)
			}
			return rng.ExpFloat64()
		})
		gen("equal", n, func(int) float64 { return 0.25 })
	}
	return out
}

func TestSortedKeysOrderAsValues(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 4))
	var sc scratch
	for range 20 {
		for name, xs := range orderSamples(rng) {
			var want []float64
			for _, x := range xs {
				if !math.IsNaN(x) && !math.IsInf(x, 0) {
					want = append(want, x)
				}
			}
			slices.Sort(want)
			ks := sc.sorted(nil, xs)
			got := make([]float64, len(ks))
			for i, k := range ks {
				got[i] = keyValue(k)
			}
			// -0 becomes 0, as == takes them: compare values, not bits.
			if !slices.EqualFunc(got, want, func(a, b float64) bool { return a == b }) {
				t.Fatalf("%s (%d values): sorted differs from slices.Sort", name, len(xs))
			}
		}
	}
}

// referenceInterval is the ranking as it was before sorting by keys: the finite values
// sorted with slices.Sort and U counted by a merge with ties compared as floats.
func referenceInterval(baseline, canary []float64) interval {
	fin := func(xs []float64) []float64 {
		var out []float64
		for _, x := range xs {
			if !math.IsNaN(x) && !math.IsInf(x, 0) {
				out = append(out, x)
			}
		}
		slices.Sort(out)
		return out
	}
	b, c := fin(baseline), fin(canary)
	out := interval{nb: len(b), nc: len(c)}
	if len(b) < minPerSide || len(c) < minPerSide {
		return out
	}
	out.medB, out.medC = median(b), median(c)
	logScale := b[0] > 0 && c[0] > 0
	out.log = logScale
	spread := func(xs []float64) float64 {
		q1, q3 := xs[len(xs)/4], xs[(3*len(xs))/4]
		if logScale {
			return math.Log(q3/q1) / 1.349
		}
		return (q3 - q1) / 1.349
	}
	sigma := (spread(b) + spread(c)) / 2
	m, n := float64(len(b)), float64(len(c))
	if sigma <= 0 {
		d := out.medC - out.medB
		if logScale {
			d = math.Log(out.medC / out.medB)
		} else {
			d /= relScale(out.medB)
		}
		out.p, out.ok = point{d: d}, true
		return out
	}
	u := 0.0
	for _, x := range c {
		for _, y := range b {
			switch {
			case y < x:
				u++
			case y == x:
				u += 0.5
			}
		}
	}
	out.u, out.sigma = u, sigma
	out.p, out.ok = rankPoint(u, sigma, m, n, out.medB, out.medC, logScale), true
	return out
}

// The fast ranking gives exactly what sorting the floats and counting every pair gives.
func TestRequestIntervalMatchesReference(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(5, 6))
	var sc scratch
	for range 5 {
		samples := orderSamples(rng)
		for nb, b := range samples {
			for nc, c := range samples {
				if len(b) > 400 || len(c) > 400 {
					continue
				}
				got, want := requestInterval(b, c, &sc), referenceInterval(b, c)
				if diff := cmp.Diff(want, got, cmp.AllowUnexported(interval{}, point{})); diff != "" {
					t.Fatalf("%s (%d) against %s (%d): (-want +got)\n%s", nb, len(b), nc, len(c), diff)
				}
			}
		}
	}
}

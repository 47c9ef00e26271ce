package judge

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// The textbook example of R's wilcox.test: W = 35 for x against y; with the normal
// approximation and continuity correction z = (35 - 25 - 0.5) / sqrt(10·5·16/12).
func TestRankSumKnownAnswer(t *testing.T) {
	t.Parallel()
	x := []float64{0.80, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91, 1.64, 0.73, 1.46}
	y := []float64{1.15, 0.88, 0.90, 0.74, 1.21}
	r := newRanks(y, x)
	if u, ties := r.count(r.neutral()); u != 35 || ties != 0 {
		t.Errorf("count = %v, %v; want U 35, no ties", u, ties)
	}
	want := 9.5 / math.Sqrt(10*5*16.0/12)
	if got := r.z(1); math.Abs(got-want) > 1e-12 {
		t.Errorf("z = %v, want %v", got, want)
	}
}

// Ties count one half and shrink the variance.
func TestRankSumTies(t *testing.T) {
	t.Parallel()
	r := newRanks([]float64{2, 3}, []float64{1, 2, 2})
	// canary 1 beats nothing; each canary 2 ties one baseline 2 (1/2) and beats nothing.
	if u, ties := r.count(1); u != 1 || ties != 24 {
		t.Errorf("count = %v, %v; want 1, 24 (one group of three)", u, ties)
	}
}

// The Hodges-Lehmann ratio is the median of the pairwise ratios canary/baseline, and its
// interval the matching order statistics of them.
func TestHodgesLehmann(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	b, c := make([]float64, 200), make([]float64, 300)
	for i := range b {
		b[i] = math.Exp(rng.NormFloat64() * 0.5)
	}
	for i := range c {
		c[i] = 1.3 * math.Exp(rng.NormFloat64()*0.5)
	}
	var ratios []float64
	for _, x := range c {
		for _, y := range b {
			ratios = append(ratios, x/y)
		}
	}
	slices.Sort(ratios)
	r := newRanks(b, c)
	nm := float64(len(ratios))
	sd := math.Sqrt(200 * 300 * 501 / 12.0)
	est, lo, hi := r.estimate(1.96)
	for _, tc := range []struct {
		got  float64
		rank float64
	}{
		{est, nm / 2},
		{lo, nm/2 - 1.96*sd},
		{hi, nm/2 + 1.96*sd},
	} {
		want := ratios[int(tc.rank)]
		if math.Abs(tc.got/want-1) > 2e-3 {
			t.Errorf("rank %.0f: ratio %.5f, want %.5f", tc.rank, tc.got, want)
		}
	}
}

// Samples with heavy ties (durations spread evenly inside histogram buckets, the same
// points every interval, as the scrape source reconstructs them) still give an estimate
// and a finite interval, and a shift of a quarter of the requests to a slower bucket is
// significant.
func TestHeavyTies(t *testing.T) {
	t.Parallel()
	spreadBuckets := func(counts []int) []float64 {
		bounds := []float64{0, 0.05, 0.1, 0.2, 0.5}
		var xs []float64
		for k, n := range counts {
			for i := range n {
				xs = append(xs, bounds[k]+(float64(i)+0.5)*(bounds[k+1]-bounds[k])/float64(n))
			}
		}
		return xs
	}
	var b, c []float64
	for range 30 {
		b = append(b, spreadBuckets([]int{25, 25, 25, 25})...)
		c = append(c, spreadBuckets([]int{0, 50, 25, 25})...)
	}
	r := newRanks(b, c)
	est, lo, hi := r.estimate(3)
	if !(lo <= est && est <= hi) || lo <= 1 || math.IsInf(hi, 0) || est > 1.5 {
		t.Errorf("estimate %v [%v, %v]", est, lo, hi)
	}
}

// The fast count agrees with the plain merge, at shifts with and without ties.
func TestCountLessMatchesCount(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(9, 9))
	for _, n := range []int{10, 3000} {
		b, c := make([]float64, n), make([]float64, n+7)
		for i := range b {
			b[i] = math.Round(100*math.Exp(rng.NormFloat64())) / 100
		}
		for i := range c {
			c[i] = math.Round(110*math.Exp(rng.NormFloat64())) / 100
		}
		r := newRanks(b, c)
		for _, s := range []float64{0.5, 1, 1.1, 1.37, 2} {
			lt, tie := r.countLess(s)
			u, _ := r.count(s)
			if !tie && float64(lt) != u {
				t.Errorf("n=%d s=%v: countLess %d, count %v", n, s, lt, u)
			}
			if tie && float64(lt) > u {
				t.Errorf("n=%d s=%v: countLess %d above count %v with ties", n, s, lt, u)
			}
		}
	}
}

// Large samples take the solver's shortcut; the result is still the order statistic.
func TestHodgesLehmannLarge(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 4))
	b, c := make([]float64, 2000), make([]float64, 2100)
	for i := range b {
		b[i] = math.Exp(rng.NormFloat64() * 0.7)
	}
	for i := range c {
		c[i] = 1.1 * math.Exp(rng.NormFloat64()*0.7)
	}
	ratios := make([]float64, 0, len(b)*len(c))
	for _, x := range c {
		for _, y := range b {
			ratios = append(ratios, x/y)
		}
	}
	sortFloats(ratios)
	r := newRanks(b, c)
	nm := float64(len(ratios))
	sd := math.Sqrt(nm * float64(len(b)+len(c)+1) / 12)
	est, lo, hi := r.estimate(2.5)
	for _, tc := range []struct{ got, rank float64 }{{est, nm / 2}, {lo, nm/2 - 2.5*sd}, {hi, nm/2 + 2.5*sd}} {
		if want := ratios[int(tc.rank)]; math.Abs(tc.got/want-1) > 2e-4 {
			t.Errorf("rank %.0f: ratio %.6f, want %.6f", tc.rank, tc.got, want)
		}
	}
}

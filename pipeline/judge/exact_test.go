package judge

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// Known values of the Wilcoxon rank-sum distribution (R: pwilcox).
func TestWilcoxCDF(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		n, m, u int
		want    float64
	}{
		{5, 5, 0, 1.0 / 252},
		{8, 8, 0, 1.0 / 12870},
		{4, 6, 3, 7.0 / 210}, // partitions of 0..3 into at most 4 parts of at most 6: 1+1+2+3
		{10, 5, 25, 0.5},     // symmetric: P(U <= 25) = 1/2 + P(U=25)/2
		{30, 30, 900, 1},
	} {
		c := wilcoxCDF(tc.n, tc.m)
		got := c[tc.u]
		if tc.n == 10 {
			got = (c[25] + c[24]) / 2
		}
		if math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("P(U <= %d | %d, %d) = %.12g, want %.12g", tc.u, tc.n, tc.m, got, tc.want)
		}
	}
}

// Eight canary values all above eight baseline values: exactly significant at 1e-4
// (p = 1/12870), which the normal approximation cannot show.
func TestExactIntervalSmallSamples(t *testing.T) {
	t.Parallel()
	b := []float64{1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7}
	c := []float64{2.0, 2.1, 2.2, 2.3, 2.4, 2.5, 2.6, 2.7}
	r := newRanks(b, c)
	if !r.exactOK() {
		t.Fatal("exact interval should apply")
	}
	_, lo, _ := r.exactEstimate(1e-4)
	if want := 2.0 / 1.7; math.Abs(lo-want) > 1e-12 {
		t.Errorf("lower bound %v, want the smallest ratio %v", lo, want)
	}
	if _, lo, _ := r.exactEstimate(1e-5); lo != 0 {
		t.Errorf("at 1e-5 the bound should be unbounded (0), got %v", lo)
	}
	if zc := 3.719; r.z(1) >= zc { // z for p = 1e-4
		t.Errorf("normal approximation z = %v unexpectedly reaches %v", r.z(1), zc)
	}
}

func TestSelectK(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(8, 8))
	for _, n := range []int{1, 2, 3, 10, 101, 900} {
		xs := make([]float64, n)
		for i := range xs {
			xs[i] = float64(rng.IntN(n/2 + 1)) // with ties
		}
		want := slices.Clone(xs)
		slices.Sort(want)
		for _, k := range []int{0, n / 2, n - 1} {
			if got := selectK(slices.Clone(xs), k); got != want[k] {
				t.Errorf("n=%d k=%d: %v, want %v", n, k, got, want[k])
			}
		}
	}
}

package judge

import (
	"math"
	"testing"
)

// Boundaries of Lan-DeMets spending functions, five equally spaced looks, one-sided
// 0.025, as published (Jennison & Turnbull; R gsDesign sfLDOF / sfLDPocock).
func TestBoundaryKnownValues(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		sp   Spending
		want []float64
	}{
		{OBrienFleming, []float64{4.877, 3.357, 2.680, 2.290, 2.031}},
		{Pocock, []float64{2.438, 2.427, 2.410, 2.397, 2.386}},
	} {
		b := newBoundary(0.025, tc.sp)
		for k, want := range tc.want {
			got := b.next(float64(k+1)/5, float64(k+1)/5)
			if math.Abs(got-want) > 0.003 {
				t.Errorf("%s look %d: boundary %.4f, want %.3f", tc.sp, k+1, got, want)
			}
		}
		if math.Abs(b.spent-0.025) > 1e-6 {
			t.Errorf("%s: spent %g, want 0.025", tc.sp, b.spent)
		}
	}
}

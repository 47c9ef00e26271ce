package judge

import (
	"math/rand/v2"
	"testing"
)

// history builds 30 looks of cumulative counts at 1000 requests per interval and side,
// 1% errors; burst(k) gives each side's extra error factor in interval k.
func history(rng *rand.Rand, burst func(k int) (b, c float64)) []rateLook {
	var h []rateLook
	cur := rateLook{}
	for k := range 30 {
		fb, fc := burst(k)
		cur.nb += 1000
		cur.nc += 1000
		cur.xb += binomial(rng, 1000, 0.01*fb)
		cur.xc += binomial(rng, 1000, 0.01*fc)
		h = append(h, cur)
	}
	return h
}

func TestDispersion(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(4, 4))
	for _, tc := range []struct {
		name     string
		burst    func(k int) (float64, float64)
		min, max float64
	}{
		{"independent errors", func(int) (float64, float64) { return 1, 1 }, 1, 1.6},
		{"bursts on both sides (mirrored traffic)", func(k int) (float64, float64) {
			if k%7 == 3 {
				return 5, 5
			}
			return 1, 1
		}, 1, 1.6},
		{"bursts on the canary alone", func(k int) (float64, float64) {
			if k%7 == 3 {
				return 1, 5
			}
			return 1, 1
		}, 3, 100},
	} {
		if phi := burstCheck(history(rng, tc.burst)).phi; phi < tc.min || phi > tc.max {
			t.Errorf("%s: φ = %.2f, want %v..%v", tc.name, phi, tc.min, tc.max)
		}
	}
}

// A burst of errors on one side is not, alone, a regression: without the dispersion
// estimate the count test would fail this window.
func TestOneSidedBurstIsNotARegression(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(6, 6))
	h := history(rng, func(k int) (float64, float64) {
		if k == 20 || k == 24 {
			return 1, 6
		}
		return 1, 1
	})
	ms := testMetrics[:1]
	s := NewSequence(ms, Options{Looks: 30})
	var v Verdict
	for k, c := range h {
		v = s.Look(rates(c.xb, c.nb, c.xc, c.nc), k == 29)
	}
	last := h[len(h)-1]
	naive := Judge(ms, rates(last.xb, last.nb, last.xc, last.nc), Options{})
	if naive.Outcome != Fail {
		t.Fatalf("the naive count test should fail this window; got %s", naive.Table())
	}
	if v.Outcome == Fail || v.Metrics[0].Dispersion < 1.5 {
		t.Errorf("got %s with dispersion %.2f, want no fail\n%s", v.Outcome, v.Metrics[0].Dispersion, v.Table())
	}
}

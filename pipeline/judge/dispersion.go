package judge

import (
	"math"
	"slices"
)

// Bursts of events. The count test assumes each request fails on its own; real errors
// also come in bursts (a flaky dependency, a retry storm), and a burst on one side alone
// would look like a regression. Each look adds an interval of counts on both sides, and
// the sequence uses them twice:
//
//   - An interval holding more than 3 times the median events of the intervals (plus 3)
//     is a burst; its events are left out of the test on both sides, and the explanation
//     says so. A regression that raises the canary's errors in every interval is not a
//     burst and keeps all its evidence; one that only shows as a few bursts is not
//     distinguishable from a flaky dependency in one window.
//   - Given an interval's total events, the canary's share is binomial if the model
//     holds. How much more the shares of the remaining intervals vary estimates φ (at
//     least 1), and the test counts every event as 1/φ of one (quasi-binomial).
//
// Bursts that hit both sides alike (mirrored traffic) cancel out in the shares. A
// calibrated Allowance.Dispersion is pooled with the window's own estimate.

// rateLook is one interval's counts of a rate metric, or a sum of intervals.
type rateLook struct{ xb, nb, xc, nc float64 }

func (a rateLook) plus(b rateLook) rateLook {
	return rateLook{a.xb + b.xb, a.nb + b.nb, a.xc + b.xc, a.nc + b.nc}
}

// total is the sum of intervals' counts.
func total(hist []rateLook) rateLook {
	var s rateLook
	for _, d := range hist {
		s = s.plus(d)
	}
	return s
}

// without is k less the burst intervals left out, and whether any were (only when some
// trials remain on both sides).
func (bs bursts) without(k counts) (counts, bool) {
	if bs.nBursts == 0 || k.nb <= bs.left.nb || k.nc <= bs.left.nc {
		return k, false
	}
	return counts{xb: k.xb - bs.left.xb, nb: k.nb - bs.left.nb, xc: k.xc - bs.left.xc, nc: k.nc - bs.left.nc}, true
}

// minStrata is the fewest intervals with events needed to look for bursts.
const minStrata = 6

// bursts is what the interval history says about a rate metric's counts.
type bursts struct {
	ok      bool     // enough intervals with events to tell
	phi     float64  // overdispersion of the intervals kept (1 or more)
	left    rateLook // the events (and trials) of the burst intervals left out
	nBursts int
	strata  int // intervals with events
}

// burstCheck reads a rate metric's intervals.
func burstCheck(hist []rateLook) bursts {
	out := bursts{phi: 1}
	var strata []rateLook
	for _, d := range hist {
		if d.xb < 0 || d.xc < 0 || d.nb <= 0 || d.nc <= 0 || d.xb+d.xc <= 0 {
			continue // no traffic, no events, or a counter reset
		}
		strata = append(strata, d)
	}
	out.strata = len(strata)
	if len(strata) < minStrata {
		return out
	}
	out.ok = true
	totals := make([]float64, len(strata))
	for i, d := range strata {
		totals[i] = d.xb + d.xc
	}
	slices.Sort(totals)
	limit := 3*median(totals) + 3
	kept := strata[:0:0]
	for _, d := range strata {
		if d.xb+d.xc > limit {
			out.left = out.left.plus(d)
			out.nBursts++
			continue
		}
		kept = append(kept, d)
	}
	// A one-sided burst too small to stand out in the totals stands out in the canary's
	// share: an interval more than burstZ binomial standard deviations from the share of
	// no change is left out too, unless more than half of them are (then the canary is
	// worse all along, and that is no burst).
	{
		ratio := 1.0
		next := kept[:0:0]
		var out2 []rateLook
		for _, d := range kept {
			t, p := d.xb+d.xc, d.nc*ratio/(d.nc*ratio+d.nb)
			if sd := math.Sqrt(t * p * (1 - p)); sd > 0 && math.Abs(d.xc-t*p) > burstZ*sd {
				out2 = append(out2, d)
				continue
			}
			next = append(next, d)
		}
		if len(out2) > 0 && len(out2) <= len(kept)/2 {
			for _, d := range out2 {
				out.left = out.left.plus(d)
				out.nBursts++
			}
			kept = next
		}
	}
	out.phi = dispersion(kept)
	return out
}

// burstZ is how far from the fitted share an interval's canary events must be to count
// as a burst.
const burstZ = 3

// fitRatio is the ratio of the canary's event rate to the baseline's over the intervals
// (1 without events on a side).
func fitRatio(strata []rateLook) float64 {
	s := total(strata)
	if s.xb <= 0 || s.xc <= 0 {
		return 1
	}
	return (s.xc / s.nc) / (s.xb / s.nb)
}

// dispersion is the sum of the squared deviations of the canary's per-interval event
// counts from their expectation under the fitted rate ratio, over the sum of their
// binomial variances (a sandwich estimate), at least 1.
func dispersion(strata []rateLook) float64 {
	s := total(strata)
	if len(strata) < 2 || s.xb <= 0 || s.xc <= 0 {
		return 1
	}
	ratio := fitRatio(strata)
	num, den := 0.0, 0.0
	for _, d := range strata {
		t, p := d.xb+d.xc, d.nc*ratio/(d.nc*ratio+d.nb)
		num += (d.xc - t*p) * (d.xc - t*p)
		den += t * p * (1 - p)
	}
	k := float64(len(strata))
	return math.Max(1, num/den*k/(k-1))
}

package judge

import "math"

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
// Bursts that hit both sides alike (mirrored traffic) cancel out in the shares.

// rateLook is a rate metric's cumulative counts at one look, or one interval's counts.
type rateLook struct{ xb, nb, xc, nc float64 }

func (a rateLook) plus(b rateLook) rateLook {
	return rateLook{a.xb + b.xb, a.nb + b.nb, a.xc + b.xc, a.nc + b.nc}
}

// minStrata is the fewest intervals with events needed to look for bursts.
const minStrata = 6

// bursts is what the interval history says about a rate metric's counts.
type bursts struct {
	ok      bool     // enough intervals with events to tell
	phi     float64  // overdispersion of the intervals kept (1 or more)
	left    rateLook // the events (and trials) of the burst intervals left out
	nBursts int
}

// burstCheck reads a rate metric's cumulative counts, look by look.
func burstCheck(hist []rateLook) bursts {
	out := bursts{phi: 1}
	var strata []rateLook
	prev := rateLook{}
	for _, h := range hist {
		d := rateLook{h.xb - prev.xb, h.nb - prev.nb, h.xc - prev.xc, h.nc - prev.nc}
		prev = h
		if d.xb < 0 || d.xc < 0 || d.nb <= 0 || d.nc <= 0 || d.xb+d.xc <= 0 {
			continue // no traffic, no events, or a counter reset
		}
		strata = append(strata, d)
	}
	if len(strata) < minStrata {
		return out
	}
	out.ok = true
	totals := make([]float64, len(strata))
	for i, d := range strata {
		totals[i] = d.xb + d.xc
	}
	sortFloats(totals)
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
	out.phi = dispersion(kept)
	return out
}

// dispersion is the sum of the squared deviations of the canary's per-interval event
// counts from their expectation under the fitted rate ratio, over the sum of their
// binomial variances (a sandwich estimate), at least 1.
func dispersion(strata []rateLook) float64 {
	var s rateLook
	for _, d := range strata {
		s = s.plus(d)
	}
	if len(strata) < 2 || s.xb <= 0 || s.xc <= 0 {
		return 1
	}
	ratio := (s.xc / s.nc) / (s.xb / s.nb)
	num, den := 0.0, 0.0
	for _, d := range strata {
		t, p := d.xb+d.xc, d.nc*ratio/(d.nc*ratio+d.nb)
		num += (d.xc - t*p) * (d.xc - t*p)
		den += t * p * (1 - p)
	}
	k := float64(len(strata))
	return math.Max(1, num/den*k/(k-1))
}

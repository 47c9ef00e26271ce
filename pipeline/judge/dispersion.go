package judge

import "math"

// Overdispersion of counts. The count test assumes each request fails independently.
// Real errors come in bursts (a flaky dependency, a retry storm), and a burst on one side
// alone would look like a regression. Each look adds an interval of counts on both
// sides; given an interval's total events, the canary's share is binomial if the model
// holds. Pearson's X² of those shares over the intervals, divided by its degrees of
// freedom, estimates how much more the counts vary than the model allows (φ, at least 1),
// and the test then counts every event as 1/φ of one (quasi-binomial). Bursts that hit
// both sides alike (mirrored traffic) cancel out in the shares and cost nothing.

// rateLook is a rate metric's cumulative counts at one look.
type rateLook struct{ xb, nb, xc, nc float64 }

// minStrata is the fewest intervals with events needed to estimate φ.
const minStrata = 6

// dispersion estimates φ from a rate metric's cumulative counts, look by look; ok is
// false while fewer than minStrata intervals had events (φ is then 1). φ is the
// sum of the squared deviations of the canary's per-interval event counts from their
// expectation, over the sum of their binomial variances (a sandwich estimate, so a single
// large burst weighs as much as it moves the total). The expected share comes from the
// rate ratio fitted without the intervals holding more than 3 times the median number of
// events (+3), so bursts do not pull the fit towards themselves.
func dispersion(hist []rateLook) (phi float64, ok bool) {
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
		return 1, false
	}
	ratio, ok := fitRatio(strata, nil)
	if !ok {
		return 1, true
	}
	totals := make([]float64, len(strata))
	for i, d := range strata {
		totals[i] = d.xb + d.xc
	}
	sortFloats(totals)
	limit := 3*median(totals) + 3
	if r, ok := fitRatio(strata, func(d rateLook) bool { return d.xb+d.xc <= limit }); ok {
		ratio = r
	}
	num, den := 0.0, 0.0
	for _, d := range strata {
		t, p := d.xb+d.xc, share(d, ratio)
		num += (d.xc - t*p) * (d.xc - t*p)
		den += t * p * (1 - p)
	}
	k := float64(len(strata))
	return math.Max(1, num/den*k/(k-1)), true
}

// fitRatio is the ratio of the canary's event rate to the baseline's over the strata
// keep accepts (all when nil).
func fitRatio(strata []rateLook, keep func(rateLook) bool) (float64, bool) {
	var s rateLook
	for _, d := range strata {
		if keep == nil || keep(d) {
			s = rateLook{s.xb + d.xb, s.nb + d.nb, s.xc + d.xc, s.nc + d.nc}
		}
	}
	if s.xb <= 0 || s.xc <= 0 {
		return 0, false
	}
	return (s.xc / s.nc) / (s.xb / s.nb), true
}

func share(d rateLook, ratio float64) float64 { return d.nc * ratio / (d.nc*ratio + d.nb) }

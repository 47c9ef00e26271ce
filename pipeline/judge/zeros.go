package judge

import (
	"math"

	"gonum.org/v1/gonum/stat/distuv"
)

// Mostly-zero gauges. A queue depth that is 0 in most intervals, with spikes on either
// side, has no useful ratio or difference per interval: the spikes of each side are its
// own, so a comparison of values calls the side with the latest spike worse. What such a
// gauge holds is when it is non-zero. The intervals where exactly one side is non-zero
// are discordant; consecutive discordant intervals with the same side non-zero are one
// episode (a spike lasting three intervals is one event, not three). With no change the
// canary is the non-zero side of each episode with probability 1/2, so the number of
// canary episodes out of all is binomial and the test is exact (a sign test, McNemar's
// for paired intervals). The effect is the ratio of the canary's share of non-zero
// intervals to the baseline's: an even split of episodes is an effect of 0, never
// significant.

// zeroShare is the share of intervals at or above which a gauge counts as mostly zero.
const zeroShare = 0.5

// mostlyZero reports whether at least zeroShare of both sides' interval levels are 0.
func mostlyZero(lb, lc []float64) bool {
	zeros, n := 0, 0
	for i := range lb {
		if math.IsNaN(lb[i]) || math.IsNaN(lc[i]) {
			continue
		}
		n += 2
		if lb[i] == 0 {
			zeros++
		}
		if lc[i] == 0 {
			zeros++
		}
	}
	return n > 0 && float64(zeros) >= zeroShare*float64(n)
}

// nonZero is what a mostly-zero gauge's intervals show.
type nonZero struct {
	both, onlyB, onlyC int // intervals non-zero on both sides, only the baseline, only the canary
	epB, epC           int // discordant episodes of each side
	n                  int // intervals with data on both sides
}

func countNonZero(lb, lc []float64) nonZero {
	var z nonZero
	last := 0 // side of the running episode: -1 baseline, +1 canary, 0 none
	for i := range lb {
		if math.IsNaN(lb[i]) || math.IsNaN(lc[i]) {
			continue
		}
		z.n++
		nb, nc := lb[i] != 0, lc[i] != 0
		side := 0
		switch {
		case nb && nc:
			z.both++
		case nb:
			z.onlyB++
			side = -1
		case nc:
			z.onlyC++
			side = 1
		}
		if side != 0 && side != last {
			if side > 0 {
				z.epC++
			} else {
				z.epB++
			}
		}
		last = side
	}
	return z
}

// effect is the ratio of non-zero shares minus 1, when the canary's share of the
// discordant episodes is p.
func (z nonZero) effect(p float64) float64 {
	disc := float64(z.onlyB + z.onlyC)
	num, den := float64(z.both)+disc*p, float64(z.both)+disc*(1-p)
	switch {
	case den <= 0 && num <= 0:
		return 0
	case den <= 0:
		return maxEffect
	}
	return num/den - 1
}

// interval is the effect's interval with one-sided error a at each end (Clopper-Pearson
// on the canary's share of episodes), and the point estimate.
func (z nonZero) interval(a float64) (est, lo, hi float64) {
	e := float64(z.epB + z.epC)
	if e == 0 {
		return 0, z.effect(0), z.effect(1)
	}
	x := float64(z.epC)
	pLo, pHi := 0.0, 1.0
	if x > 0 {
		pLo = distuv.Beta{Alpha: x, Beta: e - x + 1}.Quantile(a)
	}
	if x < e {
		pHi = distuv.Beta{Alpha: x + 1, Beta: e - x}.Quantile(1 - a)
	}
	return z.effect(x / e), z.effect(pLo), z.effect(pHi)
}

package judge

import (
	"math"

	"gonum.org/v1/gonum/stat/distuv"
)

// counts compares two event counts out of trials (errors out of requests) with the
// conditional binomial test, exact at any count: given x = xc + xb events in all,
// the canary's share of them is Binomial(x, p) with p = nc·R / (nc·R + nb), where R is the
// ratio of the canary's event rate to the baseline's. So 0 errors against 3 at low
// traffic is weighed as the 3 events it is, not as "0% against 0.5%". Its interval on R
// is the Clopper-Pearson interval on p, mapped to R.
type counts struct {
	xb, nb, xc, nc float64
}

func newCounts(b, c Data) counts {
	k := func(e, n float64) (float64, float64) {
		n = math.Max(0, math.Round(n))
		e = math.Min(math.Max(0, math.Round(e)), n)
		return e, n
	}
	xb, nb := k(b.Events, b.Trials)
	xc, nc := k(c.Events, c.Trials)
	return counts{xb: xb, nb: nb, xc: xc, nc: nc}
}

// interval is the rate ratio's confidence interval with one-sided error a on each side;
// the upper end is +Inf when the baseline had no events.
func (k counts) interval(a float64) (lo, hi float64) {
	x := k.xb + k.xc
	if x == 0 {
		return 0, math.Inf(1)
	}
	ratio := func(p float64) float64 {
		if p >= 1 {
			return math.Inf(1)
		}
		return p / (1 - p) * k.nb / k.nc
	}
	lo, hi = 0, math.Inf(1)
	if k.xc > 0 {
		lo = ratio(distuv.Beta{Alpha: k.xc, Beta: x - k.xc + 1}.Quantile(a))
	}
	if k.xc < x {
		hi = ratio(distuv.Beta{Alpha: k.xc + 1, Beta: x - k.xc}.Quantile(1 - a))
	}
	return lo, hi
}

// estimate is the ratio of the rates (+Inf when only the canary had events, 1 when
// neither had any).
func (k counts) estimate() float64 {
	switch {
	case k.xb == 0 && k.xc == 0:
		return 1
	case k.xb == 0:
		return math.Inf(1)
	}
	return (k.xc / k.nc) / (k.xb / k.nb)
}

package judge

import (
	"math"
	"slices"

	"gonum.org/v1/gonum/stat/distuv"
)

// A value metric's evidence is one point per interval with data on both sides: d, the
// interval's canary-vs-baseline difference on the model scale (a log ratio, or a
// difference relative to the baseline's level), and v, the sampling variance of d that
// the interval's own data show (0 for one value per side).
//
// Two hosts on the same release do not give d = 0: the model is
//
//	d_i = effect + offset + drift_i + noise_i + sampling_i
//
// with offset constant over the window (sd Allowance.Offset), drift an AR(1) process
// across intervals (sd Drift, correlation DriftCorr), noise independent per interval
// (sd Noise) and sampling independent with variance v_i. The effect is estimated by a
// Huber M-estimate (residuals beyond huberK standard deviations count as that far: a
// burst on one side is one large residual, not a regression), and its variance is the
// sum of the parts for the weights used. The excess variance (noise and drift) is the
// calibrated allowance pooled with what the window's residuals show, each with its
// degrees of freedom; the interval uses Student's t with the Satterthwaite degrees of
// freedom of the whole.
type point struct{ d, v float64 }

// estimate is a combined effect on the model scale.
type estimate struct {
	est, se float64
	df      float64 // degrees of freedom of se (+Inf: known)
	k       int     // intervals used
	bursts  int     // intervals left out as bursts
	excess  float64 // the excess variance used
}

const (
	huberK = 2.0
	// defaultDriftCorr is the interval-to-interval correlation assumed for the excess
	// variance when no allowance was calibrated: cautious, since a window alone cannot
	// tell drift from noise.
	defaultDriftCorr = 0.5
	// priorDFPerWindow weighs a calibrated allowance: each A/A window counts as this many
	// degrees of freedom (30 intervals of AR(1) residuals carry about 5).
	priorDFPerWindow = 5
	maxPriorDF       = 200
)

// burstK is how many standard deviations from the bulk an interval must be to be left
// out as a burst.
const burstK = 4.0

// combine estimates the effect from a metric's points, leaving out bursts first. A
// one-sided burst of latency or errors is nothing like the drift: it puts a few
// intervals far from the rest, where a regression moves every interval. The bulk is
// found with a scale the bursts cannot inflate: the calibrated allowance (or, without
// one, the median absolute deviation), and a Huber estimate at that fixed scale started
// from the median of the shortest half of the points (the tight cluster of ordinary
// intervals, where the median of a window half bursts would sit between the two), which
// bursts then move by at most huberK standard deviations; each interval weighs in by
// its inverse variance, so a few intervals of little data cannot pull the bulk off the
// intervals of much. An interval
// more than burstK standard deviations from it is left out, unless more than half would
// be, and the estimate is made again from the rest.
func combine(ps []point, a Allowance) estimate {
	if len(ps) < 4 {
		return combineAll(ps, a)
	}
	ds := make([]float64, len(ps))
	meanV := 0.0
	for i, p := range ps {
		ds[i] = p.d
		meanV += p.v / float64(len(ps))
	}
	slices.Sort(ds)
	center := shorth(ds)
	excess := a.Noise*a.Noise + a.Drift*a.Drift
	if a.Windows == 0 || excess == 0 {
		dev := make([]float64, len(ps))
		for i, p := range ps {
			dev[i] = math.Abs(p.d - center)
		}
		slices.Sort(dev)
		mad := 1.4826 * median(dev)
		excess = math.Max(excess, mad*mad-meanV)
	}
	w := make([]float64, len(ps))
	setWeights(w, ps, excess)
	for range 20 { // Huber at a fixed scale, from the shortest half
		num, den := 0.0, 0.0
		for i, p := range ps {
			sd := math.Sqrt(p.v + excess)
			num += w[i] * clamp(p.d-center, huberK*sd)
			den += w[i]
		}
		center += num / den
	}
	kept := make([]point, 0, len(ps))
	for _, p := range ps {
		if math.Abs(p.d-center) <= burstK*math.Sqrt(p.v+excess) {
			kept = append(kept, p)
		}
	}
	n := len(ps) - len(kept)
	if n == 0 || 2*n >= len(ps) {
		return combineAll(ps, a)
	}
	e := combineAll(kept, a)
	e.bursts = n
	return e
}

// shorth is the median of the shortest half of sorted values.
func shorth(ds []float64) float64 {
	h := (len(ds) + 1) / 2
	best := 0
	for i := 0; i+h <= len(ds); i++ {
		if ds[i+h-1]-ds[i] < ds[best+h-1]-ds[best] {
			best = i
		}
	}
	return median(ds[best : best+h])
}

// combineAll estimates the effect from all the points.
func combineAll(ps []point, a Allowance) estimate {
	k := len(ps)
	if k == 0 {
		return estimate{}
	}
	w2, t2, phi := a.Noise*a.Noise, a.Drift*a.Drift, a.DriftCorr
	prior := w2 + t2
	nu0 := 0.0
	if a.Windows > 0 { // calibrated, if only to "nothing beyond sampling"
		nu0 = math.Min(maxPriorDF, float64(priorDFPerWindow*a.Windows))
	}
	fw, ft := 0.0, 1.0 // shares of the excess variance: noise, drift
	switch {
	case prior > 0:
		fw, ft = w2/prior, t2/prior
	case a.Windows > 0:
		fw, ft = 1, 0
	default:
		phi = defaultDriftCorr
	}
	rho1 := ft * phi
	meanV := 0.0
	ds := make([]float64, k)
	for i, p := range ps {
		meanV += p.v / float64(k)
		ds[i] = p.d
	}
	slices.Sort(ds)
	est := median(ds)
	// The residuals' sum of squares under the model is (k - corrSum/k) times the excess
	// variance, corrSum the sum of the correlations over all pairs of intervals.
	corrSum := arSum(ones(k), phi)*ft + float64(k)*fw
	dof := float64(k) - corrSum/float64(k)
	excess, nuK := prior, 0.0
	if k >= 2 && dof > 0 { // start from the residuals' median absolute deviation
		dev := make([]float64, k)
		for i, p := range ps {
			dev[i] = math.Abs(p.d - est)
		}
		slices.Sort(dev)
		mad := 1.4826 * median(dev)
		nuK = math.Max(1, float64(k-1)*(1-rho1)/(1+rho1))
		s2 := math.Max(0, mad*mad*float64(k-1)/dof-meanV)
		excess = (nu0*prior + nuK*s2) / (nu0 + nuK)
	}
	weights := make([]float64, k)
	s2 := 0.0
	for range 4 {
		setWeights(weights, ps, excess)
		W, move := 0.0, 0.0
		var ss, inside float64
		for i, p := range ps {
			s := math.Sqrt(p.v + excess)
			r := p.d - est
			c := r
			if s > 0 {
				c = math.Max(-huberK*s, math.Min(huberK*s, r))
			}
			if c == r {
				inside++
			}
			W += weights[i]
			move += weights[i] * c
			ss += c * c
		}
		est += move / W
		if k >= 2 && dof > 0 {
			frac := math.Max(inside/float64(k), 0.5)
			s2 = math.Max(0, ss/dof/(frac*frac)-meanV)
			nuK = math.Max(1, float64(k-1)*(1-rho1)/(1+rho1))
			excess = (nu0*prior + nuK*s2) / (nu0 + nuK)
		}
	}
	if nu0 > 0 && k >= 3 && !homogeneous(ps, est, prior, dof) {
		// The intervals disagree more than the allowance lets them: bursts the step
		// before could not tell apart, or a host noisier than the calibrated ones. The
		// window's own variance decides, with its own few degrees of freedom.
		nu0, excess = 0, math.Max(excess, s2)
		setWeights(weights, ps, excess)
	}
	W := 0.0
	for _, w := range weights {
		W += w
	}
	var vs, vn float64
	for i, p := range ps {
		vs += weights[i] * weights[i] * p.v
		vn += weights[i] * weights[i] * excess * fw
	}
	vd := excess * ft * arSum(weights, phi)
	vs, ve := vs/(W*W), (vn+vd)/(W*W)
	vo := a.Offset * a.Offset
	v := vs + ve + vo
	df := math.Inf(1)
	if nu := nu0 + nuK; ve > 0 {
		if nu == 0 {
			df = 0
		} else {
			df = v * v / (ve * ve / nu)
		}
	} else if k < 2 && vs == 0 {
		df = 0 // one interval of single values: nothing to go by
	}
	return estimate{est: est, se: math.Sqrt(v), df: df, k: k, excess: excess}
}

// homogeneous tests whether the points scatter around est as the allowance says: the sum
// of their squared standardized residuals against the 99th percentile of χ² with df
// degrees of freedom.
func homogeneous(ps []point, est, excess, df float64) bool {
	q := 0.0
	for _, p := range ps {
		r := p.d - est
		if v := p.v + excess; v > 0 {
			q += r * r / v
		}
	}
	return q <= distuv.ChiSquared{K: math.Max(1, df)}.Quantile(0.99)
}

// setWeights gives each interval the weight 1/(its variance), scaled to at most 1 (equal
// weights when no interval has any variance).
func setWeights(w []float64, ps []point, excess float64) {
	lo := math.Inf(1)
	for _, p := range ps {
		lo = math.Min(lo, p.v+excess)
	}
	for i, p := range ps {
		if lo <= 0 {
			w[i] = 1
			if p.v+excess > 0 {
				w[i] = 0 // an interval with variance beside exact ones adds nothing
			}
			continue
		}
		w[i] = lo / (p.v + excess)
	}
}

// arSum is Σ_i Σ_j w_i w_j φ^|i-j|, in linear time.
func arSum(w []float64, phi float64) float64 {
	sum, f := 0.0, 0.0
	back := make([]float64, len(w))
	b := 0.0
	for i := len(w) - 1; i >= 0; i-- {
		b = w[i] + phi*b
		back[i] = b
	}
	for i, x := range w {
		f = x + phi*f
		sum += x * (f + back[i] - x)
	}
	return sum
}

func ones(k int) []float64 {
	w := make([]float64, k)
	for i := range w {
		w[i] = 1
	}
	return w
}

// critical is the critical value of a one-sided test of level a with df degrees of
// freedom (+Inf when df is 0: nothing can be concluded).
func critical(a, df float64) float64 {
	switch {
	case df <= 0 || a <= 0:
		return math.Inf(1)
	case math.IsInf(df, 1) || df > 1e4:
		return distuv.UnitNormal.Quantile(1 - a)
	}
	return distuv.StudentsT{Mu: 0, Sigma: 1, Nu: df}.Quantile(1 - a)
}

// median returns the median of a sorted sample.
func median(xs []float64) float64 {
	n := len(xs)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}

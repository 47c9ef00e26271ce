package main

import (
	"math"
	"math/rand/v2"
	"slices"

	"gonum.org/v1/gonum/stat/distuv"

	"github.com/immunity-app/immunity/pipeline/judge"
)

// The corpus: windows of 30 intervals of 10 s (5 minutes), 10 metrics per comparison,
// with a known truth. Each interval, each side (baseline = the production host, canary
// = the host under test receiving a mirrored copy of its traffic) gets:
//
//	requests  Poisson(rps · 10 · load), load shared by both sides (mirrored traffic)
//	errors    Binomial(requests, errorRate · errorFactor) for error_rate, 0.05% for timeouts
//	latency   per request lognormal(median 80 ms · congestion, σ 0.6); the interval's mean
//	          and p99 are the latency metrics (as a source computes them from a histogram)
//	gauges    cpu (∝ load), memory, goroutines, gc pause, response size, upstream latency
//
// Shapes: steady (only sampling noise); noisy (each side alone: 10% interval-to-interval
// noise on every metric, 2% of intervals an outlier ×3, 3% of intervals a burst of errors
// on that side only); bursty (shared load bursts ×2-4 for 1-3 intervals that raise latency
// ×1.3 and errors ×3 on both sides).

const (
	intervals   = 30
	intervalSec = 10
	baseLatency = 0.080
	latencySig  = 0.6
)

// metrics is the comparison's configuration, the same for both judges.
var metrics = []judge.Metric{
	{Name: "error_rate", Kind: judge.Rate, Direction: judge.Increase, AllowedEffect: 0.2, Critical: true},
	{Name: "latency_mean", Kind: judge.Latency, Direction: judge.Increase, AllowedEffect: 0.1, Critical: true, Unit: "s"},
	{Name: "latency_p99", Kind: judge.Latency, Direction: judge.Increase, AllowedEffect: 0.25, Unit: "s"},
	{Name: "timeout_rate", Kind: judge.Rate, Direction: judge.Increase, AllowedEffect: 0.5},
	{Name: "cpu", Kind: judge.Gauge, Direction: judge.Either, AllowedEffect: 0.3},
	{Name: "memory", Kind: judge.Gauge, Direction: judge.Increase, AllowedEffect: 0.2, Unit: "bytes"},
	{Name: "goroutines", Kind: judge.Gauge, Direction: judge.Increase, AllowedEffect: 0.3},
	{Name: "gc_pause", Kind: judge.Latency, Direction: judge.Increase, AllowedEffect: 0.5, Unit: "s"},
	{Name: "upstream_latency", Kind: judge.Latency, Direction: judge.Increase, AllowedEffect: 0.2, Unit: "s"},
	{Name: "response_bytes", Kind: judge.Gauge, Direction: judge.Either, AllowedEffect: 0.2, Unit: "bytes"},
}

type shape string

const (
	steady shape = "steady"
	noisy  shape = "noisy"
	bursty shape = "bursty"
)

// cell is one kind of comparison: its traffic, shape and the canary's true change.
type cell struct {
	truth     string  // "A/A", "latency", "errors"
	factor    float64 // the canary's latency or error-rate multiplier
	rps       float64
	errorRate float64 // the baseline's error rate
	shape     shape
}

// interval is one side's measurements of one interval.
type interval struct {
	trials, errors, timeouts float64
	values                   map[string]float64 // per-interval value of each value metric
}

// window generates both sides' 30 intervals.
func (c cell) window(rng *rand.Rand) (base, can []interval) {
	latF, errF := 1.0, 1.0
	switch c.truth {
	case "latency":
		latF = c.factor
	case "errors":
		errF = c.factor
	}
	load, congestion, errBurst := c.shared(rng)
	for k := range intervals {
		base = append(base, c.side(rng, load[k], congestion[k], errBurst[k], 1, 1))
		can = append(can, c.side(rng, load[k], congestion[k], errBurst[k], latF, errF))
	}
	return base, can
}

// shared is what mirrored traffic gives both sides alike: load, congestion, error bursts.
func (c cell) shared(rng *rand.Rand) (load, congestion, errBurst []float64) {
	load, congestion, errBurst = make([]float64, intervals), make([]float64, intervals), make([]float64, intervals)
	for k := range intervals {
		load[k], congestion[k], errBurst[k] = 1, 1, 1
	}
	if c.shape != bursty {
		return
	}
	for k := 0; k < intervals; k++ {
		if rng.Float64() >= 0.1 {
			continue
		}
		l := 2 + 2*rng.Float64()
		for d := range 1 + rng.IntN(3) {
			if k+d < intervals {
				load[k+d], congestion[k+d], errBurst[k+d] = l, 1.3, 3
			}
		}
	}
	return
}

func (c cell) side(rng *rand.Rand, load, congestion, errBurst, latF, errF float64) interval {
	noise := func() float64 { return 1 }
	if c.shape == noisy {
		noise = func() float64 {
			f := math.Exp(0.10 * rng.NormFloat64())
			if rng.Float64() < 0.02 {
				f *= 3
			}
			return f
		}
	}
	n := poisson(rng, c.rps*intervalSec*load)
	iv := interval{trials: n, values: map[string]float64{}}
	iv.errors = binomial(rng, n, math.Min(1, c.errorRate*errF*errBurst))
	if c.shape == noisy && rng.Float64() < 0.03 {
		iv.errors = math.Min(n, iv.errors+poisson(rng, 2+0.02*n)) // a flaky dependency, this side only
	}
	iv.timeouts = binomial(rng, n, 0.0005*errBurst)
	med := baseLatency * congestion * latF * noise()
	iv.values["latency_mean"], iv.values["latency_p99"] = latencyStats(rng, int(n), med)
	iv.values["cpu"] = 0.2 * load * noise() * (1 + 0.05*rng.NormFloat64())
	iv.values["memory"] = 300e6 * noise() * (1 + 0.02*rng.NormFloat64())
	iv.values["goroutines"] = math.Round(50 * load * noise() * (1 + 0.1*rng.NormFloat64()))
	iv.values["gc_pause"] = 0.002 * noise() * math.Exp(0.3*rng.NormFloat64())
	iv.values["upstream_latency"] = 0.030 * congestion * noise() * math.Exp(0.2*rng.NormFloat64())
	iv.values["response_bytes"] = 4096 * noise() * (1 + 0.05*rng.NormFloat64())
	for k, v := range iv.values {
		if math.IsNaN(v) {
			delete(iv.values, k) // an interval without requests has no latency
		}
	}
	return iv
}

// latencyStats is the mean and p99 of n request latencies: simulated request by request
// at low traffic; above 200 requests from their sampling distributions (the mean's is
// normal by the central limit theorem, the p99's normal with variance p(1-p)/(n f(q)²)).
func latencyStats(rng *rand.Rand, n int, median float64) (mean, p99 float64) {
	if n == 0 {
		return math.NaN(), math.NaN()
	}
	ln := distuv.LogNormal{Mu: math.Log(median), Sigma: latencySig}
	if n <= 200 {
		xs := make([]float64, n)
		for i := range xs {
			xs[i] = median * math.Exp(latencySig*rng.NormFloat64())
			mean += xs[i]
		}
		slices.Sort(xs)
		return mean / float64(n), xs[min(n-1, int(math.Ceil(0.99*float64(n)))-1)]
	}
	mean = ln.Mean() + ln.StdDev()/math.Sqrt(float64(n))*rng.NormFloat64()
	q := ln.Quantile(0.99)
	sd := math.Sqrt(0.99*0.01/float64(n)) / ln.Prob(q)
	return mean, q + sd*rng.NormFloat64()
}

func poisson(rng *rand.Rand, l float64) float64 {
	if l <= 0 {
		return 0
	}
	return distuv.Poisson{Lambda: l, Src: rng}.Rand()
}

func binomial(rng *rand.Rand, n, p float64) float64 {
	if n <= 0 || p <= 0 {
		return 0
	}
	return distuv.Binomial{N: n, P: p, Src: rng}.Rand()
}

// input is the judge's cumulative input after k intervals: counts summed, one value per
// interval for value metrics.
func input(base, can []interval, k int) judge.Input {
	return judge.Input{Baseline: cumulative(base[:k]), Canary: cumulative(can[:k])}
}

func cumulative(ivs []interval) map[string]judge.Data {
	out := map[string]judge.Data{}
	var e, t, to float64
	for _, iv := range ivs {
		e, t, to = e+iv.errors, t+iv.trials, to+iv.timeouts
		for name, v := range iv.values {
			d := out[name]
			d.Values = append(d.Values, v)
			out[name] = d
		}
	}
	out["error_rate"] = judge.Data{Events: e, Trials: t}
	out["timeout_rate"] = judge.Data{Events: to, Trials: t}
	return out
}

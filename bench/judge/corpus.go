package main

import (
	"math"
	"math/rand/v2"
	"slices"

	"gonum.org/v1/gonum/stat/distuv"

	"github.com/immunity-app/immunity/pipeline/judge"
)

// The corpus: windows of 30 intervals of 10 s (5 minutes), 10 metrics per comparison,
// shaped like production metrics. The baseline is a production host, the canary the host
// under test; both see the same traffic pattern and the same warm-up, and each has its
// own slow drift and its own bursts:
//
//	shared     load_i = (1 + 0.3·sin(2πi/30 + u))·(1 + 0.05·AR(1)), warm-up w_i = 1 + 0.5·e^(-i/3)
//	drift      per side and metric, AR(1) across intervals, φ = 0.7, stationary sd 1% of the
//	           level (multiplicative; for the cache, of its miss ratio)
//	bursts     per side, an interval starts one with probability 2%, lasting 1-2 intervals:
//	           latency ×1.5-3, cpu ×1.3, +Poisson(2 + 2% of requests) errors, a queue spike
//	requests   Poisson(rps·10·load) per side (gauge: count per interval)
//	error_rate Binomial(requests, p·drift·factor), p = 0.1% or 1%
//	timeouts   Binomial(requests, 0.05%·drift)
//	latency    per request lognormal(median 80 ms·w_i·(1 + 0.2(load-1))·drift·e^(N(0, 0.03))·burst,
//	           σ 0.6): the per-interval multiplicative noise is each side's own
//	p99        the interval's 99th percentile of those requests (a quantile gauge)
//	cpu        0.2·load·drift·e^(N(0, 0.03))·burst
//	memory     300 MB·(1 + offset)·drift·(1 + heap), offset ~ N(0, 0.5%) per side and window,
//	           heap uniform in [0, 10%) per interval and side (collections)
//	queue      0, except in a spike (per side, 3% of intervals, 1-3 intervals long, and in
//	           bursts): 1 + Poisson(4)
//	cache_hit  hits of requests, hit ratio 1 - miss, miss = 10%·w_i²·drift (+ the regression);
//	           our judge gets the counts, hits of requests, as a share gauge (with -cache-ratio
//	           the ratio alone); Kayenta the ratio
//	db_queries mean of Poisson(3·drift) queries over the interval's requests
//
// Regressions change the canary only, for the whole window: latency ×1.05 to ×1.5, the
// error rate ×1.5 to ×10, the cache's hit ratio -1 to -10 points.

const (
	intervals   = 30
	intervalSec = 10
	baseLatency = 0.080
	latencySig  = 0.6
	driftPhi    = 0.7
	driftSD     = 0.01
)

// metrics is the comparison's configuration, the same for both judges.
var metrics = []judge.Metric{
	{Name: "requests", Kind: judge.Gauge, Direction: judge.Either, AllowedEffect: 0.2, Unit: "req"},
	{Name: "error_rate", Kind: judge.Rate, Direction: judge.Increase, AllowedEffect: 0.2, Critical: true},
	{Name: "timeout_rate", Kind: judge.Rate, Direction: judge.Increase, AllowedEffect: 0.5},
	{Name: "latency", Kind: judge.Latency, Direction: judge.Increase, AllowedEffect: 0.02, Critical: true, Unit: "s"},
	{Name: "latency_p99", Kind: judge.Latency, Direction: judge.Increase, AllowedEffect: 0.05, Unit: "s"},
	{Name: "cpu", Kind: judge.Gauge, Direction: judge.Increase, AllowedEffect: 0.1},
	{Name: "memory", Kind: judge.Gauge, Direction: judge.Increase, AllowedEffect: 0.2, Unit: "bytes"},
	{Name: "queue_depth", Kind: judge.Gauge, Direction: judge.Increase, AllowedEffect: 0.5},
	{Name: "cache_hit", Kind: judge.Gauge, Direction: judge.Decrease, AllowedEffect: 0.005, Critical: true},
	{Name: "db_queries", Kind: judge.Gauge, Direction: judge.Increase, AllowedEffect: 0.1},
}

// cell is one kind of comparison: its traffic and the canary's true change.
type cell struct {
	truth     string  // "A/A", "latency", "errors", "cache"
	factor    float64 // latency or error-rate multiplier, or the cache-hit drop in points
	rps       float64
	errorRate float64 // the baseline's error rate
}

// sample is one side's measurements of one interval.
type sample struct {
	requests, errors, timeouts float64
	hits                       float64   // cache hits of the requests
	latencies                  []float64 // per request
	values                     map[string]float64
}

// window generates both sides' 30 intervals.
func (c cell) window(rng *rand.Rand) (base, can []sample) {
	load, warm := shared(rng)
	bs, cs := newSide(rng), newSide(rng)
	latF, errF, cacheDrop := 1.0, 1.0, 0.0
	switch c.truth {
	case "latency":
		latF = c.factor
	case "errors":
		errF = c.factor
	case "cache":
		cacheDrop = c.factor / 100
	}
	for k := range intervals {
		base = append(base, bs.interval(rng, c, load[k], warm[k], 1, 1, 0))
		can = append(can, cs.interval(rng, c, load[k], warm[k], latF, errF, cacheDrop))
	}
	return base, can
}

// shared is what both sides see alike: the traffic pattern and the warm-up.
func shared(rng *rand.Rand) (load, warm []float64) {
	u := 2 * math.Pi * rng.Float64()
	ar := 0.0
	for k := range intervals {
		ar = 0.7*ar + math.Sqrt(1-0.49)*rng.NormFloat64()
		load = append(load, (1+0.3*math.Sin(2*math.Pi*float64(k)/intervals+u))*(1+0.05*ar))
		warm = append(warm, 1+0.5*math.Exp(-float64(k)/3))
	}
	return load, warm
}

// side is one host's own state: its drift per metric, its memory offset, its bursts.
type side struct {
	drift  map[string]float64 // AR(1) state, in sd units
	offset float64
	burst  int // intervals left in the current burst
	spike  int // intervals left in the current queue spike
	factor float64
}

var drifting = []string{"error_rate", "timeouts", "latency", "cpu", "memory", "cache_miss", "db_queries"}

func newSide(rng *rand.Rand) *side {
	s := &side{drift: map[string]float64{}, offset: 0.005 * rng.NormFloat64()}
	for _, m := range drifting {
		s.drift[m] = rng.NormFloat64() // stationary start
	}
	return s
}

// step moves every drift one interval and returns each metric's multiplier.
func (s *side) step(rng *rand.Rand) map[string]float64 {
	f := map[string]float64{}
	for _, m := range drifting {
		s.drift[m] = driftPhi*s.drift[m] + math.Sqrt(1-driftPhi*driftPhi)*rng.NormFloat64()
		f[m] = math.Exp(driftSD * s.drift[m])
	}
	return f
}

func (s *side) interval(rng *rand.Rand, c cell, load, warm, latF, errF, cacheDrop float64) sample {
	f := s.step(rng)
	if s.burst == 0 && rng.Float64() < 0.02 {
		s.burst, s.factor = 1+rng.IntN(2), 1.5+1.5*rng.Float64()
	}
	bursting := s.burst > 0
	if bursting {
		s.burst--
	}
	if s.spike == 0 && (rng.Float64() < 0.03 || bursting) {
		s.spike = 1 + rng.IntN(3)
	}
	queue := 0.0
	if s.spike > 0 {
		s.spike--
		queue = 1 + poisson(rng, 4)
	}
	n := poisson(rng, c.rps*intervalSec*load)
	out := sample{requests: n, values: map[string]float64{"requests": n, "queue_depth": queue}}
	out.errors = binomial(rng, n, math.Min(1, c.errorRate*f["error_rate"]*errF))
	out.timeouts = binomial(rng, n, 0.0005*f["timeouts"])
	lat := baseLatency * warm * (1 + 0.2*(load-1)) * f["latency"] * math.Exp(0.03*rng.NormFloat64()) * latF
	cpu := 0.2 * load * f["cpu"] * math.Exp(0.03*rng.NormFloat64())
	if bursting {
		lat *= s.factor
		cpu *= 1.3
		out.errors = math.Min(n, out.errors+poisson(rng, 2+0.02*n))
	}
	out.latencies = make([]float64, int(n))
	for i := range out.latencies {
		out.latencies[i] = lat * math.Exp(latencySig*rng.NormFloat64())
	}
	out.values["cpu"] = cpu
	out.values["memory"] = 300e6 * (1 + s.offset) * f["memory"] * (1 + 0.1*rng.Float64())
	if n > 0 {
		sorted := slices.Clone(out.latencies)
		slices.Sort(sorted)
		out.values["latency_p99"] = sorted[min(len(sorted)-1, int(math.Ceil(0.99*n))-1)]
		miss := math.Min(1, 0.10*warm*warm*f["cache_miss"]+cacheDrop)
		out.hits = binomial(rng, n, 1-miss)
		out.values["cache_hit"] = out.hits / n
		out.values["db_queries"] = poisson(rng, 3*n*f["db_queries"]) / n
	}
	return out
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
	if p >= 1 {
		return n
	}
	return distuv.Binomial{N: n, P: p, Src: rng}.Rand()
}

// input is what a metric source gives the judge for interval k: counts for rates, the
// requests' latencies, one value per gauge.
func input(base, can []sample, k int) judge.Input {
	return judge.Input{Baseline: data(base[k]), Canary: data(can[k])}
}

func data(s sample) map[string]judge.Data {
	out := map[string]judge.Data{
		"error_rate":   {Events: s.errors, Trials: s.requests},
		"timeout_rate": {Events: s.timeouts, Trials: s.requests},
		"latency":      {Values: s.latencies, PerRequest: true},
	}
	for name, v := range s.values {
		out[name] = judge.Data{Values: []float64{v}}
	}
	if !*cacheRatio {
		out["cache_hit"] = judge.Data{Events: s.hits, Trials: s.requests}
	}
	return out
}

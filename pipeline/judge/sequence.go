package judge

import (
	"fmt"
	"math"
	"runtime"
	"sync"
)

// Options tune the judge. Zero values take the defaults shown.
type Options struct {
	// Alpha is the overall false-alarm rate allowed across every metric and every look of
	// a window (default 0.01). It is split over the metrics (weighted Bonferroni: a
	// critical metric gets 4 shares, another 1; an "either" metric splits its share over
	// both directions).
	Alpha float64
	// Looks is how many looks the window is planned to have, the final one included
	// (Period / Interval). 0: only the final look may fail the canary.
	Looks int
	// Spending is how alpha is spent over the looks (default Balanced).
	Spending Spending
	// MinIntervals is the fewest intervals with data on both sides before a metric may
	// be flagged before the final look (default 8: two bursts of two intervals on one
	// side must not outvote the rest).
	MinIntervals int
	// MaxErrors is how many looks in a row a metric's measurement may fail before the
	// verdict is Error (default 3).
	MaxErrors int
}

func (o Options) withDefaults() Options {
	if o.Alpha <= 0 || o.Alpha >= 1 {
		o.Alpha = 0.01
	}
	if o.Spending == "" {
		o.Spending = Balanced
	}
	if o.MinIntervals <= 0 {
		o.MinIntervals = 8
	}
	if o.MaxErrors <= 0 {
		o.MaxErrors = 3
	}
	return o
}

// Judge judges a whole window of intervals at once, as a final verdict.
func Judge(ms []Metric, intervals []Input, o Options) Verdict {
	s := NewSequence(ms, o)
	s.addAll(intervals[:max(0, len(intervals)-1)])
	last := Input{}
	if len(intervals) > 0 {
		last = intervals[len(intervals)-1]
	}
	return s.Look(last, true)
}

// Sequence judges a window look by look. Each Look brings the interval just measured; a
// Fail (or Error) before the final look stops the window early (Verdict.Stop).
type Sequence struct {
	metrics []Metric
	opts    Options
	look    int
	bounds  map[float64]*boundary // by one-sided level
	errRun  []int                 // failed measurements in a row, per metric
	last    []*MetricResult       // last result from a good measurement, per metric
	hist    []history             // each metric's intervals so far
	room    sync.Pool             // *scratch to rank intervals in, one per goroutine at a time
}

// history is what a metric's good intervals showed.
type history struct {
	requests   []interval // per-request samples: each interval's ranks
	levB, levC []float64  // one level per interval and side (mean of the values; NaN: none)
	shares     []counts   // per interval, a share's counts (zero when given as values)
	nb, nc     int        // samples on each side
	rates      []rateLook // a rate's counts per interval
	perRequest bool       // some interval had per-request samples
	medB, medC []float64  // per-request: each interval's median, for the explanation
}

// NewSequence starts a window.
func NewSequence(ms []Metric, o Options) *Sequence {
	return &Sequence{
		metrics: ms,
		opts:    o.withDefaults(),
		bounds:  map[float64]*boundary{},
		errRun:  make([]int, len(ms)),
		last:    make([]*MetricResult, len(ms)),
		hist:    make([]history, len(ms)),
	}
}

// Look adds the interval just measured and judges the window so far.
func (s *Sequence) Look(in Input, final bool) Verdict {
	s.add(in)
	s.look++
	levels := s.levels(final)
	results := make([]MetricResult, len(s.metrics))
	for i, m := range s.metrics {
		b, c := in.Baseline[m.Name], in.Canary[m.Name]
		if b.Err != "" || c.Err != "" {
			results[i] = s.measurementError(i, m, b, c)
			continue
		}
		s.errRun[i] = 0
		results[i] = s.judgeOne(i, levels, final)
		r := results[i]
		s.last[i] = &r
	}
	v := aggregate(results, final)
	v.Final, v.Look, v.Looks = final, s.look, s.opts.Looks
	return v
}

// add keeps the interval's good measurements.
func (s *Sequence) add(in Input) {
	s.each(size(s.metrics, in), func(i int) { s.addOne(i, in) })
}

// addAll keeps the good measurements of intervals, in order: each metric's intervals
// are ranked by one goroutine, so the cores wait for each other once, not at every
// interval.
func (s *Sequence) addAll(intervals []Input) {
	total := 0
	for _, in := range intervals {
		total += size(s.metrics, in)
	}
	s.each(total, func(i int) {
		for _, in := range intervals {
			s.addOne(i, in)
		}
	})
}

// addOne keeps metric i's good measurements of an interval.
func (s *Sequence) addOne(i int, in Input) {
	m := s.metrics[i]
	b, c := in.Baseline[m.Name], in.Canary[m.Name]
	if b.Err != "" || c.Err != "" {
		return
	}
	h := &s.hist[i]
	if m.Kind == Rate {
		k := newCounts(b, c)
		h.rates = append(h.rates, rateLook(k))
		return
	}
	if b.PerRequest || c.PerRequest {
		h.perRequest = true
		sc, _ := s.room.Get().(*scratch)
		if sc == nil {
			sc = new(scratch)
		}
		iv := requestInterval(b.Values, c.Values, sc)
		s.room.Put(sc)
		h.nb, h.nc = h.nb+iv.nb, h.nc+iv.nc
		if iv.ok {
			h.requests = append(h.requests, iv)
			h.medB, h.medC = append(h.medB, iv.medB), append(h.medC, iv.medC)
		}
		return
	}
	lb, lc := levelOf(b.Values), levelOf(c.Values)
	nb, nc := len(b.Values), len(c.Values)
	var k counts
	if isShare(b, c) {
		k = newCounts(b, c)
		lb, lc = k.xb/k.nb, k.xc/k.nc // NaN without trials
		nb, nc = int(k.nb), int(k.nc)
	}
	h.nb, h.nc = h.nb+nb, h.nc+nc
	h.levB, h.levC = append(h.levB, lb), append(h.levC, lc)
	h.shares = append(h.shares, k)
}

// isShare tells whether a gauge's interval is given as counts (hits out of requests, no
// values): its level is then the share Events/Trials, whose sampling variance the
// counts tell (pairLevels).
func isShare(b, c Data) bool {
	return len(b.Values) == 0 && len(c.Values) == 0 && (b.Trials > 0 || c.Trials > 0)
}

// levelOf is an interval's value on one side: the mean of its finite values (NaN: none).
func levelOf(xs []float64) float64 {
	sum, n := 0.0, 0
	for _, x := range xs {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			sum += x
			n++
		}
	}
	if n == 0 {
		return math.NaN()
	}
	return sum / float64(n)
}

// judgeOne classifies metric i on this look (a failed measurement is handled in Look).
func (s *Sequence) judgeOne(i int, levels map[float64]level, final bool) MetricResult {
	m := s.metrics[i]
	lv := levels[s.level(m)]
	h := &s.hist[i]
	if m.Kind == Rate {
		bs := burstCheck(h.rates)
		switch {
		case final || lv.decide == 0:
		case len(h.rates) < s.opts.MinIntervals:
			lv.decide = 0
			lv.wait = fmt.Sprintf("fewer than %d intervals yet", s.opts.MinIntervals)
		case !bs.ok:
			lv.decide = 0
			lv.wait = fmt.Sprintf("fewer than %d intervals with events yet, too few to tell a burst from a regression", minStrata)
		}
		return classifyCounts(m, counts(total(h.rates)), lv, bs)
	}
	return classifyValues(m, h, lv, s.opts)
}

// criticalWeight is how many shares of alpha a critical metric gets against one for
// another metric: a critical metric fails the canary alone, so it gets more power.
const criticalWeight = 4

// level is a metric's one-sided share of alpha (weighted Bonferroni).
func (s *Sequence) level(m Metric) float64 {
	total := 0.0
	for _, x := range s.metrics {
		total += weight(x)
	}
	a := s.opts.Alpha * weight(m) / total
	if m.Direction == Either {
		a /= 2
	}
	return a
}

func weight(m Metric) float64 {
	if m.Critical {
		return criticalWeight
	}
	return 1
}

// levels advances every level's boundary by this look and returns what the look may
// conclude at each.
func (s *Sequence) levels(final bool) map[float64]level {
	// Looks before MinIntervals cannot flag a metric, so they spend nothing: the plan's
	// spending runs from the first look that can decide to the last, and what the early
	// looks would have wasted stays for the looks that can use it. Information time (the
	// correlation of the looks) is still the share of the window seen.
	k, K := float64(s.look), float64(s.opts.Looks)
	first := float64(s.opts.MinIntervals)
	tau, spend := k/max(K, 1), 0.0
	switch {
	case final:
		spend = 1
	case K > first && k >= first:
		spend = (min(k, K-1) - first + 1) / (K - first + 1)
	}
	out := map[float64]level{}
	for _, m := range s.metrics {
		a := s.level(m)
		if _, ok := out[a]; ok {
			continue
		}
		b := s.bounds[a]
		if b == nil {
			b = newBoundary(a, s.opts.Spending)
			s.bounds[a] = b
		}
		lv := level{show: a, look: s.look, looks: s.opts.Looks, final: final}
		if z := b.next(tau, spend); z < 1e300 {
			lv.decide = survival(z)
			lv.show = lv.decide
		}
		out[a] = lv
	}
	return out
}

// size is how many values an interval holds over the metrics.
func size(ms []Metric, in Input) int {
	n := 0
	for _, m := range ms {
		n += len(in.Baseline[m.Name].Values) + len(in.Canary[m.Name].Values)
	}
	return n
}

// each runs f for every metric, on all cores when there are many values (size) to
// handle.
func (s *Sequence) each(size int, f func(i int)) {
	if size < 20000 || len(s.metrics) < 2 {
		for i := range s.metrics {
			f(i)
		}
		return
	}
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(runtime.GOMAXPROCS(0), len(s.metrics)) {
		wg.Go(func() {
			for i := range next {
				f(i)
			}
		})
	}
	for i := range s.metrics {
		next <- i
	}
	close(next)
	wg.Wait()
}

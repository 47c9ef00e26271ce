package judge

import (
	"fmt"
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
	// MinSamples is the fewest values per side for a latency or gauge metric to be
	// judged (default 3); fewer is Inconclusive.
	MinSamples int
	// MaxErrors is how many looks in a row a metric's measurement may fail before the
	// verdict is Error (default 3).
	MaxErrors int
	// PassScore and MarginalScore classify the score as Kayenta does (default 95, 75):
	// below MarginalScore fails, below PassScore is Marginal.
	PassScore, MarginalScore float64
}

func (o Options) withDefaults() Options {
	if o.Alpha <= 0 || o.Alpha >= 1 {
		o.Alpha = 0.01
	}
	if o.Spending == "" {
		o.Spending = Balanced
	}
	if o.MinSamples <= 0 {
		o.MinSamples = 3
	}
	if o.MaxErrors <= 0 {
		o.MaxErrors = 3
	}
	if o.PassScore == 0 {
		o.PassScore = 95
	}
	if o.MarginalScore == 0 {
		o.MarginalScore = 75
	}
	return o
}

// Judge compares baseline and canary once, as a final verdict.
func Judge(ms []Metric, in Input, o Options) Verdict {
	s := NewSequence(ms, o)
	return s.Look(in, true)
}

// Sequence judges a window look by look. Each Look gets the cumulative data so far; a
// Fail (or Error) before the final look stops the window early (Verdict.Stop).
type Sequence struct {
	metrics []Metric
	opts    Options
	look    int
	bounds  map[float64]*boundary // by one-sided level
	errRun  []int                 // failed measurements in a row, per metric
	last    []*MetricResult       // last result from a good measurement, per metric
	rates   [][]rateLook          // a rate metric's counts at each good look
}

// NewSequence starts a window.
func NewSequence(ms []Metric, o Options) *Sequence {
	return &Sequence{
		metrics: ms,
		opts:    o.withDefaults(),
		bounds:  map[float64]*boundary{},
		errRun:  make([]int, len(ms)),
		last:    make([]*MetricResult, len(ms)),
		rates:   make([][]rateLook, len(ms)),
	}
}

// Look judges the data gathered so far (cumulative since the window began).
func (s *Sequence) Look(in Input, final bool) Verdict {
	s.look++
	levels := s.levels(final)
	s.recordCounts(in)
	results := make([]MetricResult, len(s.metrics))
	s.each(in, func(i int) { results[i] = s.judgeOne(i, in, levels, final) })
	for i, m := range s.metrics {
		b, c := in.Baseline[m.Name], in.Canary[m.Name]
		if b.Err != "" || c.Err != "" {
			results[i] = s.measurementError(i, m, b, c)
			continue
		}
		s.errRun[i] = 0
		r := results[i]
		s.last[i] = &r
	}
	v := aggregate(results, s.opts)
	v.Final, v.Look, v.Looks = final, s.look, s.opts.Looks
	if v.Outcome == Inconclusive && tooEarly(levels) {
		v.Reason = fmt.Sprintf("too early to decide (look %d of %d)", s.look, s.opts.Looks)
	}
	return v
}

// recordCounts keeps each rate metric's cumulative counts, look by look.
func (s *Sequence) recordCounts(in Input) {
	for i, m := range s.metrics {
		b, c := in.Baseline[m.Name], in.Canary[m.Name]
		if m.Kind == Rate && b.Err == "" && c.Err == "" {
			k := newCounts(b, c)
			s.rates[i] = append(s.rates[i], rateLook(k))
		}
	}
}

// judgeOne classifies metric i on this look (a failed measurement is handled in Look).
func (s *Sequence) judgeOne(i int, in Input, levels map[float64]level, final bool) MetricResult {
	m := s.metrics[i]
	b, c := in.Baseline[m.Name], in.Canary[m.Name]
	if b.Err != "" || c.Err != "" {
		return MetricResult{}
	}
	lv, bs := levels[s.level(m)], bursts{phi: 1}
	if m.Kind == Rate {
		if bs = burstCheck(s.rates[i]); !bs.ok && !final {
			lv.decide = 0
			lv.wait = fmt.Sprintf("fewer than %d intervals with events yet, too few to tell a burst from a regression", minStrata)
		}
	}
	return classify(m, b, c, lv, s.opts, bs)
}

func tooEarly(levels map[float64]level) bool {
	for _, lv := range levels {
		if lv.decide > 0 {
			return false
		}
	}
	return true
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
	k, K := float64(s.look), float64(s.opts.Looks)
	tau, spend := k/max(K, 1), 0.0
	switch {
	case final:
		spend = 1
	case K > 0:
		spend = min(k, K-1) / K
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

// each runs f for every metric, on all cores when the data is large.
func (s *Sequence) each(in Input, f func(i int)) {
	size := 0
	for _, m := range s.metrics {
		size += len(in.Baseline[m.Name].Values) + len(in.Canary[m.Name].Values)
	}
	if size < 50000 || len(s.metrics) < 2 {
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

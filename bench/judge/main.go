// Command judge evaluates the canary judge on a generated corpus shaped like production
// metrics (corpus.go), side by side with Kayenta's classifier (kayenta.go), and prints
// the false-alarm rate on A/A comparisons and, per regression, the detection rate and
// the median time to a Fail.
//
//	go run ./bench/judge          # 9,200 windows: about 2 minutes on 2 cores
//	go run ./bench/judge -quick   # 2,300 windows, for a quick look
//
// README.md works out, group by group, what the windows' data can show at the judge's
// false-alarm budget.
//
// Each comparison is a 5-minute window of 30 intervals of 10 s with 10 metrics; both
// judges see the same data and the same metric settings (critical, direction). Ours gets
// what a metric source gives it, interval by interval (per-request latencies, counts,
// one value per gauge), looks at every interval and stops at a Fail; its allowances are
// calibrated (judge.Calibrate) on A/A windows of other seeds (-tune-seed) than those
// reported (-seed). Kayenta gets every metric as a per-interval series and looks every
// interval from 60 s. A window is failed by a judge's first Fail, or by a final verdict
// that is not Pass (Kayenta's Marginal); its time is that look's.
package main

import (
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"sync"
	"time"

	"gonum.org/v1/gonum/stat/distuv"

	"github.com/immunity-app/immunity/pipeline/judge"
)

// firstLook is Kayenta's first look (60 s).
const firstLook = 6

var (
	explain     = flag.Bool("explain", false, "print why each A/A window failed")
	alphaFlag   = flag.Float64("alpha", 0.01, "the judge's overall false-alarm rate")
	kayentaConf = flag.Float64("kayenta-conf", 0.98, "Kayenta's Mann-Whitney confidence level (0.98 as published; higher for fewer false alarms)")
	kayentaOnly = flag.Bool("kayenta-only", false, "run Kayenta's classifier alone (ours is not run and shows 0%)")
	cacheRatio  = flag.Bool("cache-ratio", false, "give our judge the cache's hit ratio alone, not its hits and requests (a share gauge)")
	noInflation = flag.Bool("no-inflation", false, "leave out the calibrated inflation (judge.Allowance.Inflation)")
)

func main() {
	quick := flag.Bool("quick", false, "a quarter of the windows")
	reps := flag.Int("reps", 200, "windows per regression cell")
	aa := flag.Int("aa", 1000, "windows per A/A cell (2 per traffic level)")
	calib := flag.Int("calib", 300, "A/A windows per traffic level and error rate to calibrate on (0: judge uncalibrated, as before a user calibrates)")
	seed := flag.Uint64("seed", 1, "random seed of the reported windows")
	tuneSeed := flag.Uint64("tune-seed", 1000, "random seed of the calibration windows")
	spending := flag.String("spending", string(judge.Balanced), "alpha spending: obrien-fleming, pocock or hsd:γ")
	workers := flag.Int("workers", runtime.GOMAXPROCS(0), "parallel windows")
	flag.Parse()
	if *quick {
		*reps, *aa, *calib = *reps/4, *aa/4, *calib/2
	}
	start := time.Now()
	opts := judge.Options{Looks: intervals, Alpha: *alphaFlag, Spending: judge.Spending(*spending)}
	allow := map[app]map[string]judge.Allowance{}
	for _, t := range traffics {
		for _, e := range baseErrors {
			var a map[string]judge.Allowance
			var err error
			if *calib > 0 {
				a, err = calibrate(app{t.rps, e}, *calib, *tuneSeed)
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			if *noInflation {
				for name, x := range a {
					x.Inflation = 0
					a[name] = x
				}
			}
			allow[app{t.rps, e}] = a
		}
	}
	jobs := corpus(*reps, *aa)
	results := run(jobs, allow, opts, *seed, *workers)
	fmt.Printf("%d windows (%d looks of %d s, %d metrics each), judge alpha %g %s, calibrated on %d A/A windows a traffic level and error rate (seed %d), reported on seed %d, in %s on %d workers\n\n",
		len(jobs), intervals, intervalSec, len(metrics), *alphaFlag, *spending, *calib, *tuneSeed, *seed, time.Since(start).Round(time.Second), *workers)
	report(os.Stdout, jobs, results)
	printAllowances(os.Stdout, allow)
	summarize(jobs, results)
}

// summarize prints the lines bench/all gathers into its table.
func summarize(jobs []cell, results []result) {
	var aa, changed []result
	var ot, kt time.Duration
	var ol, kl int
	for i, c := range jobs {
		r := results[i]
		if c.truth == "A/A" {
			aa = append(aa, r)
		} else {
			changed = append(changed, r)
		}
		ot, kt, ol, kl = ot+r.oursTime, kt+r.kayTime, ol+r.oursLooks, kl+r.kayLooks
	}
	share := func(rs []result, look func(result) int) float64 {
		n := 0
		for _, r := range rs {
			if look(r) > 0 {
				n++
			}
		}
		return 100 * float64(n) / float64(len(rs))
	}
	oFA, kFA := share(aa, ours), share(aa, kay)
	oD, kD := share(changed, ours), share(changed, kay)
	fmt.Printf("SUMMARY\tjudge\tfalse alarms on A/A (%d windows)\t%.1f%%\t%.1f%%\tKayenta, every look\t<= 0.5%%\t%t\n", len(aa), oFA, kFA, oFA <= 0.5)
	fmt.Printf("SUMMARY\tjudge\tchanges detected (%d windows)\t%.1f%%\t%.1f%%\tKayenta, every look\t>= Kayenta + 4 points\t%t\n", len(changed), oD, kD, oD >= kD+4)
	perO, perK := ot.Seconds()*1e6/float64(max(1, ol)), kt.Seconds()*1e6/float64(max(1, kl))
	fmt.Printf("SUMMARY\tjudge\tµs per look (%d metrics)\t%.0f\t%.0f\tKayenta\t\t%t\n", len(metrics), perO, perK, true)
}

var traffics = []struct {
	name string
	rps  float64
}{{"2 req/s", 2}, {"200 req/s", 200}}

// app is what a service's calibration windows share: its traffic and its usual error
// rate. Each is calibrated on its own A/A windows, as a user calibrates on recordings of
// their own service (a dispersion of errors measured at 1% does not hold at 0.1%).
type app struct{ rps, errorRate float64 }

// baseErrors are the corpus's usual error rates.
var baseErrors = []float64{0.001, 0.01}

func (c cell) app() app { return app{c.rps, c.errorRate} }

// calibrate estimates the allowances from A/A windows of the tuning seed, as `immunity
// judge calibrate` does from recorded windows.
func calibrate(a app, n int, seed uint64) (map[string]judge.Allowance, error) {
	var windows [][]judge.Input
	for i := range n {
		rng := rand.New(rand.NewPCG(seed, uint64(i)+uint64(a.rps)*1e6+uint64(a.errorRate*1e9)))
		base, can := cell{truth: "A/A", factor: 1, rps: a.rps, errorRate: a.errorRate}.window(rng)
		var w []judge.Input
		for k := range intervals {
			w = append(w, input(base, can, k))
		}
		windows = append(windows, w)
	}
	return judge.Calibrate(metrics, windows)
}

func corpus(reps, aa int) []cell {
	var jobs []cell
	add := func(c cell, n int) {
		for range n {
			jobs = append(jobs, c)
		}
	}
	for _, t := range traffics {
		for _, base := range []float64{0.001, 0.01} {
			add(cell{truth: "A/A", factor: 1, rps: t.rps, errorRate: base}, aa)
		}
		for _, f := range []float64{1.05, 1.10, 1.25, 1.50} {
			add(cell{truth: "latency", factor: f, rps: t.rps, errorRate: 0.01}, reps)
		}
		for _, base := range []float64{0.001, 0.01} {
			for _, f := range []float64{1.5, 3, 10} {
				add(cell{truth: "errors", factor: f, rps: t.rps, errorRate: base}, reps)
			}
		}
		for _, drop := range []float64{1, 3, 10} {
			add(cell{truth: "cache", factor: drop, rps: t.rps, errorRate: 0.01}, reps)
		}
	}
	return jobs
}

// result is the look at which each judge failed the window (0: it passed).
type result struct {
	ours, kayenta       int
	oursLooks, kayLooks int           // looks taken, each judge until its Fail or the end
	oursTime, kayTime   time.Duration // time those looks took
	flagged             []string      // what failed our verdict
	why                 []string      // and why
}

func run(jobs []cell, allow map[app]map[string]judge.Allowance, opts judge.Options, seed uint64, workers int) []result {
	out := make([]result, len(jobs))
	next := make(chan int)
	var wg sync.WaitGroup
	for range max(1, workers) {
		wg.Go(func() {
			for i := range next {
				out[i] = one(jobs[i], allow[jobs[i].app()], opts, rand.New(rand.NewPCG(seed, uint64(i))))
			}
		})
	}
	for i := range jobs {
		next <- i
	}
	close(next)
	wg.Wait()
	return out
}

func one(c cell, allow map[string]judge.Allowance, opts judge.Options, rng *rand.Rand) result {
	base, can := c.window(rng)
	ms := slices.Clone(metrics)
	for i := range ms {
		ms[i].Allowance = allow[ms[i].Name]
	}
	var r result
	s := judge.NewSequence(ms, opts)
	t0 := time.Now()
	for k := 1; k <= intervals && !*kayentaOnly; k++ {
		r.oursLooks++
		v := s.Look(input(base, can, k-1), k == intervals)
		if v.Stop() || (v.Final && v.Outcome != judge.Pass) {
			r.ours = k
			for _, m := range v.Metrics {
				if m.Outcome != judge.Pass && m.Outcome != judge.Marginal {
					r.flagged = append(r.flagged, m.Name)
					r.why = append(r.why, fmt.Sprintf("look %d: %s", k, m.Why))
					if *explain && m.Name == "latency" {
						for j := range k {
							r.why = append(r.why, fmt.Sprintf("    %.4f vs %.4f  cpu %.3f vs %.3f", series(base[j:j+1], metrics[3])[0], series(can[j:j+1], metrics[3])[0], base[j].values["cpu"], can[j].values["cpu"]))
						}
					}
					if *explain && m.Name == "error_rate" {
						for j := range k {
							r.why = append(r.why, fmt.Sprintf("    %g/%g vs %g/%g", base[j].errors, base[j].requests, can[j].errors, can[j].requests))
						}
					}
				}
			}
			break
		}
	}
	r.oursTime = time.Since(t0)
	t0 = time.Now()
	r.kayenta, r.kayLooks = kayenta{}.stopsAt(base, can)
	r.kayTime = time.Since(t0)
	return r
}

// group is the windows of one truth, effect and traffic level.
type group struct {
	c  cell
	rs []result
}

func report(w io.Writer, jobs []cell, results []result) {
	var groups []*group
	byKey := map[cell]*group{}
	for i, c := range jobs {
		if byKey[c] == nil {
			byKey[c] = &group{c: c}
			groups = append(groups, byKey[c])
		}
		byKey[c].rs = append(byKey[c].rs, results[i])
	}
	fmt.Fprintln(w, "False alarms on A/A (no change): share of windows failed at any look or not passed at the end")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| traffic | baseline errors | windows | ours | Kayenta |")
	fmt.Fprintln(w, "| --- | --- | ---: | ---: | ---: |")
	var all []result
	for _, g := range groups {
		if g.c.truth == "A/A" {
			all = append(all, g.rs...)
			fmt.Fprintf(w, "| %s | %g%% | %d | %s | %s |\n", trafficName(g.c.rps), 100*g.c.errorRate, len(g.rs), pct(g.rs, ours), pct(g.rs, kay))
		}
	}
	fmt.Fprintf(w, "| **all A/A** | | %d | **%s** | **%s** |\n\n", len(all), pct(all, ours), pct(all, kay))
	by := map[string]int{}
	for _, r := range all {
		for _, m := range r.flagged {
			by[m]++
		}
	}
	fmt.Fprint(w, "Our A/A failures by metric:")
	for _, m := range metrics {
		if by[m.Name] > 0 {
			fmt.Fprintf(w, " %s %d", m.Name, by[m.Name])
		}
	}
	fmt.Fprint(w, "\n\n")
	if *explain {
		fmt.Fprintln(w, "Kayenta flags (all windows):", kayentaFlags)
		for _, r := range all {
			for _, y := range r.why {
				fmt.Fprintln(w, "  ", y)
			}
		}
	}

	fmt.Fprintln(w, "Detection: share of windows failed, and median time to the Fail (of 300 s)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| canary change | traffic | baseline events / window | ours: detected | ours: median time | Kayenta: detected | Kayenta: median time |")
	fmt.Fprintln(w, "| --- | --- | ---: | ---: | ---: | ---: | ---: |")
	type sum struct{ rs []result }
	byGroup := map[string]*sum{}
	var order []string
	var regress []result
	for _, g := range groups {
		if g.c.truth == "A/A" {
			continue
		}
		regress = append(regress, g.rs...)
		k := g.c.truth + " at " + trafficName(g.c.rps)
		if byGroup[k] == nil {
			byGroup[k] = &sum{}
			order = append(order, k)
		}
		byGroup[k].rs = append(byGroup[k].rs, g.rs...)
		events := ""
		if g.c.truth == "errors" {
			events = fmt.Sprintf("%.1f", g.c.rps*intervals*intervalSec*g.c.errorRate)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s |\n", change(g.c), trafficName(g.c.rps), events,
			pct(g.rs, ours), medianTime(g.rs, ours), pct(g.rs, kay), medianTime(g.rs, kay))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "By group")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| group | windows | ours: detected | ours: median time | Kayenta: detected | Kayenta: median time |")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: |")
	for _, k := range order {
		rs := byGroup[k].rs
		fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %s |\n", k, len(rs), pct(rs, ours), medianTime(rs, ours), pct(rs, kay), medianTime(rs, kay))
	}
	fmt.Fprintf(w, "| **all regressions** | %d | **%s** | **%s** | **%s** | **%s** |\n\n", len(regress),
		pct(regress, ours), medianTime(regress, ours), pct(regress, kay), medianTime(regress, kay))
	reach(w, groups)
}

// reach is the arithmetic of what the error counts can show at all: with equal traffic
// and no burst, x events all on the canary and none on the baseline have probability
// 2^-x when nothing changed, so error_rate (critical: its share a of the budget) can be
// flagged at the end of the window only with at least log2(1/a) canary events beyond
// the baseline's. The chance of that many, given the expected counts, bounds any sound
// test's detection at that budget.
func reach(w io.Writer, groups []*group) {
	total := 0.0
	for _, m := range metrics {
		total += weightOf(m)
	}
	a := *alphaFlag * weightOf(metrics[1]) / total
	need := math.Ceil(math.Log2(1 / a))
	fmt.Fprintf(w, "What the error counts can show (error_rate's share of the budget: %.4f, so at least %.0f more canary events than baseline ones, all else equal)\n\n", a, need)
	fmt.Fprintln(w, "| canary change | traffic | expected baseline / canary events | P(canary ≥ baseline + needed), an upper bound on detection |")
	fmt.Fprintln(w, "| --- | --- | ---: | ---: |")
	for _, g := range groups {
		if g.c.truth != "errors" {
			continue
		}
		lb := g.c.rps * intervals * intervalSec * g.c.errorRate
		lc := lb * g.c.factor
		fmt.Fprintf(w, "| %s | %s | %.1f / %.1f | %.3g |\n", change(g.c), trafficName(g.c.rps), lb, lc, pExcess(lb, lc, need))
	}
	fmt.Fprintln(w)
}

// pExcess is P(C - B >= need) for independent Poisson counts B, C with means lb, lc.
func pExcess(lb, lc, need float64) float64 {
	pb, pc := distuv.Poisson{Lambda: lb}, distuv.Poisson{Lambda: lc}
	p := 0.0
	for b := 0.0; b <= lb+12*math.Sqrt(lb+1)+20; b++ {
		p += pb.Prob(b) * pc.Survival(b+need-1)
	}
	return math.Min(1, p)
}

func weightOf(m judge.Metric) float64 {
	if m.Critical {
		return 4 // the judge's weighted Bonferroni: a critical metric gets 4 shares
	}
	return 1
}

func change(c cell) string {
	switch c.truth {
	case "latency":
		return fmt.Sprintf("latency +%.0f%%", 100*(c.factor-1))
	case "errors":
		return fmt.Sprintf("errors ×%g from %g%%", c.factor, 100*c.errorRate)
	}
	return fmt.Sprintf("cache hit -%g points", c.factor)
}

func printAllowances(w io.Writer, allow map[app]map[string]judge.Allowance) {
	fmt.Fprintln(w, "Calibrated allowances (judge.Calibrate on the tuning seed's A/A windows)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| metric | traffic | baseline errors | noise | drift | drift_corr | offset | dispersion | inflation |")
	fmt.Fprintln(w, "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, m := range metrics {
		for _, t := range traffics {
			for _, e := range baseErrors {
				a, ok := allow[app{t.rps, e}][m.Name]
				if !ok {
					fmt.Fprintf(w, "| %s | %s | %g%% | – | – | – | – | – | – |\n", m.Name, t.name, 100*e)
					continue
				}
				fmt.Fprintf(w, "| %s | %s | %g%% | %g | %g | %g | %g | %g | %g |\n", m.Name, t.name, 100*e, a.Noise, a.Drift, a.DriftCorr, a.Offset, a.Dispersion, a.Inflation)
			}
		}
	}
}

func trafficName(rps float64) string {
	for _, t := range traffics {
		if t.rps == rps {
			return t.name
		}
	}
	return fmt.Sprint(rps)
}

func ours(r result) int { return r.ours }
func kay(r result) int  { return r.kayenta }

func pct(rs []result, look func(result) int) string {
	n := 0
	for _, r := range rs {
		if look(r) > 0 {
			n++
		}
	}
	return fmt.Sprintf("%.1f%%", 100*float64(n)/float64(len(rs)))
}

func medianTime(rs []result, look func(result) int) string {
	var ts []int
	for _, r := range rs {
		if k := look(r); k > 0 {
			ts = append(ts, k*intervalSec)
		}
	}
	if len(ts) == 0 {
		return "–"
	}
	slices.Sort(ts)
	return fmt.Sprintf("%d s", ts[len(ts)/2])
}

// Command judge evaluates the canary judge on a generated corpus with known truth, side
// by side with Kayenta's classifier, and prints the table of issue 6: the false-alarm
// rate on A/A comparisons, and per effect size the detection rate and the median time to
// a Fail.
//
//	go run ./bench/judge                  # 12,000 windows: ~90 s of CPU, about a minute on 2 idle cores
//	go run ./bench/judge -reps 20 -aa 100 # a quick look
//	go run ./bench/judge -spending obrien-fleming
//
// Each comparison is a 5-minute window looked at every 10 s (30 looks) with 10 metrics;
// both judges see the same data (corpus.go) and the same metric settings (critical,
// direction). Our judge gets what a metric source gives it: one value per interval for
// latency and gauges, cumulative counts for rates; Kayenta (kayenta.go) gets every
// metric as a per-interval series, as it reads them from a time-series database. A
// detection is a Fail verdict; its time is the look that failed.
package main

import (
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/immunity-app/immunity/pipeline/judge"
)

func main() {
	reps := flag.Int("reps", 100, "windows per effect cell (6 traffic×shape combinations per effect)")
	aa := flag.Int("aa", 500, "windows per A/A cell (12 cells)")
	seed := flag.Uint64("seed", 1, "random seed")
	alpha := flag.Float64("alpha", 0.01, "the judge's overall false-alarm rate")
	spending := flag.String("spending", string(judge.Balanced), "alpha spending: obrien-fleming, pocock or hsd:γ")
	workers := flag.Int("workers", runtime.GOMAXPROCS(0), "parallel windows")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile to this file")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	opts := judge.Options{Looks: intervals, Alpha: *alpha, Spending: judge.Spending(*spending)}
	start := time.Now()
	jobs := corpus(*reps, *aa)
	results := run(jobs, opts, *seed, *workers)
	fmt.Printf("%d windows (%d looks of %d s, %d metrics each), judge alpha %g %s, in %s on %d workers\n\n",
		len(jobs), intervals, intervalSec, len(metrics), *alpha, *spending, time.Since(start).Round(time.Second), *workers)
	report(os.Stdout, jobs, results)
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
	fmt.Printf("SUMMARY\tjudge\tfalse alarms on A/A (%d windows)\t%.1f%%\t%.1f%%\tKayenta, every look\t<= 1%%\t%t\n", len(aa), oFA, kFA, oFA <= 1)
	fmt.Printf("SUMMARY\tjudge\tchanges detected (%d windows)\t%.1f%%\t%.1f%%\tKayenta, every look\t>= Kayenta\t%t\n", len(changed), oD, kD, oD >= kD)
	perO, perK := ot.Seconds()*1e6/float64(max(1, ol)), kt.Seconds()*1e6/float64(max(1, kl))
	fmt.Printf("SUMMARY\tjudge\tµs per look (%d metrics)\t%.0f\t%.0f\tKayenta\t\t%t\n", len(metrics), perO, perK, true)
}

var traffics = []struct {
	name string
	rps  float64
}{{"low (2 req/s)", 2}, {"high (100 req/s)", 100}}

func corpus(reps, aa int) []cell {
	var jobs []cell
	add := func(c cell, n int) {
		for range n {
			jobs = append(jobs, c)
		}
	}
	for _, t := range traffics {
		for _, sh := range []shape{steady, noisy, bursty} {
			for _, base := range []float64{0.001, 0.01} {
				add(cell{truth: "A/A", factor: 1, rps: t.rps, errorRate: base, shape: sh}, aa)
			}
			for _, f := range []float64{1.05, 1.10, 1.25, 1.50} {
				add(cell{truth: "latency", factor: f, rps: t.rps, errorRate: 0.01, shape: sh}, reps)
			}
			for _, base := range []float64{0.001, 0.01} {
				for _, f := range []float64{1.5, 3, 10} {
					add(cell{truth: "errors", factor: f, rps: t.rps, errorRate: base, shape: sh}, reps)
				}
			}
		}
	}
	return jobs
}

// result is one window's outcome: the look of the first Fail (0: none) for our judge and
// for Kayenta looking every interval, and Kayenta's verdict looking once at the end.
type result struct {
	ours, kayenta       int
	kayentaEnd          bool
	oursLooks, kayLooks int           // looks taken, each judge until its Fail or the end
	oursTime, kayTime   time.Duration // time those looks took
}

func run(jobs []cell, opts judge.Options, seed uint64, workers int) []result {
	out := make([]result, len(jobs))
	next := make(chan int)
	var wg sync.WaitGroup
	for range max(1, workers) {
		wg.Go(func() {
			for i := range next {
				out[i] = one(jobs[i], opts, rand.New(rand.NewPCG(seed, uint64(i))))
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

func one(c cell, opts judge.Options, rng *rand.Rand) result {
	base, can := c.window(rng)
	var r result
	s := judge.NewSequence(metrics, opts)
	t0 := time.Now()
	for k := 1; k <= intervals; k++ {
		r.oursLooks++
		if v := s.Look(input(base, can, k), k == intervals); v.Outcome == judge.Fail {
			r.ours = k
			break
		}
	}
	r.oursTime = time.Since(t0)
	var ky kayenta
	t0 = time.Now()
	for k := 1; k <= intervals; k++ {
		r.kayLooks++
		if failed, _ := ky.look(base[:k], can[:k]); failed {
			r.kayenta = k
			break
		}
	}
	r.kayTime = time.Since(t0)
	r.kayentaEnd, _ = ky.look(base, can)
	return r
}

// row groups windows of one truth, effect, traffic and error base over all shapes.
type row struct {
	truth, traffic string
	factor, base   float64
	rps            float64
	rs             []result
}

func report(w io.Writer, jobs []cell, results []result) {
	rows := map[string]*row{}
	var keys []string
	shapes := map[string][]result{}
	for i, c := range jobs {
		tname := trafficName(c.rps)
		k := fmt.Sprintf("%s|%g|%s|%g", c.truth, c.factor, tname, c.errorRate)
		if c.truth == "latency" {
			k = fmt.Sprintf("%s|%g|%s|", c.truth, c.factor, tname)
		}
		if rows[k] == nil {
			rows[k] = &row{truth: c.truth, traffic: tname, factor: c.factor, base: c.errorRate, rps: c.rps}
			keys = append(keys, k)
		}
		rows[k].rs = append(rows[k].rs, results[i])
		if c.truth == "A/A" {
			sk := tname + ", " + string(c.shape)
			shapes[sk] = append(shapes[sk], results[i])
		}
	}
	fmt.Fprintln(w, "False alarms on A/A (no change): share of windows failed")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| traffic, shape | windows | ours | Kayenta, every look | Kayenta, end only |")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: |")
	var all []result
	skeys := make([]string, 0, len(shapes))
	for k := range shapes {
		skeys = append(skeys, k)
	}
	sort.Strings(skeys)
	for _, k := range skeys {
		rs := shapes[k]
		all = append(all, rs...)
		fmt.Fprintf(w, "| %s | %d | %s | %s | %s |\n", k, len(rs), pct(rs, ours), pct(rs, kay), pct(rs, kayEnd))
	}
	fmt.Fprintf(w, "| **all A/A** | %d | **%s** | **%s** | **%s** |\n\n", len(all), pct(all, ours), pct(all, kay), pct(all, kayEnd))

	fmt.Fprintln(w, "Detection: share of windows failed, and median time to the Fail (of 300 s)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| canary change | traffic | baseline errors / window | ours: detected | ours: median time | Kayenta every look: detected | Kayenta: median time | Kayenta end only: detected |")
	fmt.Fprintln(w, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, k := range keys {
		r := rows[k]
		if r.truth == "A/A" {
			continue
		}
		change := fmt.Sprintf("latency +%.0f%%", 100*(r.factor-1))
		events := ""
		if r.truth == "errors" {
			change = fmt.Sprintf("errors ×%g from %g%%", r.factor, 100*r.base)
			events = fmt.Sprintf("%.1f", r.rps*intervals*intervalSec*r.base)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", change, r.traffic, events,
			pct(r.rs, ours), medianTime(r.rs, ours), pct(r.rs, kay), medianTime(r.rs, kay), pct(r.rs, kayEnd))
	}
}

func trafficName(rps float64) string {
	for _, t := range traffics {
		if t.rps == rps {
			return strings.Fields(t.name)[0]
		}
	}
	return fmt.Sprint(rps)
}

func ours(r result) int { return r.ours }
func kay(r result) int  { return r.kayenta }
func kayEnd(r result) int {
	if r.kayentaEnd {
		return intervals
	}
	return 0
}

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

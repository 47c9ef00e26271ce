package judge

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var offlineMetrics = []Metric{
	{Name: "errors", Kind: Rate, Direction: Increase, AllowedEffect: 0.2, Critical: true},
	{Name: "latency", Kind: Latency, Direction: Increase, AllowedEffect: 0.2, Critical: true, Unit: "s"},
}

const offlineStart = 1732240000.0

// recording writes a side's CSV: 5 minutes of per-request latencies around lat (5 a
// second, seeded), and per-10s error counts (errs of 100 requests), either as counts or
// one row per request.
func recording(seed uint64, lat float64, errs int, perRequest bool) string {
	rng := rand.New(rand.NewPCG(seed, 7))
	var b strings.Builder
	b.WriteString("time,metric,value\n")
	for i := range 1500 {
		at := offlineStart + float64(i)/5 + 0.1
		load := 1 + 0.3*math.Sin(float64(i)/300)
		fmt.Fprintf(&b, "%.2f,latency,%.6g\n", at, lat*load*math.Exp(0.4*rng.NormFloat64()))
	}
	for k := 1; k <= 30; k++ {
		at := offlineStart + float64(10*k)
		if perRequest {
			for r := range 100 {
				e := 0
				if r < errs {
					e = 1
				}
				fmt.Fprintf(&b, "%.1f,errors,%d\n", at, e)
			}
			continue
		}
		fmt.Fprintf(&b, "%.1f,errors.events,%d\n%.1f,errors.trials,100\n", at, errs, at)
	}
	b.WriteString("1732240001,unknown_metric,1\n")
	return b.String()
}

func TestOfflineStopsEarlyOnARegression(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	v, err := RunOffline(context.Background(), offlineMetrics,
		strings.NewReader(recording(1, 0.1, 1, false)), strings.NewReader(recording(2, 0.2, 1, false)), false, &out)
	if err != nil {
		t.Fatal(err)
	}
	if v.Outcome != Fail || v.Final || v.Metrics[1].Outcome != Fail || v.Metrics[1].Classification != High {
		t.Fatalf("verdict %s final=%v at look %d, want an early fail on latency\n%s", v.Outcome, v.Final, v.Look, out.String())
	}
	golden(t, "offline.txt", out.String())
}

// The replay is the live judge: the same Sequence fed the same intervals, look by look.
func TestOfflineMatchesLiveSequence(t *testing.T) {
	t.Parallel()
	base, can := recording(3, 0.1, 1, true), recording(4, 0.1, 1, false)
	rep, err := Offline{Metrics: offlineMetrics}.Run(context.Background(), strings.NewReader(base), strings.NewReader(can))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Looks != 30 || !rep.Verdict.Final || rep.Verdict.Outcome != Pass {
		t.Fatalf("looks %d, final %v, %s; want 30 looks to the end and a pass\n%s", rep.Looks, rep.Verdict.Final, rep.Verdict.Outcome, rep.Verdict.Table())
	}
	if rep.Ignored == nil || rep.Ignored[0] != "unknown_metric" {
		t.Errorf("ignored = %v", rep.Ignored)
	}
	bs, _ := readSamples(strings.NewReader(base))
	cs, _ := readSamples(strings.NewReader(can))
	seq := NewSequence(offlineMetrics, Options{Looks: 30})
	var live Verdict
	for k := 1; k <= 30; k++ {
		from, to := rep.Start.Add(time.Duration(k-1)*10*time.Second), rep.Start.Add(time.Duration(k)*10*time.Second)
		in := Input{Baseline: byHand(bs, from, to, k == 1), Canary: byHand(cs, from, to, k == 1)}
		live = seq.Look(in, k == 30)
	}
	if diff := cmp.Diff(live, rep.Verdict); diff != "" {
		t.Errorf("offline differs from live (-live +offline):\n%s", diff)
	}
	e := rep.Verdict.Metrics[0]
	if e.NBaseline != 3000 || e.EventsBaseline != 30 || e.NCanary != 3000 || e.EventsCanary != 30 {
		t.Errorf("errors counted %d/%d vs %d/%d, want 30/3000 on both sides", e.EventsCanary, e.NCanary, e.EventsBaseline, e.NBaseline)
	}
}

// byHand is one interval (from, to] of a side's samples, as a live source measures it
// (the first also takes its start).
func byHand(ss []sample, from, to time.Time, first bool) map[string]Data {
	out := map[string]Data{}
	for _, s := range ss {
		if s.at.After(to) || s.at.Before(from) || (s.at.Equal(from) && !first) {
			continue
		}
		switch s.metric {
		case "latency":
			d := out["latency"]
			d.Values, d.PerRequest = append(d.Values, s.value), true
			out["latency"] = d
		case "errors.events", "errors.trials", "errors":
			d := out["errors"]
			if s.metric == "errors.trials" {
				d.Trials += s.value
			} else {
				d.Events += s.value
				if s.metric == "errors" {
					d.Trials++
				}
			}
			out["errors"] = d
		}
	}
	return out
}

// --at gives the verdict the pipeline would have given at that moment: the same look
// of the same schedule as the full replay stopped there.
func TestOfflineAt(t *testing.T) {
	t.Parallel()
	base, can := recording(5, 0.1, 1, false), recording(6, 0.1, 1, false)
	rep, err := Offline{Metrics: offlineMetrics, At: 95 * time.Second}.Run(context.Background(), strings.NewReader(base), strings.NewReader(can))
	if err != nil {
		t.Fatal(err)
	}
	v := rep.Verdict
	if v.Look != 10 || v.Looks != 30 || v.Final || v.Outcome == Fail {
		t.Fatalf("at 95 s: look %d of %d, final %v, %s; want look 10 of 30, interim", v.Look, v.Looks, v.Final, v.Outcome)
	}
	bs, _ := readSamples(strings.NewReader(base))
	cs, _ := readSamples(strings.NewReader(can))
	seq := NewSequence(offlineMetrics, Options{Looks: 30})
	var live Verdict
	for k := 1; k <= 10; k++ {
		from, to := rep.Start.Add(time.Duration(k-1)*10*time.Second), rep.Start.Add(time.Duration(k)*10*time.Second)
		live = seq.Look(Input{Baseline: byHand(bs, from, to, k == 1), Canary: byHand(cs, from, to, k == 1)}, false)
	}
	if diff := cmp.Diff(live, v); diff != "" {
		t.Errorf("--at differs from the live look (-live +offline):\n%s", diff)
	}
}

func TestOfflineJSON(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	_, err := RunOffline(context.Background(), offlineMetrics,
		strings.NewReader(recording(7, 0.1, 1, false)), strings.NewReader(recording(8, 0.1, 1, false)), true, &out)
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Verdict string  `json:"verdict"`
		Score   float64 `json:"score"`
		Metrics []struct {
			Name, Why, Classification string
			Effect, Low, High         float64
			NBaseline                 int `json:"n_baseline"`
		} `json:"metrics"`
	}
	if err := json.Unmarshal(out.Bytes(), &v); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if v.Verdict != "Pass" || v.Score != 100 || len(v.Metrics) != 2 || v.Metrics[1].Why == "" ||
		v.Metrics[1].Classification != "Pass" || v.Metrics[1].NBaseline == 0 || v.Metrics[1].Low >= v.Metrics[1].High {
		t.Errorf("json verdict = %+v", v)
	}
}

func TestOfflineBadInput(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ csv, want string }{
		{"time,metric,value\n1732240000,latency,fast\n", `line 2: value "fast": expected a number`},
		{"yesterday,latency,1\n", `line 1: time "yesterday"`},
		{"1732240000,latency\n", "wrong number of fields"},
	} {
		_, err := RunOffline(context.Background(), offlineMetrics, strings.NewReader(tc.csv), strings.NewReader(""), false, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "baseline") {
			t.Errorf("%q: error %v, want it to name the baseline and %q", tc.csv, err, tc.want)
		}
	}
}

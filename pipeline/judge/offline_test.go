package judge

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var offlineMetrics = []Metric{
	{Name: "errors", Kind: Rate, Direction: Increase, AllowedEffect: 0.2, Critical: true},
	{Name: "latency", Kind: Latency, Direction: Increase, AllowedEffect: 0.2, Critical: true, Unit: "s"},
}

// recording writes a side's CSV: 5 minutes, one latency sample per second around lat, and
// per-10s error counts (errs of 100 requests).
func recording(lat float64, errs int, perRequest bool) string {
	var b strings.Builder
	b.WriteString("time,metric,value\n")
	t0 := 1732240000.0
	ls := spread(300, lat)
	for i := range 300 {
		fmt.Fprintf(&b, "%.1f,latency,%g\n", t0+float64(i)+0.5, ls[i])
		if i%10 != 9 {
			continue
		}
		at := t0 + float64(i) + 1
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
		strings.NewReader(recording(0.1, 1, false)), strings.NewReader(recording(0.25, 1, false)), false, &out)
	if err != nil {
		t.Fatal(err)
	}
	if v.Outcome != Fail || v.Final || v.Metrics[1].Outcome != Fail {
		t.Fatalf("verdict %s final=%v at look %d, want an early fail on latency\n%s", v.Outcome, v.Final, v.Look, out.String())
	}
	golden(t, "offline.txt", out.String())
}

// The replay is the live judge: the same Sequence fed the same cumulative data per look.
func TestOfflineMatchesLiveSequence(t *testing.T) {
	t.Parallel()
	base, can := recording(0.1, 1, true), recording(0.11, 1, false)
	rep, err := Offline{Metrics: offlineMetrics}.Run(context.Background(), strings.NewReader(base), strings.NewReader(can))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Looks != 30 || !rep.Verdict.Final {
		t.Fatalf("looks %d, final %v; want 30 looks to the end", rep.Looks, rep.Verdict.Final)
	}
	if rep.Ignored == nil || rep.Ignored[0] != "unknown_metric" {
		t.Errorf("ignored = %v", rep.Ignored)
	}
	bs, _ := readSamples(strings.NewReader(base))
	cs, _ := readSamples(strings.NewReader(can))
	seq := NewSequence(offlineMetrics, Options{Looks: 30})
	var live Verdict
	for k := 1; k <= 30; k++ {
		cut := rep.Start.Add(time.Duration(k) * 10 * time.Second)
		live = seq.Look(Input{Baseline: gather(offlineMetrics, bs, cut, k == 30), Canary: gather(offlineMetrics, cs, cut, k == 30)}, k == 30)
	}
	if diff := cmp.Diff(live, rep.Verdict); diff != "" {
		t.Errorf("offline differs from live (-live +offline):\n%s", diff)
	}
	e := rep.Verdict.Metrics[0]
	if e.NBaseline != 3000 || e.EventsBaseline != 30 || e.NCanary != 3000 || e.EventsCanary != 30 {
		t.Errorf("errors counted %d/%d vs %d/%d, want 30/3000 on both sides", e.EventsCanary, e.NCanary, e.EventsBaseline, e.NBaseline)
	}
}

func TestOfflineJSON(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	_, err := RunOffline(context.Background(), offlineMetrics,
		strings.NewReader(recording(0.1, 1, false)), strings.NewReader(recording(0.1, 1, false)), true, &out)
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Outcome Outcome `json:"outcome"`
		Score   float64 `json:"score"`
		Metrics []struct {
			Name, Why string
		} `json:"metrics"`
	}
	if err := json.Unmarshal(out.Bytes(), &v); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if v.Outcome != Pass || v.Score != 100 || len(v.Metrics) != 2 || v.Metrics[1].Why == "" {
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

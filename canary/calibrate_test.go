package canary

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/immunity-app/immunity/pipeline/config"
	"github.com/immunity-app/immunity/pipeline/judge"
)

// A window with Calibrate set records the baseline's two production hosts against each
// other as CSV samples while the canary is judged; those files replay into A/A windows
// from which allowances are calibrated and written into a config, as `immunity judge
// calibrate --recorded` does.
func TestMonitorRecordsAnAAWindowToCalibrateFrom(t *testing.T) {
	t.Parallel()
	f := newFleet(t, 0, time.Millisecond)
	dir := filepath.Join(t.TempDir(), "calibration", "papi", "prod3")
	req := f.request("")
	req.Calibrate = dir
	req.Metrics = append(req.Metrics, config.Metric{Name: "hit_ratio", Kind: "gauge", Direction: "decrease",
		Scrape: "cache_hits_total", TrialsScrape: "cache_lookups_total"})
	m := &Monitor{Mirrors: f.reg, Registry: f.reg}
	v, err := m.Monitor(context.Background(), req, nil)
	if err != nil {
		t.Fatal(err)
	}
	if v.Outcome != judge.Pass {
		t.Fatalf("the canary's verdict = %s (%s), want pass: the A/A window must not change it", v.Outcome, v.Reason)
	}
	bases, _ := filepath.Glob(filepath.Join(dir, "*.baseline.csv"))
	cans, _ := filepath.Glob(filepath.Join(dir, "*.canary.csv"))
	if len(bases) != 1 || len(cans) != 1 || strings.TrimSuffix(bases[0], ".baseline.csv") != strings.TrimSuffix(cans[0], ".canary.csv") {
		t.Fatalf("recorded %v and %v, want one pair", bases, cans)
	}
	for _, p := range []string{bases[0], cans[0]} {
		data, _ := os.ReadFile(p)
		for _, want := range []string{",latency,", ",error_rate.events,", ",error_rate.trials,", ",hit_ratio.events,", ",hit_ratio.trials,"} {
			if !strings.Contains(string(data), want) {
				t.Fatalf("%s has no %q rows:\n%.600s", p, want, data)
			}
		}
	}

	ms := make([]judge.Metric, len(req.Metrics))
	for i, x := range req.Metrics {
		ms[i] = x.Judge()
	}
	b, _ := os.Open(bases[0])
	defer b.Close()
	c, _ := os.Open(cans[0])
	defer c.Close()
	looks := int(req.Period / req.Interval)
	windows, err := judge.Offline{Metrics: ms, Interval: req.Interval}.Windows(b, c, looks)
	if err != nil {
		t.Fatal(err)
	}
	if len(windows) != 1 || len(windows[0]) < looks-1 {
		t.Fatalf("replayed %d windows (first of %d intervals), want one of about %d", len(windows), len(windows[0]), looks)
	}
	for k, in := range windows[0] {
		if len(in.Baseline["latency"].Values) == 0 || len(in.Canary["latency"].Values) == 0 {
			t.Fatalf("replayed interval %d has no latency samples on a side: every interval's rows must fall in their own", k+1)
		}
		if d := in.Canary["hit_ratio"]; d.Trials == 0 || d.Events > d.Trials || len(d.Values) != 0 {
			t.Fatalf("replayed interval %d's hit_ratio = %+v, want hits of lookups", k+1, d)
		}
	}
	allow, err := judge.Calibrate(ms, windows)
	t.Logf("calibrated: %+v", allow)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := allow["latency"]; !ok {
		t.Fatalf("no latency allowance calibrated: %+v", allow)
	}
	if _, ok := allow["hit_ratio"]; !ok {
		t.Fatalf("no hit_ratio allowance calibrated: %+v", allow)
	}
	delete(allow, "hit_ratio") // the config below has the default metrics only
	cfg := filepath.Join(t.TempDir(), "immunity.yml")
	os.WriteFile(cfg, []byte(`apps:
  - name: papi
    repo: {path: papi.git}
    build: {command: [make], artifacts: [bin]}
    run: {command: [bin/papi]}
    regions:
      - name: prod3
        production: true
        hosts: [{name: host1, port: 4001}, {name: host2, port: 4002}]
        monitor: {calibrate: true}
`), 0o644)
	if err := config.WriteAllowances(cfg, "papi", allow); err != nil {
		t.Fatal(err)
	}
	loaded, err := config.Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := loaded.App("papi")
	written := false
	for _, x := range a.AppMetrics() {
		if x.Name == "latency" {
			if got := x.Judge().Allowance; got != allow["latency"] {
				t.Fatalf("latency's allowance in the config = %+v, want %+v", got, allow["latency"])
			}
			written = true
		}
	}
	if !written {
		t.Fatalf("the config has no latency metric after calibrating: %+v", a.AppMetrics())
	}
}

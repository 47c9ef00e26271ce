package app

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/immunity-app/immunity/pipeline/judge"
	"github.com/immunity-app/immunity/store"
)

// Each metric of a canary comparison over time: every look kept, charted with the
// baseline, the canary and the metric's allowed effect.
func TestCanaryMetricsOverTime(t *testing.T) {
	t.Parallel()
	in := openTest(t)
	ctx := context.Background()
	r, err := in.Store.CreateRun(ctx, store.Run{App: "papi", SHA: "6666666ffff", State: store.RunRunning}, []string{"sandbox2"}, map[string][]string{"sandbox2": {"host1"}})
	if err != nil {
		t.Fatal(err)
	}
	st := r.Stages[0]
	for look := 1; look <= 6; look++ {
		v, _ := json.Marshal(judge.Verdict{Outcome: judge.Pass, Look: look, Looks: 6, Metrics: []judge.MetricResult{
			{Name: "latency", Unit: "s", Outcome: judge.Pass, Baseline: 0.010, Canary: 0.010 + 0.001*float64(look), NBaseline: 50 * look, NCanary: 50 * look},
			{Name: "error_rate", Kind: judge.Rate, Outcome: judge.Pass, Baseline: 0.01, Canary: 0.01, NBaseline: 900 * look, NCanary: 880 * look},
			{Name: "signups", Outcome: judge.Error}}})
		if err := in.Store.UpdateStage(ctx, st.ID, store.StageUpdate{State: store.StageMonitoring, Verdict: string(v)}); err != nil {
			t.Fatal(err)
		}
	}
	looks, unit, allowed, err := in.Server.metricLooks(ctx, "papi", st, "latency")
	if err != nil {
		t.Fatal(err)
	}
	if len(looks) != 6 || unit != "ms" || allowed != 0.2 || looks[5].Canary != 16 || looks[0].Baseline != 10 || looks[0].Minutes != 0 || looks[5].Minutes < 0 {
		t.Fatalf("latency looks %+v in %s, allowed %v", looks, unit, allowed)
	}
	_, page := get(t, in, "/runs/1")
	for _, want := range []string{"Each metric over time", `src="/runs/1/stages/sandbox2/metrics/latency/timeline.png"`, `src="/runs/1/stages/sandbox2/metrics/error_rate/timeline.png"`} {
		if !strings.Contains(page, want) {
			t.Errorf("run page lacks %q", want)
		}
	}
	if strings.Contains(page, "metrics/signups/timeline.png") {
		t.Errorf("a metric without data is charted")
	}
	w := httptest.NewRecorder()
	in.Server.Handler().ServeHTTP(w, httptest.NewRequest("GET", "/runs/1/stages/sandbox2/metrics/latency/timeline.png", nil))
	if w.Code != 200 || w.Header().Get("Content-Type") != "image/png" {
		t.Fatalf("timeline: %d %s", w.Code, w.Body.String())
	}
	if img, err := png.Decode(bytes.NewReader(w.Body.Bytes())); err != nil || img.Bounds().Dx() < 300 {
		t.Fatalf("timeline is not a readable PNG: %v", err)
	}
	for _, path := range []string{"/runs/1/stages/sandbox2/metrics/signups/timeline.png", "/runs/1/stages/prod3/metrics/latency/timeline.png",
		"/runs/9/stages/sandbox2/metrics/latency/timeline.png", "/runs/x/stages/sandbox2/metrics/latency/timeline.png"} {
		if code, _ := get(t, in, path); code != 404 {
			t.Errorf("%s: %d, want 404", path, code)
		}
	}
}

package scrape

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/immunity-app/immunity/internal/freeport"

	"github.com/immunity-app/immunity/canary/internal/testapp"
	"github.com/immunity-app/immunity/canary/measure"
	"github.com/immunity-app/immunity/deployers"
	"github.com/immunity-app/immunity/pipeline/judge"
)

func host(t *testing.T, region, name string, a *testapp.App) deployers.Host {
	s := httptest.NewServer(a)
	t.Cleanup(s.Close)
	return deployers.Host{App: "papi", Region: region, Name: name, URL: s.URL}
}

func hit(t *testing.T, h deployers.Host, n int) {
	t.Helper()
	for range n {
		resp, err := http.Get(h.URL + "/x")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
}

var metrics = []measure.Metric{
	{Metric: judge.Metric{Name: measure.ErrorRate, Kind: judge.Rate}},
	{Metric: judge.Metric{Name: measure.Latency, Kind: judge.Latency}},
}

func TestScrapeIntervalDeltas(t *testing.T) {
	t.Parallel()
	b1 := host(t, "prod3", "host1", testapp.New(0, 0))
	b2 := host(t, "prod3", "host2", testapp.New(0, 0))
	c1 := host(t, "sandbox2", "host1", testapp.New(4, 30*time.Millisecond)) // 1 in 4 fails, 30 ms each
	hit(t, b1, 5)                                                           // before the window: not counted
	w := measure.Window{Baseline: []deployers.Host{b1, b2}, Canary: []deployers.Host{c1}, Metrics: metrics}
	s := New(nil)
	ctx := context.Background()
	start := time.Now()
	if in, err := s.Measure(ctx, w, start, start); err != nil || in.Baseline[measure.ErrorRate].Trials != 0 {
		t.Fatalf("priming read = %+v, %v; want no trials", in, err)
	}
	hit(t, b1, 10)
	hit(t, b2, 6)
	hit(t, c1, 8)
	in, err := s.Measure(ctx, w, start, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if d := in.Baseline[measure.ErrorRate]; d.Trials != 16 || d.Events != 0 || d.Err != "" {
		t.Fatalf("baseline error_rate = %+v, want 0 of 16", d)
	}
	if d := in.Canary[measure.ErrorRate]; d.Trials != 8 || d.Events != 2 {
		t.Fatalf("canary error_rate = %+v, want 2 of 8", d)
	}
	if d := in.Baseline[measure.Latency]; len(d.Values) != 16 || d.Values[0] > 0.005 {
		t.Fatalf("baseline latency = %v, want 16 samples under 5 ms", d.Values)
	}
	cv := in.Canary[measure.Latency].Values
	if len(cv) != 8 {
		t.Fatalf("canary latency has %d samples, want 8", len(cv))
	}
	for _, v := range cv {
		// 30 ms requests land in the (0.025, 0.05] bucket, or a later one on a loaded
		// machine, never an earlier one.
		if v < 0.025 || v > 0.25 {
			t.Fatalf("canary latency sample %v outside the 25-250 ms buckets", v)
		}
	}
	// The next interval counts only what happened since.
	hit(t, c1, 4)
	in, _ = s.Measure(ctx, w, start, time.Now())
	if d := in.Canary[measure.ErrorRate]; d.Trials != 4 || d.Events != 1 {
		t.Fatalf("second interval canary error_rate = %+v, want 1 of 4", d)
	}
	if d := in.Baseline[measure.ErrorRate]; d.Trials != 0 {
		t.Fatalf("second interval baseline trials = %v, want 0", d.Trials)
	}
}

func TestScrapeFailureIsAMeasurementError(t *testing.T) {
	t.Parallel()
	good := host(t, "prod3", "host1", testapp.New(0, 0))
	// A port nothing listens on, from below the ephemeral range (a closed test server's
	// port is free for another test's server to take meanwhile).
	addr, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + addr
	w := measure.Window{
		Baseline: []deployers.Host{good},
		Canary:   []deployers.Host{{Region: "sandbox2", Name: "host1", URL: dead}},
		Metrics:  append(metrics, measure.Metric{Metric: judge.Metric{Name: "signups", Kind: judge.Rate}}),
	}
	s := New(nil)
	ctx := context.Background()
	s.Measure(ctx, w, time.Now(), time.Now())
	in, err := s.Measure(ctx, w, time.Now(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if e := in.Canary[measure.ErrorRate].Err; !strings.Contains(e, "scrape sandbox2/host1") {
		t.Fatalf("canary err = %q, want the failed scrape named", e)
	}
	if e := in.Baseline[measure.ErrorRate].Err; e != "" {
		t.Fatalf("baseline err = %q, want none", e)
	}
	if e := in.Baseline["signups"].Err; !strings.Contains(e, "no scrape selector configured for signups") {
		t.Fatalf("unknown metric err = %q", e)
	}
}

func TestScrapeCountsOnlyMirroredMethods(t *testing.T) {
	t.Parallel()
	b := host(t, "prod3", "host1", testapp.New(2, 0)) // every second request fails
	c := host(t, "sandbox2", "host1", testapp.New(0, 0))
	w := measure.Window{Baseline: []deployers.Host{b}, Canary: []deployers.Host{c}, Metrics: metrics, Methods: []string{"GET", "HEAD"}}
	s := New(nil)
	ctx := context.Background()
	s.Measure(ctx, w, time.Now(), time.Now())
	for range 4 { // GET, POST, GET, POST: the POSTs (even requests) are the ones that fail
		for _, m := range []string{"GET", "POST"} {
			req, _ := http.NewRequest(m, b.URL+"/x", nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
	}
	in, _ := s.Measure(ctx, w, time.Now(), time.Now())
	if d := in.Baseline[measure.ErrorRate]; d.Trials != 4 || d.Events != 0 {
		t.Fatalf("baseline error_rate = %+v, want 0 of 4 GETs", d)
	}
	if n := len(in.Baseline[measure.Latency].Values); n != 4 {
		t.Fatalf("%d latency samples, want the 4 GETs", n)
	}
	// Without mirroring (a production canary) every method counts.
	w.Methods = nil
	hit(t, b, 2) // GETs 9 and 10: the 10th fails
	in, _ = s.Measure(ctx, w, time.Now(), time.Now())
	if d := in.Baseline[measure.ErrorRate]; d.Trials != 2 || d.Events != 1 {
		t.Fatalf("unmirrored baseline error_rate = %+v, want 1 of 2", d)
	}
}

// exposition is a host whose /metrics text the test writes.
type exposition struct{ text string }

func (e *exposition) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	io.WriteString(w, e.text)
}

const expo1 = `# TYPE signups_total counter
signups_total{plan="free"} 10
signups_total{plan="pro"} 5
# TYPE visits_total counter
visits_total 100
# TYPE queue_depth gauge
queue_depth{q="a"} 3
queue_depth{q="b"} 4
# TYPE job_seconds histogram
job_seconds_bucket{le="1"} 0
job_seconds_bucket{le="2"} 0
job_seconds_bucket{le="+Inf"} 0
job_seconds_sum 0
job_seconds_count 0
`

const expo2 = `# TYPE signups_total counter
signups_total{plan="free"} 12
signups_total{plan="pro"} 9
# TYPE visits_total counter
visits_total 150
# TYPE queue_depth gauge
queue_depth{q="a"} 7
queue_depth{q="b"} 1
# TYPE job_seconds histogram
job_seconds_bucket{le="1"} 10
job_seconds_bucket{le="2"} 20
job_seconds_bucket{le="+Inf"} 20
job_seconds_sum 25
job_seconds_count 20
`

func TestScrapeConfiguredSelectors(t *testing.T) {
	t.Parallel()
	e := &exposition{text: expo1}
	srv := httptest.NewServer(e)
	defer srv.Close()
	h := deployers.Host{Region: "sandbox2", Name: "host1", URL: srv.URL}
	w := measure.Window{Canary: []deployers.Host{h},
		Metrics: []measure.Metric{
			{Metric: judge.Metric{Name: "pro_signups", Kind: judge.Rate}, Spec: measure.Spec{Scrape: `signups_total{plan=~"pro|ent"}`, TrialsScrape: `visits_total`}},
			{Metric: judge.Metric{Name: "queue", Kind: judge.Gauge}, Spec: measure.Spec{Scrape: `queue_depth{q!="c"}`}},
			{Metric: judge.Metric{Name: "job", Kind: judge.Latency}, Spec: measure.Spec{Scrape: `job_seconds`}},
			{Metric: judge.Metric{Name: "job_p90", Kind: judge.Latency}, Spec: measure.Spec{Scrape: `job_seconds`, Quantile: 0.9}},
			{Metric: judge.Metric{Name: "typo", Kind: judge.Gauge}, Spec: measure.Spec{Scrape: `queue_depth{q="a"`}},
		}}
	s := New(nil)
	ctx := context.Background()
	s.Measure(ctx, w, time.Now(), time.Now())
	e.text = expo2
	in, _ := s.Measure(ctx, w, time.Now(), time.Now())
	c := in.Canary
	if d := c["pro_signups"]; d.Events != 4 || d.Trials != 50 || d.Err != "" {
		t.Fatalf("pro_signups = %+v, want 4 of 50", d)
	}
	if d := c["queue"]; len(d.Values) != 1 || d.Values[0] != 8 {
		t.Fatalf("queue = %+v, want one sample of 8", d)
	}
	if d := c["job"]; len(d.Values) != 20 || d.Values[0] != 0.05 || d.Values[19] != 1.95 {
		t.Fatalf("job = %v, want 20 samples spread over (0,2]", d.Values)
	}
	if d := c["job_p90"]; len(d.Values) != 1 || d.Values[0] != 1.8 {
		t.Fatalf("job_p90 = %+v, want one sample of 1.8", d)
	}
	if d := c["typo"]; !strings.Contains(d.Err, "expected a closing }") {
		t.Fatalf("typo err = %q", d.Err)
	}
}

func TestParseSelector(t *testing.T) {
	t.Parallel()
	sel, err := parseSelector(`http_requests_total{code=~"5..", method!="POST",path="/a\"b"}`)
	if err != nil {
		t.Fatal(err)
	}
	if sel.name != "http_requests_total" || len(sel.matchers) != 3 || sel.matchers[2].value != `/a"b` {
		t.Fatalf("parsed %+v", sel)
	}
	for _, bad := range []string{`{code="5"}`, `x{code=5}`, `x{code=~"("}`, `x{code~"a"}`} {
		if _, err := parseSelector(bad); err == nil {
			t.Errorf("parseSelector(%q) accepted", bad)
		}
	}
}

// cache is an exposition of a cache's hits and lookups counters.
func cache(hits, lookups int) string {
	return "# TYPE cache_hits_total counter\ncache_hits_total " + strconv.Itoa(hits) +
		"\n# TYPE cache_lookups_total counter\ncache_lookups_total " + strconv.Itoa(lookups) + "\n"
}

// A gauge given as a share of counts gets its hits and lookups as Events and Trials,
// each interval's increase. A restart sets both counters back; when only one of them
// is seen to go down, both still count from zero, so the hits are never negative nor
// more than the lookups.
func TestScrapeShareGauge(t *testing.T) {
	t.Parallel()
	e := &exposition{text: cache(900, 1000)}
	srv := httptest.NewServer(e)
	defer srv.Close()
	w := measure.Window{Canary: []deployers.Host{{Region: "sandbox2", Name: "host1", URL: srv.URL}},
		Metrics: []measure.Metric{{Metric: judge.Metric{Name: "hit_ratio", Kind: judge.Gauge},
			Spec: measure.Spec{Scrape: "cache_hits_total", TrialsScrape: "cache_lookups_total"}}}}
	s := New(nil)
	ctx := context.Background()
	s.Measure(ctx, w, time.Now(), time.Now())
	for _, step := range []struct {
		text           string
		events, trials float64
	}{
		{cache(1340, 1500), 440, 500},
		{cache(60, 80), 60, 80},     // restarted: both went down
		{cache(45, 90), 45, 90},     // restarted again: the hits went down, the lookups did not (45 of 10 otherwise)
		{cache(120, 190), 75, 100},  // no restart
		{cache(150, 150), 150, 150}, // restarted: only the lookups went down (30 of 150 otherwise)
		{cache(150, 150), 0, 0},     // nothing happened
	} {
		e.text = step.text
		in, err := s.Measure(ctx, w, time.Now(), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		d := in.Canary["hit_ratio"]
		if d.Events != step.events || d.Trials != step.trials || len(d.Values) != 0 || d.Err != "" {
			t.Fatalf("after %q: %+v, want %v of %v and no values", step.text, d, step.events, step.trials)
		}
	}
}

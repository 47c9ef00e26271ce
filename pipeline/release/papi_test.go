package release

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/immunity-app/immunity/internal/freeport"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/immunity-app/immunity/fixtures"
)

// The sample app fixtures/papi, built by Build exactly as immunity.yml describes it.
var papiBuild = []string{"go", "build", "-o", "bin/", ".", "./itest"}

// The knob lines DEMO.md tells the demo to commit (checked against DEMO.md below).
var (
	knobsBroken  = []string{"var ItemsSorted = false"}
	knobsRuntime = []string{"var ExtraLatency = 120 * time.Millisecond", "var ErrorPercent = 8"}
	knobsTraffic = []string{"var SearchLatency = 250 * time.Millisecond"}
	knobsGood    = []string{`var Greeting = "hello from papi, now with more items"`}
)

func TestPapiDemoLinesAreDocumentedAndApply(t *testing.T) {
	t.Parallel()
	demo, err := fixtures.Papi.ReadFile("papi/DEMO.md")
	if err != nil {
		t.Fatal(err)
	}
	knobs, err := fixtures.Papi.ReadFile("papi/knobs.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, set := range [][]string{knobsBroken, knobsRuntime, knobsTraffic, knobsGood} {
		for _, line := range set {
			if !strings.Contains(string(demo), "`"+line+"`") {
				t.Errorf("DEMO.md does not show %s", line)
			}
			if _, err := setKnobs(string(knobs), line); err != nil {
				t.Error(err)
			}
		}
	}
}

// setKnobs replaces each knob's `var NAME =` line in knobs.go, as the demo does.
func setKnobs(src string, lines ...string) (string, error) {
	out := strings.Split(src, "\n")
	for _, line := range lines {
		prefix, _, _ := strings.Cut(line, " = ")
		n := 0
		for i, l := range out {
			if strings.HasPrefix(l, prefix+" = ") {
				out[i] = line
				n++
			}
		}
		if n != 1 {
			return "", fmt.Errorf("knobs.go has %d lines starting %q, want 1", n, prefix)
		}
	}
	return strings.Join(out, "\n"), nil
}

// papiRepo makes a git repo holding papi as the demo ships it (fixtures.Papi) and commits it; each knob set
// becomes one more commit. It returns the repo and the SHAs, base first.
func papiRepo(t testing.TB, knobSets ...[]string) (*testRepo, []string) {
	t.Helper()
	r := newRepo(t)
	err := fs.WalkDir(fixtures.Papi, "papi", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fixtures.Papi.ReadFile(path)
		if err == nil {
			r.write(strings.TrimPrefix(path, "papi/"), string(data), 0o644)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	r.write("go.mod", fixtures.PapiGoMod, 0o644) // papi is embedded in Immunity's module, so its go.mod is not in the folder
	shas := []string{r.commit("papi")}
	base := readFile(t, filepath.Join(r.dir, "knobs.go")) + "\n"
	for _, set := range knobSets {
		src, err := setKnobs(base, set...)
		if err != nil {
			t.Fatal(err)
		}
		r.write("knobs.go", src, 0o644)
		shas = append(shas, r.commit("demo: "+strings.Join(set, "; ")))
	}
	return r, shas
}

// papiRelease builds sha and unpacks it; it returns the release folder.
func papiRelease(t *testing.T, r *testRepo, sha string) string {
	t.Helper()
	var log strings.Builder
	s := Spec{App: "papi", RepoPath: r.dir, SHA: sha, Command: papiBuild, Artifacts: []string{"bin"}, Dir: t.TempDir(), Log: &log}
	rel, err := Build(context.Background(), s)
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	return unpack(t, rel)
}

// startPapi runs bin/papi from a release folder on a free port until the test ends and
// returns its base URL once /healthz answers.
func startPapi(t *testing.T, dir, release string) string {
	t.Helper()
	port := freePort(t)
	cmd := exec.Command(filepath.Join(dir, "bin/papi"))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PORT="+strconv.Itoa(port), "IMMUNITY_RELEASE="+release)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if res, err := http.Get(url + "/healthz"); err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return url
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("papi did not answer /healthz on %s: %s", url, out.String())
	return ""
}

func freePort(t *testing.T) int {
	t.Helper()
	p, err := freeport.Get()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// runItest runs the release's bin/itest against url and returns its output and exit code.
func runItest(t *testing.T, dir, url string) (string, int) {
	t.Helper()
	cmd := exec.Command(filepath.Join(dir, "bin/itest"))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "IMMUNITY_BASE_URL="+url)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return string(out), exit.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(out), 0
}

func TestPapiReleases(t *testing.T) {
	t.Parallel()
	r, shas := papiRepo(t, knobsBroken, knobsRuntime, knobsTraffic)
	base, broken, runtime, traffic := shas[0], shas[1], shas[2], shas[3]

	t.Run("base passes its itest and exports metrics", func(t *testing.T) {
		t.Parallel()
		dir := papiRelease(t, r, base)
		url := startPapi(t, dir, base)
		out, code := runItest(t, dir, url)
		if code != 0 || strings.Contains(out, "FAIL") || !strings.Contains(out, "PASS items_list_sorted") {
			t.Fatalf("itest exited %d:\n%s", code, out)
		}
		checkPapiMetrics(t, url, base)
	})
	t.Run("ItemsSorted=false fails the itest", func(t *testing.T) {
		t.Parallel()
		dir := papiRelease(t, r, broken)
		out, code := runItest(t, dir, startPapi(t, dir, broken))
		if code != 1 || !strings.Contains(out, "FAIL items_list_sorted: items are not sorted") {
			t.Fatalf("itest exited %d, want 1 with FAIL items_list_sorted:\n%s", code, out)
		}
	})
	for name, sha := range map[string]string{"runtime regression": runtime, "traffic-only regression": traffic} {
		t.Run(name+" still passes the itest", func(t *testing.T) {
			t.Parallel()
			dir := papiRelease(t, r, sha)
			url := startPapi(t, dir, sha)
			for try := 0; try < 2; try++ { // ErrorPercent spreads failures over successive GETs
				if out, code := runItest(t, dir, url); code != 0 {
					t.Fatalf("itest run %d exited %d:\n%s", try, code, out)
				}
			}
		})
	}
}

// checkPapiMetrics parses /metrics with Prometheus' own parser and checks that the
// request counter counts, the histogram has its buckets and build info names the release.
func checkPapiMetrics(t *testing.T, url, release string) {
	t.Helper()
	items := map[string]string{"method": "GET", "path": "/api/items", "code": "200"}
	before := metricValue(t, scrape(t, url), "http_requests_total", items)
	for range 3 {
		res, err := http.Get(url + "/api/items")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
	}
	families := scrape(t, url)
	if after := metricValue(t, families, "http_requests_total", items); after != before+3 {
		t.Errorf("http_requests_total{GET /api/items 200} went from %v to %v after 3 requests, want +3", before, after)
	}
	if v := metricValue(t, families, "papi_build_info", map[string]string{"release": release}); v != 1 {
		t.Errorf("papi_build_info{release=%s} = %v, want 1", release, v)
	}
	if v := metricValue(t, families, "http_requests_total", map[string]string{"method": "GET", "path": "/api/items/{id}", "code": "404"}); v < 1 {
		t.Errorf("the itest's 404 is not counted under the route pattern /api/items/{id}")
	}
	checkHistogram(t, families["http_request_duration_seconds"], map[string]string{"method": "GET", "path": "/api/items"})
}

func checkHistogram(t *testing.T, mf *dto.MetricFamily, labels map[string]string) {
	t.Helper()
	if mf == nil || mf.GetType() != dto.MetricType_HISTOGRAM {
		t.Fatalf("http_request_duration_seconds is missing or no histogram: %v", mf)
	}
	h := findMetric(mf, labels).GetHistogram()
	if h == nil {
		t.Fatalf("no histogram for %v", labels)
	}
	var les []string
	for _, b := range h.GetBucket() {
		les = append(les, strconv.FormatFloat(b.GetUpperBound(), 'g', -1, 64))
	}
	if got := strings.Join(les, ","); got != "0.005,0.01,0.025,0.05,0.1,0.25,0.5,1,2.5,5,+Inf" {
		t.Errorf("buckets %s", got)
	}
	if h.GetSampleCount() < 4 || h.GetSampleSum() <= 0 {
		t.Errorf("histogram count %d sum %v, want at least 4 samples", h.GetSampleCount(), h.GetSampleSum())
	}
}

func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	res, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(res.Body)
	if err != nil {
		t.Fatalf("/metrics is not valid Prometheus text: %v", err)
	}
	return families
}

func metricValue(t *testing.T, families map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	t.Helper()
	mf := families[name]
	if mf == nil {
		return 0
	}
	m := findMetric(mf, labels)
	switch {
	case m == nil:
		return 0
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	}
	t.Fatalf("%s is neither counter nor gauge", name)
	return 0
}

func findMetric(mf *dto.MetricFamily, labels map[string]string) *dto.Metric {
	for _, m := range mf.GetMetric() {
		match := 0
		for _, lp := range m.GetLabel() {
			if v, ok := labels[lp.GetName()]; ok && v == lp.GetValue() {
				match++
			}
		}
		if match == len(labels) {
			return m
		}
	}
	return nil
}

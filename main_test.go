package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/immunity-app/immunity/internal/freeport"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/immunity-app/immunity/fixtures"
	"github.com/immunity-app/immunity/pipeline/config"
	"github.com/immunity-app/immunity/store"
)

func TestConfigCheckNamesFileLineAndKey(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "immunity.yml")
	os.WriteFile(file, []byte("apps:\n  - name: papi\n    repo: {path: x}\n    biuld: {command: [make]}\n"), 0o644)
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"config", "check", file}, &out, &errb)
	want := file + `:4: unknown key "biuld" in apps[0] (did you mean "build"?)`
	if code != 1 || !strings.Contains(errb.String(), want) {
		t.Fatalf("exit %d, stderr:\n%s\nwant it to contain %q", code, errb.String(), want)
	}
}

func TestUnknownCommandIsAnError(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"promte"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), `unknown command "promte" (did you mean "promote"?)`) {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
}

// TestKillDuringRolloutAndRestartFinishesTheRun runs the real binary on a real repository
// with the local deployer, SIGKILLs it in the middle of a production rollout, starts it
// again and checks the run finishes with every host's current on a complete release.
func TestKillDuringRolloutAndRestartFinishesTheRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds papi and the immunity binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "immunity")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build immunity: %v\n%s", err, out)
	}
	repo := papiRepo(t, filepath.Join(dir, "papi.git"))
	first := commit(t, repo, "first release", "")
	listen := freeAddr(t)
	ports := []int{freePort(t), freePort(t), freePort(t)}
	cfg := fmt.Sprintf(`server:
  listen: %s
  data_dir: data
apps:
  - name: papi
    repo: {path: papi.git, branch: main, poll: 200ms}
    build: {command: [go, build, -o, bin/, ., ./itest], artifacts: [bin]}
    run: {command: [bin/papi]}
    tests: {command: [bin/itest]}
    regions:
      - name: prod
        production: true
        monitor: {period: 1500ms, interval: 500ms}
        hosts: [{name: host1, port: %d}, {name: host2, port: %d}, {name: host3, port: %d}]
`, listen, ports[0], ports[1], ports[2])
	os.WriteFile(filepath.Join(dir, "immunity.yml"), []byte(cfg), 0o644)
	api := "http://" + listen

	srv, _ := startServer(t, bin, dir)
	waitRun(t, api, first, "succeeded", 3*time.Minute)

	second := commit(t, repo, "second release", `"hello again"`)
	// Wait until host1 is switched but host3 is not, then kill the server outright.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		r := runOf(t, api, second)
		if r != nil && len(r.Stages) == 1 {
			steps := map[string]string{}
			for _, h := range r.Stages[0].Hosts {
				steps[h.Host] = string(h.Step)
			}
			if (steps["host1"] == "monitoring" || steps["host1"] == "done") && steps["host3"] == "pending" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("never saw the rollout half way: %+v", r)
		}
		time.Sleep(20 * time.Millisecond)
	}
	srv.Process.Signal(syscall.SIGKILL)
	srv.Wait()

	_, logs := startServer(t, bin, dir)
	r := waitRun(t, api, second, "succeeded", 2*time.Minute)
	checkJSONLogs(t, logs.String(), second)
	for _, h := range []string{"host1", "host2", "host3"} {
		base := filepath.Join(dir, "data", "hosts", "papi", "prod", h)
		target, err := os.Readlink(filepath.Join(base, "current"))
		if err != nil {
			t.Fatalf("%s: %v", h, err)
		}
		if filepath.Base(target) != second {
			t.Errorf("%s current -> %s, want %s", h, target, second)
		}
		if _, err := os.Stat(filepath.Join(base, "releases", second, ".immunity-release")); err != nil {
			t.Errorf("%s: release %s is not complete: %v", h, second[:7], err)
		}
	}
	// The app on every host answers with the new release.
	for _, p := range ports {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", p))
		if err != nil {
			t.Fatal(err)
		}
		var body struct{ Release string }
		json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if body.Release != second {
			t.Errorf("port %d serves %q, want %s", p, body.Release, second[:7])
		}
	}
	_ = r
}

func startServer(t *testing.T, bin, dir string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--config", "immunity.yml")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "IMMUNITY_LISTEN=", "IMMUNITY_LOG_FORMAT=json", "IMMUNITY_LOG_LEVEL=")
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
		stopApps(dir)
	})
	return cmd, logs
}

// syncBuffer is a bytes.Buffer a child process writes while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// checkJSONLogs checks that with IMMUNITY_LOG_FORMAT=json every line the server wrote is
// a JSON object, that the run's transitions were logged with app, run, region and sha,
// and its host steps with app, region, host and sha.
func checkJSONLogs(t *testing.T, logs, sha string) {
	t.Helper()
	stageLines, hostLines := 0, 0
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("log line is not JSON: %q", line)
			continue
		}
		if rec["sha"] != sha || rec["app"] != "papi" {
			continue
		}
		if rec["event"] == "stage.changed" && rec["run"] != nil && rec["region"] == "prod" {
			stageLines++
		}
		if rec["host"] != nil && rec["region"] == "prod" {
			hostLines++
		}
	}
	if stageLines == 0 || hostLines == 0 {
		t.Errorf("%d stage and %d host lines about %s with app, run, region, host and sha:\n%s", stageLines, hostLines, sha[:7], logs)
	}
}

// stopApps kills the apps the local deployer started (they outlive the server by design).
func stopApps(dir string) {
	filepath.WalkDir(filepath.Join(dir, "data", "hosts"), func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Name() == "app.pid" {
			var pid int
			b, _ := os.ReadFile(path)
			fmt.Sscan(string(b), &pid)
			if pid > 0 {
				syscall.Kill(-pid, syscall.SIGKILL)
			}
		}
		return nil
	})
}

func runOf(t *testing.T, api, sha string) *store.Run {
	resp, err := http.Get(api + "/api/runs?app=papi")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var runs []store.Run
	json.NewDecoder(resp.Body).Decode(&runs)
	for i := range runs {
		if runs[i].SHA == sha {
			return &runs[i]
		}
	}
	return nil
}

func waitRun(t *testing.T, api, sha, state string, timeout time.Duration) *store.Run {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if r := runOf(t, api, sha); r != nil && string(r.State) == state {
			return r
		} else if r != nil && r.State.Terminal() {
			t.Fatalf("run of %s ended %s: %s", sha[:7], r.State, r.Message)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("run of %s did not reach %s in %s: %+v", sha[:7], state, timeout, runOf(t, api, sha))
	return nil
}

func papiRepo(t *testing.T, dir string) *git.Repository {
	t.Helper()
	r, err := git.PlainInitWithOptions(dir, &git.PlainInitOptions{InitOptions: git.InitOptions{DefaultBranch: plumbing.NewBranchReferenceName("main")}})
	if err != nil {
		t.Fatal(err)
	}
	sub, _ := fs.Sub(fixtures.Papi, "papi")
	if err := os.CopyFS(dir, sub); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte(fixtures.PapiGoMod), 0o644)
	return r
}

// commit commits the work tree, first setting papi's greeting when given.
func commit(t *testing.T, r *git.Repository, msg, greeting string) string {
	t.Helper()
	wt, _ := r.Worktree()
	if greeting != "" {
		path := filepath.Join(wt.Filesystem.Root(), "knobs.go")
		b, _ := os.ReadFile(path)
		lines := strings.Split(string(b), "\n")
		for i, l := range lines {
			if strings.HasPrefix(l, "var Greeting = ") {
				lines[i] = "var Greeting = " + greeting
			}
		}
		os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o644)
	}
	if err := wt.AddWithOptions(&git.AddOptions{All: true}); err != nil {
		t.Fatal(err)
	}
	h, err := wt.Commit(msg, &git.CommitOptions{Author: &object.Signature{Name: "Ada", Email: "ada@example.com", When: time.Now()}})
	if err != nil {
		t.Fatal(err)
	}
	return h.String()
}

func freePort(t *testing.T) int {
	t.Helper()
	p, err := freeport.Get()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func freeAddr(t *testing.T) string { return fmt.Sprintf("127.0.0.1:%d", freePort(t)) }

func TestServeRefusesAGitHubAppWithoutWebhookSecret(t *testing.T) {
	t.Chdir(t.TempDir())
	t.Setenv("IMMUNITY_GITHUB_APP_ID", "12345")
	t.Setenv("IMMUNITY_GITHUB_WEBHOOK_SECRET", "")
	t.Setenv("IMMUNITY_GITHUB_WEBHOOK_SECRET_FILE", "")
	t.Setenv("IMMUNITY_LISTEN", freeAddr(t))
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"serve"}, &out, &errb)
	if code != 1 || !strings.Contains(errb.String(), "webhook secret") {
		t.Fatalf("exit %d, stderr %q; want a refusal naming the webhook secret", code, errb.String())
	}
}

func TestServeRefusesAWhitespaceWebhookSecret(t *testing.T) {
	t.Chdir(t.TempDir())
	t.Setenv("IMMUNITY_GITHUB_APP_ID", "12345")
	t.Setenv("IMMUNITY_GITHUB_PRIVATE_KEY_FILE", "key.pem")
	t.Setenv("IMMUNITY_GITHUB_WEBHOOK_SECRET", "  \t ")
	t.Setenv("IMMUNITY_GITHUB_WEBHOOK_SECRET_FILE", "")
	t.Setenv("IMMUNITY_LISTEN", freeAddr(t))
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"serve"}, &out, &errb)
	if code != 1 || !strings.Contains(errb.String(), "webhook secret") || !strings.Contains(errb.String(), "only whitespace") {
		t.Fatalf("exit %d, stderr %q; want a refusal of the whitespace secret", code, errb.String())
	}
}

// TestREADMEConfigExamplesAreValid keeps the README's config examples true: the main
// example, with the metrics and access examples put into its app, passes config check.
func TestREADMEConfigExamplesAreValid(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	var blocks []string
	for _, part := range strings.Split(string(b), "```yaml\n")[1:] {
		blocks = append(blocks, part[:strings.Index(part, "```")])
	}
	if len(blocks) < 4 {
		t.Fatalf("found %d yaml examples in the README, want the config, access, metrics and ssh ones", len(blocks))
	}
	main := blocks[0]
	var extra string
	for _, blk := range blocks[1:] {
		if strings.HasPrefix(blk, "    access:") || strings.HasPrefix(blk, "    metrics:") {
			extra += blk
		}
	}
	full := strings.Replace(main, "    metrics: []", extra+"    # metrics and access from the README", 1)
	if full == main || extra == "" {
		t.Fatal("could not put the metrics and access examples into the main example")
	}
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "keys"), 0o755)
	file := filepath.Join(dir, "immunity.yml")
	os.WriteFile(file, []byte(full), 0o644)
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"config", "check", file}, &out, &errb); code != 0 {
		t.Fatalf("README example fails config check:\n%s\n%s", errb.String(), full)
	}
}

func TestJudgeOfflineFromRecordedSamples(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "immunity.yml")
	os.WriteFile(cfg, []byte(`apps:
  - name: papi
    repo: {path: papi.git}
    build: {command: [make], artifacts: [bin]}
    run: {command: [bin/papi]}
    metrics:
      - {name: latency, kind: latency, allowed_effect: 0.2, unit: s}
      - {name: error_rate, kind: rate, critical: true}
    regions: [{name: s1, hosts: [{name: h1, port: 4001}]}]
`), 0o644)
	// Five minutes of samples, 20 requests per 10 s interval; the canary is twice as slow.
	write := func(name string, slow float64) string {
		var b strings.Builder
		b.WriteString("time,metric,value\n")
		for s := 0; s < 300; s++ {
			for k := 0; k < 2; k++ {
				fmt.Fprintf(&b, "%d,latency,%.4f\n", 1700000000+s, slow*(0.1+0.01*float64((s*7+k*3)%10)))
			}
			if s%10 == 9 {
				fmt.Fprintf(&b, "%d,error_rate.events,0\n%d,error_rate.trials,20\n", 1700000000+s, 1700000000+s)
			}
		}
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(b.String()), 0o644)
		return p
	}
	base, same, slow := write("base.csv", 1), write("same.csv", 1), write("slow.csv", 2)

	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"judge", "--config", cfg, "--baseline", base, "--canary", same, "--json"}, &out, &errb)
	var v struct {
		Outcome, Verdict string
		Score            float64
		Final            bool
		Look, Looks      int
		Metrics          []struct{ Name, Outcome, Classification, Why string }
	}
	if err := json.Unmarshal(out.Bytes(), &v); err != nil || code != 0 || v.Outcome != "pass" || v.Verdict != "Pass" ||
		len(v.Metrics) != 2 || v.Metrics[0].Classification != "Pass" {
		t.Fatalf("A/A: exit %d, outcome %q (%v)\n%s%s", code, v.Outcome, err, out.String(), errb.String())
	}
	out.Reset()
	code = run(context.Background(), []string{"judge", "--config", cfg, "--baseline", base, "--canary", slow}, &out, &errb)
	if code != 3 || !strings.Contains(out.String(), "latency") || !strings.Contains(strings.ToLower(out.String()), "fail") {
		t.Fatalf("twice as slow: exit %d\n%s", code, out.String())
	}
	// --at: the verdict at 20 s, with the whole window's look schedule: look 2 of 30,
	// too early for the slow canary to have failed yet.
	out.Reset()
	code = run(context.Background(), []string{"judge", "--config", cfg, "--baseline", base, "--canary", slow, "--at", "20", "--json"}, &out, &errb)
	v.Metrics = nil
	if err := json.Unmarshal(out.Bytes(), &v); err != nil || code != 0 || v.Final || v.Look != 2 || v.Looks != 30 || v.Outcome == "fail" {
		t.Fatalf("--at 20: exit %d, %+v (%v)\n%s%s", code, v, err, out.String(), errb.String())
	}
	errb.Reset()
	if code := run(context.Background(), []string{"judge", "--config", cfg, "--baseline", base, "--canary", slow, "--at", "-5"}, &out, &errb); code == 0 || !strings.Contains(errb.String(), "--at -5") {
		t.Errorf("--at -5: exit %d, %s", code, errb.String())
	}
}

// judge calibrate measures each metric's allowance from recorded A/A pairs and writes it
// into the config, keeping the file's comments; the config then judges with it. A bad
// recording writes nothing.
func TestJudgeCalibrateWritesAllowances(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "immunity.yml")
	const text = `# papi's pipeline
apps:
  - name: papi
    repo: {path: papi.git}
    build: {command: [make], artifacts: [bin]}
    run: {command: [bin/papi]}
    metrics:
      - {name: latency, kind: latency, allowed_effect: 0.2, unit: s} # per request
      - {name: memory, kind: gauge, direction: either, allowed_effect: 0.1}
      - {name: error_rate, kind: rate, critical: true}
    regions: [{name: prod1, production: true, hosts: [{name: h1, port: 4001}, {name: h2, port: 4002}], monitor: {period: 2m}}]
`
	os.WriteFile(cfg, []byte(text), 0o644)
	// Two hosts on one release for 10 minutes: each host's memory drifts on its own
	// (AR(1), 2%), latency shares the traffic's shape.
	rng := rand.New(rand.NewPCG(9, 9))
	write := func(name string, state *float64) string {
		var b strings.Builder
		for s := 0; s < 600; s++ {
			for k := 0; k < 5; k++ {
				fmt.Fprintf(&b, "%d.%d,latency,%.5f\n", 1700000000+s, 2*k, 0.1*math.Exp(0.3*rng.NormFloat64()))
			}
			if s%10 == 9 {
				*state = 0.8**state + 0.6*rng.NormFloat64()
				fmt.Fprintf(&b, "%d,memory,%.0f\n", 1700000000+s, 100e6*math.Exp(0.02**state))
				fmt.Fprintf(&b, "%d,error_rate.events,%d\n%d,error_rate.trials,50\n", 1700000000+s, rng.IntN(2), 1700000000+s)
			}
		}
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(b.String()), 0o644)
		return p
	}
	var sa, sb float64
	a, b := write("a.csv", &sa), write("b.csv", &sb)
	bad := filepath.Join(dir, "bad.csv")
	os.WriteFile(bad, []byte("1700000000,latency,fast\n"), 0o644)

	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"judge", "calibrate", "--config", cfg, "--baseline", a, "--canary", bad}, &out, &errb); code == 0 || !strings.Contains(errb.String(), "expected a number") {
		t.Fatalf("bad recording: exit %d, %s", code, errb.String())
	}
	if got, _ := os.ReadFile(cfg); string(got) != text {
		t.Fatalf("a failed calibration changed the config:\n%s", got)
	}
	if code := run(context.Background(), []string{"judge", "calibrate", "--config", cfg, "--baseline", a, "--canary", b}, &out, &errb); code != 0 {
		t.Fatalf("calibrate: exit %d\n%s%s", code, out.String(), errb.String())
	}
	if !strings.Contains(out.String(), "Calibrated on 5 A/A windows of 2m0s (12 looks of 10s)") {
		t.Errorf("calibrate said:\n%s", out.String())
	}
	got, _ := os.ReadFile(cfg)
	if !strings.Contains(string(got), "# papi's pipeline") || !strings.Contains(string(got), "# per request") {
		t.Errorf("comments lost:\n%s", got)
	}
	c, err := config.Load(cfg)
	if err != nil {
		t.Fatalf("the written config does not load: %v\n%s", err, got)
	}
	ms := c.Apps[0].JudgeMetrics()
	mem := ms[1].Allowance
	if ms[1].Name != "memory" || mem.Windows != 5 || math.Hypot(mem.Noise, mem.Drift) < 0.01 || math.Hypot(mem.Noise, mem.Drift) > 0.08 {
		t.Errorf("memory's allowance %+v: want 5 windows, noise and drift together near 2%%·√2", mem)
	}
	if e := ms[2].Allowance; ms[2].Name != "error_rate" || e.Dispersion < 1 || e.Windows != 5 {
		t.Errorf("error_rate's allowance %+v", e)
	}

	// --recorded takes every pair a monitor with calibrate: true wrote in a folder.
	rec := filepath.Join(dir, "calibration", "papi", "prod1")
	os.MkdirAll(rec, 0o755)
	if code := run(context.Background(), []string{"judge", "calibrate", "--config", cfg, "--recorded", rec}, &out, &errb); code == 0 || !strings.Contains(errb.String(), "no recorded A/A windows") {
		t.Fatalf("empty folder: exit %d, %s", code, errb.String())
	}
	for i, p := range []string{a, b} {
		data, _ := os.ReadFile(p)
		os.WriteFile(filepath.Join(rec, "20261204T070000.000Z."+[]string{"baseline", "canary"}[i]+".csv"), data, 0o644)
	}
	os.WriteFile(filepath.Join(rec, "20261204T080000.000Z.baseline.csv"), nil, 0o644)
	if code := run(context.Background(), []string{"judge", "calibrate", "--config", cfg, "--recorded", rec}, &out, &errb); code == 0 || !strings.Contains(errb.String(), "has no 20261204T080000.000Z.canary.csv beside it") {
		t.Fatalf("unpaired recording: exit %d, %s", code, errb.String())
	}
	os.Remove(filepath.Join(rec, "20261204T080000.000Z.baseline.csv"))
	out.Reset()
	if code := run(context.Background(), []string{"judge", "calibrate", "--config", cfg, "--recorded", rec}, &out, &errb); code != 0 {
		t.Fatalf("calibrate --recorded: exit %d\n%s%s", code, out.String(), errb.String())
	}
	if !strings.Contains(out.String(), "Calibrated on 5 A/A windows") {
		t.Errorf("calibrate --recorded said:\n%s", out.String())
	}
}

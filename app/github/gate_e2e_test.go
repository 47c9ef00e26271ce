package github

import (
	"context"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/immunity-app/immunity/app/github/githubtest"
	"github.com/immunity-app/immunity/bot"
	"github.com/immunity-app/immunity/checks"
	"github.com/immunity-app/immunity/deployers"
	"github.com/immunity-app/immunity/pipeline"
	"github.com/immunity-app/immunity/pipeline/config"
	"github.com/immunity-app/immunity/pipeline/judge"
	"github.com/immunity-app/immunity/store"
)

// gateE2EConfig has a canary region (sandbox2, judged against prod3) and Immunity as the
// gate of the repo's GitHub environment "production", which deploys prod3.
const gateE2EConfig = `
server:
  url: https://immunity.example.com
apps:
  - name: papi
    repo: {github: Codertocat/Hello-World, branch: master}
    build: {command: [true], artifacts: [README.md]}
    run: {command: [./papi]}
    tests: {command: [true]}
    regions:
      - name: sandbox1
        hosts: [{name: s1, port: 18921}]
      - name: sandbox2
        monitor: {mirror_from: prod3, period: 5m, interval: 10s}
        hosts: [{name: s2, port: 18922}]
      - name: prod3
        production: true
        manual_approval: true
        hosts: [{name: p1, port: 18931}]
    github_gate:
      production: {region: prod3, after: [sandbox2], require: [canary_pass, not_locked, in_window]}
`

// canary is a hand-written Monitor: each window makes four passing looks of 30, then
// waits for the test to end it (finish) with a verdict.
type canary struct {
	mu      sync.Mutex
	outcome map[string]judge.Outcome // release -> final outcome once finished
	looked  chan string              // a release whose window made its four looks
}

func newCanary() *canary {
	return &canary{outcome: map[string]judge.Outcome{}, looked: make(chan string, 10)}
}

func (c *canary) finish(sha string, o judge.Outcome) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.outcome[sha] = o
}

func (c *canary) Monitor(ctx context.Context, req pipeline.MonitorRequest, look func(judge.Verdict)) (judge.Verdict, error) {
	for i := 1; i <= 4; i++ {
		look(judge.Verdict{Outcome: judge.Pass, Score: 100, Reason: "all metrics within range", Look: i, Looks: 30})
	}
	c.looked <- req.Release
	for {
		c.mu.Lock()
		o, done := c.outcome[req.Release]
		c.mu.Unlock()
		switch {
		case done && o == judge.Pass:
			return judge.Verdict{Outcome: judge.Pass, Score: 100, Reason: "all metrics within range", Final: true, Look: 30, Looks: 30}, nil
		case done:
			return judge.Verdict{Outcome: o, Score: 50, Reason: "latency +80% above the allowed +20%", Final: true, Look: 5, Looks: 30}, nil
		}
		select {
		case <-ctx.Done():
			return judge.Verdict{}, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// gateWorld is a real engine, the App, the reporter and the gate on one store file, with
// a fake GitHub enforcing its description; stop and start it again to restart.
type gateWorld struct {
	t      *testing.T
	dir    string
	fake   *githubtest.Server
	canary *canary
	dep    *hosts
	h      *harness
	config string           // gateE2EConfig unless set before start
	clock  func() time.Time // the engine's clock; time.Now unless set
	eng    *pipeline.Engine
	rep    *checks.Reporter
	gate   *checks.Gate
	st     *store.Store
}

func newGateWorld(t *testing.T, contract *githubtest.Contract, opts ...func(*gateWorld)) *gateWorld {
	w := &gateWorld{t: t, dir: t.TempDir(), fake: githubtest.New(t), canary: newCanary(), dep: &hosts{state: map[string]deployers.HostState{}}}
	for _, o := range opts {
		o(w)
	}
	w.fake.Enforce(contract)
	w.start()
	t.Cleanup(w.stop)
	return w
}

func (w *gateWorld) start() {
	t, ctx := w.t, context.Background()
	yml := gateE2EConfig
	if w.config != "" {
		yml = w.config
	}
	cfg, err := config.Parse(filepath.Join(w.dir, "immunity.yml"), []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	if w.st, err = store.Open(ctx, filepath.Join(w.dir, "immunity.db")); err != nil {
		t.Fatal(err)
	}
	w.eng, err = pipeline.New(pipeline.Options{Config: cfg, Store: w.st, Builder: builder{w.dir}, Tester: tester{}, Monitor: w.canary,
		Deployer: func(*config.App, *config.Region) (deployers.Deployer, error) { return w.dep, nil }, Tick: 20 * time.Millisecond, Now: w.clock})
	if err != nil {
		t.Fatal(err)
	}
	var gate *checks.Gate
	app, err := New(githubConfig(t, w.fake), w.eng, bot.New(w.eng, nil), nil, WithGateWake(func() { gate.Wake() }))
	if err != nil {
		t.Fatal(err)
	}
	w.rep = checks.NewReporter(cfg, w.st, app.Clients(), nil)
	w.eng.AddListener(w.rep)
	gate = checks.NewGate(cfg, w.st, w.eng, w.rep, nil)
	w.gate = gate
	w.eng.AddListener(gate)
	if err := w.eng.Start(ctx); err != nil {
		t.Fatal(err)
	}
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	app.Routes(r)
	w.h = &harness{app: app, fake: w.fake, http: httptest.NewServer(r), store: w.st}
}

func (w *gateWorld) stop() {
	if w.eng == nil {
		return
	}
	ctx := context.Background()
	w.h.http.Close()
	w.eng.Stop()
	w.h.app.Close(ctx)
	w.gate.Close(ctx)
	w.rep.Close(ctx)
	w.st.Close()
	w.eng = nil
}

// push starts a run of the push fixture's commit.
func (w *gateWorld) push() string {
	body := fixture(w.t, "push.json", nil)
	w.h.post(w.t, "push", "push-1", body, "")
	return jsonField(w.t, body, "after")
}

// request is GitHub asking about workflow run runID's deploy of sha to env.
func (w *gateWorld) request(delivery, env string, runID int64, sha string) {
	w.t.Helper()
	w.fake.AwaitGate("Codertocat/Hello-World", runID, env)
	body := gateRequest(w.t, env, runID, runID+1000, map[string]any{"sha": sha, "deployment.sha": sha})
	if code := w.h.post(w.t, "deployment_protection_rule", delivery, body, ""); code != 202 {
		w.t.Fatalf("deployment_protection_rule %s: %d", delivery, code)
	}
}

// reviewed waits for a rule's review.
func (w *gateWorld) reviewed(runID int64, env string) githubtest.GateRule {
	w.t.Helper()
	var g githubtest.GateRule
	waitUntil(w.t, fmt.Sprintf("a review of workflow run %d", runID), func() (bool, string) {
		g = w.fake.Gate("Codertocat/Hello-World", runID, env)
		return g.State != "", fmt.Sprintf("%+v", g)
	})
	return g
}

// reported waits for a rule's n-th status report.
func (w *gateWorld) reported(runID int64, env string, n int) githubtest.GateRule {
	w.t.Helper()
	var g githubtest.GateRule
	waitUntil(w.t, fmt.Sprintf("%d status reports to workflow run %d", n, runID), func() (bool, string) {
		g = w.fake.Gate("Codertocat/Hello-World", runID, env)
		return len(g.Reports) >= n, fmt.Sprintf("%+v", g)
	})
	return g
}

// quiet lets the gate and the reporter finish what they were told, then says what GitHub
// was sent for a rule.
func (w *gateWorld) quiet(runID int64, env string) githubtest.GateRule {
	w.t.Helper()
	w.gate.Wake()
	time.Sleep(150 * time.Millisecond)
	flushReports(w.t, w.rep)
	return w.fake.Gate("Codertocat/Hello-World", runID, env)
}

func (w *gateWorld) looked(sha string) {
	w.t.Helper()
	select {
	case got := <-w.canary.looked:
		if got != sha {
			w.t.Fatalf("the canary judged %s, want %s", got, sha)
		}
	case <-time.After(20 * time.Second):
		w.t.Fatal("the canary never looked")
	}
}

const gateRunURL = "([run 1](https://immunity.example.com/runs/1))"

// TestGateApprovesWhatPassedTheCanary: the release passed sandbox2 with a Pass verdict
// and prod3 is not locked: the request is approved at once, with the reason and a link
// to the run, and no status report; a redelivery of the request under a new delivery id
// reviews nothing again.
func TestGateApprovesWhatPassedTheCanary(t *testing.T) {
	t.Parallel()
	contract := githubtest.LoadContract(t)
	w := newGateWorld(t, contract)
	sha := w.push()
	w.looked(sha)
	w.canary.finish(sha, judge.Pass)
	waitStage(t, w.eng, 1, "prod3", store.StageAwaitingApproval)
	w.request("gate-1", "production", 7001, sha)
	g := w.reviewed(7001, "production")
	if want := "Approved by Immunity: passed sandbox2 in Immunity; canary verdict pass; prod3 not locked or frozen; prod3 inside its deploy window " + gateRunURL; g.State != "approved" || g.Comment != want || len(g.Reports) != 0 {
		t.Fatalf("review: %+v\nwant approved %q", g, want)
	}
	w.request("gate-1-again", "production", 7001, sha)
	if got := len(w.fake.Find("POST /repos/codertocat/hello-world/actions/runs/7001/deployment_protection_rule")); got != 1 || w.quiet(7001, "production").State != "approved" {
		t.Fatalf("%d reviews sent, want 1", got)
	}
	contract.ValidateAll(t, w.fake)
}

// TestGateRejectsWhatFailedTheCanary: the canary judged the release Fail in sandbox2:
// rejected, saying so; an environment no app gates is rejected, saying that.
func TestGateRejectsWhatFailedTheCanary(t *testing.T) {
	t.Parallel()
	contract := githubtest.LoadContract(t)
	w := newGateWorld(t, contract)
	sha := w.push()
	w.looked(sha)
	w.canary.finish(sha, judge.Fail)
	waitRunState(t, w.eng, 1, store.RunFailed)
	w.request("gate-1", "production", 7002, sha)
	g := w.reviewed(7002, "production")
	if g.State != "rejected" || !strings.HasPrefix(g.Comment, "Rejected by Immunity: it failed sandbox2: ") || !strings.Contains(g.Comment, "latency +80%") || !strings.HasSuffix(g.Comment, gateRunURL) {
		t.Fatalf("review: %+v", g)
	}
	w.request("gate-2", "staging", 7003, sha)
	if g := w.reviewed(7003, "staging"); g.State != "rejected" || g.Comment != `Rejected by Immunity: Immunity gates no environment "staging" of codertocat/hello-world (github_gate in its config)` {
		t.Fatalf("review of an ungated environment: %+v", g)
	}
	contract.ValidateAll(t, w.fake)
}

// TestGateWaitsForTheCanaryThenApproves: the request arrives while the canary judges:
// one status report says so (state left out), later looks do not use up GitHub's ten,
// and the Pass verdict approves it.
func TestGateWaitsForTheCanaryThenApproves(t *testing.T) {
	t.Parallel()
	contract := githubtest.LoadContract(t)
	w := newGateWorld(t, contract)
	sha := w.push()
	w.looked(sha)
	w.request("gate-1", "production", 7004, sha)
	g := w.reported(7004, "production", 1)
	if want := "waiting: canary in sandbox2, look 4 of 30, all metrics within range " + gateRunURL; g.Reports[0] != want || g.State != "" {
		t.Fatalf("status report: %+v\nwant %q", g, want)
	}
	w.canary.finish(sha, judge.Pass)
	g = w.reviewed(7004, "production")
	if g.State != "approved" || len(g.Reports) != 1 || !strings.HasPrefix(g.Comment, "Approved by Immunity: passed sandbox2") {
		t.Fatalf("review: %+v", g)
	}
	contract.ValidateAll(t, w.fake)
}

// TestGateWaitingSurvivesARestart: the server stops while a request waits for the canary;
// started again on the same store, it resumes the canary and approves the request once,
// without repeating its status report.
func TestGateWaitingSurvivesARestart(t *testing.T) {
	t.Parallel()
	contract := githubtest.LoadContract(t)
	w := newGateWorld(t, contract)
	sha := w.push()
	w.looked(sha)
	w.request("gate-1", "production", 7005, sha)
	w.reported(7005, "production", 1)
	w.stop()
	if g := w.fake.Gate("Codertocat/Hello-World", 7005, "production"); g.State != "" {
		t.Fatalf("decided before the canary finished: %+v", g)
	}
	w.canary.finish(sha, judge.Pass)
	w.start()
	g := w.reviewed(7005, "production")
	if g.State != "approved" || len(g.Reports) != 1 {
		t.Fatalf("after the restart: %+v", g)
	}
	if g := w.quiet(7005, "production"); len(g.Reports) != 1 || g.State != "approved" {
		t.Fatalf("settled: %+v", g)
	}
	if got := len(w.fake.Find("POST /repos/codertocat/hello-world/actions/runs/7005/deployment_protection_rule")); got != 2 {
		t.Errorf("%d posts to the rule, want 2 (a status report and the review)", got)
	}
	contract.ValidateAll(t, w.fake)
}

// TestGateWaitsForALockThenApproves: prod3 is locked when the request arrives: the status
// report names who locked it and why; the unlock approves it.
func TestGateWaitsForALockThenApproves(t *testing.T) {
	t.Parallel()
	contract := githubtest.LoadContract(t)
	w := newGateWorld(t, contract)
	ctx := context.Background()
	ada := pipeline.Actor{ID: "github:1", Name: "ada", Via: "github", GitHubLogin: "ada"}
	if _, err := w.eng.Lock(ctx, ada, "papi", "prod3", "database migration"); err != nil {
		t.Fatal(err)
	}
	sha := w.push()
	w.looked(sha)
	w.canary.finish(sha, judge.Pass)
	waitStage(t, w.eng, 1, "sandbox2", store.StageSucceeded)
	w.request("gate-1", "production", 7006, sha)
	g := w.reported(7006, "production", 1)
	if !strings.HasPrefix(g.Reports[0], "waiting: prod3 is locked by ada") || !strings.Contains(g.Reports[0], "database migration") || g.State != "" {
		t.Fatalf("status report: %+v", g)
	}
	if _, err := w.eng.Unlock(ctx, ada, "papi", "prod3", false); err != nil {
		t.Fatal(err)
	}
	g = w.reviewed(7006, "production")
	if g.State != "approved" || len(g.Reports) != 1 || !strings.Contains(g.Comment, "prod3 not locked") {
		t.Fatalf("review: %+v", g)
	}
	contract.ValidateAll(t, w.fake)
}

// TestGateWaitsForTheDeployWindowThenApproves: prod3 takes deploys on weekdays 09:00-17:00
// UTC; a request on a Saturday waits, saying when the window opens, and is approved once
// the engine's clock is inside the window.
func TestGateWaitsForTheDeployWindowThenApproves(t *testing.T) {
	t.Parallel()
	contract := githubtest.LoadContract(t)
	var mu sync.Mutex
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC) // a Saturday
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	w := newGateWorld(t, contract, func(w *gateWorld) {
		w.clock = clock
		w.config = strings.Replace(gateE2EConfig, "        hosts: [{name: p1, port: 18931}]",
			"        hosts: [{name: p1, port: 18931}]\n        windows: [{days: [mon-fri], hours: \"09:00-17:00\", zone: UTC}]", 1)
	})
	sha := w.push()
	w.looked(sha)
	w.canary.finish(sha, judge.Pass)
	waitStage(t, w.eng, 1, "sandbox2", store.StageSucceeded)
	w.request("gate-1", "production", 7007, sha)
	g := w.reported(7007, "production", 1)
	if !strings.HasPrefix(g.Reports[0], "waiting: ") || !strings.Contains(g.Reports[0], "window") || !strings.Contains(g.Reports[0], "Mon") || g.State != "" {
		t.Fatalf("status report: %+v", g)
	}
	mu.Lock()
	now = time.Date(2026, 12, 7, 9, 30, 0, 0, time.UTC) // Monday, inside the window
	mu.Unlock()
	w.gate.Wake()
	g = w.reviewed(7007, "production")
	if g.State != "approved" || len(g.Reports) != 1 || !strings.Contains(g.Comment, "prod3 inside its deploy window") {
		t.Fatalf("review: %+v", g)
	}
	contract.ValidateAll(t, w.fake)
}

// TestGateWaitsForAFreezeThenApproves: prod3 is frozen when the request arrives: the status
// report says so; lifting the freeze approves it.
func TestGateWaitsForAFreezeThenApproves(t *testing.T) {
	t.Parallel()
	contract := githubtest.LoadContract(t)
	w := newGateWorld(t, contract)
	ctx := context.Background()
	ada := pipeline.Actor{ID: "github:1", Name: "ada", Via: "github", GitHubLogin: "ada"}
	if _, err := w.eng.Freeze(ctx, ada, "papi", []string{"prod3"}, time.Now().Add(time.Hour), "holiday"); err != nil {
		t.Fatal(err)
	}
	sha := w.push()
	w.looked(sha)
	w.canary.finish(sha, judge.Pass)
	waitStage(t, w.eng, 1, "sandbox2", store.StageSucceeded)
	w.request("gate-1", "production", 7008, sha)
	g := w.reported(7008, "production", 1)
	if !strings.HasPrefix(g.Reports[0], "waiting: ") || !strings.Contains(g.Reports[0], "frozen") || !strings.Contains(g.Reports[0], "holiday") || g.State != "" {
		t.Fatalf("status report: %+v", g)
	}
	if _, err := w.eng.Unfreeze(ctx, ada, "papi", []string{"prod3"}); err != nil {
		t.Fatal(err)
	}
	g = w.reviewed(7008, "production")
	if g.State != "approved" || len(g.Reports) != 1 {
		t.Fatalf("review: %+v", g)
	}
	contract.ValidateAll(t, w.fake)
}

// TestGateReviewGitHubRefusesIsNotRetried: the workflow run no longer waits (cancelled on
// GitHub) when the review goes out: GitHub's 422 drops the review instead of retrying it
// for ever, and the GitHub outbox goes on.
func TestGateReviewGitHubRefusesIsNotRetried(t *testing.T) {
	t.Parallel()
	contract := githubtest.LoadContract(t)
	w := newGateWorld(t, contract)
	sha := w.push()
	w.looked(sha)
	w.canary.finish(sha, judge.Fail)
	waitRunState(t, w.eng, 1, store.RunFailed)
	body := gateRequest(t, "production", 7009, 8009, map[string]any{"sha": sha, "deployment.sha": sha}) // no AwaitGate: nothing waits
	if code := w.h.post(t, "deployment_protection_rule", "gate-1", body, ""); code != 202 {
		t.Fatalf("delivery: %d", code)
	}
	waitUntil(t, "the request rejected", func() (bool, string) {
		reqs, err := w.st.GateRequests(t.Context(), store.GateRejected)
		return err == nil && len(reqs) == 1, fmt.Sprintf("%+v %v", reqs, err)
	})
	flushReports(t, w.rep) // fails when the review stays in the outbox to be retried
	if got := len(w.fake.Find("POST /repos/codertocat/hello-world/actions/runs/7009/deployment_protection_rule")); got != 1 {
		t.Fatalf("%d reviews sent, want 1 (refused, not retried)", got)
	}
}

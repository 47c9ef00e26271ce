package checks

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	ghapp "github.com/immunity-app/immunity/app/github"
	"github.com/immunity-app/immunity/app/github/githubtest"
	"github.com/immunity-app/immunity/pipeline"
	"github.com/immunity-app/immunity/pipeline/config"
	"github.com/immunity-app/immunity/store"
)

const repoPath = "/repos/Codertocat/Hello-World"

// TestReporterRun feeds a run's life as the engine tells it and checks what GitHub is
// asked: check runs created once and then updated, deployments with their statuses, the
// older production deployment retired, a rollback recorded as a deployment; every request
// valid against GitHub's OpenAPI description.
func TestReporterRun(t *testing.T) {
	t.Parallel()
	contract := githubtest.LoadContract(t)
	fake := githubtest.New(t)
	fake.Enforce(contract)
	st := openStore(t)
	cfg := testConfig()
	r := newReporter(t, cfg, st, fake)
	ctx := context.Background()
	// Earlier deployments of ours, to be retired when the new one of their region succeeds:
	// GitHub leaves production and transient environments active itself.
	for _, d := range []store.Deployment{
		{Key: "run/6/sandbox1", App: "papi", Region: "sandbox1", SHA: sha0, RunID: 6, Repo: "Codertocat/Hello-World", DeploymentID: 66, State: "success"},
		{Key: "run/6/prod3", App: "papi", Region: "prod3", SHA: sha0, RunID: 6, Repo: "Codertocat/Hello-World", DeploymentID: 77, Production: true, State: "success"},
	} {
		if err := st.SaveDeployment(ctx, d); err != nil {
			t.Fatal(err)
		}
		fake.SeedDeployment(d.DeploymentID, d.Repo, d.Region, d.SHA, d.State)
	}
	// sha0 was live in prod3 before: the Roll back button has something to put back.
	if err := st.PutRelease(ctx, store.Release{App: "papi", SHA: sha0, State: store.ReleaseReady, Artifact: "/dev/null", Checksum: "x"}); err != nil {
		t.Fatal(err)
	}
	if err := st.AddHistory(ctx, store.HistoryEntry{App: "papi", Region: "prod3", SHA: sha0, Action: "seed", Actor: "demo"}); err != nil {
		t.Fatal(err)
	}

	step := func(kind pipeline.EventKind, run store.Run, region string) {
		t.Helper()
		r.Notify(ctx, event(kind, run, region))
		flush(t, r)
	}
	step(pipeline.RunCreated, runAt(store.RunBuilding, store.StagePending, store.StagePending), "")
	step(pipeline.StageChanged, runAt(store.RunRunning, store.StageDeploying, store.StagePending), "sandbox1")
	step(pipeline.StageChanged, runAt(store.RunWaiting, store.StageSucceeded, store.StageAwaitingApproval), "prod3")
	step(pipeline.StageChanged, runAt(store.RunRunning, store.StageSucceeded, store.StageDeploying), "prod3")
	for _, h := range []string{"p1", "p2"} {
		if err := st.SetLive(ctx, "papi", "prod3", h, sha1); err != nil {
			t.Fatal(err)
		}
	}
	done := runAt(store.RunSucceeded, store.StageSucceeded, store.StageSucceeded)
	done.Stages[1].Verdict = verdictJSON(t)
	step(pipeline.StageChanged, done, "prod3")
	step(pipeline.RunChanged, done, "") // nothing changed: nothing sent
	r.Notify(ctx, pipeline.Event{Kind: pipeline.RolledBack, App: "papi", Region: "prod3", SHA: sha0, Time: time.Unix(1700000000, 0),
		Actor: pipeline.Actor{Name: "octocat", Via: "github"}})
	flush(t, r)

	want := []string{
		"GET " + repoPath + "/installation",
		// run created: both stages queued
		"POST " + repoPath + "/check-runs",
		"POST " + repoPath + "/check-runs",
		// sandbox1 deploying
		"PATCH " + repoPath + "/check-runs/1001",
		"POST " + repoPath + "/deployments",
		"POST " + repoPath + "/deployments/1003/statuses", // queued
		"POST " + repoPath + "/deployments/1003/statuses", // in_progress
		// sandbox1 succeeded, prod3 waiting for approval: no deployment to prod3 yet
		"PATCH " + repoPath + "/check-runs/1001",
		"POST " + repoPath + "/deployments/1003/statuses", // success
		"POST " + repoPath + "/deployments/66/statuses",   // the older sandbox1 one retired
		"PATCH " + repoPath + "/check-runs/1002",
		// prod3 approved and deploying: a new check run (the old one completed)
		"POST " + repoPath + "/check-runs",
		"POST " + repoPath + "/deployments",
		"POST " + repoPath + "/deployments/1009/statuses",
		"POST " + repoPath + "/deployments/1009/statuses",
		// prod3 succeeded
		"PATCH " + repoPath + "/check-runs/1008",
		"POST " + repoPath + "/deployments/1009/statuses",
		"POST " + repoPath + "/deployments/77/statuses", // the older one retired
		// rollback of prod3 to sha0
		"POST " + repoPath + "/deployments",
		"POST " + repoPath + "/deployments/1014/statuses",
		"POST " + repoPath + "/deployments/1014/statuses",
		"POST " + repoPath + "/deployments/1014/statuses",
		"POST " + repoPath + "/deployments/1009/statuses", // the rolled-back one retired
	}
	if d := cmp.Diff(want, fake.Calls()); d != "" {
		t.Errorf("GitHub calls (-want +got):\n%s", d)
	}
	checkStates(t, fake)
	contract.ValidateAll(t, fake)
}

// checkStates looks into the bodies of the key calls.
func checkStates(t *testing.T, fake *githubtest.Server) {
	t.Helper()
	deps := fake.Find("POST " + repoPath + "/deployments")
	if len(deps) != 3 {
		t.Fatalf("got %d deployments, want 3", len(deps))
	}
	first := deps[0].JSON()
	for k, want := range map[string]any{"environment": "sandbox1", "ref": sha1, "auto_merge": false, "transient_environment": true, "production_environment": false} {
		if first[k] != want {
			t.Errorf("sandbox1 deployment %s = %v, want %v", k, first[k], want)
		}
	}
	if rc, ok := first["required_contexts"].([]any); !ok || len(rc) != 0 {
		t.Errorf("required_contexts = %v, want []", first["required_contexts"])
	}
	if p, _ := first["payload"].(map[string]any); p["run_id"] != float64(7) {
		t.Errorf("payload = %v, want run_id 7", first["payload"])
	}
	if deps[1].JSON()["production_environment"] != true || deps[2].JSON()["ref"] != sha0 || deps[2].JSON()["task"] != "deploy:rollback" {
		t.Errorf("prod3 deployment %s, rollback %s", deps[1].Body, deps[2].Body)
	}
	var states []string
	for _, r := range fake.Requests() {
		if strings.HasSuffix(r.Path, "/statuses") {
			states = append(states, fmt.Sprintf("%s:%s", strings.Split(r.Path, "/")[5], r.JSON()["state"]))
		}
	}
	want := []string{"1003:queued", "1003:in_progress", "1003:success", "66:inactive", "1009:queued", "1009:in_progress", "1009:success", "77:inactive", "1014:queued", "1014:in_progress", "1014:success", "1009:inactive"}
	if d := cmp.Diff(want, states); d != "" {
		t.Errorf("deployment statuses (-want +got):\n%s", d)
	}
	st := fake.Find("POST " + repoPath + "/deployments/1009/statuses")[2].JSON()
	if st["log_url"] != "https://immunity.example.com/runs/7" || st["environment_url"] != "http://127.0.0.1:18101" {
		t.Errorf("status urls: %v", st)
	}
	last := fake.Find("PATCH " + repoPath + "/check-runs/1008")[0].JSON()
	if last["conclusion"] != "success" || !strings.Contains(last["output"].(map[string]any)["summary"].(string), "latency_p99") {
		t.Errorf("prod3 check run completion: %v", last)
	}
	if a, _ := last["actions"].([]any); len(a) != 1 || a[0].(map[string]any)["label"] != "Roll back" {
		t.Errorf("prod3 buttons: %v", last["actions"])
	}
}

// TestReporterRestart checks that a second reporter (a restarted server) updates the check
// runs and deployments the first created instead of making new ones.
func TestReporterRestart(t *testing.T) {
	t.Parallel()
	fake := githubtest.New(t)
	st := openStore(t)
	cfg := testConfig()
	ctx := context.Background()
	r1 := newReporter(t, cfg, st, fake)
	r1.Notify(ctx, event(pipeline.StageChanged, runAt(store.RunRunning, store.StageDeploying, store.StagePending), "sandbox1"))
	flush(t, r1)
	r1.Close(ctx)
	before := len(fake.Find("POST " + repoPath + "/check-runs"))

	r2 := newReporter(t, cfg, st, fake)
	r2.Notify(ctx, event(pipeline.StageChanged, runAt(store.RunRunning, store.StageDeploying, store.StagePending), "sandbox1"))
	flush(t, r2)
	r2.Notify(ctx, event(pipeline.StageChanged, runAt(store.RunRunning, store.StageTesting, store.StagePending), "sandbox1"))
	flush(t, r2)
	if n := len(fake.Find("POST " + repoPath + "/check-runs")); n != before || before != 2 {
		t.Errorf("check runs created: %d before the restart, %d after; want 2 and 2", before, n)
	}
	if n := len(fake.Find("POST " + repoPath + "/deployments")); n != 1 {
		t.Errorf("deployments created: %d, want 1", n)
	}
	if n := len(fake.Find("PATCH " + repoPath + "/check-runs/1001")); n != 1 {
		t.Errorf("sandbox1 check run updates after restart: %d, want 1 (testing)", n)
	}
}

// TestReporterRetries checks that a report GitHub refused (rate limit, then 502) is sent
// again, and that Notify never waits for GitHub.
func TestReporterRetries(t *testing.T) {
	t.Parallel()
	fake := githubtest.New(t)
	st := openStore(t)
	var mu sync.Mutex
	retries := 0
	r := newReporter(t, testConfig(), st, fake, WithRetries(func() { mu.Lock(); retries++; mu.Unlock() }, nil))
	ctx := context.Background()
	limited := githubtest.Fault{Status: 403, Header: map[string]string{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": fmt.Sprint(time.Now().Unix() + 3600)},
		Body: `{"message":"API rate limit exceeded","documentation_url":"https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"}`}
	fake.FailNext(limited) // the installation lookup: reset is an hour away, so the transport gives up and the queue retries
	start := time.Now()
	r.Notify(ctx, event(pipeline.RunCreated, runAt(store.RunBuilding, store.StagePending, store.StagePending), ""))
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("Notify took %v", d)
	}
	flush(t, r)
	if n := len(fake.Find("POST " + repoPath + "/check-runs")); n != 2 {
		t.Errorf("check runs created after the rate limit: %d, want 2; calls %v", n, fake.Calls())
	}
	mu.Lock()
	defer mu.Unlock()
	if retries != 1 {
		t.Errorf("told of %d retries, want 1", retries)
	}
}

// TestReporterTellsOfRetriesAndRateLimitWaits: a report refused by a secondary rate limit
// longer than the transport waits is tried again after the Retry-After, and the reporter
// says so (the metrics count it).
func TestReporterTellsOfRetriesAndRateLimitWaits(t *testing.T) {
	t.Parallel()
	fake := githubtest.New(t)
	st := openStore(t)
	var mu sync.Mutex
	retries, waits := 0, []time.Duration{}
	fake.FailCall("POST "+repoPath+"/check-runs", githubtest.Fault{Status: 403, Header: map[string]string{"Retry-After": "600"},
		Body: `{"message":"You have exceeded a secondary rate limit. Please wait a few minutes before you try again.","documentation_url":"https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"}`})
	gc := config.GitHubConfig{AppID: 1, PrivateKeyFile: githubtest.KeyFile(t), WebhookSecret: "s", APIURL: fake.APIURL()}
	cl, err := ghapp.NewClients(gc, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := NewReporter(testConfig(), st, cl, nil, WithRetries(func() { mu.Lock(); retries++; mu.Unlock() },
		func(d time.Duration) { mu.Lock(); waits = append(waits, d); mu.Unlock() }))
	r.backoff = 10 * time.Millisecond
	// The report waits ten minutes: the reporter stops without sending it.
	t.Cleanup(func() {
		short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		r.Close(short)
	})
	ctx := context.Background()
	start := time.Now()
	r.Notify(ctx, event(pipeline.RunCreated, runAt(store.RunBuilding, store.StagePending, store.StagePending), ""))
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		n := retries
		mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the refused report was never retried; calls %v", fake.Calls())
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if retries != 1 || len(waits) != 1 || waits[0] != 10*time.Minute {
		t.Errorf("retries %d, waits %v; want one retry after a 10m wait", retries, waits)
	}
	heads, err := st.OutboxHeads(ctx, "github/", 1)
	if err != nil || len(heads) != 1 || heads[0].NotBefore.Before(start.Add(10*time.Minute)) {
		t.Errorf("the report waits until %v (%v), want 10 minutes after %v", heads, err, start)
	}
}

// TestReporterReportsAfterARestartWhatItCouldNotSend: a report GitHub refused is kept in
// the outbox when the server stops, and the next server sends it.
func TestReporterReportsAfterARestartWhatItCouldNotSend(t *testing.T) {
	t.Parallel()
	fake := githubtest.New(t)
	st := openStore(t)
	cfg := testConfig()
	ctx := context.Background()
	fake.FailNext(githubtest.Fault{Status: 403, Header: map[string]string{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": fmt.Sprint(time.Now().Unix() + 3600)},
		Body: `{"message":"API rate limit exceeded","documentation_url":"https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"}`})
	r1 := newReporter(t, cfg, st, fake)
	r1.backoff = 300 * time.Millisecond
	r1.Notify(ctx, event(pipeline.RunCreated, runAt(store.RunBuilding, store.StagePending, store.StagePending), ""))
	deadline := time.Now().Add(10 * time.Second)
	for {
		heads, _ := st.OutboxHeads(ctx, "github/", 1)
		if len(heads) == 1 && heads[0].Attempts > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the first try never failed: %+v", heads)
		}
		time.Sleep(5 * time.Millisecond)
	}
	short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	r1.Close(short) // stops with the report still waiting
	cancel()
	if n := len(fake.Find("POST " + repoPath + "/check-runs")); n != 0 {
		t.Fatalf("%d check runs before the restart", n)
	}
	r2 := newReporter(t, cfg, st, fake)
	flush(t, r2)
	if n := len(fake.Find("POST " + repoPath + "/check-runs")); n != 2 {
		t.Errorf("check runs after the restart: %d, want 2", n)
	}
}

// TestReporterTellsOnlyWhatHappened: a release superseded while it waited for prod3 gets
// no prod3 deployment (it never went there); its prod3 check run ends neutral and its
// prod4 one skipped, both naming the newer release, without buttons. The first release a
// region ever ran has no Roll back button (nothing to put back). A button's answer is
// added to the check run's output. Every request is one GitHub accepts.
func TestReporterTellsOnlyWhatHappened(t *testing.T) {
	t.Parallel()
	contract := githubtest.LoadContract(t)
	fake := githubtest.New(t)
	fake.Enforce(contract)
	st := openStore(t)
	cfg := testConfig()
	cfg.Apps[0].Regions = append(cfg.Apps[0].Regions, config.Region{Name: "prod4", Production: true, Hosts: []config.Host{{Name: "q1", URL: "http://127.0.0.1:18201"}}})
	r := newReporter(t, cfg, st, fake)
	ctx := context.Background()
	if err := st.SetLive(ctx, "papi", "sandbox1", "s1", sha1); err != nil {
		t.Fatal(err)
	}
	if err := st.AddHistory(ctx, store.HistoryEntry{App: "papi", Region: "sandbox1", SHA: sha1, Action: "deploy", RunID: 7}); err != nil {
		t.Fatal(err)
	}
	withProd4 := func(run store.Run, state store.StageState, msg string) store.Run {
		run.Stages = append(run.Stages, store.Stage{ID: 3, RunID: 7, Region: "prod4", Position: 2, State: state, Message: msg})
		return run
	}
	waiting := withProd4(runAt(store.RunWaiting, store.StageSucceeded, store.StageAwaitingApproval), store.StagePending, "")
	r.Notify(ctx, event(pipeline.StageChanged, waiting, "prod3"))
	flush(t, r)
	const why = "superseded by 2b3c4d5 (run 8) at prod3"
	gone := withProd4(runAt(store.RunSuperseded, store.StageSucceeded, store.StageCancelled), store.StageCancelled, why)
	gone.Stages[1].Message = why
	r.Notify(ctx, event(pipeline.RunChanged, gone, "prod3"))
	flush(t, r)

	for _, d := range fake.Find("POST " + repoPath + "/deployments") {
		if env := d.JSON()["environment"]; env != "sandbox1" {
			t.Errorf("a deployment to %v, where the release never went", env)
		}
	}
	last := map[string]map[string]any{} // check run name -> the last body sent
	for _, req := range fake.Requests() {
		if strings.Contains(req.Path, "/check-runs") {
			last[req.JSON()["name"].(string)] = req.JSON()
		}
	}
	for name, want := range map[string]string{"immunity / prod3": "neutral", "immunity / prod4": "skipped"} {
		b := last[name]
		title, _ := b["output"].(map[string]any)["title"].(string)
		if b["conclusion"] != want || !strings.Contains(title, why) {
			t.Errorf("%s ended %v %q; want %s naming the newer release", name, b["conclusion"], title, want)
		}
		if a, _ := b["actions"].([]any); len(a) != 0 {
			t.Errorf("%s keeps buttons %v", name, a)
		}
	}
	if a, _ := last["immunity / sandbox1"]["actions"].([]any); len(a) != 0 {
		t.Errorf("sandbox1's first release offers %v; nothing to roll back to", a)
	}

	// What a button press was answered shows in the check run's output.
	const answer = "octocat pressed Promote: octocat `/promote prod3` needs write access to Codertocat/Hello-World; you have read. Nothing was done."
	if err := st.AddEvent(ctx, store.Event{RunID: 7, App: "papi", Region: "prod3", Kind: string(pipeline.Answered), Message: answer}); err != nil {
		t.Fatal(err)
	}
	r.Notify(ctx, pipeline.Event{Kind: pipeline.Answered, App: "papi", Region: "prod3", Run: gone, Message: answer})
	flush(t, r)
	reqs := fake.Requests()
	b := reqs[len(reqs)-1]
	summary, _ := b.JSON()["output"].(map[string]any)["summary"].(string)
	if b.Method != "PATCH" || !strings.Contains(summary, "### Answers to buttons\n\n- octocat pressed Promote: octocat '/promote prod3' needs write access") {
		t.Errorf("after the answer GitHub got %s %s", b.Call(), summary)
	}
	contract.ValidateAll(t, fake)
}

// TestReporterCreatesOnceWhenGitHubsAnswerIsLost: GitHub makes a check run or a deployment
// and the connection is cut before its answer, so the reporter cannot tell whether it was
// made. The report is tried again, finds at GitHub what was made (by the check run's
// external id, the deployment's key in its payload) and brings it up to date instead of
// making a second one; also for a stage's later check runs (prod3's waiting for
// promotion completes its first; the promotion makes a second; run again after it failed,
// a third). Every request is one GitHub accepts.
func TestReporterCreatesOnceWhenGitHubsAnswerIsLost(t *testing.T) {
	t.Parallel()
	contract := githubtest.LoadContract(t)
	fake := githubtest.New(t)
	fake.Enforce(contract)
	st := openStore(t)
	r := newReporter(t, testConfig(), st, fake)
	ctx := context.Background()
	step := func(kind pipeline.EventKind, run store.Run, region string) {
		t.Helper()
		r.Notify(ctx, event(kind, run, region))
		flush(t, r)
	}
	createCheck, createDeployment := "POST "+repoPath+"/check-runs", "POST "+repoPath+"/deployments"

	fake.LoseAnswer(createCheck, 1)
	step(pipeline.RunCreated, runAt(store.RunBuilding, store.StagePending, store.StagePending), "")
	fake.LoseAnswer(createDeployment, 1)
	step(pipeline.StageChanged, runAt(store.RunRunning, store.StageDeploying, store.StagePending), "sandbox1")
	step(pipeline.StageChanged, runAt(store.RunWaiting, store.StageSucceeded, store.StageAwaitingApproval), "prod3")
	step(pipeline.StageChanged, runAt(store.RunRunning, store.StageSucceeded, store.StageDeploying), "prod3")
	step(pipeline.StageChanged, runAt(store.RunFailed, store.StageSucceeded, store.StageFailed), "prod3")
	fake.LoseAnswer(createCheck, 1)
	fake.LoseAnswer(createDeployment, 1)
	step(pipeline.StageChanged, runAt(store.RunRunning, store.StageSucceeded, store.StageDeploying), "prod3")
	step(pipeline.StageChanged, runAt(store.RunSucceeded, store.StageSucceeded, store.StageSucceeded), "prod3")

	byExternal := map[string][]githubtest.CheckRun{}
	for _, c := range fake.CheckRuns() {
		byExternal[c.ExternalID] = append(byExternal[c.ExternalID], c)
	}
	for _, id := range []string{"run/7/sandbox1", "run/7/prod3", "run/7/prod3/2", "run/7/prod3/3"} {
		if len(byExternal[id]) != 1 {
			t.Errorf("check runs with external id %s: %d, want 1; all: %+v", id, len(byExternal[id]), fake.CheckRuns())
		}
	}
	if len(byExternal) != 4 {
		t.Errorf("%d external ids, want sandbox1's and prod3's three", len(byExternal))
	}
	for id, want := range map[string]string{"run/7/sandbox1": "completed", "run/7/prod3": "completed", "run/7/prod3/2": "completed", "run/7/prod3/3": "completed"} {
		if cs := byExternal[id]; len(cs) == 1 && cs[0].Status != want {
			t.Errorf("check run %s is %s, want %s (brought up to date after it was found)", id, cs[0].Status, want)
		}
	}
	if row, found, err := st.CheckRun(ctx, 7, "prod3"); err != nil || !found || row.Attempt != 3 || row.Status != "completed" ||
		len(byExternal["run/7/prod3/3"]) != 1 || row.ID != byExternal["run/7/prod3/3"][0].ID {
		t.Errorf("the store's prod3 check run: %+v found=%v err=%v; want attempt 3, completed, GitHub's id", row, found, err)
	}
	keys := map[string]int{}
	for _, d := range fake.Deployments() {
		k, _ := d.Payload["key"].(string)
		keys[k]++
	}
	for k, n := range keys {
		if n != 1 {
			t.Errorf("deployments with key %s: %d, want 1", k, n)
		}
	}
	if keys["run/7/sandbox1"] != 1 || keys["run/7/prod3"] != 1 {
		t.Errorf("deployments by key: %v, want sandbox1's and prod3's once each", keys)
	}
	if n := len(fake.Find("GET " + repoPath + "/commits/" + sha1 + "/check-runs")); n < 2 {
		t.Errorf("check runs looked up %d times, want at least the 2 whose answers were lost", n)
	}
}

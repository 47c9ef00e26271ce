package checks

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/immunity-app/immunity/app/github/githubtest"
	"github.com/immunity-app/immunity/pipeline"
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
	st := openStore(t)
	cfg := testConfig()
	r := newReporter(t, cfg, st, fake)
	ctx := context.Background()

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
	// An earlier production deployment of ours, to be retired on success.
	if err := st.SaveDeployment(ctx, store.Deployment{Key: "run/6/prod3", App: "papi", Region: "prod3", SHA: sha0, RunID: 6,
		Repo: "Codertocat/Hello-World", DeploymentID: 77, Production: true, State: "success"}); err != nil {
		t.Fatal(err)
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
		// sandbox1 succeeded, prod3 waiting for approval
		"PATCH " + repoPath + "/check-runs/1001",
		"POST " + repoPath + "/deployments/1003/statuses", // success
		"PATCH " + repoPath + "/check-runs/1002",
		// prod3 approved and deploying: a new check run (the old one completed)
		"POST " + repoPath + "/check-runs",
		"POST " + repoPath + "/deployments",
		"POST " + repoPath + "/deployments/1008/statuses",
		"POST " + repoPath + "/deployments/1008/statuses",
		// prod3 succeeded
		"PATCH " + repoPath + "/check-runs/1007",
		"POST " + repoPath + "/deployments/1008/statuses",
		"POST " + repoPath + "/deployments/77/statuses", // the older one retired
		// rollback of prod3 to sha0
		"POST " + repoPath + "/deployments",
		"POST " + repoPath + "/deployments/1013/statuses",
		"POST " + repoPath + "/deployments/1013/statuses",
		"POST " + repoPath + "/deployments/1013/statuses",
		"POST " + repoPath + "/deployments/1008/statuses", // the rolled-back one retired
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
	want := []string{"1003:queued", "1003:in_progress", "1003:success", "1008:queued", "1008:in_progress", "1008:success", "77:inactive", "1013:queued", "1013:in_progress", "1013:success", "1008:inactive"}
	if d := cmp.Diff(want, states); d != "" {
		t.Errorf("deployment statuses (-want +got):\n%s", d)
	}
	st := fake.Find("POST " + repoPath + "/deployments/1008/statuses")[2].JSON()
	if st["log_url"] != "https://immunity.example.com/runs/7" || st["environment_url"] != "http://127.0.0.1:18101" {
		t.Errorf("status urls: %v", st)
	}
	last := fake.Find("PATCH " + repoPath + "/check-runs/1007")[0].JSON()
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
	r := newReporter(t, testConfig(), st, fake)
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

package checks

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	ghapp "github.com/immunity-app/immunity/app/github"
	"github.com/immunity-app/immunity/app/github/githubtest"
	"github.com/immunity-app/immunity/pipeline"
	"github.com/immunity-app/immunity/pipeline/config"
	"github.com/immunity-app/immunity/pipeline/judge"
	"github.com/immunity-app/immunity/store"
)

var update = flag.Bool("update", false, "rewrite golden files")

const (
	sha1 = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
	sha0 = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"
)

// testConfig is papi bound to the repo of the webhook fixtures.
func testConfig() *config.Config {
	return &config.Config{
		Server: config.ServerConfig{URL: "https://immunity.example.com"},
		Apps: []config.App{{
			Name: "papi",
			Repo: config.Repo{GitHub: "Codertocat/Hello-World", Branch: "master"},
			Regions: []config.Region{
				{Name: "sandbox1", Hosts: []config.Host{{Name: "s1", Port: 18001, URL: "http://127.0.0.1:18001"}}},
				{Name: "prod3", Production: true, ManualApproval: true,
					Monitor: &config.MonitorConfig{MirrorFrom: "prod4"},
					Hosts:   []config.Host{{Name: "p1", URL: "http://127.0.0.1:18101"}, {Name: "p2", URL: "http://127.0.0.1:18102"}}},
			},
		}},
	}
}

func openStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "immunity.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// newReporter wires a reporter to a fake GitHub through the App's real clients.
func newReporter(t *testing.T, cfg *config.Config, st *store.Store, fake *githubtest.Server, opts ...Option) *Reporter {
	t.Helper()
	gc := config.GitHubConfig{AppID: 1, PrivateKeyFile: githubtest.KeyFile(t), WebhookSecret: "s", APIURL: fake.APIURL()}
	cl, err := ghapp.NewClients(gc, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := NewReporter(cfg, st, cl, nil, opts...)
	r.backoff = 10 * time.Millisecond
	t.Cleanup(func() { r.Close(context.Background()) })
	return r
}

func flush(t *testing.T, r *Reporter) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// runAt builds a run snapshot with the given stage states (sandbox1, prod3); a stage
// that deploys or ended after deploying has started.
func runAt(runState store.RunState, sandbox, prod store.StageState) store.Run {
	t0 := time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC)
	r := store.Run{ID: 7, App: "papi", SHA: sha1, Branch: "master", Subject: "Update README.md", Author: "Codertocat",
		Trigger: "push", Actor: "Codertocat", State: runState, Created: t0, Updated: t0,
		Stages: []store.Stage{
			{ID: 1, RunID: 7, Region: "sandbox1", Position: 0, State: sandbox, Started: t0, Updated: t0,
				Hosts: []store.HostStep{{StageID: 1, Host: "s1", Step: hostStep(sandbox), PrevSHA: sha0}}},
			{ID: 2, RunID: 7, Region: "prod3", Position: 1, State: prod, Updated: t0,
				Hosts: []store.HostStep{{StageID: 2, Host: "p1", Step: hostStep(prod)}, {StageID: 2, Host: "p2", Step: hostStep(prod)}}},
		}}
	for i := range r.Stages {
		switch s := &r.Stages[i]; s.State {
		case store.StagePending, store.StageAwaitingApproval, store.StageApproved, store.StageCancelled, store.StageSkipped:
			s.Started = time.Time{}
		default:
			s.Started = t0
		}
	}
	return r
}

func hostStep(stage store.StageState) store.StepState {
	switch stage {
	case store.StageSucceeded:
		return "done"
	case store.StageDeploying:
		return "switching"
	case store.StageFailed:
		return "failed"
	}
	return "pending"
}

func event(kind pipeline.EventKind, run store.Run, region string) pipeline.Event {
	ev := pipeline.Event{Kind: kind, App: run.App, Region: region, Run: run, Time: time.Now()}
	for i := range ev.Run.Stages {
		if ev.Run.Stages[i].Region == region {
			ev.Stage = &ev.Run.Stages[i]
		}
	}
	return ev
}

func verdictJSON(t *testing.T) string {
	v := judge.Verdict{Outcome: judge.Pass, Score: 100, Reason: "no metric is worse", Final: true,
		Metrics: []judge.MetricResult{
			{Name: "latency_p99", Kind: judge.Latency, Outcome: judge.Pass, Baseline: 0.120, Canary: 0.118, Effect: -0.016, Low: -0.05, High: 0.03, NBaseline: 300, NCanary: 300, Unit: "s", Why: "latency_p99 within 20% (−1.6% [−5%, +3%])"},
			{Name: "errors", Kind: judge.Rate, Outcome: judge.Pass, Baseline: 0.001, Canary: 0.001, Effect: 0, Low: -0.4, High: 0.5, NBaseline: 3000, NCanary: 3000, EventsBaseline: 3, EventsCanary: 3, Critical: true, Why: "errors | rate unchanged"},
		}}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// golden compares got with testdata/name, rewriting it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		os.MkdirAll("testdata", 0o755)
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if d := cmp.Diff(string(want), got); d != "" {
		t.Errorf("%s differs (-want +got):\n%s", name, d)
	}
}

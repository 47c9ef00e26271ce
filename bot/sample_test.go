package bot

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/immunity-app/immunity/pipeline"
	"github.com/immunity-app/immunity/pipeline/judge"
	"github.com/immunity-app/immunity/store"
)

// sampleEvents is a whole run of papi as the engine reports it: built, sandbox1 passes,
// sandbox2 is monitored and passes, prod3 waits, is promoted, fails its tests on host 2
// and rolls back, and a person locks prod3. They are also written to
// fixtures/slack/run_events.json, which the Slack tests replay.
func sampleEvents() []pipeline.Event {
	t0 := time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC)
	run := store.Run{ID: 12, App: "papi", SHA: "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d", Branch: "main",
		Subject: "Fix login redirect", Author: "Alice Doe", Trigger: "push", State: store.RunBuilding, Created: t0, Updated: t0}
	for i, r := range []string{"sandbox1", "sandbox2", "prod3", "prod4"} {
		run.Stages = append(run.Stages, store.Stage{ID: int64(100 + i), RunID: 12, Region: r, Position: i, State: store.StagePending})
	}
	run.Stages[2].Hosts = []store.HostStep{{StageID: 102, Host: "p3a", Step: store.HostPending}, {StageID: 102, Host: "p3b", Position: 1, Step: store.HostPending}}
	verdict := judge.Verdict{Outcome: judge.Pass, Score: 100, Reason: "every metric within range", Final: true, Look: 10, Looks: 10,
		Metrics: []judge.MetricResult{
			{Name: "latency", Kind: judge.Latency, Outcome: judge.Pass, Baseline: 0.0121, Canary: 0.0124, Effect: 0.025, Low: -0.01, High: 0.06, NBaseline: 900, NCanary: 880, Unit: "s", Critical: true, Why: "latency: +2.5% [-1.0%, +6.0%], within +20%: pass"},
			{Name: "errors", Kind: judge.Rate, Outcome: judge.Pass, Baseline: 0.001, Canary: 0.0011, Effect: 0.1, Low: -0.5, High: 0.9, NBaseline: 9000, NCanary: 8800, Why: "errors: pass"},
		}}
	vjson, _ := json.Marshal(verdict)
	interim := verdict
	interim.Final, interim.Look = false, 3
	ijson, _ := json.Marshal(interim)

	var evs []pipeline.Event
	at := t0
	emit := func(kind pipeline.EventKind, region, host, msg string, change func(r *store.Run)) {
		at = at.Add(5 * time.Second)
		if change != nil {
			change(&run)
		}
		snap := run
		snap.Stages = append([]store.Stage(nil), run.Stages...)
		for i := range snap.Stages {
			snap.Stages[i].Hosts = append([]store.HostStep(nil), run.Stages[i].Hosts...)
		}
		ev := pipeline.Event{Kind: kind, Time: at, App: "papi", Region: region, Host: host, SHA: run.SHA, Message: msg, Run: snap}
		for i := range snap.Stages {
			if snap.Stages[i].Region == region {
				ev.Stage = &snap.Stages[i]
			}
		}
		evs = append(evs, ev)
	}
	stage := func(region string, state store.StageState, msg string) func(r *store.Run) {
		return func(r *store.Run) {
			for i := range r.Stages {
				s := &r.Stages[i]
				if s.Region == region {
					s.State, s.Message = state, msg
					if s.State == store.StageDeploying {
						s.Started = at
					}
					if s.State == store.StageSucceeded || s.State == store.StageFailed || s.State == store.StageRolledBack {
						s.Finished = at
					}
				}
			}
		}
	}
	emit(pipeline.RunCreated, "", "", "run 12: papi 1a2b3c4 \"Fix login redirect\" by Alice Doe", nil)
	emit(pipeline.Logged, "", "", "go build -o bin/papi .", nil)
	emit(pipeline.RunChanged, "", "", "built papi 1a2b3c4", func(r *store.Run) { r.State = store.RunRunning })
	emit(pipeline.StageChanged, "sandbox1", "", "deploying", stage("sandbox1", store.StageDeploying, ""))
	emit(pipeline.StageChanged, "sandbox1", "", "testing", stage("sandbox1", store.StageTesting, ""))
	emit(pipeline.StageChanged, "sandbox1", "", "papi 1a2b3c4 passed sandbox1", stage("sandbox1", store.StageSucceeded, "tests passed"))
	emit(pipeline.StageChanged, "sandbox2", "", "deploying", stage("sandbox2", store.StageDeploying, ""))
	emit(pipeline.StageChanged, "sandbox2", "", "monitoring", stage("sandbox2", store.StageMonitoring, ""))
	emit(pipeline.Looked, "sandbox2", "", "interim verdict: pass (score 100)", func(r *store.Run) { r.Stages[1].Verdict = string(ijson) })
	emit(pipeline.StageChanged, "sandbox2", "", "papi 1a2b3c4 passed sandbox2", func(r *store.Run) {
		stage("sandbox2", store.StageSucceeded, "monitored 5m: pass")(r)
		r.Stages[1].Verdict = string(vjson)
	})
	emit(pipeline.StageChanged, "prod3", "", "papi 1a2b3c4 is ready for prod3", func(r *store.Run) {
		stage("prod3", store.StageAwaitingApproval, "")(r)
		r.State = store.RunWaiting
	})
	emit(pipeline.StageChanged, "prod3", "", "alice promoted papi 1a2b3c4 to prod3", func(r *store.Run) {
		stage("prod3", store.StageApproved, "promoted by alice (slack)")(r)
		r.Stages[2].ApprovedBy = "alice"
		r.State = store.RunRunning
	})
	emit(pipeline.StageChanged, "prod3", "", "deploying", stage("prod3", store.StageDeploying, ""))
	emit(pipeline.HostChanged, "prod3", "p3a", "", func(r *store.Run) { r.Stages[2].Hosts[0].Step = store.HostDone })
	emit(pipeline.Logged, "prod3", "p3b", "switching p3b to 1a2b3c4", nil)
	emit(pipeline.Logged, "prod3", "p3b", "GET /healthz: connection refused", nil)
	emit(pipeline.HostChanged, "prod3", "p3b", "", func(r *store.Run) { r.Stages[2].Hosts[1].Step = store.HostFailed })
	emit(pipeline.StageChanged, "prod3", "", "tests failed on p3b", func(r *store.Run) {
		stage("prod3", store.StageRolledBack, "tests failed on p3b: exit status 1; rolled back 2 hosts")(r)
		r.Stages[2].Tests = "=== RUN   TestLogin\n    login_test.go:42: GET /login: status 500, want 302\n--- FAIL: TestLogin (0.02s)\nFAIL\n"
		r.Stages[3].State = store.StageSkipped
		r.State, r.Message = store.RunFailed, "tests failed on p3b: exit status 1"
	})
	emit(pipeline.RunChanged, "prod3", "", "tests failed on p3b", nil)
	evs = append(evs, pipeline.Event{Kind: pipeline.Locked, Time: at.Add(time.Minute), App: "papi", Region: "prod3",
		Actor: pipeline.Actor{Name: "bob", Via: "slack"}, Message: "bob locked papi prod3: investigating"})
	return evs
}

func TestSampleEventsFixture(t *testing.T) {
	t.Parallel()
	b, err := json.MarshalIndent(sampleEvents(), "", " ")
	if err != nil {
		t.Fatal(err)
	}
	goldenPath(t, "../fixtures/slack/run_events.json", string(b)+"\n")
}

func TestConsoleThread(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	cfg := testConfig()
	c := NewConsoleThread(&b, cfg)
	for _, ev := range sampleEvents() {
		c.Notify(t.Context(), ev)
	}
	// A repeated event (a restart re-reporting) adds nothing.
	evs := sampleEvents()
	c.Notify(t.Context(), evs[len(evs)-3])
	c.Close()
	golden(t, "console_thread.golden", b.String())
}

// A snapshot can skip a state (the scheduler moved on before the event was built): the
// posts are read from the whole snapshot, so the promotion is still told.
func TestPostsFromSkippedState(t *testing.T) {
	t.Parallel()
	run := store.Run{ID: 3, App: "papi", SHA: "1a2b3c4d5e", State: store.RunRunning, Stages: []store.Stage{
		{Region: "sandbox1", State: store.StageSucceeded},
		{Region: "prod3", State: store.StageDeploying, ApprovedBy: "alice"},
	}}
	ev := pipeline.Event{Kind: pipeline.HostChanged, App: "papi", Region: "prod3", Run: run}
	var got []string
	for _, p := range PostsFor(nil, ev, nil) {
		got = append(got, p.Key+": "+p.Text)
	}
	want := []string{"stage/sandbox1/succeeded: papi 1a2b3c4 passed sandbox1", "stage/prod3/approved: alice promoted papi 1a2b3c4 to prod3"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("posts:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

package app

import (
	"context"
	"database/sql"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/immunity-app/immunity/bot"
	"github.com/immunity-app/immunity/canary/prom/promtest"
	"github.com/immunity-app/immunity/pipeline"
	"github.com/immunity-app/immunity/store"
)

// TestPrometheusScrapesTheMetrics serves a real Instance's /metrics to a real Prometheus
// and asks it PromQL questions an operator would: which release is live where, which
// regions are locked, how commands went, how stages took, whether the process is up.
func TestPrometheusScrapesTheMetrics(t *testing.T) {
	t.Parallel()
	in := openTest(t)
	fillDashboard(t, in)
	ctx := context.Background()
	// The engine's transitions of a failed canary stage, as the engine reports them.
	runs, _ := in.Engine.Runs(ctx, "papi", false, 10)
	failed, err := in.Engine.Run(ctx, runs[len(runs)-1].ID)
	if err != nil || failed.State != "failed" || failed.Stages[0].Verdict == "" {
		t.Fatalf("the failed run: %+v %v", failed, err)
	}
	stage := failed.Stages[0]
	t0 := time.Now().Add(-time.Minute)
	in.Metrics.Notify(ctx, pipeline.Event{Kind: pipeline.RunCreated, App: "papi", Run: failed, Time: t0})
	for i, st := range []store.StageState{store.StageDeploying, store.StageMonitoring} {
		s := stage
		s.State = st
		in.Metrics.Notify(ctx, pipeline.Event{Kind: pipeline.StageChanged, App: "papi", Run: failed, Stage: &s, Time: t0.Add(time.Duration(i) * 20 * time.Second)})
	}
	s := stage
	s.Started, s.Finished = t0, t0.Add(50*time.Second)
	in.Metrics.Notify(ctx, pipeline.Event{Kind: pipeline.StageChanged, App: "papi", Run: failed, Stage: &s, Time: t0.Add(50 * time.Second)})
	in.Metrics.Notify(ctx, pipeline.Event{Kind: pipeline.RunChanged, App: "papi", Run: failed, Time: t0.Add(50 * time.Second)})
	in.Metrics.Notify(ctx, pipeline.Event{Kind: pipeline.RunChanged, App: "papi", Run: failed, Time: t0.Add(51 * time.Second)}) // told twice, counted once

	// Two Slack effects wait in the outbox.
	for _, key := range []string{"a", "b"} {
		if _, err := in.Store.Enqueue(ctx, store.OutboxItem{Stream: "slack/run/99", Kind: "slack.post", Dedupe: key, Payload: "{}"}); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(in.Server.Handler())
	defer srv.Close()
	if r, ok := in.command(ctx, pipeline.Actor{Name: "ada", Via: "socket"}, "status papi"); !ok {
		t.Fatalf("status: %s", r)
	}
	in.command(ctx, pipeline.Actor{Name: "ada", Via: "socket"}, "promte papi prod3")

	prom := promtest.Start(t, []string{strings.TrimPrefix(srv.URL, "http://")})
	promtest.Until(t, "a scrape", 20*time.Second, func() bool { return len(promtest.Query(t, prom, `up{job="app"} == 1`)) == 1 })
	ask := func(q string) []promtest.Sample {
		t.Helper()
		var got []promtest.Sample
		promtest.Until(t, q, 10*time.Second, func() bool { got = promtest.Query(t, prom, q); return len(got) > 0 })
		return got
	}
	if got := ask(`immunity_release_info{app="papi",region="prod3"} == 1`); got[0].Labels["host"] != "host1" || got[0].Labels["sha"] != "1111111aaaa" {
		t.Errorf("release_info = %v", got)
	}
	if got := ask(`sum by (region) (immunity_locks_held) == 1`); len(got) != 1 || got[0].Labels["region"] != "prod3" {
		t.Errorf("locked regions = %v, want prod3", got)
	}
	if got := ask(`immunity_commands_total{surface="socket"}`); len(got) != 2 {
		t.Errorf("commands = %v, want status ok and a command not understood", got)
	}
	if got := ask(`immunity_runs_finished_total{app="papi",outcome="failed"}`); got[0].Value != "1" {
		t.Errorf("runs finished = %v, want 1", got)
	}
	if got := ask(`immunity_verdicts_total{region="sandbox2",outcome="fail"}`); got[0].Value != "1" {
		t.Errorf("verdicts = %v", got)
	}
	if got := ask(`sum by (step, outcome) (immunity_stage_duration_seconds_sum{region="sandbox2"})`); len(got) != 3 {
		t.Errorf("stage steps = %v, want deploying ok 20 s, monitoring failed 30 s, stage failed 50 s", got)
	}
	if got := ask(`immunity_outbox_depth{service="slack"}`); got[0].Value != "2" {
		t.Errorf("slack outbox depth = %v, want 2", got)
	}
	ask(`immunity_outbox_oldest_seconds{service="slack"} > 0`)
	ask(`immunity_outbox_depth{service="github"} == 0`)
	ask(`process_resident_memory_bytes > 0`)
	ask(`go_goroutines > 0`)
}

// TestReadyzFailsWhileTheDatabaseCannotBeWritten holds the database's write lock from a
// second connection: /readyz answers 503 until it is let go.
func TestReadyzFailsWhileTheDatabaseCannotBeWritten(t *testing.T) {
	t.Parallel()
	in := openTest(t)
	in.Server.SetReady(true)
	srv := httptest.NewServer(in.Server.Handler())
	defer srv.Close()
	ready := func() (int, string) {
		resp, err := http.Get(srv.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := ready(); code != 200 {
		t.Fatalf("readyz = %d %s", code, body)
	}
	other, err := sql.Open("sqlite", "file:"+filepath.Join(in.Config.Server.DataDir, "immunity.db")+"?_pragma=busy_timeout(100)")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	conn, err := other.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(context.Background(), "BEGIN EXCLUSIVE"); err != nil {
		t.Fatal(err)
	}
	if code, body := ready(); code != http.StatusServiceUnavailable || !strings.Contains(body, "not writable") {
		t.Errorf("readyz with the database locked = %d %q, want 503", code, body)
	}
	conn.ExecContext(context.Background(), "ROLLBACK")
	if code, body := ready(); code != 200 {
		t.Errorf("readyz after the lock was let go = %d %s", code, body)
	}
}

// TestCommandsAreCountedByWhereTheyWereGiven: a button pressed in Slack and one pressed on
// GitHub are told apart, and the CLI on the server's machine is the socket.
func TestCommandsAreCountedByWhereTheyWereGiven(t *testing.T) {
	t.Parallel()
	in := openTest(t)
	ctx := context.Background()
	cmds := countedCommands{in.Commands, in.Metrics}
	for _, a := range []pipeline.Actor{
		{Name: "ada", Via: "button", SlackUserID: "U0ADA"},
		{Name: "ada", Via: "button", GitHubLogin: "ada"},
		{Name: "ada", Via: "socket", Admin: true},
		{Name: "ada", Via: "slack", SlackUserID: "U0ADA"},
	} {
		cmds.Exec(ctx, bot.Request{Actor: a, Text: "status papi"})
	}
	srv := httptest.NewServer(in.Metrics.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, s := range []string{"slack_button", "github_button", "socket", "slack"} {
		if want := `immunity_commands_total{command="status",outcome="ok",surface="` + s + `"} 1`; !strings.Contains(string(b), want) {
			t.Errorf("no %s in\n%s", want, b)
		}
	}
	if strings.Contains(string(b), `surface="button"`) {
		t.Errorf("a button counted without where it was pressed:\n%s", b)
	}
}

// TestPrometheusScrapesTheDeliveryGauges serves fillDeliveries's week, ten days back, to a
// real Prometheus: the immunity_dora_* gauges of the last 30 days carry the figures
// worked out by hand for it.
func TestPrometheusScrapesTheDeliveryGauges(t *testing.T) {
	t.Parallel()
	in := openTest(t)
	fillDeliveries(t, in, time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -10))
	srv := httptest.NewServer(in.Server.Handler())
	defer srv.Close()
	prom := promtest.Start(t, []string{strings.TrimPrefix(srv.URL, "http://")})
	promtest.Until(t, "a scrape", 20*time.Second, func() bool { return len(promtest.Query(t, prom, `up{job="app"} == 1`)) == 1 })
	// Two deploys with lead times of 3 h and 40 m (median 6600 s), 1 of 3 production
	// stages failed and restored after 4800 s, one canary stop.
	for q, want := range map[string]string{
		`immunity_dora_report_ok{app="papi"}`:                      "1",
		`immunity_dora_deploys{app="papi"}`:                        "2",
		`immunity_dora_lead_time_median_seconds{app="papi"}`:       "6600",
		`immunity_dora_change_failures{app="papi"}`:                "1",
		`immunity_dora_change_failure_ratio{app="papi"}`:           "0.33",
		`immunity_dora_time_to_restore_median_seconds{app="papi"}`: "4800",
		`immunity_dora_restores_open{app="papi"}`:                  "0",
		`immunity_dora_canary_stops{app="papi"}`:                   "1",
	} {
		var got []promtest.Sample
		promtest.Until(t, q, 10*time.Second, func() bool { got = promtest.Query(t, prom, q); return len(got) > 0 })
		if len(got) != 1 || got[0].Value != want {
			t.Errorf("%s = %v, want %s", q, got, want)
		}
	}
}

package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// failWrites makes the database refuse a write (event INSERT or UPDATE on table, when
// the condition on NEW holds) with an error, as a disk or a connection failing in the
// middle of a transaction; the returned func lifts it. It is a trigger of the engine's own.
func failWrites(t *testing.T, s *Store, event, table, when string) func() {
	t.Helper()
	ctx := context.Background()
	name := fmt.Sprintf("fail_%s_%s", strings.ToLower(event), table)
	var stmts []string
	var drop []string
	if s.db.engine == postgresEngine {
		stmts = []string{
			`CREATE OR REPLACE FUNCTION ` + name + `() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$`,
			`CREATE TRIGGER ` + name + ` BEFORE ` + event + ` ON ` + table + ` FOR EACH ROW WHEN (` + when + `) EXECUTE FUNCTION ` + name + `()`,
		}
		drop = []string{`DROP TRIGGER ` + name + ` ON ` + table, `DROP FUNCTION ` + name + `()`}
	} else {
		stmts = []string{`CREATE TRIGGER ` + name + ` BEFORE ` + event + ` ON ` + table + ` WHEN ` + when + ` BEGIN SELECT RAISE(ABORT, 'injected failure'); END`}
		drop = []string{`DROP TRIGGER ` + name}
	}
	for _, q := range stmts {
		if _, err := s.db.pool.ExecContext(ctx, q); err != nil {
			t.Fatalf("inject a failure: %v", err)
		}
	}
	return func() {
		t.Helper()
		for _, q := range drop {
			if _, err := s.db.pool.ExecContext(ctx, q); err != nil {
				t.Fatalf("lift the injected failure: %v", err)
			}
		}
	}
}

// runRows is what the store says of a run, its stages and host steps, and its release.
func runRows(t *testing.T, s *Store, id int64) string {
	t.Helper()
	r, err := s.Run(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	out := fmt.Sprintf("run %s %q;", r.State, r.Message)
	for _, st := range r.Stages {
		out += fmt.Sprintf(" %s=%s %q by %q forced=%v [", st.Region, st.State, st.Message, st.ApprovedBy, st.Forced)
		for _, h := range st.Hosts {
			out += fmt.Sprintf(" %s:%s:%s", h.Host, h.Step, h.PrevSHA)
		}
		out += " ]"
	}
	if rel, err := s.Release(context.Background(), r.App, r.SHA); err == nil {
		out += fmt.Sprintf(" release %s %q", rel.State, rel.Message)
	}
	return out
}

// threeStages is a run in sandbox1 (done), waiting for prod3 (awaiting approval), prod4
// still pending.
func threeStages(t *testing.T, s *Store) Run {
	t.Helper()
	ctx := context.Background()
	r, err := s.CreateRun(ctx, Run{App: "papi", SHA: "1a2b3c4", Trigger: "push", State: RunWaiting, Message: "waiting for promotion to prod3"},
		[]string{"sandbox1", "prod3", "prod4"}, map[string][]string{"sandbox1": {"host1"}, "prod3": {"host1", "host2"}, "prod4": {"host1"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateStage(ctx, r.Stages[0].ID, StageUpdate{State: StageSucceeded, Message: "live on 1 host"}); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateStage(ctx, r.Stages[1].ID, StageUpdate{State: StageAwaitingApproval, Message: "ready for prod3; waiting for promotion"}); err != nil {
		t.Fatal(err)
	}
	return r
}

// A run superseded at a stage moves with every later stage in one write: a failure in the
// middle, a stage promoted meanwhile or a run already finished change nothing.
func TestEndRunIsAllOrNothing(t *testing.T) {
	engines(t, func(t *testing.T, db string) {
		ctx := context.Background()
		s := open(t, db)
		r := threeStages(t, s)
		end := RunEnd{RunID: r.ID, StageID: r.Stages[1].ID, Stage: StageCancelled, Run: RunSuperseded, Message: "superseded by 5e6f7a8 (run 9) at prod3"}
		before := runRows(t, s, r.ID)

		lift := failWrites(t, s, "UPDATE", "runs", "NEW.state = 'superseded'")
		if err := s.EndRun(ctx, end); err == nil || !strings.Contains(err.Error(), "injected failure") {
			t.Fatalf("end with the run's write failing: %v", err)
		}
		if got := runRows(t, s, r.ID); got != before {
			t.Fatalf("a failed end changed the store:\n%s\nwas\n%s", got, before)
		}
		lift()

		if err := s.UpdateStage(ctx, r.Stages[1].ID, StageUpdate{State: StageApproved, Message: "promoted by ada"}); err != nil {
			t.Fatal(err)
		}
		promoted := runRows(t, s, r.ID)
		if err := s.EndRun(ctx, end); !errors.Is(err, ErrStateChanged) {
			t.Fatalf("a promoted stage was superseded: %v; want ErrStateChanged", err)
		}
		if got := runRows(t, s, r.ID); got != promoted {
			t.Fatalf("a failed guard changed the store:\n%s\nwas\n%s", got, promoted)
		}
		if err := s.UpdateStage(ctx, r.Stages[1].ID, StageUpdate{State: StageAwaitingApproval}); err != nil {
			t.Fatal(err)
		}

		if err := s.EndRun(ctx, end); err != nil {
			t.Fatal(err)
		}
		got, _ := s.Run(ctx, r.ID)
		if got.State != RunSuperseded || got.Message != end.Message || got.Stages[0].State != StageSucceeded ||
			got.Stages[1].State != StageCancelled || got.Stages[2].State != StageCancelled || got.Stages[2].Message != end.Message {
			t.Fatalf("after the end: %s", runRows(t, s, r.ID))
		}
		// Finished: a second end (of a stage that would match) changes nothing.
		after := runRows(t, s, r.ID)
		if err := s.EndRun(ctx, RunEnd{RunID: r.ID, StageID: r.Stages[1].ID, OnlyIf: []StageState{StageCancelled}, Stage: StageCancelled, Run: RunCancelled, Message: "x"}); !errors.Is(err, ErrStateChanged) {
			t.Fatalf("a finished run was ended again: %v", err)
		}
		if got := runRows(t, s, r.ID); got != after {
			t.Fatalf("ending a finished run changed it:\n%s", got)
		}
	})
}

// A build's end writes its release, its run and (failed) its skipped stages together.
func TestFinishBuildIsAllOrNothing(t *testing.T) {
	engines(t, func(t *testing.T, db string) {
		ctx := context.Background()
		s := open(t, db)
		r, err := s.CreateRun(ctx, Run{App: "papi", SHA: "1a2b3c4", State: RunBuilding}, []string{"sandbox1", "prod3"}, map[string][]string{"sandbox1": {"host1"}, "prod3": {"host1"}})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.PutRelease(ctx, Release{App: "papi", SHA: "1a2b3c4", State: ReleaseBuilding}); err != nil {
			t.Fatal(err)
		}
		failed := Release{App: "papi", SHA: "1a2b3c4", State: ReleaseFailed, Message: "exit status 2"}
		before := runRows(t, s, r.ID)

		lift := failWrites(t, s, "UPDATE", "runs", "NEW.state = 'failed'")
		if err := s.FinishBuild(ctx, r.ID, failed, "build failed: exit status 2"); err == nil || !strings.Contains(err.Error(), "injected failure") {
			t.Fatalf("finish with the run's write failing: %v", err)
		}
		if got := runRows(t, s, r.ID); got != before {
			t.Fatalf("a failed finish changed the store:\n%s\nwas\n%s", got, before)
		}
		lift()

		if err := s.FinishBuild(ctx, r.ID, Release{App: "papi", SHA: "1a2b3c4", State: ReleaseBuilding}, "x"); err == nil {
			t.Fatal("a build finished still building")
		}
		if err := s.FinishBuild(ctx, r.ID, failed, "build failed: exit status 2"); err != nil {
			t.Fatal(err)
		}
		want := `run failed "build failed: exit status 2"; sandbox1=skipped "build failed" by "" forced=false [ host1:pending: ] prod3=skipped "build failed" by "" forced=false [ host1:pending: ] release failed "exit status 2"`
		if got := runRows(t, s, r.ID); got != want {
			t.Fatalf("after the failed build:\n%s\nwant\n%s", got, want)
		}
		// The run is no longer building: a stale builder's end changes nothing, its
		// release included.
		if err := s.FinishBuild(ctx, r.ID, Release{App: "papi", SHA: "1a2b3c4", State: ReleaseReady, Artifact: "a.tar.gz"}, "built"); !errors.Is(err, ErrStateChanged) {
			t.Fatalf("a stale build end: %v; want ErrStateChanged", err)
		}
		if got := runRows(t, s, r.ID); got != want {
			t.Fatalf("a stale build end changed the store:\n%s", got)
		}

		ok, err := s.CreateRun(ctx, Run{App: "papi", SHA: "5e6f7a8", State: RunBuilding}, []string{"sandbox1"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.FinishBuild(ctx, ok.ID, Release{App: "papi", SHA: "5e6f7a8", State: ReleaseReady, Artifact: "b.tar.gz", Checksum: "c0ffee"}, "built"); err != nil {
			t.Fatal(err)
		}
		if got := runRows(t, s, ok.ID); got != `run running "built"; sandbox1=pending "" by "" forced=false [ ] release ready ""` {
			t.Fatalf("after the build: %s", got)
		}
	})
}

// A re-run brings its stage, the later stages and the run back in one write.
func TestRerunStageIsAllOrNothing(t *testing.T) {
	engines(t, func(t *testing.T, db string) {
		ctx := context.Background()
		s := open(t, db)
		r := threeStages(t, s)
		if err := s.UpdateStage(ctx, r.Stages[1].ID, StageUpdate{State: StageDeploying, Forced: true}); err != nil {
			t.Fatal(err)
		}
		if err := s.SetHostStep(ctx, r.Stages[1].ID, "host1", HostSwitching, "0ld0000", "switching"); err != nil {
			t.Fatal(err)
		}
		if err := s.FailStage(ctx, r.ID, r.Stages[1].ID, StageFailed, RunFailed, "tests failed on prod3/host1"); err != nil {
			t.Fatal(err)
		}
		before := runRows(t, s, r.ID)

		lift := failWrites(t, s, "UPDATE", "runs", "NEW.state = 'running'")
		if err := s.RerunStage(ctx, r.ID, r.Stages[1].ID, StageFailed, "re-run asked by ada (cli)", "re-running prod3"); err == nil || !strings.Contains(err.Error(), "injected failure") {
			t.Fatalf("re-run with the run's write failing: %v", err)
		}
		if got := runRows(t, s, r.ID); got != before {
			t.Fatalf("a failed re-run changed the store:\n%s\nwas\n%s", got, before)
		}
		lift()

		if err := s.RerunStage(ctx, r.ID, r.Stages[1].ID, StageSucceeded, "re-run asked by ada (cli)", "re-running prod3"); !errors.Is(err, ErrStateChanged) {
			t.Fatalf("a re-run of a stage read in another state: %v; want ErrStateChanged", err)
		}
		if got := runRows(t, s, r.ID); got != before {
			t.Fatalf("a failed guard changed the store:\n%s", got)
		}
		if err := s.RerunStage(ctx, r.ID, r.Stages[1].ID, StageFailed, "re-run asked by ada (cli)", "re-running prod3"); err != nil {
			t.Fatal(err)
		}
		want := `run running "re-running prod3"; sandbox1=succeeded "live on 1 host" by "" forced=false [ host1:pending: ] ` +
			`prod3=pending "re-run asked by ada (cli)" by "" forced=false [ host1:pending: host2:pending: ] prod4=pending " " by "" forced=false [ host1:pending: ]`
		if got := runRows(t, s, r.ID); got != want {
			t.Fatalf("after the re-run:\n%s\nwant\n%s", got, want)
		}
	})
}

// A deploy's run is written with its stage approved, or not at all.
func TestCreateApprovedRunIsAllOrNothing(t *testing.T) {
	engines(t, func(t *testing.T, db string) {
		ctx := context.Background()
		s := open(t, db)
		run := Run{App: "papi", SHA: "1a2b3c4", Trigger: "deploy", Actor: "ada", State: RunRunning}
		approve := StageUpdate{State: StageApproved, ApprovedBy: "ada", ApprovedByID: "cli:ada", ApprovedVia: "cli", Message: "deploy asked by ada (cli)"}
		lift := failWrites(t, s, "UPDATE", "stages", "NEW.state = 'approved'")
		if _, err := s.CreateApprovedRun(ctx, run, "prod3", []string{"host1", "host2"}, approve); err == nil || !strings.Contains(err.Error(), "injected failure") {
			t.Fatalf("create with the approval failing: %v", err)
		}
		if runs, err := s.Runs(ctx, "papi", false, 0); err != nil || len(runs) != 0 {
			t.Fatalf("a deploy whose approval failed was recorded: %+v %v", runs, err)
		}
		lift()
		r, err := s.CreateApprovedRun(ctx, run, "prod3", []string{"host1", "host2"}, approve)
		if err != nil {
			t.Fatal(err)
		}
		if got := runRows(t, s, r.ID); got != `run running ""; prod3=approved "deploy asked by ada (cli)" by "ada" forced=false [ host1:pending: host2:pending: ]` {
			t.Fatalf("the deploy's run: %s", got)
		}
	})
}

// A host of an open plan found on another release is recorded in its live release and
// the plan together; a plan that ended changes nothing.
func TestRollbackHostFoundIsAllOrNothing(t *testing.T) {
	engines(t, func(t *testing.T, db string) {
		ctx := context.Background()
		s := open(t, db)
		if err := s.SetLive(ctx, "papi", "prod3", "host1", "new0000"); err != nil {
			t.Fatal(err)
		}
		rb, err := s.PlanRollback(ctx, Rollback{App: "papi", Region: "prod3", Actor: "ada", Reason: "asked by ada",
			Hosts: []RollbackHost{{Host: "host1", From: "new0000", To: "old0000"}}})
		if err != nil {
			t.Fatal(err)
		}
		state := func() string {
			got, err := s.Rollback(ctx, rb.ID)
			if err != nil {
				t.Fatal(err)
			}
			live, _ := s.Live(ctx, "papi", "prod3")
			return fmt.Sprintf("from %s, live %s", got.Hosts[0].From, live["host1"])
		}
		lift := failWrites(t, s, "UPDATE", "live", "NEW.sha = 'mid0000'")
		if err := s.RollbackHostFound(ctx, rb, "host1", "mid0000"); err == nil {
			t.Fatal("the live release's write failed, and the plan's was kept")
		}
		if got := state(); got != "from new0000, live new0000" {
			t.Fatalf("a failed write changed the store: %s", got)
		}
		lift()
		if err := s.RollbackHostFound(ctx, rb, "host1", "mid0000"); err != nil {
			t.Fatal(err)
		}
		if got := state(); got != "from mid0000, live mid0000" {
			t.Fatalf("after the host was found: %s", got)
		}
		if err := s.FinishRollback(ctx, rb, RollbackDone, 1, "rolled back"); err != nil {
			t.Fatal(err)
		}
		if err := s.RollbackHostFound(ctx, rb, "host1", "odd0000"); !errors.Is(err, ErrStateChanged) {
			t.Fatalf("a finished plan was changed: %v; want ErrStateChanged", err)
		}
		if got := state(); got != "from mid0000, live mid0000" {
			t.Fatalf("a finished plan's host: %s", got)
		}
	})
}

// Finished runs with a stage still waiting are found (a write cut short left them so).
func TestEndedRunsWaiting(t *testing.T) {
	engines(t, func(t *testing.T, db string) {
		ctx := context.Background()
		s := open(t, db)
		r := threeStages(t, s)
		other := threeStages(t, s)
		if err := s.SetRunState(ctx, r.ID, RunFailed, "tests failed"); err != nil { // its stages left waiting
			t.Fatal(err)
		}
		if err := s.EndRun(ctx, RunEnd{RunID: other.ID, StageID: other.Stages[1].ID, Stage: StageCancelled, Run: RunSuperseded, Message: "superseded"}); err != nil {
			t.Fatal(err)
		}
		got, err := s.EndedRunsWaiting(ctx, "papi")
		if err != nil || len(got) != 1 || got[0].ID != r.ID || len(got[0].Stages) != 3 {
			t.Fatalf("ended runs waiting: %+v %v; want run %d", got, err, r.ID)
		}
	})
}

// A pruned release's stored artifact goes with its move to pruned, or stays with it ready.
func TestPruneReleaseIsAllOrNothing(t *testing.T) {
	engines(t, func(t *testing.T, db string) {
		ctx := context.Background()
		s := open(t, db)
		path := filepath.Join(t.TempDir(), "papi.tar.gz")
		os.WriteFile(path, []byte("a build"), 0o644)
		if _, err := s.PutArtifact(ctx, "papi", "1a2b3c4", path); err != nil {
			t.Fatal(err)
		}
		if err := s.PutRelease(ctx, Release{App: "papi", SHA: "1a2b3c4", State: ReleaseReady, Artifact: path}); err != nil {
			t.Fatal(err)
		}
		stored := func() string {
			rel, err := s.Release(ctx, "papi", "1a2b3c4")
			if err != nil {
				t.Fatal(err)
			}
			_, err = s.ArtifactChecksum(ctx, "papi", "1a2b3c4")
			return fmt.Sprintf("%s, artifact stored %v", rel.State, err == nil)
		}
		lift := failWrites(t, s, "UPDATE", "releases", "NEW.state = 'pruned'")
		if err := s.PruneRelease(ctx, "papi", "1a2b3c4", "no host keeps it"); err == nil {
			t.Fatal("a prune whose write failed succeeded")
		}
		if got := stored(); got != "ready, artifact stored true" {
			t.Fatalf("a failed prune changed the store: %s", got)
		}
		lift()
		if err := s.PruneRelease(ctx, "papi", "1a2b3c4", "no host keeps it"); err != nil {
			t.Fatal(err)
		}
		if got := stored(); got != "pruned, artifact stored false" {
			t.Fatalf("after the prune: %s", got)
		}
		if err := s.PruneRelease(ctx, "papi", "1a2b3c4", "again"); !errors.Is(err, ErrStateChanged) {
			t.Fatalf("a pruned release pruned again: %v", err)
		}
	})
}

// A run succeeds only while none of its stages waits or works: a stale scheduler that read
// it finished before a re-run changes nothing.
func TestSucceedRunWaitsForEveryStage(t *testing.T) {
	engines(t, func(t *testing.T, db string) {
		ctx := context.Background()
		s := open(t, db)
		r := threeStages(t, s)
		before := runRows(t, s, r.ID)
		if err := s.SucceedRun(ctx, r.ID, "is live in every region"); !errors.Is(err, ErrStateChanged) {
			t.Fatalf("a run with a stage waiting succeeded: %v", err)
		}
		if got := runRows(t, s, r.ID); got != before {
			t.Fatalf("a refused success changed the run:\n%s", got)
		}
		for _, st := range r.Stages[1:] {
			if err := s.UpdateStage(ctx, st.ID, StageUpdate{State: StageSucceeded}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.SucceedRun(ctx, r.ID, "is live in every region"); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Run(ctx, r.ID); got.State != RunSucceeded || got.Message != "is live in every region" {
			t.Fatalf("after the success: %s", runRows(t, s, r.ID))
		}
		if err := s.SucceedRun(ctx, r.ID, "again"); !errors.Is(err, ErrStateChanged) {
			t.Fatalf("a finished run succeeded again: %v", err)
		}
	})
}

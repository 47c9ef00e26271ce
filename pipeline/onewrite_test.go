package pipeline

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/immunity-app/immunity/store"
)

// The transitions that move several rows (a run superseded with its stages, a build's
// end with its release and stages, a re-run, a deploy with its approval) are one write
// each: a failure injected after the first of the old writes leaves the store as it was,
// and the next start carries the transition out whole. And a start heals what an older
// binary, killed between those writes, left half done.

// failWrites makes the store's database refuse a write (event INSERT or UPDATE on table,
// when the condition on NEW holds), as a disk failing in the middle of a transaction: a
// trigger of the engine's own, from a connection of the test's. The returned func lifts it.
func (h *harness) failWrites(event, table, when string) func() {
	h.t.Helper()
	ctx := context.Background()
	driver, dsn := "sqlite", "file:"+h.db+"?_pragma=busy_timeout(10000)"
	if h.st.Engine() == "postgres" {
		driver, dsn = "pgx", h.db
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { db.Close() })
	name := fmt.Sprintf("fail_%s_%s", strings.ToLower(event), table)
	stmts := []string{`CREATE TRIGGER ` + name + ` BEFORE ` + event + ` ON ` + table + ` WHEN ` + when + ` BEGIN SELECT RAISE(ABORT, 'injected failure'); END`}
	drop := []string{`DROP TRIGGER ` + name}
	if driver == "pgx" {
		stmts = []string{
			`CREATE OR REPLACE FUNCTION ` + name + `() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$`,
			`CREATE TRIGGER ` + name + ` BEFORE ` + event + ` ON ` + table + ` FOR EACH ROW WHEN (` + when + `) EXECUTE FUNCTION ` + name + `()`,
		}
		drop = []string{`DROP TRIGGER ` + name + ` ON ` + table, `DROP FUNCTION ` + name + `()`}
	}
	for _, q := range stmts {
		if _, err := db.ExecContext(ctx, q); err != nil {
			h.t.Fatalf("inject a failure: %v", err)
		}
	}
	return func() {
		h.t.Helper()
		for _, q := range drop {
			if _, err := db.ExecContext(ctx, q); err != nil {
				h.t.Fatalf("lift the injected failure: %v", err)
			}
		}
	}
}

// rows is what the store says of a run: its state, its stages and their hosts' steps.
func (h *harness) rows(id int64) string {
	h.t.Helper()
	r, err := h.st.Run(context.Background(), id)
	if err != nil {
		h.t.Fatal(err)
	}
	out := fmt.Sprintf("%s %q;", r.State, r.Message)
	for _, s := range r.Stages {
		out += fmt.Sprintf(" %s=%s(%s)[", s.Region, s.State, s.Message)
		for _, hs := range s.Hosts {
			out += " " + string(hs.Step)
		}
		out += " ]"
	}
	return out
}

// storeAgreesWithHosts checks that every host runs what the store says it runs.
func (h *harness) storeAgreesWithHosts() {
	h.t.Helper()
	ctx := context.Background()
	a := &h.cfg.Apps[0]
	for i := range a.Regions {
		reg := &a.Regions[i]
		live, err := h.st.Live(ctx, a.Name, reg.Name)
		if err != nil {
			h.t.Fatal(err)
		}
		for _, host := range h.eng.Hosts(a, reg) {
			st, _ := h.dep.State(ctx, host)
			if live[host.Name] != st.Current {
				h.t.Errorf("%s: the store says %s, the host runs %s", host, orNothing(short(live[host.Name])), orNothing(short(st.Current)))
			}
		}
	}
}

// told reports how many events of a run the listeners were told with msg, once they were
// told the first or after 10 s: they are told just after the write a test may already
// have seen in the store.
func (h *harness) told(run int64, kind EventKind, msg string) (n int) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		n = 0
		for _, ev := range h.rec.kinds(kind) {
			if ev.Run.ID == run && ev.Message == msg {
				n++
			}
		}
		if n > 0 || time.Now().After(deadline) {
			return n
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSupersedeIsOneWrite(t *testing.T) { testSupersedeIsOneWrite(t, newHarness(t, fourRegions)) }

func testSupersedeIsOneWrite(t *testing.T, h *harness) {
	ctx := context.Background()
	h.seed()
	older := h.push("older")
	h.waitState(older.ID, store.RunWaiting)
	waiting := h.rows(older.ID)
	// The run's move to superseded fails: the old writes had cancelled its stages by then.
	lift := h.failWrites("UPDATE", "runs", "NEW.state = 'superseded'")
	newer := h.push("newer")
	h.waitRun(newer.ID, "at prod3", func(r store.Run) bool { return stageOf(r, "sandbox2").State == store.StageSucceeded })
	var rounds []error
	for range 2 { // each round tries to supersede the older run
		rounds = append(rounds, h.eng.schedule(ctx))
	}
	if got := h.rows(older.ID); got != waiting {
		t.Fatalf("a supersede that failed changed the older run:\n%s\nit was\n%s", got, waiting)
	}
	for _, err := range rounds {
		if err == nil || !strings.Contains(err.Error(), "injected failure") {
			t.Fatalf("a round of the scheduler did not try to supersede the older run: %v", err)
		}
	}
	h.eng.Stop()
	lift()

	h.start()
	r := h.waitState(older.ID, store.RunSuperseded)
	want := supersededMessage(newer.SHA, newer.ID, "prod3")
	if r.Message != want || stageOf(r, "prod3").State != store.StageCancelled || stageOf(r, "prod4").State != store.StageCancelled ||
		stageOf(r, "prod4").Message != want || stageOf(r, "sandbox2").State != store.StageSucceeded {
		t.Fatalf("superseded run: %s", h.rows(older.ID))
	}
	if n := h.told(older.ID, RunChanged, want); n != 1 {
		t.Errorf("the listeners were told %d times that the run was superseded; want once", n)
	}
	h.waitState(newer.ID, store.RunWaiting)
	h.storeAgreesWithHosts()
}

func TestBuildFailureIsOneWrite(t *testing.T) {
	testBuildFailureIsOneWrite(t, newHarness(t, fourRegions))
}

func testBuildFailureIsOneWrite(t *testing.T, h *harness) {
	h.seed()
	sha := h.build.add("does not compile")
	h.build.mu.Lock()
	h.build.fail = map[string]error{sha: errors.New("exit status 2: main.go:3: syntax error")}
	h.build.mu.Unlock()
	builds := func() (n int) {
		h.build.mu.Lock()
		defer h.build.mu.Unlock()
		for _, b := range h.build.builds {
			if b == sha {
				n++
			}
		}
		return n
	}
	// The run's move to failed fails: the old writes had failed the release and skipped
	// the stages by then.
	lift := h.failWrites("UPDATE", "runs", "NEW.state = 'failed'")
	run, err := h.eng.StartRun(context.Background(), "papi", sha, Trigger{Kind: "push"})
	if err != nil {
		t.Fatal(err)
	}
	h.waitRun(run.ID, "built twice (its failure's write failed, the build tried again)", func(store.Run) bool { return builds() >= 2 })
	h.eng.Stop()
	r, _ := h.st.Run(context.Background(), run.ID)
	rel, _ := h.st.Release(context.Background(), "papi", sha)
	for _, s := range r.Stages {
		if r.State != store.RunBuilding || s.State != store.StagePending || rel.State == store.ReleaseFailed {
			t.Fatalf("a build failure whose write failed changed the store: %s; release %s", h.rows(run.ID), rel.State)
		}
	}
	lift()

	h.start()
	r = h.waitState(run.ID, store.RunFailed)
	if r.Message != "build failed: exit status 2: main.go:3: syntax error" {
		t.Errorf("failed run's message %q", r.Message)
	}
	for _, s := range r.Stages {
		if s.State != store.StageSkipped || s.Message != store.BuildFailedStage {
			t.Fatalf("after the failed build: %s", h.rows(run.ID))
		}
	}
	if rel, _ := h.st.Release(context.Background(), "papi", sha); rel.State != store.ReleaseFailed {
		t.Errorf("release %s after its build failed", rel.State)
	}
	h.storeAgreesWithHosts()
}

func TestRerunIsOneWrite(t *testing.T) { testRerunIsOneWrite(t, newHarness(t, fourRegions)) }

func testRerunIsOneWrite(t *testing.T, h *harness) {
	ctx := context.Background()
	h.seed()
	sha := h.build.add("flaky tests")
	h.tests.mu.Lock()
	h.tests.fail[sha] = true
	h.tests.mu.Unlock()
	run, err := h.eng.StartRun(ctx, "papi", sha, Trigger{Kind: "push"})
	if err != nil {
		t.Fatal(err)
	}
	h.waitState(run.ID, store.RunFailed)
	h.tests.mu.Lock()
	h.tests.fail[sha] = false
	h.tests.mu.Unlock()
	failed := h.rows(run.ID)
	// The run's move to running fails: the old writes had put its stages back to pending.
	lift := h.failWrites("UPDATE", "runs", "NEW.state = 'running' AND NEW.message LIKE 're-running%'")
	if _, err := h.eng.Rerun(ctx, ada, run.ID, "sandbox1"); err == nil {
		t.Fatal("a re-run whose write failed said it re-runs")
	}
	if got := h.rows(run.ID); got != failed {
		t.Fatalf("a re-run whose write failed changed the run:\n%s\nit was\n%s", got, failed)
	}
	h.eng.Stop()
	lift()

	h.start()
	if got := h.rows(run.ID); got != failed {
		t.Fatalf("after the restart the run is\n%s\nit was\n%s", got, failed)
	}
	h.storeAgreesWithHosts()
	if _, err := h.eng.Rerun(ctx, ada, run.ID, "sandbox1"); err != nil {
		t.Fatal(err)
	}
	r := h.waitState(run.ID, store.RunWaiting)
	if stageOf(r, "sandbox1").State != store.StageSucceeded || stageOf(r, "prod3").State != store.StageAwaitingApproval {
		t.Fatalf("after the re-run: %s", h.rows(run.ID))
	}
	h.storeAgreesWithHosts()
}

func TestDeployIsOneWrite(t *testing.T) { testDeployIsOneWrite(t, newHarness(t, fourRegions)) }

func testDeployIsOneWrite(t *testing.T, h *harness) {
	ctx := context.Background()
	seed := h.seed()
	other := h.build.add("put back by hand")
	h.dep.mu.Lock()
	h.dep.current["sandbox2/host1"] = other // so that the deploy of the seed changes the host
	h.dep.mu.Unlock()
	h.eng.Stop()
	h.start() // reconciled: the store says sandbox2/host1 runs other
	// The stage's approval fails: the old writes had recorded the deploy's run by then.
	lift := h.failWrites("UPDATE", "stages", "NEW.state = 'approved'")
	if _, err := h.eng.Deploy(ctx, ada, "papi", seed, "sandbox2", false); err == nil {
		t.Fatal("a deploy whose write failed said it deploys")
	}
	if runs, err := h.st.RunsOf(ctx, "papi", seed); err != nil || len(runs) != 0 {
		t.Fatalf("a deploy whose write failed left runs: %+v %v", runs, err)
	}
	h.eng.Stop()
	lift()

	h.start()
	if err := h.eng.schedule(ctx); err != nil {
		t.Fatal(err)
	}
	if runs, _ := h.st.RunsOf(ctx, "papi", seed); len(runs) != 0 {
		t.Fatalf("after the restart, runs of the deploy that failed: %s", h.rows(runs[0].ID))
	}
	h.storeAgreesWithHosts()
	if _, err := h.eng.Deploy(ctx, ada, "papi", seed, "sandbox2", false); err != nil {
		t.Fatal(err)
	}
	runs, _ := h.st.RunsOf(ctx, "papi", seed)
	r := h.waitState(runs[0].ID, store.RunSucceeded)
	if s := r.Stages[0]; s.ApprovedBy != "ada" || s.Region != "sandbox2" {
		t.Fatalf("the deploy: %s, approved by %q", h.rows(r.ID), s.ApprovedBy)
	}
	h.storeAgreesWithHosts()
}

// A start heals what an older binary, killed between its writes, left half done; the
// listeners are told what the old write never told them.

func TestStartHealsAHalfSupersededRun(t *testing.T) {
	h := newHarness(t, fourRegions)
	ctx := context.Background()
	h.seed()
	run := h.push("older")
	h.waitState(run.ID, store.RunWaiting)
	h.eng.Stop()
	msg := supersededMessage("5e6f7a8", run.ID+1, "prod3")
	// The old writes cancelled prod3, then prod4, then superseded the run: killed after the first.
	if err := h.st.UpdateStage(ctx, stageOf(run, "prod3").ID, store.StageUpdate{State: store.StageCancelled, Message: msg}); err != nil {
		t.Fatal(err)
	}

	h.start()
	r := h.waitRun(run.ID, "finished", func(r store.Run) bool { return r.State.Terminal() })
	if r.State != store.RunSuperseded || r.Message != msg || stageOf(r, "prod4").State != store.StageCancelled || stageOf(r, "prod4").Message != msg {
		t.Fatalf("healed run: %s", h.rows(run.ID))
	}
	if n := h.told(run.ID, RunChanged, msg); n != 1 {
		t.Errorf("the listeners were told %d times that the run was superseded; want once", n)
	}
	h.storeAgreesWithHosts()
}

func TestStartHealsAHalfFailedBuild(t *testing.T) {
	h := newHarness(t, fourRegions)
	ctx := context.Background()
	h.seed()
	sha := h.build.add("does not compile")
	h.eng.Stop()
	// The old writes failed the release, skipped each stage, then failed the run: killed
	// after the first stage.
	run, err := h.st.CreateRun(ctx, store.Run{App: "papi", SHA: sha, Trigger: "push", State: store.RunBuilding}, h.cfg.Apps[0].RegionNames(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.st.PutRelease(ctx, store.Release{App: "papi", SHA: sha, State: store.ReleaseFailed, Message: "exit status 2"}); err != nil {
		t.Fatal(err)
	}
	if err := h.st.UpdateStage(ctx, run.Stages[0].ID, store.StageUpdate{State: store.StageSkipped, Message: store.BuildFailedStage}); err != nil {
		t.Fatal(err)
	}

	h.start()
	r := h.waitRun(run.ID, "finished", func(r store.Run) bool { return r.State.Terminal() })
	if r.State != store.RunFailed || r.Message != "build failed: exit status 2" {
		t.Fatalf("healed run: %s", h.rows(run.ID))
	}
	for _, s := range r.Stages {
		if s.State != store.StageSkipped {
			t.Fatalf("healed run: %s", h.rows(run.ID))
		}
	}
	if n := h.told(run.ID, RunChanged, r.Message); n != 1 {
		t.Errorf("the listeners were told %d times that the build failed; want once", n)
	}
	h.build.mu.Lock()
	defer h.build.mu.Unlock()
	for _, b := range h.build.builds {
		if b == sha {
			t.Error("the failed release was built again")
		}
	}
}

func TestStartHealsAHalfWrittenRerun(t *testing.T) {
	h := newHarness(t, fourRegions)
	ctx := context.Background()
	h.seed()
	sha := h.build.add("flaky tests")
	h.tests.mu.Lock()
	h.tests.fail[sha] = true
	h.tests.mu.Unlock()
	run, err := h.eng.StartRun(ctx, "papi", sha, Trigger{Kind: "push"})
	if err != nil {
		t.Fatal(err)
	}
	run = h.waitState(run.ID, store.RunFailed)
	h.tests.mu.Lock()
	h.tests.fail[sha] = false
	h.tests.mu.Unlock()
	h.eng.Stop()
	// The old writes reset sandbox1, then each later stage, then moved the run: killed
	// after sandbox2.
	sandbox1, sandbox2 := stageOf(run, "sandbox1"), stageOf(run, "sandbox2")
	if err := h.st.ResetHostSteps(ctx, sandbox1.ID); err != nil {
		t.Fatal(err)
	}
	if err := h.st.UpdateStage(ctx, sandbox1.ID, store.StageUpdate{State: store.StagePending, Message: rerunPrefix + ada.String()}); err != nil {
		t.Fatal(err)
	}
	if err := h.st.UpdateStage(ctx, sandbox2.ID, store.StageUpdate{State: store.StagePending, Message: " "}); err != nil {
		t.Fatal(err)
	}

	h.start()
	r := h.waitState(run.ID, store.RunWaiting)
	if stageOf(r, "sandbox1").State != store.StageSucceeded || stageOf(r, "sandbox2").State != store.StageSucceeded || stageOf(r, "prod3").State != store.StageAwaitingApproval {
		t.Fatalf("healed re-run: %s", h.rows(run.ID))
	}
	if n := h.told(run.ID, RunChanged, "re-running sandbox1 of "+short(sha)+" (re-run asked by ada (cli))"); n != 1 {
		t.Errorf("the listeners were told %d times of the re-run; want once", n)
	}
	h.storeAgreesWithHosts()
}

func TestStartHealsADeployNeverApproved(t *testing.T) {
	h := newHarness(t, fourRegions)
	ctx := context.Background()
	seed := h.seed()
	h.eng.Stop()
	before := len(h.dep.asked())
	// The old writes recorded the deploy's run, then approved its stage: killed between.
	run, err := h.st.CreateRun(ctx, store.Run{App: "papi", SHA: seed, Trigger: TriggerDeploy, Actor: "ada", State: store.RunRunning},
		[]string{"prod3"}, map[string][]string{"prod3": {"host1", "host2", "host3"}})
	if err != nil {
		t.Fatal(err)
	}

	h.start()
	r := h.waitRun(run.ID, "finished", func(r store.Run) bool { return r.State.Terminal() })
	want := "cancelled: the deploy of papi " + short(seed) + " to prod3 by ada was cut off before it was approved; ask for it again"
	if r.State != store.RunCancelled || r.Message != want || r.Stages[0].State != store.StageCancelled {
		t.Fatalf("healed deploy: %s", h.rows(run.ID))
	}
	if n := h.told(run.ID, RunChanged, want); n != 1 {
		t.Errorf("the listeners were told %d times of the cancelled deploy; want once", n)
	}
	if got := h.dep.asked(); len(got) != before {
		t.Errorf("hosts were restarted for a deploy nobody approved: %v", got[before:])
	}
	h.storeAgreesWithHosts()
}

// A scheduler that read a run with every stage done, and writes its success after a
// person re-ran a stage, changes nothing: the re-run goes on, and the run ends once it is
// done.
func TestAStaleSuccessDoesNotEndAReRun(t *testing.T) {
	h := newHarness(t, fourRegions)
	ctx := context.Background()
	h.seed()
	run := h.push("change")
	h.waitState(run.ID, store.RunWaiting)
	if _, err := h.eng.Promote(ctx, ada, "papi", "prod3", ""); err != nil {
		t.Fatal(err)
	}
	done := h.waitState(run.ID, store.RunSucceeded)
	h.eng.Stop()
	stale := done
	stale.State = store.RunRunning // as the scheduler read it, a moment before its write
	if _, err := h.eng.Rerun(ctx, ada, run.ID, "prod4"); err != nil {
		t.Fatal(err)
	}
	rerun := h.rows(run.ID)
	if err := h.eng.scheduleRun(ctx, &h.cfg.Apps[0], &stale, map[string]int64{}, map[string]int64{}); err != nil {
		t.Fatal(err)
	}
	if got := h.rows(run.ID); got != rerun {
		t.Fatalf("a stale success changed the re-run:\n%s\nit was\n%s", got, rerun)
	}

	h.start()
	r := h.waitRun(run.ID, "re-run and succeeded", func(r store.Run) bool {
		return r.State == store.RunSucceeded && stageOf(r, "prod4").State == store.StageSucceeded
	})
	if r.Message != "is live in every region" {
		t.Fatalf("after the re-run: %s", h.rows(run.ID))
	}
	h.storeAgreesWithHosts()
}

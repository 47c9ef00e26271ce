package pipeline

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/immunity-app/immunity/pipeline/judge"
	"github.com/immunity-app/immunity/store"
)

func TestRunGoesRegionByRegionAndWaitsForPromotion(t *testing.T) {
	testRunGoesRegionByRegion(t, newHarness(t, fourRegions))
}

func testRunGoesRegionByRegion(t *testing.T, h *harness) {
	seed := h.seed()
	run := h.push("good change")
	r := h.waitState(run.ID, store.RunWaiting)
	for _, region := range []string{"sandbox1", "sandbox2"} {
		if s := stageOf(r, region); s.State != store.StageSucceeded {
			t.Fatalf("%s = %s, want succeeded", region, s.State)
		}
	}
	if s := stageOf(r, "prod3"); s.State != store.StageAwaitingApproval {
		t.Fatalf("prod3 = %s, want awaiting_approval", s.State)
	}
	// sandbox2 was judged against prod3, which still runs the seed.
	req := h.monitor.reqs[0]
	if req.Region != "sandbox2" || req.BaselineRegion != "prod3" || len(req.Baseline) != 3 || req.Period != time.Second {
		t.Fatalf("monitor request = %+v", req)
	}
	live, _ := h.st.Live(context.Background(), "papi", "prod3")
	if live["host1"] != seed {
		t.Fatalf("prod3 changed before promotion: %v", live)
	}

	msg, err := h.eng.Promote(context.Background(), ada, "papi", "prod3", "")
	if err != nil || !strings.Contains(msg, "promoted papi") {
		t.Fatalf("promote: %q, %v", msg, err)
	}
	r = h.waitState(run.ID, store.RunSucceeded)
	if s := stageOf(r, "prod3"); s.ApprovedBy != "ada" {
		t.Fatalf("prod3 approved by %q", s.ApprovedBy)
	}
	// Production goes one host at a time, prod3 before prod4.
	var prod []string
	for _, a := range h.dep.asked() {
		if strings.HasSuffix(a, "@"+short(run.SHA)) && strings.HasPrefix(a, "prod") {
			prod = append(prod, strings.TrimSuffix(a, "@"+short(run.SHA)))
		}
	}
	want := []string{"prod3/host1", "prod3/host2", "prod3/host3", "prod4/host1"}
	if !slices.Equal(prod, want) {
		t.Fatalf("production order = %v, want %v", prod, want)
	}
	// Each prod3 batch was judged against the hosts not yet switched.
	var baselines []int
	for _, req := range h.monitor.reqs[1:] {
		baselines = append(baselines, len(req.Baseline))
	}
	if !slices.Equal(baselines, []int{2, 1}) {
		t.Fatalf("prod3 baselines = %v, want [2 1] (host3 has no host left to compare with)", baselines)
	}
	hist, _ := h.eng.History(context.Background(), "papi", "prod3", 10)
	if hist[0].SHA != run.SHA || hist[0].Action != "promote" || hist[0].Actor != "ada" {
		t.Fatalf("history = %+v", hist[0])
	}
}

func TestFailingTestsStopTheRunAndSkipLaterRegions(t *testing.T) {
	h := newHarness(t, fourRegions)
	h.seed()
	sha := h.build.add("break sorting")
	h.tests.fail[sha] = true
	run, err := h.eng.StartRun(context.Background(), "papi", sha, Trigger{Kind: "push"})
	if err != nil {
		t.Fatal(err)
	}
	r := h.waitState(run.ID, store.RunFailed)
	s1 := stageOf(r, "sandbox1")
	if s1.State != store.StageFailed || !strings.Contains(s1.Message, "FAIL items_list_sorted") {
		t.Fatalf("sandbox1 = %s: %s", s1.State, s1.Message)
	}
	if !strings.Contains(s1.Tests, "FAIL items_list_sorted") {
		t.Fatalf("test output not kept: %q", s1.Tests)
	}
	if hs := s1.Hosts[0]; hs.Step != store.HostFailed {
		t.Fatalf("sandbox1/host1 step = %s, want failed", hs.Step)
	}
	for _, region := range []string{"sandbox2", "prod3", "prod4"} {
		if s := stageOf(r, region); s.State != store.StageSkipped {
			t.Fatalf("%s = %s, want skipped", region, s.State)
		}
	}
}

func TestProductionRegressionRollsBackEveryTouchedHost(t *testing.T) {
	h := newHarness(t, fourRegions)
	seed := h.seed()
	run := h.push("slow change")
	h.monitor.failHost["prod3/host2"] = true
	h.waitState(run.ID, store.RunWaiting)
	if _, err := h.eng.Promote(context.Background(), ada, "papi", "prod3", run.SHA[:7]); err != nil {
		t.Fatal(err)
	}
	r := h.waitState(run.ID, store.RunFailed)
	s := stageOf(r, "prod3")
	if s.State != store.StageRolledBack || !strings.Contains(s.Message, "rolled back 2 hosts") {
		t.Fatalf("prod3 = %s: %s", s.State, s.Message)
	}
	live, _ := h.st.Live(context.Background(), "papi", "prod3")
	for host, sha := range live {
		if sha != seed {
			t.Errorf("prod3/%s runs %s after the rollback, want the seed %s", host, short(sha), short(seed))
		}
	}
	asked := h.dep.asked()
	if slices.Contains(asked, "prod3/host3@"+short(run.SHA)) {
		t.Errorf("host3 was switched although host2 failed first: %v", asked)
	}
	for _, host := range []string{"prod3/host1", "prod3/host2"} {
		if !slices.Contains(asked, host+"@"+short(seed)) {
			t.Errorf("%s not rolled back: %v", host, asked)
		}
	}
	// The store says the run failed a moment before the listeners hear of the rollback.
	h.waitRun(run.ID, "told of the rollback", func(store.Run) bool { return len(h.rec.kinds(RolledBack)) > 0 })
	if len(h.rec.kinds(RolledBack)) != 1 {
		t.Errorf("want one rolled_back event, got %d", len(h.rec.kinds(RolledBack)))
	}
	if stageOf(r, "prod4").State != store.StageSkipped {
		t.Errorf("prod4 = %s, want skipped", stageOf(r, "prod4").State)
	}
}

func TestNewerCommitSupersedesOneWaitingForTheSameRegion(t *testing.T) {
	h := newHarness(t, fourRegions)
	h.seed()
	first := h.push("first")
	h.waitState(first.ID, store.RunWaiting)
	second := h.push("second")
	h.waitState(second.ID, store.RunWaiting)
	r := h.waitState(first.ID, store.RunSuperseded)
	if !strings.Contains(r.Message, "superseded by "+short(second.SHA)) {
		t.Fatalf("message = %q", r.Message)
	}
	if _, err := h.eng.Promote(context.Background(), ada, "papi", "prod3", first.SHA); !errors.Is(err, ErrNothingWaiting) {
		t.Fatalf("promoting the superseded release: %v, want ErrNothingWaiting", err)
	}
}

func TestLockedRegionHoldsTheRunUntilUnlocked(t *testing.T) {
	h := newHarness(t, fourRegions)
	h.seed()
	if _, err := h.eng.Lock(context.Background(), ada, "papi", "sandbox1", "investigating an incident"); err != nil {
		t.Fatal(err)
	}
	run := h.push("change")
	h.waitRun(run.ID, "held", func(r store.Run) bool {
		return strings.Contains(stageOf(r, "sandbox1").Message, "locked by ada")
	})
	bob := Actor{Name: "bob", Via: "slack"}
	if _, err := h.eng.Unlock(context.Background(), bob, "papi", "sandbox1", false); err == nil {
		t.Fatal("bob unlocked ada's lock without --force")
	}
	if s := stageOf(h.waitState(run.ID, store.RunRunning), "sandbox1"); s.State != store.StagePending {
		t.Fatalf("sandbox1 moved while locked: %s", s.State)
	}
	if _, err := h.eng.Unlock(context.Background(), bob, "papi", "sandbox1", true); err != nil {
		t.Fatal(err)
	}
	h.waitState(run.ID, store.RunWaiting)
	audit, _ := h.st.Audits(context.Background(), "papi", 10)
	var got []string
	for _, a := range audit {
		got = append(got, a.Actor+" "+a.Action+" "+a.Outcome)
	}
	want := []string{"bob unlock ok", "bob unlock refused", "ada lock ok", "ada seed ok"}
	if !slices.Equal(got, want) {
		t.Fatalf("audit = %v, want %v", got, want)
	}
}

func TestPromoteIsRefusedInALockedRegion(t *testing.T) {
	h := newHarness(t, fourRegions)
	h.seed()
	run := h.push("change")
	h.waitState(run.ID, store.RunWaiting)
	h.eng.Lock(context.Background(), ada, "papi", "prod3", "freeze")
	if _, err := h.eng.Promote(context.Background(), ada, "papi", "prod3", ""); !errors.Is(err, ErrLocked) {
		t.Fatalf("promote into a locked region: %v", err)
	}
	audit, _ := h.st.Audits(context.Background(), "papi", 1)
	if audit[0].Action != "promote" || audit[0].Outcome != "refused" {
		t.Fatalf("audit = %+v", audit[0])
	}
}

func TestRestartResumesAndRechecksAHostThatMayHaveSwitched(t *testing.T) {
	testRestartResumes(t, newHarness(t, fourRegions))
}

func testRestartResumes(t *testing.T, h *harness) {
	h.seed()
	run := h.push("change")
	h.waitState(run.ID, store.RunWaiting)
	// host2 answers its health check, so a resumed engine can see the switch took.
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer app.Close()
	prod3, _, _ := h.cfg.Apps[0].Region("prod3")
	prod3.Hosts[1].URL = app.URL
	h.dep.hang["prod3/host2"] = true // switches, then the server "dies" while the app restarts
	h.eng.Promote(context.Background(), ada, "papi", "prod3", "")
	h.waitRun(run.ID, "restarting prod3/host2", func(r store.Run) bool {
		for _, hs := range stageOf(r, "prod3").Hosts {
			if hs.Host == "host2" && hs.Step == store.HostRestarting {
				return slices.Contains(h.dep.asked(), "prod3/host2@"+short(run.SHA))
			}
		}
		return false
	})
	h.eng.Stop() // the crash: host2's step stays "restarting" in the store
	h.dep.hang["prod3/host2"] = false

	h.start()
	r := h.waitState(run.ID, store.RunSucceeded)
	count := func(list []string) (n int) {
		for _, a := range list {
			if a == "prod3/host2@"+short(run.SHA) {
				n++
			}
		}
		return n
	}
	h.dep.mu.Lock()
	switches, restarts := count(h.dep.switches), count(h.dep.activations)
	h.dep.mu.Unlock()
	// The switch was recorded as done: not repeated. Whether the app restarted is not
	// known: the restart is repeated (it is safe to), never skipped.
	if switches != 1 || restarts != 2 {
		t.Fatalf("host2 was switched %d and restarted %d times; want once and twice", switches, restarts)
	}
	live, _ := h.st.Live(context.Background(), "papi", "prod3")
	if live["host2"] != run.SHA || stageOf(r, "prod4").State != store.StageSucceeded {
		t.Fatalf("after resume: live=%v prod4=%s", live, stageOf(r, "prod4").State)
	}
}

func TestRollbackPutsThePreviousReleaseBackOnEveryHost(t *testing.T) {
	h := newHarness(t, fourRegions)
	seed := h.seed()
	run := h.push("change")
	h.waitState(run.ID, store.RunWaiting)
	h.eng.Promote(context.Background(), ada, "papi", "prod3", "")
	h.waitState(run.ID, store.RunSucceeded)

	msg, err := h.eng.Rollback(context.Background(), ada, "papi", "prod3", "")
	if err != nil || !strings.Contains(msg, "to "+short(seed)) {
		t.Fatalf("rollback: %q %v", msg, err)
	}
	live, _ := h.st.Live(context.Background(), "papi", "prod3")
	if len(live) != 3 || live["host1"] != seed || live["host2"] != seed || live["host3"] != seed {
		t.Fatalf("live after rollback = %v", live)
	}
	if ev := h.rec.kinds(RolledBack); len(ev) != 1 || ev[0].SHA != seed || ev[0].Actor.Name != "ada" {
		t.Fatalf("rolled_back events = %+v", ev)
	}
	// Rolling back to a named release works too, and to an unknown one is refused.
	if _, err := h.eng.Rollback(context.Background(), ada, "papi", "prod3", run.SHA[:8]); err != nil {
		t.Fatal(err)
	}
	if _, err := h.eng.Rollback(context.Background(), ada, "papi", "prod3", "deadbeef"); !errors.Is(err, ErrUnknownRelease) {
		t.Fatalf("rollback to an unknown release: %v", err)
	}
}

func TestDeployPutsAKnownReleaseOnOneRegion(t *testing.T) {
	h := newHarness(t, fourRegions)
	seed := h.seed()
	run := h.push("change")
	h.waitState(run.ID, store.RunWaiting)
	msg, err := h.eng.Deploy(context.Background(), ada, "papi", seed[:7], "sandbox1", false)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(msg, "deploying papi "+short(seed)+" to sandbox1") {
		t.Fatalf("deploy said %q", msg)
	}
	runs, _ := h.eng.Runs(context.Background(), "papi", false, 1)
	h.waitState(runs[0].ID, store.RunSucceeded)
	live, _ := h.st.Live(context.Background(), "papi", "sandbox1")
	if live["host1"] != seed {
		t.Fatalf("sandbox1 runs %s", short(live["host1"]))
	}
	if _, err := h.eng.Deploy(context.Background(), ada, "papi", "0123456", "sandbox1", false); !errors.Is(err, ErrUnknownRelease) {
		t.Fatalf("deploy of an unknown release: %v", err)
	}
}

func TestStartRunOfACommitInFlightReturnsThatRun(t *testing.T) {
	h := newHarness(t, fourRegions)
	h.seed()
	run := h.push("change")
	again, err := h.eng.StartRun(context.Background(), "papi", run.SHA, Trigger{Kind: "push"})
	if err != nil || again.ID != run.ID {
		t.Fatalf("second start = run %d (%v), want run %d", again.ID, err, run.ID)
	}
	if _, err := h.eng.StartRun(context.Background(), "nope", run.SHA, Trigger{}); !errors.Is(err, ErrUnknownApp) {
		t.Fatalf("unknown app: %v", err)
	}
}

func TestStatusShowsLiveReleasesWaitingAndLocks(t *testing.T) {
	h := newHarness(t, fourRegions)
	seed := h.seed()
	run := h.push("change")
	h.waitState(run.ID, store.RunWaiting)
	h.eng.Lock(context.Background(), ada, "papi", "prod4", "holiday")
	st, err := h.eng.Status(context.Background(), "papi")
	if err != nil {
		t.Fatal(err)
	}
	regions := map[string]RegionStatus{}
	for _, r := range st[0].Regions {
		regions[r.Name] = r
	}
	if regions["sandbox1"].LiveSHA != run.SHA || regions["prod3"].LiveSHA != seed {
		t.Fatalf("live: sandbox1 %s prod3 %s", short(regions["sandbox1"].LiveSHA), short(regions["prod3"].LiveSHA))
	}
	if w := regions["prod3"].Waiting; w == nil || w.SHA != run.SHA {
		t.Fatalf("prod3 waiting = %+v", w)
	}
	if l := regions["prod4"].Lock; l == nil || l.Reason != "holiday" {
		t.Fatalf("prod4 lock = %+v", l)
	}
	if _, err := h.eng.Status(context.Background(), "nope"); !errors.Is(err, ErrUnknownApp) {
		t.Fatalf("status of an unknown app: %v", err)
	}
}

func TestRollbackCancelsTheStageRunningInTheRegion(t *testing.T) {
	h := newHarness(t, fourRegions)
	seed := h.seed()
	h.dep.hang["sandbox1/host1"] = true // the deploy hangs in its health check
	run := h.push("hangs on start")
	h.waitRun(run.ID, "deploying", func(r store.Run) bool {
		return slices.Contains(h.dep.asked(), "sandbox1/host1@"+short(run.SHA))
	})
	h.dep.hang["sandbox1/host1"] = false
	msg, err := h.eng.Rollback(context.Background(), ada, "papi", "sandbox1", "")
	if err != nil || !strings.Contains(msg, "to "+short(seed)) {
		hist, _ := h.st.History(context.Background(), "papi", "sandbox1", 10)
		t.Fatalf("rollback: %q %v; seed %s run %s history %+v", msg, err, short(seed), short(run.SHA), hist)
	}
	r := h.waitState(run.ID, store.RunCancelled)
	if s := stageOf(r, "sandbox1"); s.State != store.StageCancelled || !strings.Contains(s.Message, "ada rolled sandbox1 back") {
		t.Fatalf("sandbox1 = %s: %s", s.State, s.Message)
	}
	live, _ := h.st.Live(context.Background(), "papi", "sandbox1")
	if live["host1"] != seed {
		t.Fatalf("sandbox1 runs %s after the rollback", short(live["host1"]))
	}
}

func TestRerunRunsAFailedStageAgain(t *testing.T) {
	h := newHarness(t, fourRegions)
	h.seed()
	sha := h.build.add("flaky")
	h.tests.fail[sha] = true
	run, _ := h.eng.StartRun(context.Background(), "papi", sha, Trigger{Kind: "push"})
	h.waitState(run.ID, store.RunFailed)
	h.tests.mu.Lock()
	h.tests.fail[sha] = false
	h.tests.mu.Unlock()
	if _, err := h.eng.Rerun(context.Background(), ada, run.ID, "sandbox1"); err != nil {
		t.Fatal(err)
	}
	r := h.waitState(run.ID, store.RunWaiting)
	if stageOf(r, "sandbox2").State != store.StageSucceeded {
		t.Fatalf("after the re-run: %s", stageStates(r))
	}
	if _, err := h.eng.Rerun(context.Background(), ada, run.ID, "prod3"); err == nil {
		t.Fatal("re-running a stage that waits for promotion was accepted")
	}
}

// The stage passes on a final Pass; Inconclusive (a metric's no_data: inconclusive) lets
// it go on and says so; a monitor that ends on the interim Marginal has not decided, and
// the stage fails.
func TestStageRuleOnFinalVerdicts(t *testing.T) {
	h := newHarness(t, fourRegions)
	h.seed()
	h.monitor.ends = map[string]judge.Outcome{"sandbox2/host1": judge.Inconclusive}
	run := h.push("idle")
	r := h.waitRun(run.ID, "sandbox2 succeeded", func(r store.Run) bool {
		s := stageOf(r, "sandbox2")
		return s.State == store.StageSucceeded || s.State == store.StageFailed
	})
	if s := stageOf(r, "sandbox2"); s.State != store.StageSucceeded {
		t.Fatalf("inconclusive: sandbox2 = %s", s.State)
	}
	h.monitor.mu.Lock()
	h.monitor.ends = map[string]judge.Outcome{"sandbox2/host1": judge.Marginal}
	h.monitor.mu.Unlock()
	run = h.push("undecided")
	r = h.waitState(run.ID, store.RunFailed)
	if s := stageOf(r, "sandbox2"); s.State != store.StageFailed {
		t.Fatalf("marginal at the end: sandbox2 = %s", s.State)
	}
}

func TestCanaryFailureEndsTheHostSteps(t *testing.T) {
	h := newHarness(t, fourRegions)
	h.seed()
	h.monitor.failHost["sandbox2/host1"] = true
	run := h.push("slow")
	r := h.waitState(run.ID, store.RunFailed)
	s := stageOf(r, "sandbox2")
	if s.State != store.StageFailed || s.Hosts[0].Step != store.HostFailed || s.Verdict == "" {
		t.Fatalf("sandbox2 = %s, host1 %s, verdict %q", s.State, s.Hosts[0].Step, s.Verdict)
	}
}

// A lock reason that is too long, not UTF-8 or holds a control character is refused with
// the reason why, and no lock is taken.
func TestBadLockReasonIsRefusedAndLocksNothing(t *testing.T) {
	h := newHarness(t, fourRegions)
	for _, c := range []struct{ name, reason, says string }{
		{"too long", strings.Repeat("x", MaxReason+1), "at most 200"},
		{"a newline", "a\nb", "control character"},
		{"an escape", "a\x1b[31mb", "control character"},
		{"not UTF-8", "a\xffb", "UTF-8"},
	} {
		_, err := h.eng.Lock(context.Background(), ada, "papi", "prod3", c.reason)
		if !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: %v, want ErrBadInput saying %q", c.name, err, c.says)
		}
	}
	if ls, err := h.st.Locks(context.Background(), "papi"); err != nil || len(ls) != 0 {
		t.Fatalf("locks after refused reasons: %+v %v", ls, err)
	}
}

// monitor.calibrate asks each window for an A/A recording of two baseline hosts, in the
// app's region folder under data_dir, and says so when the baseline has one host only.
func TestCalibrateAsksTheMonitorForAnAAWindow(t *testing.T) {
	yml := strings.Replace(strings.Replace(fourRegions,
		"monitor: {mirror_from: prod3, period: 1s, interval: 100ms}", "monitor: {mirror_from: prod3, period: 1s, interval: 100ms, calibrate: true}", 1),
		"monitor: {period: 1s}", "monitor: {period: 1s, calibrate: true}", 1)
	h := newHarness(t, yml)
	h.seed()
	run := h.push("good change")
	h.waitState(run.ID, store.RunWaiting)
	if _, err := h.eng.Promote(context.Background(), ada, "papi", "prod3", ""); err != nil {
		t.Fatal(err)
	}
	h.waitState(run.ID, store.RunSucceeded)
	dataDir := h.cfg.Server.DataDir
	var got []string
	for _, req := range h.monitor.reqs {
		got = append(got, req.Calibrate)
	}
	want := []string{CalibrationDir(dataDir, "papi", "sandbox2"), CalibrationDir(dataDir, "papi", "prod3"), ""}
	if !slices.Equal(got, want) {
		t.Fatalf("A/A folders asked for = %q, want %q (the last batch's baseline is one host)", got, want)
	}
	said := false
	for _, e := range h.rec.kinds(Logged) {
		said = said || strings.Contains(e.Message, "monitor.calibrate: prod3 has one host, none to measure it against")
	}
	if !said {
		t.Fatal("the run's log does not say why the last batch recorded no A/A window")
	}
}

package pipeline

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/immunity-app/immunity/deployers"
	"github.com/immunity-app/immunity/store"
)

// The engine stopped in the middle of an automatic production rollback completes the
// rollback when it starts again, and never deploys the failed release any further.
func TestStopDuringAutomaticRollbackCompletesItAndNeverResumesDeploying(t *testing.T) {
	h := newHarness(t, fourRegions)
	seed := h.seed()
	run := h.push("regresses on host2")
	h.monitor.failHost["prod3/host2"] = true
	h.waitState(run.ID, store.RunWaiting)
	// host1 hangs restarting the seed again: the rollback is under way when it "dies".
	h.dep.mu.Lock()
	h.dep.failOn = map[string]bool{}
	h.dep.mu.Unlock()
	hangAt := "prod3/host1@" + short(seed) // the rollback's restart of host1, not the deploy's
	h.dep.mu.Lock()
	h.dep.hang[hangAt] = true
	h.dep.mu.Unlock()
	if _, err := h.eng.Promote(context.Background(), ada, "papi", "prod3", ""); err != nil {
		t.Fatal(err)
	}
	h.waitRun(run.ID, "rolling back", func(r store.Run) bool { return stageOf(r, "prod3").State == store.StageRollingBack })
	h.waitRun(run.ID, "host1 restarting the seed", func(r store.Run) bool {
		rb, found, _ := h.st.StageRollback(context.Background(), stageOf(r, "prod3").ID)
		return found && rb.Hosts[0].Step == store.HostRestarting
	})
	h.eng.Stop()
	h.dep.mu.Lock()
	h.dep.hang[hangAt] = false
	h.dep.mu.Unlock()

	h.start()
	r := h.waitState(run.ID, store.RunFailed)
	s := stageOf(r, "prod3")
	if s.State != store.StageRolledBack || !strings.Contains(s.Message, "rolled back 2 hosts") {
		t.Fatalf("prod3 = %s: %s", s.State, s.Message)
	}
	live, _ := h.st.Live(context.Background(), "papi", "prod3")
	for _, host := range []string{"host1", "host2", "host3"} {
		st, _ := h.dep.State(context.Background(), hostOf(h, "prod3", host))
		if live[host] != seed || st.Current != seed {
			t.Errorf("prod3/%s: store says %s, host runs %s; want the seed %s", host, short(live[host]), short(st.Current), short(seed))
		}
	}
	if stageOf(r, "prod4").State != store.StageSkipped || slices.Contains(h.dep.asked(), "prod4/host1@"+short(run.SHA)) {
		t.Errorf("the failed release went on to prod4: %s, %v", stageOf(r, "prod4").State, h.dep.asked())
	}
	for _, hs := range s.Hosts[:2] {
		if hs.Step != store.HostRolledBack {
			t.Errorf("prod3/%s step %s, want rolled_back", hs.Host, hs.Step)
		}
	}
	if slices.Contains(h.dep.asked(), "prod3/host3@"+short(run.SHA)) {
		t.Errorf("host3 got the failed release after the restart: %v", h.dep.asked())
	}
}

// A manual rollback cut short by a stop is completed by the next start, and the store
// then says what the hosts run.
func TestStopDuringManualRollbackIsCompletedByTheNextStart(t *testing.T) {
	h := newHarness(t, fourRegions)
	seed := h.seed()
	run := h.push("change")
	h.waitState(run.ID, store.RunWaiting)
	h.eng.Promote(context.Background(), ada, "papi", "prod3", "")
	h.waitState(run.ID, store.RunSucceeded)

	h.dep.mu.Lock()
	h.dep.hang["prod3/host2"] = true
	h.dep.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := h.eng.Rollback(ctx, ada, "papi", "prod3", ""); done <- err }()
	var rb store.Rollback
	h.waitRun(run.ID, "the rollback planned and host2 restarting", func(store.Run) bool {
		open, _ := h.st.OpenRollbacks(context.Background())
		if len(open) == 1 {
			rb = open[0]
		}
		return len(open) == 1 && open[0].Hosts[1].Step == store.HostRestarting
	})
	cancel()
	h.eng.Stop()
	if err := <-done; err == nil {
		t.Fatal("a rollback cut short said it was done")
	}
	h.dep.mu.Lock()
	h.dep.hang["prod3/host2"] = false
	h.dep.mu.Unlock()

	h.start()
	h.waitRun(run.ID, "the rollback done and told", func(store.Run) bool {
		got, _ := h.st.Rollback(context.Background(), rb.ID)
		return got.State == store.RollbackDone && len(h.rec.kinds(RolledBack)) > 0
	})
	live, _ := h.st.Live(context.Background(), "papi", "prod3")
	for _, host := range []string{"host1", "host2", "host3"} {
		st, _ := h.dep.State(context.Background(), hostOf(h, "prod3", host))
		if live[host] != seed || st.Current != seed {
			t.Errorf("prod3/%s: store says %s, host runs %s; want %s", host, short(live[host]), short(st.Current), short(seed))
		}
	}
	if ev := h.rec.kinds(RolledBack); len(ev) != 1 || ev[0].Actor.Name != "ada" {
		t.Errorf("rolled back events after the restart: %+v", ev)
	}
}

// A host found on another release than the store says is corrected at start, and the
// correction is told.
func TestStartReconcilesTheStoreWithTheHosts(t *testing.T) {
	h := newHarness(t, fourRegions)
	seed := h.seed()
	h.eng.Stop()
	other := h.build.add("put there by hand")
	h.dep.mu.Lock()
	h.dep.current["prod3/host2"] = other
	h.dep.mu.Unlock()
	h.start()
	live, _ := h.st.Live(context.Background(), "papi", "prod3")
	if live["host2"] != other || live["host1"] != seed {
		t.Fatalf("live after start = %v", live)
	}
	ev := h.rec.kinds(Reconciled)
	if len(ev) != 1 || ev[0].Message != "prod3/host2 found on "+short(other)+", store said "+short(seed) {
		t.Fatalf("reconciled events = %+v", ev)
	}
	events, _ := h.st.Events(context.Background(), 0, 50)
	found := false
	for _, e := range events {
		found = found || (e.Kind == string(Reconciled) && strings.Contains(e.Message, "prod3/host2 found on"))
	}
	if !found {
		t.Fatal("the correction is not in the event log")
	}
}

// A host found on another release when its step should end (put back by hand while its
// tests ran) is not marked done: the stage fails, and the store is corrected with what it
// said before, told as such.
func TestHostFoundOnAnotherReleaseAtItsEndIsReconciled(t *testing.T) {
	h := newHarness(t, fourRegions)
	seed := h.seed()
	h.tests.during = func(host deployers.Host) {
		if host.Region == "sandbox1" {
			h.dep.mu.Lock()
			h.dep.current[host.String()] = seed
			h.dep.mu.Unlock()
		}
	}
	run := h.push("change")
	r := h.waitState(run.ID, store.RunFailed)
	s := stageOf(r, "sandbox1")
	if s.State != store.StageFailed || !strings.Contains(s.Message, "sandbox1/host1 runs "+short(seed)+", not "+short(run.SHA)) {
		t.Fatalf("sandbox1: %s %q; want failed: the host runs the seed", s.State, s.Message)
	}
	if s.Hosts[0].Step == store.HostDone {
		t.Error("sandbox1/host1 marked done on the wrong release")
	}
	live, _ := h.st.Live(context.Background(), "papi", "sandbox1")
	if live["host1"] != seed {
		t.Errorf("store says sandbox1/host1 runs %s; the host runs %s", short(live["host1"]), short(seed))
	}
	want := "sandbox1/host1 found on " + short(seed) + ", store said " + short(run.SHA)
	h.waitRun(run.ID, "told of the correction", func(store.Run) bool { return len(h.rec.kinds(Reconciled)) > 0 })
	if ev := h.rec.kinds(Reconciled); len(ev) != 1 || ev[0].Message != want || ev[0].Run.ID != run.ID {
		t.Fatalf("reconciled events = %+v; want one in run %d: %q", ev, run.ID, want)
	}
}

// A store that fails (closed, or a file that cannot be written) stops promotion and
// progress with a clear error; a lock that cannot be read is not "unlocked".
func TestFailingStoreStopsPromotionAndProgress(t *testing.T) {
	t.Run("closed", func(t *testing.T) {
		h := newHarness(t, fourRegions)
		h.seed()
		run := h.push("change")
		h.waitState(run.ID, store.RunWaiting)
		h.eng.Stop()
		h.st.Close()
		_, err := h.eng.Promote(context.Background(), ada, "papi", "prod3", "")
		if err == nil || !strings.Contains(err.Error(), "read the lock of papi prod3") || !strings.Contains(err.Error(), "closed") {
			t.Fatalf("promote on a closed store: %v; want the lock read's error", err)
		}
		if err := h.eng.schedule(context.Background()); err == nil {
			t.Fatal("the scheduler went on with a closed store")
		}
		if _, err := h.eng.Status(context.Background(), "papi"); err == nil {
			t.Fatal("status said something with a closed store")
		}
	})
	t.Run("read-only", func(t *testing.T) {
		h := newHarness(t, fourRegions)
		h.seed()
		run := h.push("change")
		h.waitState(run.ID, store.RunWaiting)
		h.eng.Stop()
		h.st.Close()
		path := filepath.Join(h.dir, "immunity.db")
		readOnly := func() *Engine {
			ro, err := store.OpenReadOnly(context.Background(), path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ro.Close() })
			eng, err := New(Options{Config: h.cfg, Store: ro, Builder: h.build, Tester: h.tests, Monitor: h.monitor, Deployer: h.eng.deployer})
			if err != nil {
				t.Fatal(err)
			}
			eng.ctx = context.Background()
			return eng
		}
		eng := readOnly()
		_, err := eng.Promote(context.Background(), ada, "papi", "prod3", "")
		if err == nil || !strings.Contains(err.Error(), "promote papi") || !strings.Contains(err.Error(), "readonly") {
			t.Fatalf("promote on a read-only store: %v; want the write's error", err)
		}
		r, _ := eng.st.Run(context.Background(), run.ID)
		if stageOf(r, "prod3").State != store.StageAwaitingApproval {
			t.Fatalf("prod3 is %s after a refused promotion", stageOf(r, "prod3").State)
		}
		eng.st.Close()

		// Promoted while the store could be written, then the file turns read-only: the
		// engine cannot claim the app's lease (a write), so it schedules nothing and touches
		// no host; with the lease held, the scheduler cannot record the stage's start.
		rw, err := store.Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		stopped := &Engine{cfg: h.cfg, st: rw, builder: h.build, deployer: h.eng.deployer, log: h.eng.log, tasks: map[string]*task{}, kick: make(chan struct{}, 1)}
		if _, err := stopped.Promote(context.Background(), ada, "papi", "prod3", ""); err != nil {
			t.Fatal(err)
		}
		rw.Close()
		eng = readOnly()
		before := slices.Clone(h.dep.asked())
		if err := eng.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
		eng.Stop()
		if _, _, err := eng.st.ClaimLease(context.Background(), appLease("papi"), "x", time.Minute); err == nil || !strings.Contains(err.Error(), "readonly") {
			t.Fatalf("lease claim on a read-only store: %v; want the write's error", err)
		}
		if r, _ := eng.st.Run(context.Background(), run.ID); stageOf(r, "prod3").State != store.StageApproved {
			t.Fatalf("prod3 is %s; a read-only store cannot have recorded its start", stageOf(r, "prod3").State)
		}
		if !slices.Equal(before, h.dep.asked()) {
			t.Fatalf("a host was touched without its record: %v", h.dep.asked()[len(before):])
		}
	})
}

func hostOf(h *harness, region, host string) deployers.Host {
	a := &h.cfg.Apps[0]
	reg, _, _ := a.Region(region)
	for _, x := range h.eng.Hosts(a, reg) {
		if x.Name == host {
			return x
		}
	}
	h.t.Fatalf("no host %s/%s", region, host)
	return deployers.Host{}
}

// A production switch that failed before the host moved leaves nothing to roll back: the
// stage is failed, not "rolled back", the region's history gains no rollback, and no one
// is told of one.
func TestFailedSwitchIsNotCountedAsRolledBack(t *testing.T) {
	h := newHarness(t, fourRegions)
	seed := h.seed()
	run := h.push("change")
	h.dep.mu.Lock()
	h.dep.failSwitch["prod4/host1@"+short(run.SHA)] = true
	h.dep.mu.Unlock()
	h.waitState(run.ID, store.RunWaiting)
	if _, err := h.eng.Promote(context.Background(), ada, "papi", "prod3", ""); err != nil {
		t.Fatal(err)
	}
	r := h.waitState(run.ID, store.RunFailed)
	s := stageOf(r, "prod4")
	if s.State != store.StageFailed || !strings.Contains(s.Message, "connection reset") || !strings.Contains(s.Message, "rolled back 0 hosts") {
		t.Fatalf("prod4 = %s: %q; want failed, rolled back 0 hosts", s.State, s.Message)
	}
	live, _ := h.st.Live(context.Background(), "papi", "prod4")
	if live["host1"] != seed {
		t.Errorf("prod4/host1 = %s; want the seed", short(live["host1"]))
	}
	hist, _ := h.st.History(context.Background(), "papi", "prod4", 10)
	for _, e := range hist {
		if e.Action == "rollback" {
			t.Errorf("history records a rollback nothing did: %+v", e)
		}
	}
	if ev := h.rec.kinds(RolledBack); len(ev) != 0 {
		t.Errorf("told of a rollback: %+v", ev)
	}
}

// A manual rollback counts the hosts it moved, not the hosts it looked at: one already on
// the target is not "rolled back".
func TestManualRollbackCountsTheHostsItMoved(t *testing.T) {
	h := newHarness(t, fourRegions)
	seed := h.seed()
	run := h.push("change")
	h.waitState(run.ID, store.RunWaiting)
	if _, err := h.eng.Promote(context.Background(), ada, "papi", "prod3", ""); err != nil {
		t.Fatal(err)
	}
	h.waitState(run.ID, store.RunSucceeded)
	h.dep.mu.Lock()
	h.dep.current["prod3/host3"] = seed // put back by hand
	h.dep.mu.Unlock()
	msg, err := h.eng.Rollback(context.Background(), ada, "papi", "prod3", seed[:8])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(msg, "on 2 hosts") {
		t.Fatalf("rollback said %q; want it moved 2 hosts (host3 already ran %s)", msg, short(seed))
	}
	live, _ := h.st.Live(context.Background(), "papi", "prod3")
	for _, host := range []string{"host1", "host2", "host3"} {
		if live[host] != seed {
			t.Errorf("prod3/%s = %s; want the seed", host, short(live[host]))
		}
	}
}

// A store that an older binary left half-written (a stage awaiting promotion inside a run
// still running: it was killed between the two writes) is healed on start: the run waits
// for the promotion, status and the listeners say so, and the promotion goes on as usual.
func TestStartHealsAStageAwaitingPromotionInARunningRun(t *testing.T) {
	testHalfWrittenWaitIsHealed(t, newHarness(t, fourRegions))
}

func testHalfWrittenWaitIsHealed(t *testing.T, h *harness) {
	ctx := context.Background()
	h.seed()
	run := h.push("change")
	h.waitState(run.ID, store.RunWaiting)
	h.eng.Stop()
	if err := h.st.SetRunState(ctx, run.ID, store.RunRunning, "in sandbox2"); err != nil { // as the old write left it
		t.Fatal(err)
	}
	ready := func() (n int) {
		for _, ev := range h.rec.kinds(StageChanged) {
			if ev.Region == "prod3" && strings.Contains(ev.Message, "is ready for prod3") && ev.Run.State == store.RunWaiting {
				n++
			}
		}
		return n
	}
	before := ready()

	h.start()
	r := h.waitState(run.ID, store.RunWaiting)
	if r.Message != "waiting for promotion to prod3" || stageOf(r, "prod3").State != store.StageAwaitingApproval {
		t.Fatalf("healed run: %s %q%s", r.State, r.Message, stageStates(r))
	}
	sts, err := h.eng.Status(ctx, "papi")
	if err != nil {
		t.Fatal(err)
	}
	for _, rs := range sts[0].Regions {
		if rs.Name == "prod3" && (rs.Waiting == nil || rs.Waiting.RunID != run.ID || rs.Active != nil) {
			t.Fatalf("status of prod3 after the heal: waiting %+v, active %+v", rs.Waiting, rs.Active)
		}
	}
	if got := ready(); got != before+1 {
		t.Fatalf("the listeners were told %d times that the run waits for prod3 after the heal; want once", got-before)
	}
	if _, err := h.eng.Promote(ctx, ada, "papi", "prod3", ""); err != nil {
		t.Fatal(err)
	}
	h.waitState(run.ID, store.RunSucceeded)
}

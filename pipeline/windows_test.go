package pipeline

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/immunity-app/immunity/store"
)

// windowed: sandbox2 takes releases on weekdays 09:00-16:00 Berlin time; prod3 is
// promoted by a person.
const windowed = `
apps:
  - name: papi
    repo: {path: papi.git}
    build: {command: [make], artifacts: [bin]}
    run: {command: [bin/papi]}
    tests: {command: [bin/itest]}
    regions:
      - name: sandbox1
        hosts: [{name: host1, port: 41001}]
      - name: sandbox2
        hosts: [{name: host1, port: 41002}]
        windows: [{days: [mon-fri], hours: "09:00-16:00", zone: Europe/Berlin}]
      - name: prod3
        production: true
        manual_approval: true
        hosts: [{name: host1, port: 41003}]
`

func berlin(t *testing.T, y int, m time.Month, d, hh, mm int) time.Time {
	t.Helper()
	l, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatalf("time zone: %v (the tests need the system's zoneinfo)", err)
	}
	return time.Date(y, m, d, hh, mm, 0, 0, l)
}

// waitStage waits until a region's stage of a run satisfies ok.
func (h *harness) waitStage(id int64, region, what string, ok func(store.Stage) bool) store.Stage {
	h.t.Helper()
	r := h.waitRun(id, region+" "+what, func(r store.Run) bool { return ok(stageOf(r, region)) })
	return stageOf(r, region)
}

func (h *harness) activated(region, sha string) bool {
	for _, a := range h.dep.asked() {
		if strings.HasPrefix(a, region+"/") && strings.HasSuffix(a, "@"+short(sha)) {
			return true
		}
	}
	return false
}

func TestOutsideItsWindowARegionWaitsAcrossARestartAndGoesWhenItOpens(t *testing.T) {
	clock := &fakeClock{t: berlin(t, 2026, 12, 4, 17, 0)} // a Friday, after hours
	h := newHarnessAt(t, windowed, clock)
	h.seed()
	run := h.push("after hours")
	const why = "waiting for the deploy window, opens Mon 09:00 CET"
	h.waitStage(run.ID, "sandbox2", "held for its window", func(s store.Stage) bool { return s.Message == why })
	if s := stageOf(h.waitState(run.ID, store.RunRunning), "sandbox1"); s.State != store.StageSucceeded {
		t.Fatalf("sandbox1 (no windows) = %s, want succeeded", s.State)
	}
	g, err := h.eng.DeployAllowed(context.Background(), "papi", "sandbox2", clock.Now())
	if err != nil || g.Allowed || g.Rule != RuleWindow || g.Why != why || !g.Opens.Equal(berlin(t, 2026, 12, 7, 9, 0)) {
		t.Fatalf("DeployAllowed = %+v, %v", g, err)
	}
	// The wait is the stage's, in the store: a restart keeps it and says it once.
	told := func() (n int) {
		for _, ev := range h.rec.kinds(StageChanged) {
			if ev.Message == why {
				n++
			}
		}
		return n
	}
	for deadline := time.Now().Add(5 * time.Second); told() == 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond) // the listeners are told a moment after the write
	}
	h.eng.Stop()
	h.start()
	time.Sleep(100 * time.Millisecond) // several ticks of the restarted scheduler
	if r, _ := h.st.Run(context.Background(), run.ID); stageOf(r, "sandbox2").State != store.StagePending || h.activated("sandbox2", run.SHA) {
		t.Fatalf("sandbox2 moved outside its window: %s", stageStates(r))
	}
	if said := told(); said != 1 {
		t.Fatalf("the wait was told %d times, want once", said)
	}
	clock.Set(berlin(t, 2026, 12, 7, 8, 59))
	time.Sleep(100 * time.Millisecond)
	if h.activated("sandbox2", run.SHA) {
		t.Fatal("sandbox2 deployed a minute before its window opened")
	}
	clock.Set(berlin(t, 2026, 12, 7, 9, 0))
	h.waitStage(run.ID, "sandbox2", "succeeded once its window opened", func(s store.Stage) bool { return s.State == store.StageSucceeded })
}

func TestAFreezeHoldsUntilItEndsMidRunAndRefusesPromotion(t *testing.T) {
	clock := &fakeClock{t: berlin(t, 2026, 12, 3, 10, 0)} // Thursday, inside the window
	h := newHarnessAt(t, windowed, clock)
	ctx := context.Background()
	h.seed()
	until := clock.Now().Add(time.Hour)
	if _, err := h.eng.Freeze(ctx, ada, "papi", []string{"sandbox2", "prod3"}, until, "year-end change freeze"); err != nil {
		t.Fatal(err)
	}
	run := h.push("during the freeze")
	const why = "frozen (papi sandbox2) until Thu 11:00 CET by ada: year-end change freeze"
	h.waitStage(run.ID, "sandbox2", "held by the freeze", func(s store.Stage) bool { return s.Message == why })
	st, _ := h.eng.Status(ctx, "papi")
	if rs := st[0].Regions[1]; rs.Gate == nil || rs.Gate.Rule != RuleFrozen || len(rs.Freezes) != 1 || rs.Freezes[0].ActorID != ada.Key() {
		t.Fatalf("status of sandbox2 = %+v", rs)
	}
	clock.Add(59 * time.Minute)
	time.Sleep(100 * time.Millisecond)
	if h.activated("sandbox2", run.SHA) {
		t.Fatal("sandbox2 deployed while frozen")
	}
	clock.Add(time.Minute) // the freeze ends
	r := h.waitState(run.ID, store.RunWaiting)
	if s := stageOf(r, "sandbox2"); s.State != store.StageSucceeded {
		t.Fatalf("sandbox2 = %s after the freeze ended", s.State)
	}

	// A freeze of prod3 refuses its promotion, saying why, and changes nothing.
	if _, err := h.eng.Freeze(ctx, ada, "", nil, clock.Now().Add(2*time.Hour), "datacenter move"); err != nil {
		t.Fatal(err)
	}
	_, err := h.eng.Promote(ctx, ada, "papi", "prod3", "")
	if !errors.Is(err, ErrFrozen) || !strings.Contains(err.Error(), "frozen (org-wide) until Thu 12:00 UTC by ada: datacenter move") {
		t.Fatalf("promote into a frozen region: %v", err)
	}
	if r, _ := h.st.Run(ctx, run.ID); stageOf(r, "prod3").State != store.StageAwaitingApproval || stageOf(r, "prod3").ApprovedBy != "" {
		t.Fatalf("a refused promotion changed the stage: %s", stageStates(r))
	}
	// Lifting the org-wide freeze lets the promotion through.
	if _, err := h.eng.Unfreeze(ctx, ada, "", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := h.eng.Unfreeze(ctx, ada, "", nil); !errors.Is(err, ErrBadInput) {
		t.Fatalf("unfreezing what is not frozen: %v", err)
	}
	if _, err := h.eng.Promote(ctx, ada, "papi", "prod3", ""); err != nil {
		t.Fatal(err)
	}
	h.waitState(run.ID, store.RunSucceeded)
}

func TestAForcedPromotionPassesAFreezeAndIsAudited(t *testing.T) {
	clock := &fakeClock{t: berlin(t, 2026, 12, 3, 10, 0)}
	h := newHarnessAt(t, windowed, clock)
	ctx := context.Background()
	h.seed()
	run := h.push("hotfix")
	h.waitState(run.ID, store.RunWaiting)
	if _, err := h.eng.Freeze(ctx, ada, "papi", nil, clock.Now().Add(time.Hour), "incident 42"); err != nil {
		t.Fatal(err)
	}
	msg, err := h.eng.ForcePromote(ctx, ada, "papi", "prod3", "")
	if err != nil || !strings.Contains(msg, "force-promoted papi") {
		t.Fatalf("force promote: %q, %v", msg, err)
	}
	r := h.waitState(run.ID, store.RunSucceeded)
	if s := stageOf(r, "prod3"); !s.Forced {
		t.Fatalf("prod3 = %+v, want forced", s)
	}
	audits, _ := h.st.Audits(ctx, "papi", 10)
	var got []string
	for _, a := range audits {
		got = append(got, a.Action+" "+a.Args+" "+a.Outcome)
	}
	if len(got) < 2 || got[0] != "promote --force ok" || !strings.HasPrefix(got[1], "freeze until 2026-12-03T10:00:00Z ok") {
		t.Fatalf("audit log = %q", got)
	}
}

func TestRollbacksAreNeverHeld(t *testing.T) {
	clock := &fakeClock{t: berlin(t, 2026, 12, 3, 10, 0)}
	h := newHarnessAt(t, windowed, clock)
	ctx := context.Background()
	seed := h.seed()
	run := h.push("goes to sandbox2")
	h.waitState(run.ID, store.RunWaiting)
	clock.Set(berlin(t, 2026, 12, 5, 3, 0)) // Saturday night: outside the window
	if _, err := h.eng.Freeze(ctx, ada, "", nil, clock.Now().Add(time.Hour), "weekend"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.eng.Rollback(ctx, ada, "papi", "sandbox2", ""); err != nil {
		t.Fatalf("rollback while frozen and outside the window: %v", err)
	}
	if live, _ := h.st.Live(ctx, "papi", "sandbox2"); live["host1"] != seed {
		t.Fatalf("sandbox2 runs %s after the rollback, want the seed", short(live["host1"]))
	}
}

// soaked: a release must be live in sandbox1 for 30 minutes before prod3.
const soaked = `
apps:
  - name: papi
    repo: {path: papi.git}
    build: {command: [make], artifacts: [bin]}
    run: {command: [bin/papi]}
    tests: {command: [bin/itest]}
    regions:
      - name: sandbox1
        soak: 30m
        hosts: [{name: host1, port: 41001}]
      - name: prod3
        production: true
        manual_approval: true
        hosts: [{name: host1, port: 41003}]
`

func TestSoakIsNotResetByANewerRelease(t *testing.T) {
	start := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	clock := &fakeClock{t: start}
	h := newHarnessAt(t, soaked, clock)
	ctx := context.Background()
	h.seed()
	older := h.push("older")
	h.waitState(older.ID, store.RunWaiting) // live in sandbox1 since 10:00
	clock.Add(10 * time.Minute)
	msg, err := h.eng.Promote(ctx, ada, "papi", "prod3", "")
	if err != nil || !strings.Contains(msg, "waiting for soak: live in sandbox1 since Thu 10:00 UTC, 30m0s needed, done Thu 10:30 UTC") {
		t.Fatalf("promote before the soak ended: %q, %v", msg, err)
	}
	h.waitStage(older.ID, "prod3", "held for soak", func(s store.Stage) bool { return strings.HasPrefix(s.Message, "waiting for soak") })

	clock.Add(10 * time.Minute) // 10:20: a newer release goes live in sandbox1
	newer := h.push("newer")
	h.waitState(newer.ID, store.RunWaiting)
	g, err := h.eng.ReleaseAllowed(ctx, "papi", newer.SHA, "prod3", clock.Now())
	if err != nil || g.Rule != RuleSoak || !g.Opens.Equal(start.Add(50*time.Minute)) {
		t.Fatalf("the newer release's gate = %+v, %v; want soak until 10:50", g, err)
	}
	if h.activated("prod3", older.SHA) {
		t.Fatal("prod3 deployed before the soak ended")
	}
	clock.Set(start.Add(30 * time.Minute)) // the older release's soak is over, newer or not
	r := h.waitState(older.ID, store.RunSucceeded)
	if s := stageOf(r, "prod3"); s.State != store.StageSucceeded {
		t.Fatalf("prod3 = %s", s.State)
	}
}

func TestFreezeRefusesBadInputAndChangesNothing(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)}
	h := newHarnessAt(t, windowed, clock)
	ctx := context.Background()
	now := clock.Now()
	cases := []struct {
		name, app string
		regions   []string
		until     time.Time
		reason    string
		want      string
	}{
		{"unknown app", "pappi", nil, now.Add(time.Hour), "x", `unknown app "pappi"`},
		{"unknown region", "papi", []string{"prod9"}, now.Add(time.Hour), "x", `unknown region "prod9"`},
		{"in the past", "papi", nil, now.Add(-time.Minute), "x", "is not in the future"},
		{"too far", "papi", nil, now.Add(100 * 24 * time.Hour), "x", "more than 90 days away"},
		{"no reason", "papi", nil, now.Add(time.Hour), " ", "say why"},
		{"a newline in the reason", "papi", nil, now.Add(time.Hour), "a\nb", "control character"},
		{"regions of every app", "", []string{"prod3"}, now.Add(time.Hour), "x", "an org-wide freeze names no regions"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := h.eng.Freeze(ctx, ada, c.app, c.regions, c.until, c.reason)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
		})
	}
	if fs, err := h.st.Freezes(ctx, "", now); err != nil || len(fs) != 0 {
		t.Fatalf("freezes after refusals: %+v, %v", fs, err)
	}
}

// A deploy asked outside the region's window is taken, and the answer says that it waits
// and until when, as the stage does; at the window's opening it goes.
func TestADeployOutsideItsWindowSaysItWaits(t *testing.T) {
	clock := &fakeClock{t: berlin(t, 2026, 12, 5, 11, 0)} // a Saturday
	h := newHarnessAt(t, windowed, clock)
	seed := h.seed()
	msg, err := h.eng.Deploy(context.Background(), ada, "papi", seed[:7], "sandbox2", false)
	if err != nil {
		t.Fatal(err)
	}
	const why = "waiting for the deploy window, opens Mon 09:00 CET"
	if !strings.Contains(msg, "deploying papi "+short(seed)+" to sandbox2") || !strings.HasSuffix(msg, "; "+why) {
		t.Fatalf("deploy said %q, want it to say it is %q", msg, why)
	}
	runs, _ := h.eng.Runs(context.Background(), "papi", false, 1)
	h.waitStage(runs[0].ID, "sandbox2", "held for its window", func(s store.Stage) bool { return s.Message == why })
	time.Sleep(100 * time.Millisecond) // several ticks of the scheduler
	if r, _ := h.st.Run(context.Background(), runs[0].ID); stageOf(r, "sandbox2").State != store.StageApproved {
		t.Fatalf("sandbox2 moved outside its window: %s", stageStates(r))
	}
	clock.Set(berlin(t, 2026, 12, 7, 9, 0))
	h.waitStage(runs[0].ID, "sandbox2", "succeeded once its window opened", func(s store.Stage) bool { return s.State == store.StageSucceeded })

	// Inside the window the answer says nothing of waiting.
	msg, err = h.eng.Deploy(context.Background(), ada, "papi", seed[:7], "sandbox2", false)
	if err != nil || strings.Contains(msg, "waiting") {
		t.Fatalf("deploy inside the window said %q, %v", msg, err)
	}
}

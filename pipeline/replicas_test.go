package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/immunity-app/immunity/deployers"
	"github.com/immunity-app/immunity/internal/pgtest"
	"github.com/immunity-app/immunity/internal/wait"
	"github.com/immunity-app/immunity/pipeline/config"
	"github.com/immunity-app/immunity/store"
)

// Two servers on one PostgreSQL database: only the holder of the app's lease works it,
// while a push and a promotion reach it through the other; when the holder dies in the
// middle of a production rollout (its database gone, its lease left to expire), the
// other takes the app over within two lease periods, asks the hosts first, and finishes
// the run without switching a host twice. The dead one writes nothing more.
func TestAnotherServerFinishesTheRunOfOneThatDied(t *testing.T) {
	const ttl = time.Second
	db := pgtest.Database(t)
	h := newHarnessOn(t, fourRegions, db)
	h.eng.Stop()
	h.lease = ttl
	h.start() // server A

	stB, err := store.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stB.Close() })
	recB := &recorder{}
	b, err := New(Options{Config: h.cfg, Store: stB, Builder: h.build, Tester: h.tests, Monitor: h.monitor, LeaseTTL: ttl, Tick: 20 * time.Millisecond,
		Deployer: func(*config.App, *config.Region) (deployers.Deployer, error) { return h.dep, nil }})
	if err != nil {
		t.Fatal(err)
	}
	b.AddListener(recB)
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	if _, held := b.lease("papi"); held {
		t.Fatal("both servers hold papi's lease")
	}

	h.seed()
	run, err := b.StartRun(context.Background(), "papi", h.build.add("change"), Trigger{Kind: "push"})
	if err != nil {
		t.Fatal(err)
	}
	h.waitState(run.ID, store.RunWaiting)
	h.dep.mu.Lock()
	h.dep.hang["prod3/host2"] = true // switched, then A dies while the app restarts
	h.dep.mu.Unlock()
	if _, err := b.Promote(context.Background(), ada, "papi", "prod3", ""); err != nil {
		t.Fatal(err)
	}
	h.waitRun(run.ID, "restarting prod3/host2", func(r store.Run) bool {
		for _, hs := range stageOf(r, "prod3").Hosts {
			if hs.Host == "host2" && hs.Step == store.HostRestarting {
				return slices.Contains(h.dep.asked(), "prod3/host2@"+short(run.SHA))
			}
		}
		return false
	})
	if told := recB.kinds(HostChanged); len(told) != 0 {
		t.Fatalf("server B, holding no lease, moved hosts: %+v", told[0])
	}
	h.dep.mu.Lock()
	h.dep.hang["prod3/host2"] = false
	h.dep.mu.Unlock()
	killed := time.Now()
	h.rec.mu.Lock()
	toldByA := len(h.rec.events)
	h.rec.mu.Unlock()
	h.st.Close() // A "dies": it can no longer renew its lease nor write

	var r store.Run
	for deadline := time.Now().Add(20 * time.Second); ; {
		if r, err = stB.Run(context.Background(), run.ID); err == nil && r.State == store.RunSucceeded {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("run not finished by B: %+v %v", r, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var first Event
	for _, ev := range append(recB.kinds(HostChanged), recB.kinds(StageChanged)...) {
		if ev.Time.After(killed) && (first.Time.IsZero() || ev.Time.Before(first.Time)) {
			first = ev
		}
	}
	t.Logf("B took over %v after A died", first.Time.Sub(killed))
	if took := first.Time.Sub(killed); took > 2*ttl {
		t.Errorf("B first acted %v after A died; want within 2 lease periods (%v)", took, 2*ttl)
	}
	h.rec.mu.Lock()
	if n := len(h.rec.events); n != toldByA {
		t.Errorf("A told %d events after it died: %+v", n-toldByA, h.rec.events[toldByA])
	}
	h.rec.mu.Unlock()
	h.dep.mu.Lock()
	switches := 0
	for _, s := range h.dep.switches {
		if s == "prod3/host2@"+short(run.SHA) {
			switches++
		}
	}
	h.dep.mu.Unlock()
	if switches != 1 {
		t.Errorf("host2 switched %d times; want once", switches)
	}
	for _, region := range []string{"prod3", "prod4"} {
		live, _ := stB.Live(context.Background(), "papi", region)
		for host, sha := range live {
			if sha != run.SHA {
				t.Errorf("%s/%s runs %s; want %s", region, host, short(sha), short(run.SHA))
			}
		}
	}
}

// The database becomes unreachable while a run waits for promotion: the store says it
// cannot be written (what /readyz asks), a promotion is refused with the store's error,
// no host is touched, and the engine stops working the app once its lease has expired.
// When the database is back, the engine takes the app over again (a new tenure, its hosts
// asked first), the run is where it was, and the promotion carries it to the end.
func TestAnUnreachableDatabaseLosesNothing(t *testing.T) {
	const ttl = time.Second
	ctx := context.Background()
	srv, db := pgtest.Own(t)
	h := newHarnessOn(t, fourRegions, db)
	h.eng.Stop()
	h.lease = ttl
	h.start()
	h.seed()
	run := h.push("change")
	h.waitState(run.ID, store.RunWaiting)
	before, held := h.eng.lease("papi")
	if !held {
		t.Fatal("the only server does not hold papi's lease")
	}
	asked := len(h.dep.asked())

	if err := srv.Down(); err != nil {
		t.Fatal(err)
	}
	if err := h.st.Writable(ctx); err == nil {
		t.Fatal("the store says it can be written with its database down")
	}
	if _, err := h.eng.Promote(ctx, ada, "papi", "prod3", ""); err == nil {
		t.Fatal("a promotion was accepted with the database down")
	}
	// The engine gives the app up when its lease runs out (ttl); a loaded machine's timers
	// may lag, so it is given 15 lease periods, and the hosts are checked untouched after.
	err := wait.Until(ctx, wait.Backoff{First: 50 * time.Millisecond, Max: 200 * time.Millisecond}, 15*ttl, func(context.Context) error {
		if _, held := h.eng.lease("papi"); held {
			return errors.New("the engine still works papi with its database unreachable past the lease")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(h.dep.asked()); n != asked {
		t.Fatalf("%d host activations while the database was down", n-asked)
	}

	if err := srv.Up(); err != nil {
		t.Fatal(err)
	}
	err = wait.Until(ctx, wait.Backoff{First: 50 * time.Millisecond, Max: 200 * time.Millisecond}, 20*time.Second, func(ctx context.Context) error {
		if err := h.st.Writable(ctx); err != nil {
			return err
		}
		if l, held := h.eng.lease("papi"); !held || l.Token <= before.Token {
			return fmt.Errorf("papi's lease not taken again: %+v", l)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := h.st.Run(ctx, run.ID); err != nil || r.State != store.RunWaiting || stageOf(r, "prod3").State != store.StageAwaitingApproval {
		t.Fatalf("the run after the outage: %+v %v; want it still waiting for prod3", r, err)
	}
	if _, err := h.eng.Promote(ctx, ada, "papi", "prod3", ""); err != nil {
		t.Fatal(err)
	}
	h.waitState(run.ID, store.RunSucceeded)
}

// A server that stalled past its lease (as if SIGSTOPped) and then carries on writes
// nothing: another server took the app over meanwhile, and every store write of the
// stalled one's task, fenced by its old token, is refused; the new holder finishes the
// run, and the stalled one's records never appear. The restart it stalled in, begun
// under the lease, does not reach the host when it goes on: its fence refuses.
func TestAServerThatStalledPastItsLeaseWritesNothing(t *testing.T) {
	const ttl = time.Second
	ctx := context.Background()
	db := pgtest.Database(t)
	h := newHarnessOn(t, fourRegions, db)
	h.eng.Stop()
	h.lease = ttl
	h.start()
	h.seed()
	run := h.push("change")
	h.waitState(run.ID, store.RunWaiting)

	// Server A: its scheduler looks only when kicked, so after the stall it goes on with
	// its task before noticing anything.
	stA, err := store.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stA.Close() })
	h.eng.Stop() // the harness's engine steps aside; A and B share its fakes
	recA := &recorder{}
	a, err := New(Options{Config: h.cfg, Store: stA, Builder: h.build, Tester: h.tests, Monitor: h.monitor, LeaseTTL: ttl, Tick: time.Hour,
		Deployer: func(*config.App, *config.Region) (deployers.Deployer, error) { return h.dep, nil }})
	if err != nil {
		t.Fatal(err)
	}
	a.AddListener(recA)
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Stop)
	old, held := a.lease("papi")
	if !held {
		t.Fatal("A does not hold papi's lease")
	}
	release := make(chan struct{})
	h.dep.mu.Lock()
	h.dep.block = map[string]chan struct{}{"prod3/host2": release} // A stalls in host2's restart
	h.dep.mu.Unlock()
	if _, err := a.Promote(ctx, ada, "papi", "prod3", ""); err != nil {
		t.Fatal(err)
	}
	h.waitRun(run.ID, "restarting prod3/host2", func(r store.Run) bool {
		for _, hs := range stageOf(r, "prod3").Hosts {
			if hs.Host == "host2" && hs.Step == store.HostRestarting {
				return slices.Contains(h.dep.asked(), "prod3/host2@"+short(run.SHA))
			}
		}
		return false
	})

	// Server B's clock is a minute on: A's lease has run out there, as it would have while
	// A was stopped, and B takes the app over.
	stB, err := store.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stB.Close() })
	stB.SetLeaseClock(func() time.Time { return time.Now().Add(time.Minute) })
	b, err := New(Options{Config: h.cfg, Store: stB, Builder: h.build, Tester: h.tests, Monitor: h.monitor, LeaseTTL: ttl, Tick: 20 * time.Millisecond,
		Deployer: func(*config.App, *config.Region) (deployers.Deployer, error) { return h.dep, nil }})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	if l, held := b.lease("papi"); !held || l.Token <= old.Token {
		t.Fatalf("B did not take papi over: %+v", l)
	}
	recA.mu.Lock()
	toldByA := len(recA.events)
	recA.mu.Unlock()
	err = wait.Until(ctx, wait.Backoff{First: 20 * time.Millisecond, Max: 100 * time.Millisecond}, 2*ttl, func(context.Context) error {
		if _, held := a.leases["papi"].Lease(); held {
			return fmt.Errorf("A's lease of papi still looks held to A after B took it over")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	close(release) // A resumes where it stalled and goes on with host2
	r := h.waitState(run.ID, store.RunSucceeded)
	err = wait.Until(ctx, wait.Backoff{First: 20 * time.Millisecond, Max: 100 * time.Millisecond}, 10*time.Second, func(context.Context) error {
		h.dep.mu.Lock()
		defer h.dep.mu.Unlock()
		if len(h.dep.blockedRestarts) < 2 {
			return fmt.Errorf("restarts of prod3/host2 gone on: %q; want A's and B's", h.dep.blockedRestarts)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	h.dep.mu.Lock()
	got := slices.Sorted(slices.Values(h.dep.blockedRestarts))
	h.dep.mu.Unlock()
	want := []string{"prod3/host2: done", "prod3/host2: restart prod3/host2 of papi: " + store.ErrLeaseLost.Error()}
	if !slices.Equal(got, want) {
		t.Errorf("the restarts of prod3/host2 went on as %q; want B's done and A's refused by its fence: %q", got, want)
	}
	recA.mu.Lock()
	if n := len(recA.events); n != toldByA {
		t.Errorf("A told %d events after it lost its lease: %+v", n-toldByA, recA.events[toldByA])
	}
	recA.mu.Unlock()
	err = wait.Until(ctx, wait.Backoff{First: 20 * time.Millisecond, Max: 100 * time.Millisecond}, 2*ttl, func(context.Context) error {
		if _, held := a.lease("papi"); held {
			return fmt.Errorf("A still works papi after B took it over")
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	if stageOf(r, "prod3").State != store.StageSucceeded {
		t.Fatalf("prod3 after the takeover: %+v", stageOf(r, "prod3"))
	}
}

// A host effect of work done under an app's lease begins only while the engine still
// holds that lease: with the lease it works the app under, a switch, a restart, an
// upload and the tests reach the host; with an older tenure's token, or once the lease
// is gone (the engine stopped), none does and each answers store.ErrLeaseLost.
func TestNoHostEffectWithoutTheLease(t *testing.T) {
	h := newHarness(t, fourRegions)
	a := &h.cfg.Apps[0]
	reg := &a.Regions[0]
	host := h.eng.Hosts(a, reg)[0]
	dep, err := h.eng.deployer(a, reg)
	if err != nil {
		t.Fatal(err)
	}
	l, held := h.eng.lease("papi")
	if !held {
		t.Fatal("the only engine does not hold papi's lease")
	}
	sha := h.build.add("change")
	rel := deployers.Release{App: "papi", SHA: sha}
	effects := func(ctx context.Context) []error {
		_, testErr := h.eng.tester.Test(ctx, rel, host, deployers.Tests{})
		return []error{dep.Upload(ctx, host, rel), dep.Switch(ctx, host, sha), dep.Restart(ctx, host), dep.Activate(ctx, host, sha), testErr}
	}
	for i, err := range effects(store.WithLease(context.Background(), l)) {
		if err != nil {
			t.Fatalf("effect %d under the lease held: %v", i, err)
		}
	}
	asked := len(h.dep.asked())

	old := l
	old.Token--
	for i, err := range effects(store.WithLease(context.Background(), old)) {
		if !errors.Is(err, store.ErrLeaseLost) {
			t.Errorf("effect %d under an older tenure's token: %v; want ErrLeaseLost", i, err)
		}
	}
	h.eng.Stop() // gives the lease up
	for i, err := range effects(store.WithLease(context.Background(), l)) {
		if !errors.Is(err, store.ErrLeaseLost) {
			t.Errorf("effect %d once the lease is gone: %v; want ErrLeaseLost", i, err)
		}
	}
	if n := len(h.dep.asked()); n != asked {
		t.Errorf("the host was restarted %d times more without the lease", n-asked)
	}
	h.dep.mu.Lock()
	defer h.dep.mu.Unlock()
	if got := h.dep.current[host.String()]; got != sha {
		t.Errorf("%s runs %s; want %s, as switched under the lease", host, short(got), short(sha))
	}
}

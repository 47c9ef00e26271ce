package pipeline

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/immunity-app/immunity/deployers"
	"github.com/immunity-app/immunity/pipeline/config"
	"github.com/immunity-app/immunity/pipeline/judge"
	"github.com/immunity-app/immunity/store"
)

// fakeBuilder builds tiny real artifacts for commits it was told about.
type fakeBuilder struct {
	dir     string
	stored  *store.Store // when set, artifacts are also stored in it, as replicas on PostgreSQL do
	mu      sync.Mutex
	commits []Commit
	builds  []string
	fail    map[string]error // the builds that fail, by SHA
}

func (b *fakeBuilder) add(subject string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	sum := sha1.Sum([]byte(fmt.Sprintf("%s-%d", subject, len(b.commits))))
	sha := hex.EncodeToString(sum[:])
	b.commits = append(b.commits, Commit{SHA: sha, Subject: subject, Author: "ada"})
	return sha
}

func (b *fakeBuilder) Commit(_ context.Context, _ *config.App, sha string) (Commit, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if sha == "" && len(b.commits) > 0 {
		return b.commits[len(b.commits)-1], nil
	}
	for _, c := range b.commits {
		if c.SHA == sha {
			return c, nil
		}
	}
	return Commit{}, fmt.Errorf("no commit %s", sha)
}

func (b *fakeBuilder) Build(ctx context.Context, a *config.App, sha string) (deployers.Release, error) {
	b.mu.Lock()
	b.builds = append(b.builds, sha)
	fail := b.fail[sha]
	b.mu.Unlock()
	if fail != nil {
		return deployers.Release{}, fail
	}
	src := filepath.Join(b.dir, "src-"+sha)
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "version"), []byte(sha), 0o644)
	art := filepath.Join(b.dir, sha+".tar.gz")
	f, err := os.Create(art)
	if err != nil {
		return deployers.Release{}, err
	}
	if err := deployers.Pack(src, []string{"version"}, f); err != nil {
		return deployers.Release{}, err
	}
	f.Close()
	sum, err := deployers.FileChecksum(art)
	if err == nil && b.stored != nil {
		_, err = b.stored.PutArtifact(ctx, a.Name, sha, art)
	}
	return deployers.Release{App: a.Name, SHA: sha, Artifact: art, Checksum: sum}, err
}

// fakeDeployer keeps each host's current and previous release in memory and records
// what it was asked.
type fakeDeployer struct {
	mu          sync.Mutex
	current     map[string]string
	previous    map[string]string
	activations []string // restarts: "region/host@sha7"
	switches    []string // switches that moved current: "region/host@sha7"
	failOn      map[string]bool
	// failSwitch makes Switch fail for "region/host@sha7", leaving the host as it was.
	failSwitch map[string]bool
	// hang, when set for "region/host" (or "region/host@sha7": restarting that release),
	// makes Restart hang until the context ends: a crash right after the switch.
	hang map[string]bool
	// block, when set for "region/host", makes Restart wait for the channel to close
	// whatever its context says: a server stopped in the middle of a step. Then the
	// restart's effect checks the call's fence (deployers.CheckFence), as a real
	// deployer does before it starts the app: blockedRestarts lists each such restart as
	// "region/host: done" or "region/host: " and the fence's answer.
	block           map[string]chan struct{}
	blockedRestarts []string
}

func newFakeDeployer() *fakeDeployer {
	return &fakeDeployer{current: map[string]string{}, previous: map[string]string{}, failOn: map[string]bool{}, failSwitch: map[string]bool{}, hang: map[string]bool{}}
}

func (d *fakeDeployer) Upload(context.Context, deployers.Host, deployers.Release) error { return nil }

func (d *fakeDeployer) Activate(ctx context.Context, h deployers.Host, sha string) error {
	if err := d.Switch(ctx, h, sha); err != nil {
		return err
	}
	return d.Restart(ctx, h)
}

// Switch moves the host's current release; it records nothing (Restart does).
func (d *fakeDeployer) Switch(_ context.Context, h deployers.Host, sha string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.failSwitch[h.String()+"@"+short(sha)] {
		return fmt.Errorf("switch %s to %s: connection reset", h, short(sha))
	}
	if d.current[h.String()] != sha {
		d.previous[h.String()] = d.current[h.String()]
		d.switches = append(d.switches, h.String()+"@"+short(sha))
	}
	d.current[h.String()] = sha
	return nil
}

// Restart records an activation of the host's current release ("region/host@sha7"); it
// fails for the ones in failOn and hangs until ctx ends on the hosts in hang.
func (d *fakeDeployer) Restart(ctx context.Context, h deployers.Host) error {
	d.mu.Lock()
	sha := d.current[h.String()]
	d.activations = append(d.activations, h.String()+"@"+short(sha))
	if d.failOn[h.String()+"@"+short(sha)] {
		d.mu.Unlock()
		return fmt.Errorf("health check of %s failed", h)
	}
	hang := d.hang[h.String()] || d.hang[h.String()+"@"+short(sha)]
	block := d.block[h.String()]
	d.mu.Unlock()
	if block != nil {
		<-block
		err := deployers.CheckFence(ctx)
		d.mu.Lock()
		if err != nil {
			d.blockedRestarts = append(d.blockedRestarts, h.String()+": "+err.Error())
		} else {
			d.blockedRestarts = append(d.blockedRestarts, h.String()+": done")
		}
		d.mu.Unlock()
		if err != nil {
			return err
		}
	}
	if hang {
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}

func (d *fakeDeployer) State(_ context.Context, h deployers.Host) (deployers.HostState, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return deployers.HostState{Current: d.current[h.String()], Previous: d.previous[h.String()]}, nil
}

func (d *fakeDeployer) Close() error { return nil }

// Healthy passes on a host with a release live.
func (d *fakeDeployer) Healthy(_ context.Context, h deployers.Host) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.current[h.String()] == "" {
		return fmt.Errorf("%s runs nothing", h)
	}
	return nil
}

func (d *fakeDeployer) asked() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.activations)
}

// fakeTester fails the tests of releases it was told to.
type fakeTester struct {
	mu     sync.Mutex
	fail   map[string]bool
	print  string                 // a line every run prints
	during func(h deployers.Host) // called while a host's tests run
}

func (t *fakeTester) Test(_ context.Context, rel deployers.Release, h deployers.Host, _ deployers.Tests) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.during != nil {
		t.during(h)
	}
	if t.fail[rel.SHA] {
		return t.print + "PASS healthz\nFAIL items_list_sorted: items out of order " + t.print + "\n1 passed, 1 failed", fmt.Errorf("exit status 1")
	}
	return "PASS healthz\n1 passed, 0 failed", nil
}

// fakeMonitor fails windows whose canary includes a host it was told about.
type fakeMonitor struct {
	mu       sync.Mutex
	failHost map[string]bool // "region/host"
	// ends, by "region/host", is the final verdict's outcome instead (Inconclusive, ...).
	ends map[string]judge.Outcome
	reqs []MonitorRequest
}

func (m *fakeMonitor) Monitor(_ context.Context, req MonitorRequest, look func(judge.Verdict)) (judge.Verdict, error) {
	m.mu.Lock()
	m.reqs = append(m.reqs, req)
	fail := false
	var end judge.Outcome
	for _, h := range req.Canary {
		fail = fail || m.failHost[h.String()]
		if o, ok := m.ends[h.String()]; ok {
			end = o
		}
	}
	m.mu.Unlock()
	v := judge.Verdict{Outcome: judge.Pass, Score: 100, Reason: "all metrics within range", Final: true}
	if fail {
		v = judge.Verdict{Outcome: judge.Fail, Score: 50, Reason: "latency +80% above the allowed +20%", Final: true}
	}
	if end != "" {
		v = judge.Verdict{Outcome: end, Score: 100, Reason: "ended " + string(end), Final: true}
	}
	look(v)
	return v, nil
}

// recorder keeps the events a listener was told about.
type recorder struct {
	mu     sync.Mutex
	events []Event
}

func (r *recorder) Notify(_ context.Context, ev Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
}

func (r *recorder) kinds(kind EventKind) []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Event
	for _, e := range r.events {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

// harness is an engine on a real SQLite store with fake parts around it.
type harness struct {
	t       *testing.T
	dir     string
	cfg     *config.Config
	st      *store.Store
	eng     *Engine
	build   *fakeBuilder
	dep     *fakeDeployer
	tests   *fakeTester
	monitor *fakeMonitor
	rec     *recorder
	clock   *fakeClock    // nil: the real clock
	lease   time.Duration // the engine's LeaseTTL (0: the default)
	db      string        // the store's database setting
}

// fakeClock is a clock tests move by hand; the engine and the store share it.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

const fourRegions = `
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
        monitor: {mirror_from: prod3, period: 1s, interval: 100ms}
      - name: prod3
        production: true
        manual_approval: true
        hosts: [{name: host1, port: 41003}, {name: host2, port: 41004}, {name: host3, port: 41005}]
        monitor: {period: 1s}
      - name: prod4
        production: true
        hosts: [{name: host1, port: 41006}]
`

func newHarness(t *testing.T, yml string) *harness {
	t.Helper()
	return newHarnessWith(t, yml, "", nil)
}

// newHarnessOn is newHarness on a given database ("": a SQLite file in the test's folder).
func newHarnessOn(t *testing.T, yml, database string) *harness {
	t.Helper()
	return newHarnessWith(t, yml, database, nil)
}

// newHarnessAt is newHarness on a fake clock.
func newHarnessAt(t *testing.T, yml string, clock *fakeClock) *harness {
	t.Helper()
	return newHarnessWith(t, yml, "", clock)
}

// newHarnessWith is newHarness on a database ("": SQLite) and a clock (nil: the real one).
func newHarnessWith(t *testing.T, yml, database string, clock *fakeClock) *harness {
	t.Helper()
	dir := t.TempDir()
	if database == "" {
		database = filepath.Join(dir, "immunity.db")
	}
	h := &harness{t: t, dir: dir, build: &fakeBuilder{dir: dir}, dep: newFakeDeployer(),
		tests: &fakeTester{fail: map[string]bool{}}, monitor: &fakeMonitor{failHost: map[string]bool{}}, rec: &recorder{}, clock: clock, db: database}
	cfg, err := config.Parse(filepath.Join(dir, "immunity.yml"), []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	h.cfg = cfg
	h.st, err = store.Open(context.Background(), database)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.st.Close() })
	if clock != nil {
		h.st.SetClock(clock.Now)
	}
	h.start()
	return h
}

// start makes and starts a fresh engine on the same store and fakes (a restart).
func (h *harness) start() {
	h.t.Helper()
	var now func() time.Time
	if h.clock != nil {
		now = h.clock.Now
	}
	eng, err := New(Options{Config: h.cfg, Store: h.st, Builder: h.build, Tester: h.tests, Monitor: h.monitor, Now: now,
		Deployer: func(*config.App, *config.Region) (deployers.Deployer, error) { return h.dep, nil }, Tick: 20 * time.Millisecond, LeaseTTL: h.lease})
	if err != nil {
		h.t.Fatal(err)
	}
	eng.AddListener(h.rec)
	if err := eng.Start(context.Background()); err != nil {
		h.t.Fatal(err)
	}
	h.eng = eng
	h.t.Cleanup(eng.Stop)
}

var ada = Actor{Name: "ada", Via: "cli"}

func (h *harness) push(subject string) store.Run {
	h.t.Helper()
	sha := h.build.add(subject)
	r, err := h.eng.StartRun(context.Background(), "papi", sha, Trigger{Kind: "push"})
	if err != nil {
		h.t.Fatal(err)
	}
	return r
}

// waitRun waits until the run satisfies ok, failing the test after 10 s.
func (h *harness) waitRun(id int64, what any, ok func(store.Run) bool) store.Run {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := h.st.Run(context.Background(), id)
		if err != nil {
			h.t.Fatal(err)
		}
		if ok(r) {
			return r
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("run %d never %s; it is %s: %s %s", id, what, r.State, r.Message, stageStates(r))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (h *harness) waitState(id int64, state store.RunState) store.Run {
	h.t.Helper()
	return h.waitRun(id, state, func(r store.Run) bool { return r.State == state })
}

func stageStates(r store.Run) string {
	s := ""
	for _, st := range r.Stages {
		s += fmt.Sprintf(" %s=%s(%s)", st.Region, st.State, st.Message)
	}
	return s
}

func stageOf(r store.Run, region string) store.Stage {
	for _, s := range r.Stages {
		if s.Region == region {
			return s
		}
	}
	return store.Stage{}
}

// seed makes a release live everywhere, as the starting point.
func (h *harness) seed() string {
	h.t.Helper()
	sha := h.build.add("first release")
	if _, err := h.eng.Seed(context.Background(), ada, "papi", sha); err != nil {
		h.t.Fatal(err)
	}
	return sha
}

// Package pipeline is Immunity's engine: the run/stage state machine, scheduling,
// batching, locks and the monitoring step that asks the judge. The config it runs on is
// pipeline/config's.
//
// A run carries one immutable release through an app's regions in order. Each region's
// part is a stage: (await approval) → deploy → test → (monitor → judge). Production regions
// roll out HostsAtATime hosts at a time, each batch deployed, tested and monitored before
// the next; a failure there rolls back every host the stage switched. One stage at a time
// runs in a region; when several runs wait for the same region, the newest wins and the
// older ones are superseded (batching). A locked region takes no automatic progress and no
// promotion; nor does a frozen one (a freeze ends at a time), one outside its deploy
// windows, or one whose region before has not had the release live for its soak time
// (DeployAllowed); those waits are recorded in the stage and end by themselves. Rollbacks
// pass them all.
//
// Every transition is written to the store before it is acted on; Start resumes whatever
// was in flight, re-checking a host step that may or may not have finished instead of
// repeating it. The engine tells the world through Listener; it imports no GitHub, Slack
// or SSH code.
//
// An app's work (scheduling its runs, builds, stages, rollbacks, polling its repository)
// is done only while the engine holds the app's lease in the store (store.Hold,
// "engine/APP"), and every store write of that work is fenced by the lease's token
// (store.WithLease): of several servers sharing one database, one works each app, and one
// that lost the lease (it stalled past its expiry) writes nothing over its successor's
// work. Taking a lease over is a start for that app: its hosts are reconciled first, the
// app processes of the hosts this server runs itself (the local deployer) are adopted,
// then what was in flight is resumed. No host effect of an app's work (upload, switch,
// restart, tests, adopting a process) begins once its lease is lost (fence.go). With one
// server the lease is simply always held.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/immunity-app/immunity/deployers"
	"github.com/immunity-app/immunity/pipeline/config"
	"github.com/immunity-app/immunity/store"
)

// Sentinel errors callers branch on.
var (
	ErrUnknownApp        = errors.New("unknown app")
	ErrUnknownRegion     = errors.New("unknown region")
	ErrLocked            = errors.New("region is locked")
	ErrNothingWaiting    = errors.New("nothing is waiting for promotion")
	ErrUnknownRelease    = errors.New("unknown release")
	ErrRegionBusy        = errors.New("region is busy")
	ErrNoPreviousRelease = errors.New("no previous release")
	ErrNotHolder         = errors.New("the region is locked")
	ErrBadInput          = errors.New("not accepted")
	// ErrGate: a deploy or re-run would walk around the order of regions.
	ErrGate = errors.New("refused by the pipeline's gates")
)

// Builder builds the release of one commit of an app (pipeline/release does it).
type Builder interface {
	Build(ctx context.Context, app *config.App, sha string) (deployers.Release, error)
	// Commit describes a commit; sha "" means the head of the app's branch.
	Commit(ctx context.Context, app *config.App, sha string) (Commit, error)
}

// Commit is what the engine needs to know of a commit.
type Commit struct {
	SHA, Subject, Author string
	// Committed is the commit's committer time (zero when the builder does not know it):
	// the start of its lead time in the delivery report.
	Committed time.Time
}

// Tester runs an app's integration tests against one host.
type Tester interface {
	Test(ctx context.Context, rel deployers.Release, h deployers.Host, t deployers.Tests) (output string, err error)
}

// Options are what an Engine is made of.
type Options struct {
	Config  *config.Config
	Store   *store.Store
	Builder Builder
	Tester  Tester
	Monitor Monitor // nil: monitored regions fail with a clear error
	// Deployer returns the deployer for a region of an app.
	Deployer func(app *config.App, region *config.Region) (deployers.Deployer, error)
	Logger   *slog.Logger
	// Tick is how often the scheduler looks at waiting runs even when nothing kicks it.
	Tick time.Duration
	// Persisted, when set, is called right after each kind of transition is written and
	// before anything acts on it, with the transition's name: build, upload, switch,
	// restart, health, test, monitor, done, promote, rollback-plan, rollback-switch,
	// rollback-restart, rollback-health, rollback-host, rollback-done and the same with a
	// manual- prefix for a rollback asked for by a person. The crash tests kill the server
	// there.
	Persisted func(point string)
	// Now is the engine's clock for its decisions (deploy windows, freezes, soak); default
	// time.Now. Tests give it a fake clock (and the store the same one: store.SetClock).
	Now func() time.Time
	// LeaseTTL is how long an app's lease lasts without renewal (renewed every third of
	// it); 0 is the store's (Store.LeaseTTL). A server that dies is taken over within
	// about two.
	LeaseTTL time.Duration
	// Secrets are values that must never be shown: test output that holds one has it
	// replaced by "[redacted]" before it is stored or told (the server's own tokens and
	// keys; app.Open gathers them).
	Secrets []string
}

// Engine drives runs. Make one with New, add listeners, then Start.
type Engine struct {
	cfg       *config.Config
	st        *store.Store
	builder   Builder
	tester    leasedTester
	monitor   Monitor
	deployer  func(app *config.App, region *config.Region) (deployers.Deployer, error)
	log       *slog.Logger
	tick      time.Duration
	listeners []Listener
	persisted func(point string)
	clock     func() time.Time  // Options.Now
	secrets   *strings.Replacer // nil: nothing to redact
	leaseTTL  time.Duration

	mu     sync.Mutex
	emitMu sync.Mutex                // one event at a time, snapshots in order
	tasks  map[string]*task          // builds and stages under way, by name
	leases map[string]*store.Holding // each app's lease, by app name (set by Start)
	tenure map[string]int64          // the token of the lease each app is worked under now
	kick   chan struct{}

	commitsMu sync.Mutex
	commits   map[string]commitTime // commit times for the delivery report, by "app sha"
	wg        sync.WaitGroup
	ctx       context.Context
	stop      context.CancelFunc
}

// New makes an engine.
func New(o Options) (*Engine, error) {
	if o.Config == nil || o.Store == nil || o.Builder == nil || o.Deployer == nil {
		return nil, errors.New("pipeline.New: Config, Store, Builder and Deployer are required")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Tick == 0 {
		o.Tick = time.Second
	}
	if o.LeaseTTL == 0 {
		o.LeaseTTL = o.Store.LeaseTTL()
	}
	if o.Tester == nil {
		o.Tester = CommandTester{}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	var pairs []string
	for _, s := range o.Secrets {
		if len(s) >= 6 { // shorter values would redact ordinary words
			pairs = append(pairs, s, "[redacted]")
		}
	}
	var secrets *strings.Replacer
	if len(pairs) > 0 {
		secrets = strings.NewReplacer(pairs...)
	}
	e := &Engine{
		secrets: secrets,
		cfg:     o.Config, st: o.Store, builder: o.Builder, monitor: o.Monitor,
		log: o.Logger, tick: o.Tick, persisted: o.Persisted, clock: o.Now, leaseTTL: o.LeaseTTL,
		tasks: map[string]*task{}, leases: map[string]*store.Holding{}, tenure: map[string]int64{},
		kick: make(chan struct{}, 1),
	}
	e.deployer = e.leasedDeployers(o.Deployer)
	e.tester = leasedTester{Tester: o.Tester, e: e}
	return e, nil
}

// Config returns the engine's config.
func (e *Engine) Config() *config.Config { return e.cfg }

// Now is the engine's clock (Options.Now).
func (e *Engine) Now() time.Time { return e.now() }

func (e *Engine) now() time.Time {
	if e.clock == nil { // an Engine not made by New
		return time.Now()
	}
	return e.clock()
}

// Store returns the engine's store.
func (e *Engine) Store() *store.Store { return e.st }

// AddListener adds a reporter. Call it before Start.
func (e *Engine) AddListener(l Listener) { e.listeners = append(e.listeners, l) }

// Start claims the apps' leases, reconciles the store with what the hosts of every app it
// holds run, resumes what was in flight (completing open rollbacks first) and starts
// scheduling. It returns once those hosts have been asked; Stop ends it.
func (e *Engine) Start(ctx context.Context) error {
	e.ctx, e.stop = context.WithCancel(ctx)
	runs, err := e.st.Runs(e.ctx, "", true, 0)
	if err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	for i := range e.cfg.Apps {
		name := e.cfg.Apps[i].Name
		e.leases[name] = e.st.Hold(e.ctx, appLease(name), e.leaseTTL)
	}
	for _, r := range runs {
		if _, held := e.lease(r.App); held {
			e.log.Info("resuming run", "app", r.App, "run", r.ID, "sha", r.SHA, "state", r.State)
		}
	}
	e.takeOver("start")
	open, err := e.st.OpenRollbacks(e.ctx)
	if err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	e.resumeRollbacks(open)
	e.wg.Add(1)
	go e.loop()
	for i := range e.cfg.Apps {
		if a := &e.cfg.Apps[i]; a.Repo.Poll.Duration > 0 && a.Repo.Path != "" {
			e.wg.Add(1)
			go e.poll(e.ctx, a)
		}
	}
	e.Kick()
	return nil
}

// Stop stops scheduling and waits for stage goroutines to end. Work in flight is left as
// persisted, for the next Start to resume.
func (e *Engine) Stop() {
	if e.stop != nil {
		e.stop()
	}
	e.wg.Wait()
	for _, h := range e.leases {
		<-h.Done() // released
	}
}

func appLease(app string) string { return "engine/" + app }

// lease is the lease this engine works an app under, when it holds it and has taken the
// app over (its hosts reconciled).
func (e *Engine) lease(app string) (store.Lease, bool) {
	h := e.leases[app]
	if h == nil {
		return store.Lease{}, false
	}
	l, held := h.Lease()
	e.mu.Lock()
	defer e.mu.Unlock()
	if !held || e.tenure[app] != l.Token {
		return store.Lease{}, false
	}
	return l, true
}

// takeOver follows the apps' leases: an app whose lease was lost has its tasks stopped
// (their state stays as persisted, for the new holder to resume) and its local app
// processes let go of, still running; an app whose lease was newly taken has its tasks of
// an older tenure stopped, its hosts reconciled and its local app processes adopted (or
// started again where they died), as on a start, before anything of it is scheduled.
func (e *Engine) takeOver(why string) {
	for i := range e.cfg.Apps {
		a := &e.cfg.Apps[i]
		l, held := e.leases[a.Name].Lease()
		e.mu.Lock()
		was := e.tenure[a.Name]
		e.mu.Unlock()
		switch {
		case held && l.Token == was:
			continue
		case !held && was == 0:
			continue
		case !held:
			if e.ctx.Err() == nil {
				e.log.Warn("lease lost: stopping this app's work here", "app", a.Name, "token", was)
			}
			e.setTenure(a.Name, 0)
			e.cancelApp(a.Name)
			e.letGo(a)
			continue
		}
		if was != 0 {
			e.cancelApp(a.Name)
			e.letGo(a)
		}
		if why != "start" {
			e.log.Info("lease taken: working this app here", "app", a.Name, "token", l.Token)
		}
		ctx := store.WithLease(e.ctx, l)
		for j := range a.Regions {
			if _, err := e.reconcileRegion(ctx, a, &a.Regions[j]); err != nil {
				e.log.Warn("reconcile", "app", a.Name, "region", a.Regions[j].Name, "why", why, "err", err)
			}
		}
		if err := e.healRuns(ctx, a); err != nil {
			e.log.Warn("heal runs", "app", a.Name, "why", why, "err", err)
		}
		if err := e.retell(ctx, a); err != nil {
			e.log.Warn("tell runs again", "app", a.Name, "why", why, "err", err)
		}
		e.adopt(ctx, a)
		e.setTenure(a.Name, l.Token)
	}
}

func (e *Engine) setTenure(app string, token int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.tenure[app] = token
}

// cancelApp stops an app's tasks without waiting for them.
func (e *Engine) cancelApp(app string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, t := range e.tasks {
		if t.app == app {
			t.cancel()
		}
	}
}

// Kick asks the scheduler to look at the runs now.
func (e *Engine) Kick() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

func (e *Engine) loop() {
	defer e.wg.Done()
	t := time.NewTicker(e.tick)
	defer t.Stop()
	for {
		e.takeOver("takeover")
		if err := e.schedule(e.ctx); err != nil && e.ctx.Err() == nil {
			e.log.Error("schedule", "err", err)
		}
		select {
		case <-e.ctx.Done():
			return
		case <-e.kick:
		case <-t.C:
		}
	}
}

// emit tells every listener about a persisted change. Events are delivered one at a time,
// each run snapshot read inside the same lock, so a listener never sees a run go back to
// an older state.
func (e *Engine) emit(ctx context.Context, ev Event) {
	e.emitMu.Lock()
	defer e.emitMu.Unlock()
	e.deliver(ctx, ev)
}

func (e *Engine) deliver(ctx context.Context, ev Event) {
	ev.Time = e.now()
	if ev.Stage != nil {
		for i := range ev.Run.Stages {
			if ev.Run.Stages[i].ID == ev.Stage.ID {
				ev.Stage = &ev.Run.Stages[i]
			}
		}
	}
	if ev.App == "" {
		ev.App = ev.Run.App
	}
	for _, l := range e.listeners {
		l.Notify(ctx, ev)
	}
}

// change is one transition of a run: what to write, and what to tell of it.
type change struct {
	kind              EventKind
	run               int64
	region, host, msg string
	point             string // the transition's name for Options.Persisted; "" for none
	write             func(ctx context.Context) error
}

// transition writes a change of a run and tells the listeners of it with a snapshot of
// the run read right after the write, under the lock every transition takes: listeners
// see every persisted state, in the order written, and nothing that was not written. A
// failed write is returned and told to no one.
func (e *Engine) transition(ctx context.Context, c change) error {
	e.emitMu.Lock()
	defer e.emitMu.Unlock()
	if c.write != nil {
		if err := c.write(ctx); err != nil {
			return err
		}
	}
	e.reached(c.point)
	r, err := e.st.Run(ctx, c.run)
	if err != nil {
		return fmt.Errorf("read run %d after its change: %w", c.run, err)
	}
	if c.msg != "" {
		if err := e.st.AddEvent(ctx, store.Event{RunID: c.run, App: r.App, Region: c.region, Host: c.host, Kind: string(c.kind), Message: c.msg}); err != nil {
			return fmt.Errorf("log of run %d: %w", c.run, err)
		}
	}
	ev := Event{Kind: c.kind, Run: r, Region: c.region, Host: c.host, Message: c.msg, SHA: r.SHA}
	for i := range r.Stages {
		if r.Stages[i].Region == c.region {
			ev.Stage = &r.Stages[i]
		}
	}
	e.deliver(ctx, ev)
	return nil
}

// reached tells Options.Persisted that the transition named point was just written
// ("": none).
func (e *Engine) reached(point string) {
	if point != "" && e.persisted != nil {
		e.persisted(point)
	}
}

// emitRun tells listeners of a run's state as it is now (a line of its log, a look).
func (e *Engine) emitRun(ctx context.Context, kind EventKind, runID int64, region, host, msg string) error {
	return e.transition(ctx, change{kind: kind, run: runID, region: region, host: host, msg: msg})
}

// logf records a line in a run's log and tells listeners.
func (e *Engine) logf(ctx context.Context, runID int64, region, host, format string, args ...any) error {
	return e.emitRun(ctx, Logged, runID, region, host, fmt.Sprintf(format, args...))
}

// regionEvent records an event of a region outside a run's stages and tells listeners;
// write, when set, is the change itself (written first).
func (e *Engine) regionEvent(ctx context.Context, ev Event, point string, write func(ctx context.Context) error) error {
	e.emitMu.Lock()
	defer e.emitMu.Unlock()
	if write != nil {
		if err := write(ctx); err != nil {
			return err
		}
	}
	e.reached(point)
	if ev.Message != "" {
		if err := e.st.AddEvent(ctx, store.Event{RunID: ev.Run.ID, App: ev.App, Region: ev.Region, Host: ev.Host, Kind: string(ev.Kind), Message: ev.Message}); err != nil {
			return fmt.Errorf("event log: %w", err)
		}
	}
	e.deliver(ctx, ev)
	return nil
}

func (e *Engine) app(name string) (*config.App, error) {
	a, ok := e.cfg.App(name)
	if !ok {
		return nil, fmt.Errorf("%w %q; apps: %v", ErrUnknownApp, name, e.appNames())
	}
	return a, nil
}

func (e *Engine) appNames() []string {
	var out []string
	for _, a := range e.cfg.Apps {
		out = append(out, a.Name)
	}
	return out
}

func (e *Engine) region(a *config.App, name string) (*config.Region, int, error) {
	r, i, ok := a.Region(name)
	if !ok {
		return nil, -1, fmt.Errorf("%w %q in app %s; regions: %v", ErrUnknownRegion, name, a.Name, a.RegionNames())
	}
	return r, i, nil
}

// Hosts returns the deployer's view of a region's hosts.
func (e *Engine) Hosts(a *config.App, r *config.Region) []deployers.Host {
	var out []deployers.Host
	for _, h := range r.Hosts {
		base := h.Path
		if r.Deployer == "local" {
			base = fmt.Sprintf("%s/hosts/%s/%s/%s", e.cfg.Server.DataDir, a.Name, r.Name, h.Name)
		}
		out = append(out, deployers.Host{App: a.Name, Region: r.Name, Name: h.Name, Address: h.Address, Base: base, Port: h.Port, URL: h.URL})
	}
	return out
}

// redact replaces the known secret values in text shown to people.
func (e *Engine) redact(s string) string {
	if e.secrets == nil {
		return s
	}
	return e.secrets.Replace(s)
}

func short(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	return sha
}

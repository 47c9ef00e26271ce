package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/immunity-app/immunity/deployers"
	"github.com/immunity-app/immunity/pipeline/config"
	"github.com/immunity-app/immunity/pipeline/judge"
	"github.com/immunity-app/immunity/store"
)

// startBuild builds a run's release in the background (once).
func (e *Engine) startBuild(a *config.App, r store.Run) {
	e.spawn(a.Name, buildTask(r.ID), func(ctx context.Context) {
		ctx = runLog(ctx, r, "")
		if err := e.build(ctx, a, r); err != nil && ctx.Err() == nil {
			e.log.ErrorContext(ctx, "build", "app", a.Name, "run", r.ID, "sha", r.SHA, "err", err)
		}
	})
}

func (e *Engine) build(ctx context.Context, a *config.App, r store.Run) error {
	// The scheduler may have seen the run before an earlier build of it finished.
	fresh, err := e.st.Run(ctx, r.ID)
	if err != nil {
		return err
	}
	if fresh.State != store.RunBuilding {
		return nil
	}
	rel, err := e.st.Release(ctx, a.Name, r.SHA)
	switch {
	case err == nil && rel.State == store.ReleaseReady:
		err := e.transition(ctx, change{kind: RunChanged, run: r.ID, point: "built", msg: fmt.Sprintf("%s %s is already built", a.Name, short(r.SHA)),
			write: func(ctx context.Context) error { return e.st.FinishBuild(ctx, r.ID, rel, "built") }})
		if errors.Is(err, store.ErrStateChanged) {
			return nil
		}
		return err
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("build %s %s: %w", a.Name, short(r.SHA), err)
	}
	err = e.transition(ctx, change{kind: Logged, run: r.ID, point: "build", msg: fmt.Sprintf("building %s %s", a.Name, short(r.SHA)),
		write: func(ctx context.Context) error {
			return e.st.PutRelease(ctx, store.Release{App: a.Name, SHA: r.SHA, Subject: r.Subject, Author: r.Author, State: store.ReleaseBuilding})
		}})
	if err != nil {
		return err
	}
	built, err := e.builder.Build(ctx, a, r.SHA)
	if ctx.Err() != nil {
		return ctx.Err() // stopping; the next Start builds again (idempotent)
	}
	var end store.Release
	var msg, why string
	if err != nil {
		why = buildFailedPrefix + err.Error()
		end = store.Release{App: a.Name, SHA: r.SHA, Subject: r.Subject, Author: r.Author, State: store.ReleaseFailed, Message: err.Error()}
		msg = why
	} else {
		why = "built"
		end = store.Release{App: a.Name, SHA: r.SHA, Subject: r.Subject, Author: r.Author, State: store.ReleaseReady, Artifact: built.Artifact, Checksum: built.Checksum}
		msg = fmt.Sprintf("built %s %s (sha256 %s)", a.Name, short(r.SHA), built.Checksum[:12])
	}
	// The release and the run (and, for a failure, every stage skipped) in one write.
	err = e.transition(ctx, change{kind: RunChanged, run: r.ID, point: "built", msg: msg,
		write: func(ctx context.Context) error { return e.st.FinishBuild(ctx, r.ID, end, why) }})
	if errors.Is(err, store.ErrStateChanged) {
		return nil // the run left building meanwhile: whoever moved it tells the story
	}
	return err
}

// buildFailedPrefix begins the message of a run whose build failed.
const buildFailedPrefix = "build failed: "

// startStage runs (or resumes) a stage in its own goroutine.
func (e *Engine) startStage(a *config.App, r store.Run, s store.Stage) {
	e.spawn(a.Name, stageTask(s.ID), func(ctx context.Context) {
		ctx = runLog(ctx, r, s.Region)
		if err := e.execStage(ctx, a, r, s); err != nil && ctx.Err() == nil {
			e.log.ErrorContext(ctx, "stage", "app", a.Name, "run", r.ID, "region", s.Region, "sha", r.SHA, "err", err)
		}
	})
}

func buildTask(runID int64) string   { return fmt.Sprintf("build/%d", runID) }
func stageTask(stageID int64) string { return fmt.Sprintf("stage/%d", stageID) }

// spawn runs fn, a task of app, in a goroutine of its own unless a task of that name is
// running or the engine does not hold the app's lease (spawned says so); its context
// carries the lease (every store write of the task is fenced by it) and ends with the
// engine, with cancelTask or when the lease is lost. The scheduler is kicked when it ends.
func (e *Engine) spawn(app, name string, fn func(ctx context.Context)) (spawned bool) {
	l, held := e.lease(app)
	if !held {
		return false
	}
	e.mu.Lock()
	if _, ok := e.tasks[name]; ok {
		e.mu.Unlock()
		return true
	}
	ctx, cancel := context.WithCancel(store.WithLease(e.ctx, l))
	t := &task{app: app, cancel: cancel, done: make(chan struct{})}
	e.tasks[name] = t
	e.mu.Unlock()
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		defer func() {
			e.mu.Lock()
			delete(e.tasks, name)
			e.mu.Unlock()
			cancel()
			close(t.done)
			e.Kick()
		}()
		fn(ctx)
	}()
	return true
}

// errNotHere: the task's app is worked by the server holding its lease, not this one.
var errNotHere = errors.New("another server holds the app's lease")

// task is a build, stage or rollback under way.
type task struct {
	app    string
	cancel context.CancelFunc
	done   chan struct{} // closed when it has returned
	err    error         // what it returned (runTask's), valid once done is closed
}

// runTask runs fn as the engine's task of that name (or joins the one already running)
// and waits until it ends, or ctx does. The task outlives ctx: it ends with the engine.
// ErrNotHere: this engine does not hold the app's lease, and another server does the work.
func (e *Engine) runTask(ctx context.Context, app, name string, fn func(ctx context.Context) error) error {
	spawned := e.spawn(app, name, func(ctx context.Context) {
		err := fn(ctx)
		e.mu.Lock()
		if t := e.tasks[name]; t != nil {
			t.err = err
		}
		e.mu.Unlock()
	})
	if !spawned {
		return errNotHere
	}
	e.mu.Lock()
	t := e.tasks[name]
	e.mu.Unlock()
	if t == nil {
		return nil // it has ended already; the store says how
	}
	select {
	case <-t.done:
		return t.err
	case <-ctx.Done():
		return fmt.Errorf("%s goes on: %w", name, ctx.Err())
	}
}

// running reports whether a task is under way.
func (e *Engine) running(name string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	_, ok := e.tasks[name]
	return ok
}

// cancelTask stops a task and waits until it has returned, or ctx ends.
func (e *Engine) cancelTask(ctx context.Context, name string) error {
	e.mu.Lock()
	t := e.tasks[name]
	e.mu.Unlock()
	if t == nil {
		return nil
	}
	t.cancel()
	select {
	case <-t.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stop %s: %w", name, ctx.Err())
	}
}

// stageRun is one stage being carried out.
type stageRun struct {
	app    *config.App
	region *config.Region
	run    store.Run
	stage  store.Stage
	rel    deployers.Release
	dep    deployers.Deployer
	hosts  map[string]deployers.Host
}

func (e *Engine) execStage(ctx context.Context, a *config.App, r store.Run, s store.Stage) error {
	reg, _, err := e.region(a, s.Region)
	if err != nil {
		return e.failStage(ctx, nil, r, s, err.Error())
	}
	if s.State == store.StageRollingBack {
		// A failed production stage: complete its rollback, never deploy again.
		rb, found, err := e.st.StageRollback(ctx, s.ID)
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("stage %s of run %d is rolling back without a rollback plan", s.Region, r.ID)
		}
		return e.execRollback(ctx, a, reg, rb)
	}
	rel, err := e.st.Release(ctx, a.Name, r.SHA)
	if err != nil {
		if ctx.Err() != nil || !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("release %s: %w", short(r.SHA), err)
		}
		return e.failStage(ctx, nil, r, s, fmt.Sprintf("release %s: %v", short(r.SHA), err))
	}
	if rel.State != store.ReleaseReady {
		return e.failStage(ctx, nil, r, s, fmt.Sprintf("release %s is not built (%s)", short(r.SHA), rel.State))
	}
	dep, err := e.deployer(a, reg)
	if err != nil {
		return e.failStage(ctx, nil, r, s, err.Error())
	}
	sr := &stageRun{app: a, region: reg, run: r, stage: s, dep: dep, hosts: map[string]deployers.Host{},
		rel: deployers.Release{App: a.Name, SHA: rel.SHA, Artifact: rel.Artifact, Checksum: rel.Checksum}}
	for _, h := range e.Hosts(a, reg) {
		sr.hosts[h.Name] = h
	}
	batch := len(s.Hosts)
	if reg.Production {
		batch = reg.HostsAtATime
	}
	for start := 0; start < len(s.Hosts); start += batch {
		end := min(start+batch, len(s.Hosts))
		if err := e.execBatch(ctx, sr, start, end); err != nil {
			if ctx.Err() != nil {
				return ctx.Err() // stopped or cancelled: whoever cancelled records the outcome
			}
			if errors.Is(err, store.ErrStateChanged) {
				return nil // the stage ended meanwhile (cancelled): whoever ended it tells the story
			}
			var se storeError
			if errors.As(err, &se) || errors.Is(err, store.ErrLeaseLost) {
				return err // the store failed, or another server works the app now: nothing more is done here
			}
			return e.failStage(ctx, sr, r, s, err.Error())
		}
	}
	action := "deploy"
	if s.ApprovedBy != "" && r.Trigger != TriggerDeploy {
		action = "promote"
	}
	msg := "live on " + plural(len(s.Hosts), "host")
	err = e.transition(ctx, change{kind: StageChanged, run: r.ID, region: s.Region, point: "passed", msg: fmt.Sprintf("%s %s passed %s", a.Name, short(r.SHA), s.Region),
		write: func(ctx context.Context) error {
			return e.st.SucceedStage(ctx, s.ID, msg, store.HistoryEntry{App: a.Name, Region: s.Region, SHA: r.SHA, Action: action,
				Actor: s.ApprovedBy, ActorID: s.ApprovedByID, Via: s.ApprovedVia, RunID: r.ID})
		}})
	if errors.Is(err, store.ErrStateChanged) {
		return nil // cancelled meanwhile (a rollback): whoever cancelled it tells the story
	}
	if err == nil {
		e.pruneDisk(ctx, a)
	}
	return err
}

// storeError is a failed write or read of the store during a stage: the stage stops
// where it is (nothing is acted on without its record) instead of being failed.
type storeError struct{ err error }

func (e storeError) Error() string { return "store: " + e.err.Error() }
func (e storeError) Unwrap() error { return e.err }

// execBatch deploys, tests and monitors hosts [start,end) of a stage, resuming each host
// from its persisted step.
func (e *Engine) execBatch(ctx context.Context, sr *stageRun, start, end int) error {
	// Reload: the host steps may have moved on since the stage started.
	fresh, err := e.st.Run(ctx, sr.run.ID)
	if err != nil {
		return storeError{err}
	}
	var steps []store.HostStep
	for _, s := range fresh.Stages {
		if s.ID == sr.stage.ID {
			steps = s.Hosts[start:end]
		}
	}
	var deploy, test, pending []store.HostStep
	for _, hs := range steps {
		switch hs.Step {
		case store.HostPending, store.HostUploading, store.HostSwitching, store.HostRestarting, store.HostChecking:
			deploy = append(deploy, hs)
			test = append(test, hs)
		case store.HostTesting:
			test = append(test, hs)
		case store.HostFailed, store.HostRollingBack, store.HostRolledBack:
			return fmt.Errorf("%s/%s: %s", sr.region.Name, hs.Host, hs.Message)
		}
		if hs.Step != store.HostDone {
			pending = append(pending, hs)
		}
	}
	if len(pending) == 0 {
		return nil // finished before a restart
	}
	if len(deploy) > 0 {
		if err := e.setStage(ctx, sr, store.StageDeploying, fmt.Sprintf("deploying to %s", hostList(deploy))); err != nil {
			return err
		}
		limit := 0
		if sr.region.SSH != nil {
			limit = sr.region.SSH.Concurrency
		}
		if err := parallelN(deploy, limit, func(hs store.HostStep) error { return e.deployHost(ctx, sr, hs) }); err != nil {
			return err
		}
	}
	if len(test) > 0 {
		if err := e.testBatch(ctx, sr, test); err != nil {
			return err
		}
	}
	if sr.region.Monitor != nil {
		if err := e.monitorBatch(ctx, sr, pending, end); err != nil {
			return err
		}
	}
	return parallel(pending, func(hs store.HostStep) error { return e.hostDone(ctx, sr, hs) })
}

// hostDone marks a host done once it has been checked: it runs the stage's release.
func (e *Engine) hostDone(ctx context.Context, sr *stageRun, hs store.HostStep) error {
	ctx = hostLog(ctx, hs.Host)
	h := sr.hosts[hs.Host]
	st, err := sr.dep.State(ctx, h)
	if err != nil {
		return fmt.Errorf("check %s before marking it done: %w", h, err)
	}
	if st.Current != sr.rel.SHA {
		wrong := fmt.Errorf("%s runs %s, not %s, when it should be done", h, orNothing(short(st.Current)), short(sr.rel.SHA))
		live, err := e.st.Live(ctx, sr.app.Name, sr.region.Name)
		if err != nil {
			return storeError{errors.Join(wrong, err)}
		}
		if live[h.Name] != st.Current {
			if err := e.reconcileHost(ctx, sr.app, sr.region, h, st.Current, live[h.Name]); err != nil {
				return storeError{errors.Join(wrong, err)}
			}
		}
		return wrong
	}
	return e.hostStep(ctx, sr, hs.Host, store.HostDone, "", "live", "done")
}

// setStage moves a running stage to its next activity, unless it was cancelled meanwhile.
func (e *Engine) setStage(ctx context.Context, sr *stageRun, state store.StageState, msg string) error {
	return e.transition(ctx, change{kind: StageChanged, run: sr.run.ID, region: sr.region.Name, point: "stage-" + string(state), msg: msg, write: func(ctx context.Context) error {
		err := e.st.UpdateStage(ctx, sr.stage.ID, store.StageUpdate{State: state, Message: msg, OnlyIf: []store.StageState{store.StageDeploying, store.StageTesting, store.StageMonitoring}})
		if err != nil && !errors.Is(err, store.ErrStateChanged) {
			return storeError{err}
		}
		return err
	}})
}

// deployHost takes one host through upload, switch, restart and health check, each step
// recorded before it starts; a step a restart finds recorded is carried out again (each
// is idempotent), never skipped.
func (e *Engine) deployHost(ctx context.Context, sr *stageRun, hs store.HostStep) error {
	ctx = hostLog(ctx, hs.Host)
	h := sr.hosts[hs.Host]
	sha := sr.rel.SHA
	step := hs.Step
	if step == store.HostPending || step == store.HostUploading {
		prev := hs.PrevSHA
		if prev == "" {
			live, err := e.st.Live(ctx, sr.app.Name, sr.region.Name)
			if err != nil {
				return storeError{err}
			}
			prev = live[hs.Host]
		}
		if err := e.hostStep(ctx, sr, hs.Host, store.HostUploading, prev, "uploading "+short(sha), "upload"); err != nil {
			return err
		}
		if err := sr.dep.Upload(ctx, h, sr.rel); err != nil {
			return fmt.Errorf("upload %s@%s to %s: %w", sr.app.Name, short(sha), h, err)
		}
		if err := e.hostStep(ctx, sr, hs.Host, store.HostSwitching, "", "switching to "+short(sha), "switch"); err != nil {
			return err
		}
		step = store.HostSwitching
	}
	if step == store.HostSwitching {
		if err := sr.dep.Switch(ctx, h, sha); err != nil {
			return fmt.Errorf("deploy %s@%s to %s: %w", sr.app.Name, short(sha), h, err)
		}
		err := e.transition(ctx, change{kind: HostChanged, run: sr.run.ID, region: sr.region.Name, host: hs.Host, point: "restart",
			write: func(ctx context.Context) error {
				return storeErr(e.st.SetHostLive(ctx, sr.stage.ID, hs.Host, store.HostRestarting, "restarting "+short(sha), sr.app.Name, sr.region.Name, sha))
			}})
		if err != nil {
			return err
		}
		step = store.HostRestarting
	}
	if step == store.HostRestarting {
		if err := sr.dep.Restart(ctx, h); err != nil {
			return fmt.Errorf("deploy %s@%s to %s: %w", sr.app.Name, short(sha), h, err)
		}
		if err := e.hostStep(ctx, sr, hs.Host, store.HostChecking, "", "checking health", "health"); err != nil {
			return err
		}
	}
	if err := sr.dep.Healthy(ctx, h); err != nil {
		return fmt.Errorf("deploy %s@%s to %s: %w", sr.app.Name, short(sha), h, err)
	}
	return e.hostStep(ctx, sr, hs.Host, store.HostTesting, "", "live; healthy", "test")
}

func storeErr(err error) error {
	if err == nil {
		return nil
	}
	return storeError{err}
}

// testsFor is an app's test command for one host, with the facts of the run in its
// environment (IMMUNITY_BASE_URL and the rest; the app's tests.env cannot override them).
func testsFor(a *config.App, rel deployers.Release, h deployers.Host) deployers.Tests {
	env := map[string]string{}
	maps.Copy(env, a.Tests.Env)
	maps.Copy(env, map[string]string{"IMMUNITY_BASE_URL": h.URL, "IMMUNITY_APP": a.Name, "IMMUNITY_REGION": h.Region,
		"IMMUNITY_HOST": h.Name, "IMMUNITY_RELEASE": rel.SHA})
	return deployers.Tests{Command: a.Tests.Command, Env: env, Timeout: a.Tests.Timeout.Or(2 * time.Minute)}
}

// testBatch runs the integration tests against hosts at their testing step (none when
// the region skips them) and moves them on to monitoring.
func (e *Engine) testBatch(ctx context.Context, sr *stageRun, steps []store.HostStep) error {
	if !sr.region.SkipTests && len(sr.app.Tests.Command) > 0 {
		if err := e.setStage(ctx, sr, store.StageTesting, fmt.Sprintf("testing %s", hostList(steps))); err != nil {
			return err
		}
		var mu sync.Mutex
		var outputs []string
		err := parallel(steps, func(hs store.HostStep) error {
			h := sr.hosts[hs.Host]
			out, err := e.tester.Test(hostLog(ctx, hs.Host), sr.rel, h, testsFor(sr.app, sr.rel, h))
			out = e.redact(out)
			mu.Lock()
			outputs = append(outputs, fmt.Sprintf("== %s/%s\n%s", sr.region.Name, hs.Host, out))
			mu.Unlock()
			if err != nil {
				return fmt.Errorf("integration tests failed on %s: %s", h, e.redact(firstFailure(out, err)))
			}
			return nil
		})
		if werr := e.st.UpdateStage(ctx, sr.stage.ID, store.StageUpdate{Tests: tail(strings.Join(outputs, "\n"), 8000)}); werr != nil {
			return storeError{werr}
		}
		if err != nil {
			return err
		}
	}
	return parallel(steps, func(hs store.HostStep) error {
		return e.hostStep(ctx, sr, hs.Host, store.HostMonitoring, "", "tests passed", "monitor")
	})
}

func (e *Engine) monitorBatch(ctx context.Context, sr *stageRun, steps []store.HostStep, end int) error {
	if e.monitor == nil {
		return errors.New("region is monitored but this server has no metrics monitor")
	}
	m := sr.region.Monitor
	req := MonitorRequest{
		App: sr.app.Name, Region: sr.region.Name, Release: sr.rel.SHA,
		Period: m.Period.Or(5 * time.Minute), Interval: m.Interval.Or(10 * time.Second),
		Metrics: sr.app.AppMetrics(), Source: m.Source, Prometheus: m.Prometheus,
	}
	for _, hs := range steps {
		req.Canary = append(req.Canary, sr.hosts[hs.Host])
	}
	// Baseline: the hosts of this region not yet switched (and running an older
	// release), else the mirror source region.
	live, err := e.st.Live(ctx, sr.app.Name, sr.region.Name)
	if err != nil {
		return storeError{err}
	}
	for _, hs := range sr.stage.Hosts[end:] {
		if sha := live[hs.Host]; sha != "" && sha != sr.rel.SHA {
			req.Baseline = append(req.Baseline, sr.hosts[hs.Host])
			req.BaselineRegion = sr.region.Name
		}
	}
	if m.MirrorFrom != "" {
		src, _, err := e.region(sr.app, m.MirrorFrom)
		if err != nil {
			return err
		}
		req.Baseline, req.BaselineRegion = e.Hosts(sr.app, src), src.Name
	}
	if len(req.Baseline) == 0 {
		return storeErr(e.logf(ctx, sr.run.ID, sr.region.Name, "", "no baseline hosts to compare %s with; monitoring skipped", hostList(steps)))
	}
	if m.Calibrate {
		if len(req.Baseline) < 2 {
			if err := e.logf(ctx, sr.run.ID, sr.region.Name, "", "monitor.calibrate: %s has one host, none to measure it against; no A/A window recorded", req.BaselineRegion); err != nil {
				return storeError{err}
			}
		} else {
			req.Calibrate = CalibrationDir(e.cfg.Server.DataDir, sr.app.Name, sr.region.Name)
		}
	}
	if err := e.setStage(ctx, sr, store.StageMonitoring, fmt.Sprintf("monitoring %s against %s for %s", hostList(steps), req.BaselineRegion, req.Period)); err != nil {
		return err
	}
	var lookErr error
	v, err := e.monitor.Monitor(ctx, req, func(v judge.Verdict) {
		err := e.transition(ctx, change{kind: Looked, run: sr.run.ID, region: sr.region.Name, msg: fmt.Sprintf("interim verdict: %s (score %.0f)", v.Outcome, v.Score),
			write: func(ctx context.Context) error { return e.saveVerdict(ctx, sr, v) }})
		if err != nil && lookErr == nil {
			lookErr = err
		}
	})
	if err != nil {
		return fmt.Errorf("monitor %s: %w", sr.region.Name, err)
	}
	if lookErr != nil {
		return lookErr
	}
	if err := e.saveVerdict(ctx, sr, v); err != nil {
		return err
	}
	// A final verdict is Pass or Fail. Inconclusive comes only from a metric's policy
	// no_data: inconclusive, which lets the stage go on unjudged and says so (no_data:
	// fail makes no data block). A monitor ending on the interim Marginal has not
	// decided: that is no pass.
	switch v.Outcome {
	case judge.Pass:
		return storeErr(e.logf(ctx, sr.run.ID, sr.region.Name, "", "canary analysis: pass (score %.0f)", v.Score))
	case judge.Inconclusive:
		return storeErr(e.logf(ctx, sr.run.ID, sr.region.Name, "", "canary analysis inconclusive, not judged: %s; the stage goes on (no_data: fail would stop it)", v.Reason))
	case judge.Error:
		return fmt.Errorf("canary analysis could not measure %s: %s", sr.region.Name, v.Reason)
	case judge.Fail:
		return fmt.Errorf("canary analysis failed in %s: %s", sr.region.Name, v.Reason)
	}
	return fmt.Errorf("canary analysis in %s ended undecided (%s): %s", sr.region.Name, v.Outcome, v.Reason)
}

func (e *Engine) saveVerdict(ctx context.Context, sr *stageRun, v judge.Verdict) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return storeErr(e.st.UpdateStage(ctx, sr.stage.ID, store.StageUpdate{Verdict: string(b)}))
}

// hostStep records a host's step (point names the transition for Options.Persisted).
func (e *Engine) hostStep(ctx context.Context, sr *stageRun, host string, step store.StepState, prev, msg, point string) error {
	return e.transition(ctx, change{kind: HostChanged, run: sr.run.ID, region: sr.region.Name, host: host, point: point,
		write: func(ctx context.Context) error {
			return storeErr(e.st.SetHostStep(ctx, sr.stage.ID, host, step, prev, msg))
		}})
}

// failStage records a stage's failure. In production it first plans the rollback of
// every host the stage may have switched (the plan and the stage's new state are one
// write), then carries it out; a restart completes it.
func (e *Engine) failStage(ctx context.Context, sr *stageRun, r store.Run, s store.Stage, reason string) error {
	if sr != nil && sr.region.Production {
		rb, err := e.planStageRollback(ctx, sr, reason)
		if errors.Is(err, store.ErrStateChanged) {
			return nil // cancelled meanwhile: whoever cancelled it tells the story
		}
		if err != nil {
			return err
		}
		if rb.ID != 0 {
			return e.execRollback(ctx, sr.app, sr.region, rb)
		}
	}
	err := e.transition(ctx, change{kind: RunChanged, run: r.ID, region: s.Region, point: "stage-failed", msg: reason, write: func(ctx context.Context) error {
		return e.st.FailStage(ctx, r.ID, s.ID, store.StageFailed, store.RunFailed, reason)
	}})
	if errors.Is(err, store.ErrStateChanged) {
		return nil
	}
	return err
}

// parallel calls fn for every item at once and returns their errors joined.
func parallel[T any](items []T, fn func(T) error) error { return parallelN(items, 0, fn) }

// parallelN is parallel with at most n calls at a time (n <= 0: no limit).
func parallelN[T any](items []T, n int, fn func(T) error) error {
	if n <= 0 {
		n = len(items)
	}
	errs := make([]error, len(items))
	slots := make(chan struct{}, max(n, 1))
	var wg sync.WaitGroup
	for i, it := range items {
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			errs[i] = fn(it)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func hostList(steps []store.HostStep) string {
	var names []string
	for _, s := range steps {
		names = append(names, s.Host)
	}
	return strings.Join(names, ", ")
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// firstFailure picks the first useful line of a failed test's output.
func firstFailure(out string, err error) string {
	for _, l := range strings.Split(out, "\n") {
		t := strings.TrimSpace(l)
		if strings.HasPrefix(t, "FAIL") || strings.Contains(strings.ToLower(t), "error") {
			return t
		}
	}
	return err.Error()
}

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
	e.spawn(buildTask(r.ID), func(ctx context.Context) { e.build(ctx, a, r) })
}

func (e *Engine) build(ctx context.Context, a *config.App, r store.Run) {
	// The scheduler may have seen the run before an earlier build of it finished.
	if fresh, err := e.st.Run(ctx, r.ID); err != nil || fresh.State != store.RunBuilding {
		return
	}
	if rel, err := e.st.Release(ctx, a.Name, r.SHA); err == nil && rel.State == store.ReleaseReady {
		e.st.SetRunState(ctx, r.ID, store.RunRunning, "built")
		e.emitRun(ctx, RunChanged, r.ID, "", "", fmt.Sprintf("%s %s is already built", a.Name, short(r.SHA)))
		return
	}
	e.st.PutRelease(ctx, store.Release{App: a.Name, SHA: r.SHA, Subject: r.Subject, Author: r.Author, State: "building"})
	e.logf(ctx, r.ID, "", "", "building %s %s", a.Name, short(r.SHA))
	rel, err := e.builder.Build(ctx, a, r.SHA)
	if ctx.Err() != nil {
		return // stopping; the next Start builds again (idempotent)
	}
	if err != nil {
		e.st.PutRelease(ctx, store.Release{App: a.Name, SHA: r.SHA, Subject: r.Subject, Author: r.Author, State: "failed", Message: err.Error()})
		for _, s := range r.Stages {
			e.st.UpdateStage(ctx, s.ID, store.StageUpdate{State: store.StageSkipped, Message: "build failed"})
		}
		e.st.SetRunState(ctx, r.ID, store.RunFailed, "build failed: "+err.Error())
		e.emitRun(ctx, RunChanged, r.ID, "", "", "build failed: "+err.Error())
		return
	}
	e.st.PutRelease(ctx, store.Release{App: a.Name, SHA: r.SHA, Subject: r.Subject, Author: r.Author, State: "ready", Artifact: rel.Artifact, Checksum: rel.Checksum})
	e.st.SetRunState(ctx, r.ID, store.RunRunning, "built")
	e.emitRun(ctx, RunChanged, r.ID, "", "", fmt.Sprintf("built %s %s (sha256 %s)", a.Name, short(r.SHA), rel.Checksum[:12]))
}

// startStage runs (or resumes) a stage in its own goroutine.
func (e *Engine) startStage(a *config.App, r store.Run, s store.Stage) {
	e.spawn(stageTask(s.ID), func(ctx context.Context) {
		if err := e.execStage(ctx, a, r, s); err != nil && ctx.Err() == nil {
			e.log.Error("stage", "app", a.Name, "run", r.ID, "region", s.Region, "err", err)
		}
	})
}

func buildTask(runID int64) string   { return fmt.Sprintf("build/%d", runID) }
func stageTask(stageID int64) string { return fmt.Sprintf("stage/%d", stageID) }

// spawn runs fn in a goroutine of its own unless a task of that name is running; its
// context ends with the engine or with cancelTask. The scheduler is kicked when it ends.
func (e *Engine) spawn(name string, fn func(ctx context.Context)) {
	e.mu.Lock()
	if _, ok := e.tasks[name]; ok {
		e.mu.Unlock()
		return
	}
	ctx, cancel := context.WithCancel(e.ctx)
	t := &task{cancel: cancel, done: make(chan struct{})}
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
}

// task is a build or stage under way.
type task struct {
	cancel context.CancelFunc
	done   chan struct{} // closed when it has returned
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
	rel, err := e.st.Release(ctx, a.Name, r.SHA)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
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
			return e.failStage(ctx, sr, r, s, err.Error())
		}
	}
	err = e.st.UpdateStage(ctx, s.ID, store.StageUpdate{State: store.StageSucceeded, Message: "live on " + plural(len(s.Hosts), "host"), Finish: true,
		OnlyIf: store.ActiveStageStates})
	if err != nil {
		return err // cancelled meanwhile (a rollback), or the store failed
	}
	action := "deploy"
	if s.ApprovedBy != "" && r.Trigger != "deploy" {
		action = "promote"
	}
	e.st.AddHistory(ctx, store.HistoryEntry{App: a.Name, Region: s.Region, SHA: r.SHA, Action: action, Actor: s.ApprovedBy, ActorID: s.ApprovedByID, Via: s.ApprovedVia, RunID: r.ID})
	e.emitRun(ctx, StageChanged, r.ID, s.Region, "", fmt.Sprintf("%s %s passed %s", a.Name, short(r.SHA), s.Region))
	return nil
}

// execBatch deploys, tests and monitors hosts [start,end) of a stage, resuming each host
// from its persisted step.
func (e *Engine) execBatch(ctx context.Context, sr *stageRun, start, end int) error {
	// Reload: the host steps may have moved on since the stage started.
	fresh, err := e.st.Run(ctx, sr.run.ID)
	if err != nil {
		return err
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
		case store.HostPending, store.HostUploading, store.HostSwitching:
			deploy = append(deploy, hs)
			test = append(test, hs)
		case store.HostTesting, store.HostFailed:
			test = append(test, hs)
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
	if steps = test; len(test) > 0 && !sr.region.SkipTests && len(sr.app.Tests.Command) > 0 {
		if err := e.setStage(ctx, sr, store.StageTesting, fmt.Sprintf("testing %s", hostList(steps))); err != nil {
			return err
		}
		var mu sync.Mutex
		var outputs []string
		err := parallel(steps, func(hs store.HostStep) error {
			out, err := e.testHost(ctx, sr, hs)
			mu.Lock()
			outputs = append(outputs, fmt.Sprintf("== %s/%s\n%s", sr.region.Name, hs.Host, out))
			mu.Unlock()
			return err
		})
		e.st.UpdateStage(ctx, sr.stage.ID, store.StageUpdate{Tests: tail(strings.Join(outputs, "\n"), 8000)})
		if err != nil {
			return err
		}
	}
	if sr.region.Monitor != nil {
		if err := e.monitorBatch(ctx, sr, pending, end); err != nil {
			return err
		}
	}
	for _, hs := range pending {
		if err := e.st.SetHostStep(ctx, sr.stage.ID, hs.Host, store.HostDone, "", "live"); err != nil {
			return err
		}
	}
	e.emitRun(ctx, HostChanged, sr.run.ID, sr.region.Name, "", fmt.Sprintf("%s/%s done", sr.region.Name, hostList(pending)))
	return nil
}

// setStage moves a running stage to its next activity, unless it was cancelled meanwhile.
func (e *Engine) setStage(ctx context.Context, sr *stageRun, state store.StageState, msg string) error {
	err := e.st.UpdateStage(ctx, sr.stage.ID, store.StageUpdate{State: state, Message: msg,
		OnlyIf: store.ActiveStageStates})
	if err != nil {
		return err
	}
	e.emitRun(ctx, StageChanged, sr.run.ID, sr.region.Name, "", msg)
	return nil
}

// deployHost uploads and switches one host, re-checking a step that may have finished
// before a restart rather than repeating it.
func (e *Engine) deployHost(ctx context.Context, sr *stageRun, hs store.HostStep) error {
	h := sr.hosts[hs.Host]
	sha := sr.rel.SHA
	step := hs.Step
	if step == store.HostPending || step == store.HostUploading {
		prev := hs.PrevSHA
		if prev == "" {
			live, err := e.st.Live(ctx, sr.app.Name, sr.region.Name)
			if err != nil {
				return err
			}
			prev = live[hs.Host]
		}
		if err := e.hostStep(ctx, sr, hs.Host, store.HostUploading, prev, "uploading "+short(sha)); err != nil {
			return err
		}
		if err := sr.dep.Upload(ctx, h, sr.rel); err != nil {
			return fmt.Errorf("upload %s@%s to %s: %w", sr.app.Name, short(sha), h, err)
		}
		if err := e.hostStep(ctx, sr, hs.Host, store.HostSwitching, "", "switching to "+short(sha)); err != nil {
			return err
		}
		step = store.HostSwitching
	}
	if step == store.HostSwitching {
		if !e.alreadyLive(ctx, sr, h) {
			if err := sr.dep.Activate(ctx, h, sha); err != nil {
				return fmt.Errorf("deploy %s@%s to %s: %w", sr.app.Name, short(sha), h, err)
			}
		}
		if err := e.st.SetLive(ctx, sr.app.Name, sr.region.Name, hs.Host, sha); err != nil {
			return err
		}
		return e.hostStep(ctx, sr, hs.Host, store.HostTesting, "", "live; testing")
	}
	return nil
}

// alreadyLive re-checks a switch that may have happened before a restart: the host's
// current release is this one and the deployer finds it healthy.
func (e *Engine) alreadyLive(ctx context.Context, sr *stageRun, h deployers.Host) bool {
	st, err := sr.dep.State(ctx, h)
	if err != nil || st.Current != sr.rel.SHA {
		return false
	}
	return sr.dep.Healthy(ctx, h) == nil
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

func (e *Engine) testHost(ctx context.Context, sr *stageRun, hs store.HostStep) (string, error) {
	h := sr.hosts[hs.Host]
	out, err := e.tester.Test(ctx, sr.rel, h, testsFor(sr.app, sr.rel, h))
	if err != nil {
		e.hostStep(ctx, sr, hs.Host, store.HostFailed, "", "tests failed")
		return out, fmt.Errorf("integration tests failed on %s: %s", h, firstFailure(out, err))
	}
	return out, e.hostStep(ctx, sr, hs.Host, store.HostMonitoring, "", "tests passed")
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
		return err
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
		e.logf(ctx, sr.run.ID, sr.region.Name, "", "no baseline hosts to compare %s with; monitoring skipped", hostList(steps))
		return nil
	}
	if err := e.setStage(ctx, sr, store.StageMonitoring, fmt.Sprintf("monitoring %s against %s for %s", hostList(steps), req.BaselineRegion, req.Period)); err != nil {
		return err
	}
	for _, hs := range steps {
		e.hostStep(ctx, sr, hs.Host, store.HostMonitoring, "", "monitoring")
	}
	v, err := e.monitor.Monitor(ctx, req, func(v judge.Verdict) {
		e.saveVerdict(ctx, sr, v)
		e.emitRun(ctx, Looked, sr.run.ID, sr.region.Name, "", fmt.Sprintf("interim verdict: %s (score %.0f)", v.Outcome, v.Score))
	})
	if err != nil {
		return fmt.Errorf("monitor %s: %w", sr.region.Name, err)
	}
	e.saveVerdict(ctx, sr, v)
	switch v.Outcome {
	case judge.Fail:
		return fmt.Errorf("canary analysis failed in %s: %s", sr.region.Name, v.Reason)
	case judge.Error:
		return fmt.Errorf("canary analysis could not measure %s: %s", sr.region.Name, v.Reason)
	}
	e.logf(ctx, sr.run.ID, sr.region.Name, "", "canary analysis: %s (score %.0f)", v.Outcome, v.Score)
	return nil
}

func (e *Engine) saveVerdict(ctx context.Context, sr *stageRun, v judge.Verdict) {
	b, _ := json.Marshal(v)
	e.st.UpdateStage(ctx, sr.stage.ID, store.StageUpdate{Verdict: string(b)})
}

func (e *Engine) hostStep(ctx context.Context, sr *stageRun, host string, step store.StepState, prev, msg string) error {
	if err := e.st.SetHostStep(ctx, sr.stage.ID, host, step, prev, msg); err != nil {
		return err
	}
	e.emitRun(ctx, HostChanged, sr.run.ID, sr.region.Name, host, "")
	return nil
}

// failStage records a stage's failure; in production it first rolls back every host the
// stage switched.
func (e *Engine) failStage(ctx context.Context, sr *stageRun, r store.Run, s store.Stage, reason string) error {
	if fresh, err := e.st.Run(ctx, r.ID); err == nil {
		for _, st := range fresh.Stages {
			if st.ID == s.ID && !st.State.Active() {
				return nil // cancelled meanwhile: whoever cancelled it tells the story
			}
		}
	}
	state := store.StageFailed
	if sr != nil && sr.region.Production {
		n, err := e.rollbackTouched(ctx, sr)
		if n > 0 {
			state = store.StageRolledBack
			reason += fmt.Sprintf("; rolled back %s", plural(n, "host"))
		}
		if err != nil {
			reason += "; rollback failed: " + err.Error()
		}
	}
	err := e.st.UpdateStage(ctx, s.ID, store.StageUpdate{State: state, Message: reason, Finish: true,
		OnlyIf: store.ActiveStageStates})
	if errors.Is(err, store.ErrStateChanged) {
		return nil
	}
	if err != nil {
		return err
	}
	if state == store.StageFailed {
		e.markHostsFailed(ctx, r.ID, s.ID)
	}
	for _, later := range r.Stages {
		if later.Position > s.Position && later.State.Waiting() {
			e.st.UpdateStage(ctx, later.ID, store.StageUpdate{State: store.StageSkipped, Message: "skipped: " + s.Region + " failed"})
		}
	}
	if err := e.st.SetRunState(ctx, r.ID, store.RunFailed, reason); err != nil {
		return err
	}
	e.emitRun(ctx, StageChanged, r.ID, s.Region, "", reason)
	e.emitRun(ctx, RunChanged, r.ID, s.Region, "", reason)
	return nil
}

// rollbackTouched puts every host this stage switched back on what ran there before.
func (e *Engine) rollbackTouched(ctx context.Context, sr *stageRun) (int, error) {
	fresh, err := e.st.Run(ctx, sr.run.ID)
	if err != nil {
		return 0, err
	}
	var touched []store.HostStep
	for _, s := range fresh.Stages {
		if s.ID != sr.stage.ID {
			continue
		}
		for _, hs := range s.Hosts {
			if hs.Step != store.HostPending && hs.Step != store.HostUploading && hs.PrevSHA != "" && hs.Step != store.HostRolledBack {
				touched = append(touched, hs)
			}
		}
	}
	err = parallel(touched, func(hs store.HostStep) error {
		h := sr.hosts[hs.Host]
		e.hostStep(ctx, sr, hs.Host, store.HostRollingBack, "", "rolling back to "+short(hs.PrevSHA))
		if err := sr.dep.Activate(ctx, h, hs.PrevSHA); err != nil {
			return fmt.Errorf("roll back %s to %s: %w", h, short(hs.PrevSHA), err)
		}
		if err := e.st.SetLive(ctx, sr.app.Name, sr.region.Name, hs.Host, hs.PrevSHA); err != nil {
			return err
		}
		return e.hostStep(ctx, sr, hs.Host, store.HostRolledBack, "", "rolled back to "+short(hs.PrevSHA))
	})
	if len(touched) > 0 {
		e.st.AddHistory(ctx, store.HistoryEntry{App: sr.app.Name, Region: sr.region.Name, SHA: touched[0].PrevSHA, Action: "rollback", Actor: "immunity (automatic)", RunID: sr.run.ID})
		e.emit(ctx, Event{Kind: RolledBack, App: sr.app.Name, Region: sr.region.Name, SHA: touched[0].PrevSHA,
			Actor: Actor{ID: "engine", Name: "immunity", Via: "engine", Admin: true}, Message: fmt.Sprintf("automatic rollback of %s to %s", hostList(touched), short(touched[0].PrevSHA))})
	}
	return len(touched), err
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

// markHostsFailed ends the host steps a failed stage left in the middle of something.
func (e *Engine) markHostsFailed(ctx context.Context, runID, stageID int64) {
	fresh, err := e.st.Run(ctx, runID)
	if err != nil {
		return
	}
	for _, st := range fresh.Stages {
		if st.ID != stageID {
			continue
		}
		for _, hs := range st.Hosts {
			switch hs.Step {
			case store.HostUploading, store.HostSwitching, store.HostTesting, store.HostMonitoring:
				e.st.SetHostStep(ctx, stageID, hs.Host, store.HostFailed, "", "stopped: the stage failed")
			}
		}
	}
}

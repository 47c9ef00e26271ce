package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/immunity-app/immunity/deployers"
	"github.com/immunity-app/immunity/internal/logctx"
	"github.com/immunity-app/immunity/internal/wait"
	"github.com/immunity-app/immunity/pipeline/config"
	"github.com/immunity-app/immunity/store"
)

// A rollback, automatic (a failed production stage) or asked for by a person, is a plan
// in the store (store.Rollback: which hosts, from which release, to which) written before
// the first host is touched. Each host then goes through the same recorded steps as a
// deploy (switching, restarting, checking, done); a restart of Immunity completes open
// plans before anything else runs in their region.

// engineActor is who rolls back a failed production stage.
var engineActor = Actor{ID: "engine", Name: "immunity", Via: "engine", Admin: true}

// planStageRollback records the rollback of every host a failed production stage may have
// switched, and the stage's move to rolling_back, in one write. A host whose switch had
// not been asked for is left alone; so is a host with no earlier release (rb.ID is 0 when
// nothing needs to go back).
func (e *Engine) planStageRollback(ctx context.Context, sr *stageRun, reason string) (store.Rollback, error) {
	fresh, err := e.st.Run(ctx, sr.run.ID)
	if err != nil {
		return store.Rollback{}, storeError{err}
	}
	live, err := e.st.Live(ctx, sr.app.Name, sr.region.Name)
	if err != nil {
		return store.Rollback{}, storeError{err}
	}
	rb := store.Rollback{App: sr.app.Name, Region: sr.region.Name, RunID: sr.run.ID, StageID: sr.stage.ID,
		Actor: engineActor.Name, ActorID: engineActor.ID, Via: engineActor.Via, Reason: reason}
	for _, s := range fresh.Stages {
		if s.ID != sr.stage.ID {
			continue
		}
		if !s.State.Active() || s.State == store.StageRollingBack {
			return store.Rollback{}, store.ErrStateChanged
		}
		for _, hs := range s.Hosts {
			if hs.Step.Switched() && hs.PrevSHA != "" {
				rb.Hosts = append(rb.Hosts, store.RollbackHost{Host: hs.Host, From: live[hs.Host], To: hs.PrevSHA})
			}
		}
	}
	if len(rb.Hosts) == 0 {
		return store.Rollback{}, nil
	}
	var planned store.Rollback
	err = e.transition(ctx, change{kind: StageChanged, run: sr.run.ID, region: sr.region.Name, point: "rollback-plan",
		msg: fmt.Sprintf("%s; rolling back %s", reason, rollbackHostList(rb.Hosts)),
		write: func(ctx context.Context) error {
			var err error
			planned, err = e.st.PlanRollback(ctx, rb)
			if err != nil && !errors.Is(err, store.ErrStateChanged) {
				return storeError{err}
			}
			return err
		}})
	return planned, err
}

// execRollback carries out (or completes, after a restart) a rollback plan: every host not
// yet done, in parallel; then the plan ends and, for an automatic one, its stage and run.
// A host that cannot be switched back leaves the plan open: it is tried again later, and
// nothing else runs in the region meanwhile.
func (e *Engine) execRollback(ctx context.Context, a *config.App, reg *config.Region, rb store.Rollback) error {
	start := time.Now()
	ctx = logctx.With(ctx, slog.String("app", a.Name), slog.String("region", reg.Name), slog.Int64("rollback", rb.ID))
	// The plan as it stands now: a task started from an older reading may find it done.
	rb, err := e.st.Rollback(ctx, rb.ID)
	if err != nil {
		return storeError{err}
	}
	if rb.State != store.RollbackPlanned {
		return nil
	}
	dep, err := e.deployer(a, reg)
	if err != nil {
		return err
	}
	hosts := map[string]deployers.Host{}
	for _, h := range e.Hosts(a, reg) {
		hosts[h.Name] = h
	}
	point := "rollback"
	if rb.StageID == 0 {
		point = "manual-rollback"
	}
	var todo []store.RollbackHost
	for _, rh := range rb.Hosts {
		if rh.Step != store.HostDone {
			todo = append(todo, rh)
		}
	}
	err = parallel(todo, func(rh store.RollbackHost) error {
		h, ok := hosts[rh.Host]
		if !ok {
			return fmt.Errorf("roll back %s/%s: the host is no longer in the config", reg.Name, rh.Host)
		}
		return e.rollbackHost(ctx, a, reg, dep, rb, rh, h, point)
	})
	if err != nil {
		return err
	}
	rb, err = e.st.Rollback(ctx, rb.ID)
	if err != nil {
		return storeError{err}
	}
	moved := 0
	for _, rh := range rb.Hosts {
		if rh.From != rh.To {
			moved++
		}
	}
	to := ""
	if len(rb.Hosts) > 0 {
		to = rb.Hosts[0].To
	}
	if rb.StageID != 0 {
		msg := fmt.Sprintf("%s; rolled back %s", rb.Reason, plural(moved, "host"))
		err := e.transition(ctx, change{kind: RunChanged, run: rb.RunID, region: rb.Region, point: point + "-done", msg: msg,
			write: func(ctx context.Context) error {
				return storeErr(e.st.FinishRollback(ctx, rb, store.RollbackDone, moved, msg))
			}})
		if err != nil {
			return err
		}
		e.pruneDisk(ctx, a)
		if moved == 0 {
			return nil // no host had left its release: nothing was rolled back
		}
		return e.regionEvent(ctx, Event{Kind: RolledBack, App: rb.App, Region: rb.Region, SHA: to, Actor: engineActor,
			Message: fmt.Sprintf("automatic rollback of %s to %s", rollbackHostList(rb.Hosts), short(to))}, "", nil)
	}
	who := Actor{ID: rb.ActorID, Name: rb.Actor, Via: rb.Via}
	msg := fmt.Sprintf("rolled back %s %s to %s (was %s) on %s in %.1fs", rb.App, rb.Region, short(to), short(majorityFrom(rb.Hosts)),
		plural(moved, "host"), time.Since(start).Seconds())
	return e.regionEvent(ctx, Event{Kind: RolledBack, App: rb.App, Region: rb.Region, SHA: to, Actor: who, Message: msg}, point+"-done",
		func(ctx context.Context) error {
			return storeErr(e.st.FinishRollback(ctx, rb, store.RollbackDone, moved, msg))
		})
}

// rollbackHost takes one host of a plan back to its release: it asks the host what it
// runs first (the store may not know whether a switch that was cut off happened), then
// switches, restarts and checks it, recording each step before it starts. Connection
// trouble is retried a few times.
func (e *Engine) rollbackHost(ctx context.Context, a *config.App, reg *config.Region, dep deployers.Deployer, rb store.Rollback, rh store.RollbackHost, h deployers.Host, point string) error {
	ctx = hostLog(ctx, rh.Host)
	step := func(ctx context.Context, s store.StepState, msg, p string) error {
		return e.rollbackStep(ctx, rb, rh.Host, s, msg, point+"-"+p)
	}
	try := func(ctx context.Context) error {
		if rh.Step == store.HostPending || rh.Step == store.HostUploading || rh.Step == store.HostFailed {
			st, err := dep.State(ctx, h)
			if err != nil {
				return fmt.Errorf("ask %s what it runs: %w", h, err)
			}
			if st.Current != rh.From {
				// The host's live release and the plan's From for it, in one write.
				found := func(ctx context.Context) error { return storeErr(e.st.RollbackHostFound(ctx, rb, rh.Host, st.Current)) }
				if err := e.reconciled(ctx, a, reg, h, st.Current, rh.From, "rollback-found", found); err != nil {
					return err
				}
				rh.From = st.Current
			}
			if !slices.Contains(st.Releases, rh.To) {
				if err := e.uploadRelease(ctx, dep, h, a.Name, rh.To); err != nil {
					return err
				}
			}
			if err := step(ctx, store.HostSwitching, "switching back to "+short(rh.To), "switch"); err != nil {
				return err
			}
			rh.Step = store.HostSwitching
		}
		if rh.Step == store.HostSwitching {
			if err := dep.Switch(ctx, h, rh.To); err != nil {
				return fmt.Errorf("roll back %s to %s: %w", h, short(rh.To), err)
			}
			if err := step(ctx, store.HostRestarting, "restarting "+short(rh.To), "restart"); err != nil {
				return err
			}
			rh.Step = store.HostRestarting
		}
		if rh.Step == store.HostRestarting {
			if err := dep.Restart(ctx, h); err != nil {
				return fmt.Errorf("roll back %s to %s: %w", h, short(rh.To), err)
			}
			if err := step(ctx, store.HostChecking, "checking health", "health"); err != nil {
				return err
			}
			rh.Step = store.HostChecking
		}
		if err := dep.Healthy(ctx, h); err != nil {
			return fmt.Errorf("roll back %s to %s: %w", h, short(rh.To), err)
		}
		st, err := dep.State(ctx, h)
		if err != nil {
			return fmt.Errorf("check %s after its rollback: %w", h, err)
		}
		if st.Current != rh.To {
			rh.Step = store.HostSwitching
			return fmt.Errorf("%s runs %s after its rollback to %s", h, orNothing(short(st.Current)), short(rh.To))
		}
		return step(ctx, store.HostDone, "rolled back to "+short(rh.To), "host")
	}
	var last error
	for attempt := 0; attempt < 3; attempt++ {
		if last = try(ctx); last == nil || ctx.Err() != nil {
			return last
		}
		var se storeError
		if errors.As(last, &se) {
			return last
		}
		e.log.WarnContext(ctx, "rollback step failed; trying again", "app", a.Name, "region", reg.Name, "host", rh.Host, "rollback", rb.ID, "err", last)
		if wait.Sleep(ctx, time.Duration(attempt+1)*500*time.Millisecond) != nil {
			return ctx.Err()
		}
	}
	return last
}

// rollbackStep records a host's step in a rollback plan and tells the listeners (of the
// run, for an automatic rollback; of the region otherwise).
func (e *Engine) rollbackStep(ctx context.Context, rb store.Rollback, host string, step store.StepState, msg, point string) error {
	write := func(ctx context.Context) error { return storeErr(e.st.SetRollbackStep(ctx, rb, host, step, msg)) }
	if rb.RunID != 0 {
		return e.transition(ctx, change{kind: HostChanged, run: rb.RunID, region: rb.Region, host: host, point: point, write: write})
	}
	return e.regionEvent(ctx, Event{Kind: HostChanged, App: rb.App, Region: rb.Region, Host: host}, point, write)
}

// uploadRelease puts a built release on a host (a rollback target that was pruned there).
func (e *Engine) uploadRelease(ctx context.Context, dep deployers.Deployer, h deployers.Host, app, sha string) error {
	rel, err := e.st.Release(ctx, app, sha)
	if err != nil {
		return fmt.Errorf("roll back %s to %s: %w", h, short(sha), err)
	}
	if rel.State != store.ReleaseReady {
		return fmt.Errorf("roll back %s to %s: %w (it is %s)", h, short(sha), ErrUnknownRelease, rel.State)
	}
	return dep.Upload(ctx, h, deployers.Release{App: app, SHA: rel.SHA, Artifact: rel.Artifact, Checksum: rel.Checksum})
}

// resumeRollbacks completes the rollbacks a person asked for that a stop left open
// (automatic ones are completed by their stage, which stays active). Each runs as a task
// of its own; the scheduler starts them again while they stay open.
func (e *Engine) resumeRollbacks(open []store.Rollback) {
	for _, rb := range open {
		if rb.StageID != 0 || e.running(rollbackTask(rb.ID)) {
			continue
		}
		a, err := e.app(rb.App)
		if err != nil {
			e.log.Error("open rollback of an app no longer configured", "app", rb.App, "rollback", rb.ID)
			continue
		}
		reg, _, err := e.region(a, rb.Region)
		if err != nil {
			e.log.Error("open rollback of a region no longer configured", "app", rb.App, "region", rb.Region, "rollback", rb.ID)
			continue
		}
		e.log.Info("completing rollback", "app", rb.App, "region", rb.Region, "rollback", rb.ID)
		e.spawn(rb.App, rollbackTask(rb.ID), func(ctx context.Context) {
			if err := e.execRollback(ctx, a, reg, rb); err != nil && ctx.Err() == nil {
				e.log.Error("rollback", "app", rb.App, "region", rb.Region, "rollback", rb.ID, "err", err)
			}
		})
	}
}

func rollbackTask(id int64) string { return fmt.Sprintf("rollback/%d", id) }

func rollbackHostList(hs []store.RollbackHost) string {
	var names []string
	for _, h := range hs {
		names = append(names, h.Host)
	}
	return strings.Join(names, ", ")
}

// majorityFrom is the release most hosts of a plan ran before it.
func majorityFrom(hs []store.RollbackHost) string {
	from := map[string]string{}
	for _, h := range hs {
		from[h.Host] = h.From
	}
	return majority(from)
}

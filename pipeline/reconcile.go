package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/immunity-app/immunity/deployers"
	"github.com/immunity-app/immunity/pipeline/config"
	"github.com/immunity-app/immunity/store"
)

// Reconciliation: the store says what each host runs (store.Live); the hosts know. On
// every start, after a step whose outcome is unknown (a kill, a cut connection, a
// cancelled switch) and before a run is said to be live everywhere, the engine asks the
// hosts (Deployer.State reads `current`) and makes the store agree, recording
// "prod3/host2 found on X, store said Y" in the log of the run deploying there (or of the
// region) and telling the listeners (Reconciled), so Slack, GitHub and the dashboard say
// it too.

// reconcileRegion asks every host of a region what it runs and corrects the store; it
// returns the hosts' answers (host -> SHA) and the errors of hosts that could not be asked.
func (e *Engine) reconcileRegion(ctx context.Context, a *config.App, reg *config.Region) (map[string]string, error) {
	dep, err := e.deployer(a, reg)
	if err != nil {
		return nil, err
	}
	live, err := e.st.Live(ctx, a.Name, reg.Name)
	if err != nil {
		return nil, storeError{err}
	}
	found := map[string]string{}
	var errs []error
	hosts := e.Hosts(a, reg)
	states := make([]deployers.HostState, len(hosts))
	asked := make([]error, len(hosts))
	parallelN(indexes(len(hosts)), 8, func(i int) error {
		states[i], asked[i] = dep.State(ctx, hosts[i])
		return nil
	})
	for i, h := range hosts {
		if asked[i] != nil {
			errs = append(errs, asked[i])
			continue
		}
		cur := states[i].Current
		found[h.Name] = cur
		if cur != live[h.Name] {
			if err := e.reconcileHost(ctx, a, reg, h, cur, live[h.Name]); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if len(errs) > 0 {
		return found, fmt.Errorf("reconcile %s %s: %w", a.Name, reg.Name, errors.Join(errs...))
	}
	return found, nil
}

// reconcileHost records that a host runs cur while the store said said, makes the store
// agree and tells the listeners; the event goes to the log of the run whose stage is
// active in the region, if any.
func (e *Engine) reconcileHost(ctx context.Context, a *config.App, reg *config.Region, h deployers.Host, cur, said string) error {
	return e.reconciled(ctx, a, reg, h, cur, said, "reconcile", func(ctx context.Context) error { return storeErr(e.st.SetLive(ctx, a.Name, reg.Name, h.Name, cur)) })
}

// reconciled is reconcileHost with the write that makes the store agree (the host's live
// release, and whatever else was said of it); point names it for Options.Persisted.
func (e *Engine) reconciled(ctx context.Context, a *config.App, reg *config.Region, h deployers.Host, cur, said, point string, write func(ctx context.Context) error) error {
	msg := fmt.Sprintf("%s found on %s, store said %s", h, orNothing(short(cur)), orNothing(short(said)))
	e.log.Warn("reconciled", "app", a.Name, "region", reg.Name, "host", h.Name, "found", cur, "store", said)
	run, err := e.activeRun(ctx, a.Name, reg.Name)
	if err != nil {
		return err
	}
	if run != 0 {
		return e.transition(ctx, change{kind: Reconciled, run: run, region: reg.Name, host: h.Name, point: point, msg: msg, write: write})
	}
	return e.regionEvent(ctx, Event{Kind: Reconciled, App: a.Name, Region: reg.Name, Host: h.Name, SHA: cur, Message: msg}, point, write)
}

// activeRun is the run whose stage is active in a region (0: none).
func (e *Engine) activeRun(ctx context.Context, app, region string) (int64, error) {
	runs, err := e.st.Runs(ctx, app, true, 0)
	if err != nil {
		return 0, storeError{fmt.Errorf("runs of %s: %w", app, err)}
	}
	for _, r := range runs {
		for _, s := range r.Stages {
			if s.Region == region && s.State.Active() {
				return r.ID, nil
			}
		}
	}
	return 0, nil
}

// hostsNotOn reconciles the regions of an app and reports the hosts that do not run sha.
func (e *Engine) hostsNotOn(ctx context.Context, a *config.App, sha string) ([]string, error) {
	var other []string
	for j := range a.Regions {
		reg := &a.Regions[j]
		found, err := e.reconcileRegion(ctx, a, reg)
		if err != nil {
			return nil, err
		}
		for _, h := range reg.Hosts {
			if got := found[h.Name]; got != sha {
				other = append(other, fmt.Sprintf("%s/%s runs %s", reg.Name, h.Name, orNothing(short(got))))
			}
		}
	}
	return other, nil
}

func indexes(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// Resuming lists the hosts ("app/region/host") whose recorded step is a switch or a
// restart under way, in a stage or a rollback: the engine restarts their app itself when
// it resumes, so nothing else should start it before.
func (e *Engine) Resuming(ctx context.Context) (map[string]bool, error) {
	out := map[string]bool{}
	runs, err := e.st.Runs(ctx, "", true, 0)
	if err != nil {
		return nil, err
	}
	for _, r := range runs {
		for _, s := range r.Stages {
			for _, h := range s.Hosts {
				if s.State.Active() && (h.Step == store.HostSwitching || h.Step == store.HostRestarting) {
					out[r.App+"/"+s.Region+"/"+h.Host] = true
				}
			}
		}
	}
	open, err := e.st.OpenRollbacks(ctx)
	if err != nil {
		return nil, err
	}
	for _, rb := range open {
		for _, h := range rb.Hosts {
			if h.Step == store.HostSwitching || h.Step == store.HostRestarting {
				out[rb.App+"/"+rb.Region+"/"+h.Host] = true
			}
		}
	}
	return out, nil
}

// waitingMessage is the message of a run waiting for promotion to a region.
func waitingMessage(region string) string { return "waiting for promotion to " + region }

// readyMessage is the line of a run's log that says it waits for a person's promotion.
func readyMessage(a *config.App, r *store.Run, region string) string {
	return fmt.Sprintf("%s %s is ready for %s: promote it with `promote %s %s`", a.Name, short(r.SHA), region, a.Name, region)
}

// healRuns puts right, on a start or a takeover, what an older binary that wrote one
// transition in several steps may have left half done, and tells the listeners (the old
// write stopped before its event). Each repair is one guarded write: a run that moved on
// meanwhile is left as it is.
//   - A run still running whose next stage is awaiting promotion, with no stage in
//     progress, waits for that promotion, with the message it would have had.
//   - A run not finished whose next stage was cancelled by a newer run (its message says
//     "superseded by") is superseded, with its later stages cancelled.
//   - A run still building with stages skipped by a failed build, its release failed,
//     fails, with every stage skipped.
//   - A deploy whose stage was never approved (its run was written first) is cancelled:
//     nobody is recorded as having asked for it.
//   - A finished run with a stage a person asked to re-run is re-run: the later stages
//     come back and the run runs, as the re-run would have left them.
func (e *Engine) healRuns(ctx context.Context, a *config.App) error {
	runs, err := e.st.Runs(ctx, a.Name, true, 0)
	if err != nil {
		return storeError{fmt.Errorf("runs of %s: %w", a.Name, err)}
	}
	ended, err := e.st.EndedRunsWaiting(ctx, a.Name)
	if err != nil {
		return storeError{err}
	}
	var errs []error
	heal := func(r *store.Run, what, region, msg string, write func(ctx context.Context) error) {
		e.log.Warn("healed", "app", a.Name, "run", r.ID, "region", region, "store", what)
		err := e.transition(ctx, change{kind: RunChanged, run: r.ID, region: region, msg: msg, write: write})
		if err != nil && !errors.Is(err, store.ErrStateChanged) {
			errs = append(errs, err)
		}
	}
	for i := range runs {
		r := &runs[i]
		n := nextStage(r)
		switch {
		case r.State == store.RunRunning && n != nil && n.State == store.StageAwaitingApproval && !inProgress(r):
			e.log.Warn("healed", "app", a.Name, "run", r.ID, "region", n.Region, "store", "stage awaiting promotion in a running run")
			// As the scheduler tells it.
			err := e.transition(ctx, change{kind: StageChanged, run: r.ID, region: n.Region, msg: readyMessage(a, r, n.Region),
				write: func(ctx context.Context) error {
					return e.st.MoveStageAndRun(ctx, n.ID, store.StageUpdate{OnlyIf: []store.StageState{store.StageAwaitingApproval}}, r.ID, store.RunWaiting, waitingMessage(n.Region))
				}})
			if err != nil && !errors.Is(err, store.ErrStateChanged) {
				errs = append(errs, err)
			}
		case r.State != store.RunBuilding && n != nil && n.State == store.StageCancelled && strings.HasPrefix(n.Message, supersededPrefix):
			heal(r, "stage superseded in a run not superseded", n.Region, n.Message, func(ctx context.Context) error {
				return e.st.EndRun(ctx, store.RunEnd{RunID: r.ID, StageID: n.ID, OnlyIf: []store.StageState{store.StageCancelled},
					Stage: store.StageCancelled, Run: store.RunSuperseded, Message: n.Message})
			})
		case r.State == store.RunBuilding && skippedByBuild(r):
			rel, err := e.st.Release(ctx, a.Name, r.SHA)
			if err != nil || rel.State != store.ReleaseFailed {
				errs = append(errs, fmt.Errorf("run %d is building with stages skipped by a failed build, but its release is not failed (%s): %v", r.ID, rel.State, err))
				continue
			}
			why := buildFailedPrefix + rel.Message
			heal(r, "stages skipped by a failed build in a run still building", "", why, func(ctx context.Context) error {
				return e.st.FinishBuild(ctx, r.ID, rel, why)
			})
		case r.Trigger == TriggerDeploy && len(r.Stages) == 1 && r.Stages[0].ApprovedBy == "" && r.Stages[0].ApprovedByID == "" && r.Stages[0].State.Waiting():
			s := r.Stages[0]
			msg := fmt.Sprintf("cancelled: the deploy of %s %s to %s by %s was cut off before it was approved; ask for it again", a.Name, short(r.SHA), s.Region, orNothing(r.Actor))
			heal(r, "deploy never approved", s.Region, msg, func(ctx context.Context) error {
				return e.st.EndRun(ctx, store.RunEnd{RunID: r.ID, StageID: s.ID, Stage: store.StageCancelled, Run: store.RunCancelled, Message: msg})
			})
		}
	}
	for i := range ended {
		r := &ended[i]
		for _, s := range r.Stages {
			if s.State != store.StagePending || !strings.HasPrefix(s.Message, rerunPrefix) {
				continue
			}
			msg := fmt.Sprintf("re-running %s of %s (%s)", s.Region, short(r.SHA), s.Message)
			heal(r, "stage re-run in a finished run", s.Region, msg, func(ctx context.Context) error {
				return e.st.RerunStage(ctx, r.ID, s.ID, store.StagePending, s.Message, rerunRunMessage(s.Region))
			})
			break
		}
	}
	return errors.Join(errs...)
}

// retell tells the listeners, on a start or a takeover, the state of the app's runs in
// flight and of the run that ended last. Each transition is written before it is told,
// so a server that died right after a write told no one of it: without this, Slack, GitHub
// and the dashboard would show the run as it was before (a run ended by that write has no
// later transition to tell it). The reports are keyed by what they say (Slack's posts,
// GitHub's check runs, a root's content), so what was told before is not repeated.
func (e *Engine) retell(ctx context.Context, a *config.App) error {
	active, err := e.st.Runs(ctx, a.Name, true, 0)
	if err != nil {
		return storeError{fmt.Errorf("runs of %s: %w", a.Name, err)}
	}
	recent, err := e.st.Runs(ctx, a.Name, false, 50)
	if err != nil {
		return storeError{fmt.Errorf("runs of %s: %w", a.Name, err)}
	}
	var last *store.Run // the run that ended last: the only one a dead server may have ended untold
	for i := range recent {
		if r := &recent[i]; r.State.Terminal() && (last == nil || r.Updated.After(last.Updated)) {
			last = r
		}
	}
	tell := active
	if last != nil {
		tell = append(tell, *last)
	}
	e.emitMu.Lock()
	defer e.emitMu.Unlock()
	for _, r := range tell {
		fresh, err := e.st.Run(ctx, r.ID)
		if err != nil {
			return storeError{fmt.Errorf("run %d: %w", r.ID, err)}
		}
		e.deliver(ctx, Event{Kind: RunChanged, Run: fresh, SHA: fresh.SHA, Again: true})
	}
	return nil
}

// skippedByBuild reports whether a failed build skipped a stage of a run.
func skippedByBuild(r *store.Run) bool {
	for _, s := range r.Stages {
		if s.State == store.StageSkipped && s.Message == store.BuildFailedStage {
			return true
		}
	}
	return false
}

// inProgress reports whether a stage of a run is doing work in its region.
func inProgress(r *store.Run) bool {
	for _, s := range r.Stages {
		if s.State.Active() {
			return true
		}
	}
	return false
}

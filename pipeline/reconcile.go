package pipeline

import (
	"context"
	"errors"
	"fmt"

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
	msg := fmt.Sprintf("%s found on %s, store said %s", h, orNothing(short(cur)), orNothing(short(said)))
	e.log.Warn("reconciled", "app", a.Name, "region", reg.Name, "host", h.Name, "found", cur, "store", said)
	write := func(ctx context.Context) error { return storeErr(e.st.SetLive(ctx, a.Name, reg.Name, h.Name, cur)) }
	run, err := e.activeRun(ctx, a.Name, reg.Name)
	if err != nil {
		return err
	}
	if run != 0 {
		return e.transition(ctx, change{kind: Reconciled, run: run, region: reg.Name, host: h.Name, msg: msg, write: write})
	}
	return e.regionEvent(ctx, Event{Kind: Reconciled, App: a.Name, Region: reg.Name, Host: h.Name, SHA: cur, Message: msg}, "", write)
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

// healRuns puts right, on a start or a takeover, what an older binary that wrote a stage
// and its run in two steps may have left half done: a run still running whose next stage
// is awaiting promotion, with no stage in progress, waits for that promotion, with the
// message it would have had. A stage promoted meanwhile is left as it is.
func (e *Engine) healRuns(ctx context.Context, a *config.App) error {
	runs, err := e.st.Runs(ctx, a.Name, true, 0)
	if err != nil {
		return storeError{fmt.Errorf("runs of %s: %w", a.Name, err)}
	}
	var errs []error
	for i := range runs {
		r := &runs[i]
		n := nextStage(r)
		if r.State != store.RunRunning || n == nil || n.State != store.StageAwaitingApproval || inProgress(r) {
			continue
		}
		e.log.Warn("healed", "app", a.Name, "run", r.ID, "region", n.Region, "store", "stage awaiting promotion in a running run")
		// The listeners were never told (the old write stopped before its event): as the
		// scheduler tells them.
		err := e.transition(ctx, change{kind: StageChanged, run: r.ID, region: n.Region, msg: readyMessage(a, r, n.Region),
			write: func(ctx context.Context) error {
				return e.st.MoveStageAndRun(ctx, n.ID, store.StageUpdate{OnlyIf: []store.StageState{store.StageAwaitingApproval}}, r.ID, store.RunWaiting, waitingMessage(n.Region))
			}})
		if err != nil && !errors.Is(err, store.ErrStateChanged) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
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

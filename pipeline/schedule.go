package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/immunity-app/immunity/pipeline/config"
	"github.com/immunity-app/immunity/store"
)

// nextStage is the first stage of a run that has not succeeded or been skipped.
func nextStage(r *store.Run) *store.Stage {
	for i := range r.Stages {
		if s := r.Stages[i].State; s != store.StageSucceeded && s != store.StageSkipped {
			return &r.Stages[i]
		}
	}
	return nil
}

// schedule looks at every run in flight of the apps whose lease it holds and moves each
// as far as it can go now.
func (e *Engine) schedule(ctx context.Context) error {
	runs, err := e.st.Runs(ctx, "", true, 0) // newest first
	if err != nil {
		return err
	}
	// Rollbacks a person asked for that are still open: complete them first.
	open, err := e.st.OpenRollbacks(ctx)
	if err != nil {
		return err
	}
	e.resumeRollbacks(open)
	var rollbacks []store.Rollback
	for _, rb := range open {
		if rb.StageID == 0 {
			rollbacks = append(rollbacks, rb)
		}
	}
	byApp := map[string][]store.Run{}
	for _, r := range runs {
		byApp[r.App] = append(byApp[r.App], r)
	}
	for app, rs := range byApp {
		a, ok := e.cfg.App(app)
		if !ok {
			e.log.Warn("run of an app no longer configured", "app", app)
			continue
		}
		l, held := e.lease(app)
		if !held {
			continue // another server works this app
		}
		if err := e.scheduleApp(store.WithLease(ctx, l), a, rs, rollbacks); err != nil {
			return fmt.Errorf("schedule %s: %w", app, err)
		}
	}
	return nil
}

func (e *Engine) scheduleApp(ctx context.Context, a *config.App, runs []store.Run, rollbacks []store.Rollback) error {
	busy := map[string]int64{}
	newestWaiting := map[string]int64{}
	for _, rb := range rollbacks {
		if rb.App == a.Name {
			busy[rb.Region] = -rb.ID // a rollback asked for by a person is under way there
		}
	}
	for i := range runs {
		r := &runs[i]
		for j := range r.Stages {
			s := &r.Stages[j]
			if s.State.Active() {
				busy[s.Region] = r.ID
				if !e.running(stageTask(s.ID)) {
					e.startStage(a, *r, *s) // resume after a restart
				}
			}
		}
		if r.State == store.RunBuilding {
			continue
		}
		// A deploy (outside the order) supersedes nothing: the release waiting for
		// promotion there keeps waiting, whatever becomes of the deploy.
		if n := nextStage(r); n != nil && n.State.Waiting() && newestWaiting[n.Region] == 0 && r.Trigger != TriggerDeploy {
			newestWaiting[n.Region] = r.ID // runs are newest first
		}
	}
	for i := len(runs) - 1; i >= 0; i-- { // oldest first
		r := &runs[i]
		if err := e.scheduleRun(ctx, a, r, busy, newestWaiting); err != nil {
			return err
		}
	}
	return nil
}

func (e *Engine) scheduleRun(ctx context.Context, a *config.App, r *store.Run, busy, newestWaiting map[string]int64) error {
	if r.State == store.RunBuilding {
		e.startBuild(a, *r)
		return nil
	}
	n := nextStage(r)
	if n == nil {
		what, err := e.doneMessage(ctx, a, r)
		if err != nil {
			return err
		}
		// Only while no stage went back to waiting since the run was read (a re-run).
		err = e.transition(ctx, change{kind: RunChanged, run: r.ID, point: "succeed", msg: fmt.Sprintf("%s %s %s", a.Name, short(r.SHA), what),
			write: func(ctx context.Context) error { return e.st.SucceedRun(ctx, r.ID, what) }})
		if errors.Is(err, store.ErrStateChanged) {
			return nil // looked at again on the next round
		}
		return err
	}
	if n.State.Active() {
		return nil
	}
	switch n.State {
	case store.StageFailed, store.StageRolledBack, store.StageCancelled:
		state := store.RunFailed
		if n.State == store.StageCancelled {
			state = store.RunCancelled
		}
		// Only while the stage that ended it is as it was read (not re-run meanwhile).
		err := e.transition(ctx, change{kind: RunChanged, run: r.ID, region: n.Region, point: "run-end",
			write: func(ctx context.Context) error {
				return e.st.MoveStageAndRun(ctx, n.ID, store.StageUpdate{OnlyIf: []store.StageState{n.State}}, r.ID, state, n.Message)
			}})
		if errors.Is(err, store.ErrStateChanged) {
			return nil
		}
		return err
	}
	// A deploy is a person's explicit ask: no waiting release supersedes it.
	if newer := newestWaiting[n.Region]; newer != 0 && newer != r.ID && n.State != store.StageApproved && r.Trigger != TriggerDeploy {
		return e.supersede(ctx, r, n, newer)
	}
	reg, idx, err := e.region(a, n.Region)
	if err != nil {
		return err
	}
	if n.State == store.StagePending && reg.ManualApproval && n.ApprovedBy == "" {
		// Only a stage still pending waits: one approved since it was read (promoted) is
		// not put back.
		err := e.transition(ctx, change{kind: StageChanged, run: r.ID, region: n.Region, point: "waiting",
			msg: readyMessage(a, r, n.Region),
			write: func(ctx context.Context) error {
				return e.st.MoveStageAndRun(ctx, n.ID, store.StageUpdate{State: store.StageAwaitingApproval, Message: "ready for " + n.Region + "; waiting for promotion",
					OnlyIf: []store.StageState{store.StagePending}}, r.ID, store.RunWaiting, waitingMessage(n.Region))
			}})
		if errors.Is(err, store.ErrStateChanged) {
			return nil // looked at again on the next round
		}
		return err
	}
	if n.State == store.StageAwaitingApproval {
		return nil
	}
	if other := busy[n.Region]; other > 0 {
		return e.hold(ctx, r, n, fmt.Sprintf("waiting for %s (busy with run %d)", n.Region, other))
	} else if other < 0 {
		return e.hold(ctx, r, n, fmt.Sprintf("waiting for %s (a rollback is under way)", n.Region))
	}
	l, locked, err := e.locked(ctx, a.Name, n.Region)
	if err != nil {
		return err
	}
	if locked {
		return e.hold(ctx, r, n, fmt.Sprintf("held: %s is locked by %s: %s", n.Region, holderName(l), l.Reason))
	}
	if !n.Forced { // a break-glass promotion passes freezes, windows and soak
		rules, err := e.timeRules(ctx, a, reg, idx, r.SHA, e.now())
		if err != nil {
			return err
		}
		if g := rules.at(e.now()); !g.Allowed {
			return e.hold(ctx, r, n, g.Why)
		}
	}
	busy[n.Region] = r.ID
	err = e.transition(ctx, change{kind: StageChanged, run: r.ID, region: n.Region, point: "deploying", msg: fmt.Sprintf("deploying %s %s to %s", a.Name, short(r.SHA), n.Region),
		write: func(ctx context.Context) error {
			return e.st.MoveStageAndRun(ctx, n.ID, store.StageUpdate{State: store.StageDeploying, Message: "deploying", Start: true}, r.ID, store.RunRunning, "in "+n.Region)
		}})
	if err != nil {
		return err
	}
	fresh, err := e.st.Run(ctx, r.ID)
	if err != nil {
		return err
	}
	for _, s := range fresh.Stages {
		if s.ID == n.ID {
			e.startStage(a, fresh, s)
		}
	}
	return nil
}

// locked reads a region's lock; a store error is an error (never "not locked").
func (e *Engine) locked(ctx context.Context, app, region string) (store.Lock, bool, error) {
	l, err := e.st.Lock(ctx, app, region)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return store.Lock{}, false, nil
	case err != nil:
		return store.Lock{}, false, fmt.Errorf("read the lock of %s %s: %w", app, region, err)
	}
	return l, true, nil
}

// hold records why a stage cannot start yet (once per reason).
func (e *Engine) hold(ctx context.Context, r *store.Run, n *store.Stage, why string) error {
	if n.Message == why {
		return nil
	}
	return e.transition(ctx, change{kind: StageChanged, run: r.ID, region: n.Region, point: "hold", msg: why,
		write: func(ctx context.Context) error { return e.st.UpdateStage(ctx, n.ID, store.StageUpdate{Message: why}) }})
}

// supersede ends a run that waits for a region a newer run also waits for: the stage and
// every later one cancelled, the run superseded, in one write. A stage promoted since it
// was read is not superseded (looked at again on the next round).
func (e *Engine) supersede(ctx context.Context, r *store.Run, n *store.Stage, newer int64) error {
	nr, err := e.st.Run(ctx, newer)
	if err != nil {
		return err
	}
	msg := supersededMessage(nr.SHA, newer, n.Region)
	err = e.transition(ctx, change{kind: RunChanged, run: r.ID, region: n.Region, point: "supersede", msg: msg, write: func(ctx context.Context) error {
		return e.st.EndRun(ctx, store.RunEnd{RunID: r.ID, StageID: n.ID, Stage: store.StageCancelled, Run: store.RunSuperseded, Message: msg})
	}})
	if errors.Is(err, store.ErrStateChanged) {
		return nil
	}
	return err
}

// supersededPrefix begins the message of a run superseded by a newer one, and of its stages.
const supersededPrefix = "superseded by "

func supersededMessage(sha string, run int64, region string) string {
	return fmt.Sprintf("%s%s (run %d) at %s", supersededPrefix, short(sha), run, region)
}

// doneMessage says truthfully where a finished run's release is, after asking the hosts:
// "is live in every region" only when every host of every region runs it (a region whose
// hosts disagree with the store is corrected first); a deploy "is deployed to REGION".
func (e *Engine) doneMessage(ctx context.Context, a *config.App, r *store.Run) (string, error) {
	if r.Trigger == TriggerDeploy {
		var regions []string
		for _, s := range r.Stages {
			regions = append(regions, s.Region)
		}
		return "is deployed to " + strings.Join(regions, ", "), nil
	}
	other, err := e.hostsNotOn(ctx, a, r.SHA)
	var se storeError
	if errors.As(err, &se) {
		return "", err
	}
	if err != nil {
		return "passed every region, but not every host could be asked what it runs: " + err.Error(), nil
	}
	if len(other) == 0 {
		return "is live in every region", nil
	}
	if len(other) > 3 {
		other = append(other[:3], fmt.Sprintf("%d more", len(other)-3))
	}
	return "passed every region, but " + strings.Join(other, ", "), nil
}

func orNothing(s string) string {
	if s == "" {
		return "nothing"
	}
	return s
}

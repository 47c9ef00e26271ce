package pipeline

import (
	"context"
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

// schedule looks at every run in flight and moves each as far as it can go now.
func (e *Engine) schedule(ctx context.Context) error {
	runs, err := e.st.Runs(ctx, "", true, 0) // newest first
	if err != nil {
		return err
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
		if err := e.scheduleApp(ctx, a, rs); err != nil {
			return fmt.Errorf("schedule %s: %w", app, err)
		}
	}
	return nil
}

func (e *Engine) scheduleApp(ctx context.Context, a *config.App, runs []store.Run) error {
	busy := map[string]int64{}
	newestWaiting := map[string]int64{}
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
		what := e.doneMessage(ctx, a, r)
		if err := e.st.SetRunState(ctx, r.ID, store.RunSucceeded, what); err != nil {
			return err
		}
		e.emitRun(ctx, RunChanged, r.ID, "", "", fmt.Sprintf("%s %s %s", a.Name, short(r.SHA), what))
		return nil
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
		if err := e.st.SetRunState(ctx, r.ID, state, n.Message); err != nil {
			return err
		}
		e.emitRun(ctx, RunChanged, r.ID, n.Region, "", "")
		return nil
	}
	if newer := newestWaiting[n.Region]; newer != 0 && newer != r.ID && n.State != store.StageApproved {
		return e.supersede(ctx, r, n, newer)
	}
	reg, _, err := e.region(a, n.Region)
	if err != nil {
		return err
	}
	if n.State == store.StagePending && reg.ManualApproval && n.ApprovedBy == "" {
		if err := e.st.UpdateStage(ctx, n.ID, store.StageUpdate{State: store.StageAwaitingApproval, Message: "ready for " + n.Region + "; waiting for promotion"}); err != nil {
			return err
		}
		if err := e.st.SetRunState(ctx, r.ID, store.RunWaiting, "waiting for promotion to "+n.Region); err != nil {
			return err
		}
		e.emitRun(ctx, StageChanged, r.ID, n.Region, "", fmt.Sprintf("%s %s is ready for %s: promote it with `promote %s %s`", a.Name, short(r.SHA), n.Region, a.Name, n.Region))
		return nil
	}
	if n.State == store.StageAwaitingApproval {
		return nil
	}
	if other := busy[n.Region]; other != 0 {
		return e.hold(ctx, r, n, fmt.Sprintf("waiting for %s (busy with run %d)", n.Region, other))
	}
	if l, err := e.st.Lock(ctx, a.Name, n.Region); err == nil {
		return e.hold(ctx, r, n, fmt.Sprintf("held: %s is locked by %s: %s", n.Region, l.Holder, l.Reason))
	}
	busy[n.Region] = r.ID
	if err := e.st.UpdateStage(ctx, n.ID, store.StageUpdate{State: store.StageDeploying, Message: "deploying", Start: true}); err != nil {
		return err
	}
	if err := e.st.SetRunState(ctx, r.ID, store.RunRunning, "in "+n.Region); err != nil {
		return err
	}
	e.emitRun(ctx, StageChanged, r.ID, n.Region, "", fmt.Sprintf("deploying %s %s to %s", a.Name, short(r.SHA), n.Region))
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

// hold records why a stage cannot start yet (once per reason).
func (e *Engine) hold(ctx context.Context, r *store.Run, n *store.Stage, why string) error {
	if n.Message == why {
		return nil
	}
	if err := e.st.UpdateStage(ctx, n.ID, store.StageUpdate{Message: why}); err != nil {
		return err
	}
	e.emitRun(ctx, StageChanged, r.ID, n.Region, "", why)
	return nil
}

// supersede ends a run that waits for a region a newer run also waits for.
func (e *Engine) supersede(ctx context.Context, r *store.Run, n *store.Stage, newer int64) error {
	nr, err := e.st.Run(ctx, newer)
	if err != nil {
		return err
	}
	msg := fmt.Sprintf("superseded by %s (run %d) at %s", short(nr.SHA), newer, n.Region)
	for _, s := range r.Stages {
		if s.Position >= n.Position && (s.State.Waiting()) {
			if err := e.st.UpdateStage(ctx, s.ID, store.StageUpdate{State: store.StageCancelled, Message: msg}); err != nil {
				return err
			}
		}
	}
	if err := e.st.SetRunState(ctx, r.ID, store.RunSuperseded, msg); err != nil {
		return err
	}
	e.emitRun(ctx, RunChanged, r.ID, n.Region, "", msg)
	return nil
}

// doneMessage says truthfully where a finished run's release is: "is live in every
// region" only when every host of every region runs it; a deploy "is deployed to REGION".
func (e *Engine) doneMessage(ctx context.Context, a *config.App, r *store.Run) string {
	if r.Trigger == TriggerDeploy {
		var regions []string
		for _, s := range r.Stages {
			regions = append(regions, s.Region)
		}
		return "is deployed to " + strings.Join(regions, ", ")
	}
	var other []string
	for _, reg := range a.Regions {
		live, err := e.st.Live(ctx, a.Name, reg.Name)
		if err != nil {
			return "passed every region"
		}
		for _, h := range reg.Hosts {
			if sha := live[h.Name]; sha != r.SHA {
				other = append(other, fmt.Sprintf("%s/%s runs %s", reg.Name, h.Name, orNothing(short(sha))))
			}
		}
	}
	if len(other) == 0 {
		return "is live in every region"
	}
	if len(other) > 3 {
		other = append(other[:3], fmt.Sprintf("%d more", len(other)-3))
	}
	return "passed every region, but " + strings.Join(other, ", ")
}

func orNothing(s string) string {
	if s == "" {
		return "nothing"
	}
	return s
}

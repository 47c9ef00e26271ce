package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/immunity-app/immunity/pipeline/config"
	"github.com/immunity-app/immunity/pipeline/judge"
	"github.com/immunity-app/immunity/store"
)

// GateAnswer is the engine's answer to a deploy that another pipeline (a GitHub Actions
// job) wants to make, gated by the app's github_gate: approved or rejected, with why, or
// not yet, with what it waits for.
type GateAnswer struct {
	Decided  bool
	Approved bool
	Reason   string // why it was approved or rejected; or what it waits for
	RunID    int64  // the newest run of the release in Immunity, 0 when none
	// Settling: not decided, but about to be by itself (a canary's final verdict is
	// recorded, its stage not yet ended): not worth telling anyone.
	Settling bool
}

// GatedDeploy answers whether a commit of an app may be deployed past a gate now. It waits
// while the release is still on its way through the gate's After regions, while its canary
// is still judging, while the gate's region is locked or frozen (not_locked) and while it
// is outside its deploy windows or the release has not soaked (in_window: DeployAllowed's
// rules, on the engine's clock); it rejects a release that failed
// (or will never reach) one of those regions and one whose canary was not judged Pass.
// A store error is an error, never an answer.
func (e *Engine) GatedDeploy(ctx context.Context, app, sha string, g config.GitHubGate) (GateAnswer, error) {
	a, ok := e.cfg.App(app)
	if !ok {
		return GateAnswer{Decided: true, Reason: fmt.Sprintf("Immunity has no app %s", app)}, nil
	}
	runs, err := e.st.RunsOf(ctx, app, sha)
	if err != nil {
		return GateAnswer{}, fmt.Errorf("gate %s@%s: %w", app, short(sha), err)
	}
	var ans GateAnswer
	if len(runs) > 0 {
		ans.RunID = runs[0].ID
	}
	var passed []string
	for _, name := range g.After {
		region, _, ok := a.Region(name)
		if !ok {
			return GateAnswer{Decided: true, RunID: ans.RunID, Reason: fmt.Sprintf("the gate names region %s, which app %s does not have", name, app)}, nil
		}
		if len(runs) == 0 {
			ans.Reason = fmt.Sprintf("waiting: Immunity has no run of %s yet", short(sha))
			return ans, nil
		}
		st, run := stageIn(runs, name)
		if st == nil {
			return GateAnswer{Decided: true, RunID: ans.RunID, Reason: fmt.Sprintf("release %s has no stage in %s", short(sha), name)}, nil
		}
		ans.RunID = run.ID
		if done, why := stageGate(st, run, g.Requires(config.RequireCanaryPass) && region.Monitor != nil); done && why != "" {
			return GateAnswer{Decided: true, RunID: run.ID, Reason: why}, nil
		} else if !done {
			ans.Reason = "waiting: " + why
			v, ok := stageVerdict(st)
			ans.Settling = st.State == store.StageMonitoring && ok && v.Final
			return ans, nil
		}
		passed = append(passed, name)
	}
	var held []string
	if g.Requires(config.RequireNotLocked) || g.Requires(config.RequireInWindow) {
		allowed, err := e.ReleaseAllowed(ctx, app, sha, g.Region, e.now())
		if err != nil {
			return GateAnswer{}, fmt.Errorf("gate %s@%s: %w", app, short(sha), err)
		}
		if !allowed.Allowed && gateWaitsFor(g, allowed.Rule) {
			ans.Reason = "waiting: " + allowed.Why
			return ans, nil
		}
		if g.Requires(config.RequireNotLocked) {
			held = append(held, g.Region+" not locked or frozen")
		}
		if g.Requires(config.RequireInWindow) {
			held = append(held, g.Region+" inside its deploy window")
		}
	}
	ans.Decided, ans.Approved = true, true
	var why []string
	if len(passed) > 0 {
		why = append(why, "passed "+strings.Join(passed, ", ")+" in Immunity")
	}
	if g.Requires(config.RequireCanaryPass) {
		why = append(why, "canary verdict pass")
	}
	ans.Reason = strings.Join(append(why, held...), "; ")
	return ans, nil
}

// gateWaitsFor says whether a rule in the way of the region concerns the gate: a lock or
// a freeze for not_locked, the deploy window or the soak for in_window.
func gateWaitsFor(g config.GitHubGate, rule string) bool {
	switch rule {
	case RuleLocked, RuleFrozen:
		return g.Requires(config.RequireNotLocked)
	case RuleWindow, RuleSoak:
		return g.Requires(config.RequireInWindow)
	}
	return true
}

// stageIn finds a region's stage in the newest run of a release that has one.
func stageIn(runs []store.Run, region string) (*store.Stage, *store.Run) {
	for i := range runs {
		for j := range runs[i].Stages {
			if runs[i].Stages[j].Region == region {
				return &runs[i].Stages[j], &runs[i]
			}
		}
	}
	return nil, nil
}

// stageGate says whether a stage has settled the gate (done) and, when it has, why the
// gate rejects ("" when the stage passed); when it has not, what it waits for.
func stageGate(st *store.Stage, run *store.Run, canary bool) (done bool, why string) {
	region := st.Region
	if st.State.Waiting() && run.State.Terminal() {
		st.State = store.StageSkipped // its run ended before it got there
	}
	switch st.State {
	case store.StageSucceeded:
		if !canary {
			return true, ""
		}
		v, ok := stageVerdict(st)
		switch {
		case !ok:
			return true, fmt.Sprintf("the canary in %s gave no verdict", region)
		case v.Outcome != judge.Pass:
			return true, fmt.Sprintf("the canary in %s judged it %s (score %.0f): %s", region, v.Outcome, v.Score, v.Reason)
		}
		return true, ""
	case store.StageFailed, store.StageRolledBack, store.StageRollingBack:
		msg := fmt.Sprintf("it failed %s", region)
		if st.Message != "" {
			msg += ": " + st.Message
		}
		return true, msg
	case store.StageSkipped, store.StageCancelled:
		msg := fmt.Sprintf("it will not reach %s (run %d %s", region, run.ID, run.State)
		if run.Message != "" {
			msg += ": " + run.Message
		}
		return true, msg + ")"
	case store.StageMonitoring:
		if v, ok := stageVerdict(st); ok && v.Looks > 0 {
			return false, fmt.Sprintf("canary in %s, look %d of %d, %s", region, v.Look, v.Looks, v.Reason)
		}
		return false, fmt.Sprintf("canary in %s, no look yet", region)
	case store.StageDeploying:
		return false, fmt.Sprintf("deploying to %s", region)
	case store.StageTesting:
		return false, fmt.Sprintf("integration tests in %s", region)
	case store.StageAwaitingApproval:
		return false, fmt.Sprintf("%s waits for a person to promote it", region)
	}
	if st.Message != "" {
		return false, fmt.Sprintf("not yet in %s: %s", region, st.Message)
	}
	return false, fmt.Sprintf("not yet in %s", region)
}

func stageVerdict(st *store.Stage) (judge.Verdict, bool) {
	var v judge.Verdict
	if st.Verdict == "" || json.Unmarshal([]byte(st.Verdict), &v) != nil {
		return v, false
	}
	return v, true
}

package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/immunity-app/immunity/deployers"
	"github.com/immunity-app/immunity/internal/wait"
	"github.com/immunity-app/immunity/pipeline/config"
	"github.com/immunity-app/immunity/store"
)

// TriggerDeploy is the trigger of a run made by Deploy: one region, outside the order.
const TriggerDeploy = "deploy"

// Trigger says what started a run.
type Trigger struct {
	Kind   string // push, cli, demo, deploy
	Branch string
	Actor  Actor
}

// StartRun starts a run of an app's commit (sha "" is the head of its branch). A run of
// the same commit already in flight is returned instead of starting another, so a
// redelivered push does nothing twice.
func (e *Engine) StartRun(ctx context.Context, app, sha string, t Trigger) (store.Run, error) {
	a, err := e.app(app)
	if err != nil {
		return store.Run{}, err
	}
	c, err := e.builder.Commit(ctx, a, sha)
	if err != nil {
		return store.Run{}, fmt.Errorf("start run of %s@%s: %w", app, short(sha), err)
	}
	active, err := e.st.Runs(ctx, app, true, 0)
	if err != nil {
		return store.Run{}, err
	}
	for _, r := range active {
		if r.SHA == c.SHA {
			return r, nil
		}
	}
	if t.Branch == "" {
		t.Branch = a.Repo.Branch
	}
	hosts := map[string][]string{}
	for _, r := range a.Regions {
		for _, h := range r.Hosts {
			hosts[r.Name] = append(hosts[r.Name], h.Name)
		}
	}
	run, err := e.st.CreateRun(ctx, store.Run{App: app, SHA: c.SHA, Branch: t.Branch, Subject: c.Subject, Author: c.Author,
		Trigger: t.Kind, Actor: t.Actor.Name, State: store.RunBuilding}, a.RegionNames(), hosts)
	if err != nil {
		return store.Run{}, err
	}
	e.reached("run")
	if err := e.emitRun(ctx, RunCreated, run.ID, "", "", fmt.Sprintf("run %d: %s %s %q by %s", run.ID, app, short(c.SHA), c.Subject, c.Author)); err != nil {
		return run, err
	}
	e.Kick()
	return run, nil
}

// Promote approves the release waiting for a region (sha "" means the newest waiting). A
// frozen region refuses it; outside the region's deploy windows, or before the soak of the
// region before is over, it is approved and waits.
func (e *Engine) Promote(ctx context.Context, who Actor, app, region, sha string) (string, error) {
	c := e.command(who, "promote", app, region, sha, "")
	msg, err := e.promote(ctx, c, false)
	e.end(ctx, c, err)
	return msg, err
}

// ForcePromote is the break-glass promotion (the command layer checks the force grant):
// it passes a freeze, the deploy windows and soak, never a lock. It is audited, and the
// stage remembers it was forced.
func (e *Engine) ForcePromote(ctx context.Context, who Actor, app, region, sha string) (string, error) {
	c := e.command(who, "promote", app, region, sha, "--force")
	msg, err := e.promote(ctx, c, true)
	e.end(ctx, c, err)
	return msg, err
}

func (e *Engine) promote(ctx context.Context, c *command, force bool) (string, error) {
	who, app, region, sha := c.who, c.app, c.region, c.sha
	a, err := e.app(app)
	if err != nil {
		return "", err
	}
	reg, idx, err := e.region(a, region)
	if err != nil {
		return "", err
	}
	if l, locked, err := e.locked(ctx, app, region); err != nil {
		return "", fmt.Errorf("promote %s to %s: %w", app, region, err)
	} else if locked {
		return "", fmt.Errorf("promote %s to %s: %w by %s (%s); unlock it first", app, region, ErrLocked, holderName(l), l.Reason)
	}
	now := e.now()
	gate, err := e.releaseGate(ctx, a, reg, idx, "", now) // a freeze holds whatever the release
	if err != nil {
		return "", fmt.Errorf("promote %s to %s: %w", app, region, err)
	}
	if gate.Rule == RuleFrozen && !force {
		return "", fmt.Errorf("promote %s to %s: %w: %s; nothing was changed (break-glass: --force, with the force grant)", app, region, ErrFrozen, gate.Why)
	}
	runs, err := e.st.Runs(ctx, app, true, 0)
	if err != nil {
		return "", err
	}
	for _, r := range runs { // newest first
		if sha != "" && !strings.HasPrefix(r.SHA, sha) {
			continue
		}
		n := nextStage(&r)
		if n == nil || n.Region != region || (n.State != store.StageAwaitingApproval && n.State != store.StagePending) {
			continue
		}
		if n.State == store.StagePending && r.State != store.RunWaiting {
			continue
		}
		verb, note := "promoted", "promoted by "+who.String()
		if force {
			verb, note = "force-promoted", "force-promoted by "+who.String()
			if g, err := e.releaseGate(ctx, a, reg, idx, r.SHA, now); err != nil {
				return "", fmt.Errorf("promote %s to %s: %w", app, region, err)
			} else if !g.Allowed {
				note += ", past: " + g.Why
			}
		}
		err := e.transition(ctx, change{kind: StageChanged, run: r.ID, region: region, point: "promote",
			msg: fmt.Sprintf("%s %s %s %s to %s", who.Name, verb, app, short(r.SHA), region),
			write: func(ctx context.Context) error {
				return e.st.MoveStageAndRun(c.in(ctx), n.ID, store.StageUpdate{State: store.StageApproved, ApprovedBy: who.Name, ApprovedByID: who.Key(), ApprovedVia: who.Via,
					Message: note, Forced: force, OnlyIf: []store.StageState{n.State}}, r.ID, store.RunRunning, "promoted to "+region+" by "+who.Name)
			}})
		if err != nil {
			return "", fmt.Errorf("promote %s %s to %s: %w", app, short(r.SHA), region, err)
		}
		e.Kick()
		out := fmt.Sprintf("%s %s %s to %s (run %d)", verb, app, short(r.SHA), region, r.ID)
		if g, err := e.releaseGate(ctx, a, reg, idx, r.SHA, now); err == nil && !g.Allowed && !force {
			out += "; " + g.Why
		}
		return out, nil
	}
	var waiting []string
	for _, r := range runs {
		if n := nextStage(&r); n != nil && n.State == store.StageAwaitingApproval {
			waiting = append(waiting, fmt.Sprintf("%s for %s", short(r.SHA), n.Region))
		}
	}
	what := "nothing"
	if len(waiting) > 0 {
		what = strings.Join(waiting, ", ")
	}
	if sha != "" {
		return "", fmt.Errorf("promote %s %s to %s: %w with that release; waiting: %s", app, sha, region, ErrNothingWaiting, what)
	}
	return "", fmt.Errorf("promote %s to %s: %w there; waiting: %s", app, region, ErrNothingWaiting, what)
}

// Rollback puts the previous release (or toSHA) back on every host of a region, in
// parallel. A stage running in the region is cancelled first.
func (e *Engine) Rollback(ctx context.Context, who Actor, app, region, toSHA string) (string, error) {
	c := e.command(who, "rollback", app, region, toSHA, "")
	msg, sha, err := e.rollback(ctx, c)
	c.sha = sha
	e.end(ctx, c, err)
	return msg, err
}

func (e *Engine) rollback(ctx context.Context, c *command) (string, string, error) {
	who, app, region, toSHA := c.who, c.app, c.region, c.sha
	a, err := e.app(app)
	if err != nil {
		return "", toSHA, err
	}
	reg, _, err := e.region(a, region)
	if err != nil {
		return "", toSHA, err
	}
	open, err := e.st.OpenRollbacks(ctx)
	if err != nil {
		return "", toSHA, fmt.Errorf("roll back %s %s: %w", app, region, err)
	}
	for _, rb := range open {
		if rb.App == app && rb.Region == region {
			return "", toSHA, fmt.Errorf("roll back %s %s: %w: a rollback to %s is under way", app, region, ErrRegionBusy, short(rb.Hosts[0].To))
		}
	}
	// A deploy in flight in the region is stopped first: rolling back means undoing it.
	inflight, err := e.cancelRegion(ctx, app, region, fmt.Sprintf("cancelled: %s rolled %s back", who.Name, region))
	if err != nil {
		return "", toSHA, err
	}
	// The stopped deploy may have left a switch half done: ask the hosts.
	if _, err := e.reconcileRegion(ctx, a, reg); err != nil {
		var se storeError
		if errors.As(err, &se) {
			return "", toSHA, err
		}
		e.log.Warn("rollback: not every host could be asked what it runs", "app", app, "region", region, "err", err)
	}
	live, err := e.st.Live(ctx, app, region)
	if err != nil {
		return "", toSHA, err
	}
	current := majority(live)
	target := toSHA
	if target == "" {
		hist, err := e.st.History(ctx, app, region, 100)
		if err != nil {
			return "", "", err
		}
		for _, h := range hist {
			if h.SHA != current || (inflight != "" && h.SHA != inflight) {
				target = h.SHA
				break
			}
		}
		if target == "" {
			return "", "", fmt.Errorf("roll back %s %s: %w: only %s has been live there", app, region, ErrNoPreviousRelease, short(current))
		}
	}
	rel, err := e.st.Release(ctx, app, target)
	if err != nil || rel.State != store.ReleaseReady {
		return "", target, fmt.Errorf("roll back %s %s to %s: %w", app, region, target, ErrUnknownRelease)
	}
	plan := store.Rollback{App: app, Region: region, Actor: who.Name, ActorID: who.Key(), Via: who.Via, Reason: "asked by " + who.String()}
	for _, h := range reg.Hosts {
		plan.Hosts = append(plan.Hosts, store.RollbackHost{Host: h.Name, From: live[h.Name], To: rel.SHA})
	}
	var rb store.Rollback
	err = e.regionEvent(ctx, Event{Kind: RollbackPlanned, App: app, Region: region, SHA: rel.SHA, Actor: who,
		Message: fmt.Sprintf("%s rolls %s %s back to %s (was %s) on %s", who.Name, app, region, short(rel.SHA), short(current), plural(len(plan.Hosts), "host"))},
		"manual-rollback-plan", func(ctx context.Context) error {
			var err error
			c.sha = rel.SHA // the plan and its audit entry are one write
			rb, err = e.st.PlanRollback(c.in(ctx), plan)
			return err
		})
	if err != nil {
		return "", rel.SHA, err
	}
	// The plan is carried out as a task of the engine's (a restart, or the scheduler,
	// completes it if this one is cut short); this call waits for it.
	err = e.runTask(ctx, app, rollbackTask(rb.ID), func(ctx context.Context) error { return e.execRollback(ctx, a, reg, rb) })
	if errors.Is(err, errNotHere) {
		// Another server works the app: its scheduler carries the plan out.
		err = wait.Until(ctx, wait.Backoff{First: 100 * time.Millisecond, Max: time.Second}, 0, func(ctx context.Context) error {
			if got, err := e.st.Rollback(ctx, rb.ID); err != nil || got.State == store.RollbackPlanned {
				return fmt.Errorf("rollback %d is carried out by the server holding %s's lease: %v", rb.ID, app, orNothing(string(got.State)))
			}
			return nil
		})
	}
	if err != nil {
		return "", rel.SHA, err
	}
	done, err := e.st.Rollback(ctx, rb.ID)
	if err != nil {
		return "", rel.SHA, err
	}
	if done.State != store.RollbackDone {
		return "", rel.SHA, fmt.Errorf("roll back %s %s to %s: not finished yet (%s); it goes on", app, region, short(rel.SHA), done.State)
	}
	return done.Message, rel.SHA, nil
}

// cancelRegion stops a stage running in a region, records why, and returns the SHA it
// was deploying ("" when none ran). A stage rolling back is not stopped: ErrRegionBusy.
func (e *Engine) cancelRegion(ctx context.Context, app, region, why string) (sha string, err error) {
	runs, err := e.st.Runs(ctx, app, true, 0)
	if err != nil {
		return "", fmt.Errorf("cancel what runs in %s %s: %w", app, region, err)
	}
	for _, r := range runs {
		for _, s := range r.Stages {
			if s.Region != region || !s.State.Active() {
				continue
			}
			if s.State == store.StageRollingBack {
				return "", fmt.Errorf("%s %s: %w: run %d is rolling back %s; wait for it", app, region, ErrRegionBusy, r.ID, short(r.SHA))
			}
			// Recorded first, so that neither the scheduler nor a restart resumes it.
			err := e.transition(ctx, change{kind: RunChanged, run: r.ID, region: region, point: "cancel", msg: why, write: func(ctx context.Context) error {
				return e.st.FailStage(ctx, r.ID, s.ID, store.StageCancelled, store.RunCancelled, why)
			}})
			if errors.Is(err, store.ErrStateChanged) {
				continue // it finished meanwhile
			}
			if err != nil {
				return "", err
			}
			if err := e.cancelTask(ctx, stageTask(s.ID)); err != nil {
				e.log.Error("cancel stage", "run", r.ID, "region", region, "err", err)
			}
			sha = r.SHA
		}
	}
	return sha, nil
}

// Deploy puts a known release on one region, outside the normal order, subject to locks
// and to the pipeline's gates: the release must have passed every region before the
// target and failed none, unless force (the command layer checks who may force). A
// refused deploy changes nothing; a deploy never supersedes a release waiting for
// promotion.
func (e *Engine) Deploy(ctx context.Context, who Actor, app, sha, region string, force bool) (string, error) {
	args := ""
	if force {
		args = "--force"
	}
	c := e.command(who, "deploy", app, region, sha, args)
	msg, err := e.deploy(ctx, c, force)
	e.end(ctx, c, err)
	return msg, err
}

func (e *Engine) deploy(ctx context.Context, c *command, force bool) (string, error) {
	who, app, sha, region := c.who, c.app, c.sha, c.region
	a, err := e.app(app)
	if err != nil {
		return "", err
	}
	reg, idx, err := e.region(a, region)
	if err != nil {
		return "", err
	}
	if l, locked, err := e.locked(ctx, app, region); err != nil {
		return "", fmt.Errorf("deploy %s to %s: %w", app, region, err)
	} else if locked {
		return "", fmt.Errorf("deploy %s to %s: %w by %s (%s)", app, region, ErrLocked, holderName(l), l.Reason)
	}
	rel, err := e.st.Release(ctx, app, sha)
	if err != nil || rel.State != store.ReleaseReady {
		return "", fmt.Errorf("deploy %s %s: %w (only built releases can be deployed)", app, sha, ErrUnknownRelease)
	}
	if !force {
		if g, err := e.releaseGate(ctx, a, reg, idx, rel.SHA, e.now()); err != nil {
			return "", fmt.Errorf("deploy %s to %s: %w", app, region, err)
		} else if g.Rule == RuleFrozen {
			return "", fmt.Errorf("deploy %s %s to %s: %w: %s; nothing was changed (break-glass: --force, with the force grant)", app, short(rel.SHA), region, ErrFrozen, g.Why)
		}
	}
	if !force {
		if why, err := e.gate(ctx, a, rel.SHA, region); err != nil {
			return "", err
		} else if why != "" {
			return "", fmt.Errorf("deploy %s %s to %s: %w: %s; nothing was changed (with the force grant: add --force)", app, short(rel.SHA), region, ErrGate, why)
		}
	}
	var hosts []string
	for _, h := range reg.Hosts {
		hosts = append(hosts, h.Name)
	}
	asked := "deploy asked by " + who.String()
	if force {
		asked = "forced deploy asked by " + who.String()
	}
	// The run, its stage's approval and the audit entry are one write: no reader (the
	// scheduler) sees a deploy nobody approved, nor one nobody is recorded to have asked for.
	run, err := e.st.CreateApprovedRun(c.in(ctx), store.Run{App: app, SHA: rel.SHA, Subject: rel.Subject, Author: rel.Author, Trigger: TriggerDeploy, Actor: who.Name, State: store.RunRunning},
		region, hosts, store.StageUpdate{State: store.StageApproved, ApprovedBy: who.Name, ApprovedByID: who.Key(), ApprovedVia: who.Via, Message: asked, Forced: force})
	if err != nil {
		return "", err
	}
	e.reached("deploy")
	if err := e.emitRun(ctx, RunCreated, run.ID, region, "", fmt.Sprintf("%s deploys %s %s to %s", who.Name, app, short(rel.SHA), region)); err != nil {
		return "", err
	}
	e.Kick()
	out := fmt.Sprintf("deploying %s %s to %s (run %d)", app, short(rel.SHA), region, run.ID)
	if g, err := e.releaseGate(ctx, a, reg, idx, rel.SHA, e.now()); err == nil && !g.Allowed && !force {
		out += "; " + g.Why
	}
	return out, nil
}

// gate says why a release may not be deployed to a region out of order ("" when it may):
// it failed a region (its latest outcome there), or has not passed a region before the
// target. A region where it was seeded counts as passed.
func (e *Engine) gate(ctx context.Context, a *config.App, sha, region string) (string, error) {
	runs, err := e.st.RunsOf(ctx, a.Name, sha)
	if err != nil {
		return "", err
	}
	outcome := map[string]store.StageState{} // region -> latest terminal outcome
	for _, r := range runs {                 // newest first
		for _, s := range r.Stages {
			switch s.State {
			case store.StageSucceeded, store.StageFailed, store.StageRolledBack:
				if _, seen := outcome[s.Region]; !seen {
					outcome[s.Region] = s.State
				}
			}
		}
	}
	hist, err := e.st.History(ctx, a.Name, "", 1000)
	if err != nil {
		return "", err
	}
	for _, h := range hist {
		if h.SHA == sha && h.Action == "seed" {
			if _, seen := outcome[h.Region]; !seen {
				outcome[h.Region] = store.StageSucceeded
			}
		}
	}
	for _, reg := range a.Regions {
		if st := outcome[reg.Name]; st == store.StageFailed || st == store.StageRolledBack {
			return fmt.Sprintf("it failed %s", reg.Name), nil
		}
	}
	var missing []string
	for _, reg := range a.Regions {
		if reg.Name == region {
			break
		}
		if outcome[reg.Name] != store.StageSucceeded {
			missing = append(missing, reg.Name)
		}
	}
	if len(missing) > 0 {
		return fmt.Sprintf("it has not passed %s, which come before %s", strings.Join(missing, ", "), region), nil
	}
	return "", nil
}

// Lock freezes a region: no automatic deploys or promotions there until Unlock.
func (e *Engine) Lock(ctx context.Context, who Actor, app, region, reason string) (string, error) {
	c := e.command(who, "lock", app, region, "", "")
	err := e.lock(ctx, c, reason)
	e.end(ctx, c, err)
	if err != nil {
		return "", err
	}
	e.emit(ctx, Event{Kind: Locked, App: app, Region: region, Actor: who, Message: fmt.Sprintf("%s locked %s %s: %s", who.Name, app, region, reason)})
	return fmt.Sprintf("locked %s %s: %s", app, region, reason), nil
}

func (e *Engine) lock(ctx context.Context, c *command, reason string) error {
	who, app, region := c.who, c.app, c.region
	a, err := e.app(app)
	if err != nil {
		return err
	}
	if _, _, err := e.region(a, region); err != nil {
		return err
	}
	if err := CheckText("lock reason", reason, MaxReason); err != nil {
		return fmt.Errorf("lock %s %s: %w", app, region, err)
	}
	if reason == "" {
		reason = "no reason given"
	}
	if err := e.st.PutLock(c.in(ctx), store.Lock{App: app, Region: region, Holder: who.Name, HolderID: who.Key(), Reason: reason}); err != nil {
		if errors.Is(err, store.ErrLocked) {
			return fmt.Errorf("lock %s %s: %w", app, region, ErrLocked)
		}
		return err
	}
	e.reached("lock")
	return nil
}

// Unlock lifts a region's freeze; only its holder may, unless force.
func (e *Engine) Unlock(ctx context.Context, who Actor, app, region string, force bool) (string, error) {
	args := ""
	if force {
		args = "--force"
	}
	c := e.command(who, "unlock", app, region, "", args)
	l, err := e.st.Lock(ctx, app, region)
	switch {
	case errors.Is(err, store.ErrNotFound):
		err = fmt.Errorf("unlock %s %s: it is not locked", app, region)
	case err != nil:
	case l.HolderID != who.Key() && !force:
		err = fmt.Errorf("unlock %s %s: %w by %s (%s); only they can unlock it, or use --force", app, region, ErrNotHolder, holderName(l), l.Reason)
	default:
		err = e.st.DeleteLock(c.in(ctx), l) // only the lock read: not one taken again meanwhile
		if err == nil {
			e.reached("unlock")
		}
	}
	e.end(ctx, c, err)
	if err != nil {
		return "", err
	}
	e.emit(ctx, Event{Kind: Unlocked, App: app, Region: region, Actor: who, Message: fmt.Sprintf("%s unlocked %s %s", who.Name, app, region)})
	e.Kick()
	return fmt.Sprintf("unlocked %s %s", app, region), nil
}

// Rerun runs a region's stage of a run again.
func (e *Engine) Rerun(ctx context.Context, who Actor, runID int64, region string) (string, error) {
	r, err := e.st.Run(ctx, runID)
	if err != nil {
		return "", err
	}
	c := e.command(who, "rerun", r.App, region, r.SHA, "")
	var st *store.Stage
	for i := range r.Stages {
		if r.Stages[i].Region == region {
			st = &r.Stages[i]
		}
	}
	switch {
	case st == nil:
		err = fmt.Errorf("rerun run %d: %w %q", runID, ErrUnknownRegion, region)
	case st.State.Active() || st.State.Waiting():
		err = fmt.Errorf("rerun %s of run %d: the stage is %s", region, runID, st.State)
	default:
		err = e.newerIn(ctx, r, region)
	}
	if err == nil {
		// The stage, the later stages it brings back and the run, in one write; a stage
		// that changed since it was read (re-run by someone else) is left as it is.
		err = e.transition(ctx, change{kind: StageChanged, run: runID, region: region, point: "rerun", msg: fmt.Sprintf("%s re-runs %s of %s", who.Name, region, short(r.SHA)),
			write: func(ctx context.Context) error {
				return e.st.RerunStage(c.in(ctx), runID, st.ID, st.State, rerunPrefix+who.String(), rerunRunMessage(region))
			}})
		if errors.Is(err, store.ErrStateChanged) {
			err = fmt.Errorf("rerun %s of run %d: %w; nothing was changed", region, runID, err)
		}
	}
	e.end(ctx, c, err)
	if err != nil {
		return "", err
	}
	e.Kick()
	return fmt.Sprintf("re-running %s of %s %s (run %d)", region, r.App, short(r.SHA), runID), nil
}

// rerunPrefix begins the message of a stage a person asked to re-run.
const rerunPrefix = "re-run asked by "

func rerunRunMessage(region string) string { return "re-running " + region }

// newerIn refuses to re-run an old run in a region that a newer release of the pipeline
// has already reached (passed, or is deploying to): that would put the older release
// back over the newer one.
func (e *Engine) newerIn(ctx context.Context, r store.Run, region string) error {
	runs, err := e.st.Runs(ctx, r.App, false, 200)
	if err != nil {
		return err
	}
	for _, n := range runs { // newest first
		if n.ID <= r.ID {
			break
		}
		if n.Trigger == TriggerDeploy || n.SHA == r.SHA {
			continue
		}
		for _, s := range n.Stages {
			if s.Region == region && (s.State == store.StageSucceeded || s.State.Active()) {
				return fmt.Errorf("rerun %s of run %d (%s): %w: the newer release %s (run %d) is already in %s; re-running would put the older release over it",
					region, r.ID, short(r.SHA), ErrGate, short(n.SHA), n.ID, region)
			}
		}
	}
	return nil
}

// Seed makes a release live in every region at once, without tests: the starting point of
// a new app (and of the demo).
func (e *Engine) Seed(ctx context.Context, who Actor, app, sha string) (string, error) {
	a, err := e.app(app)
	if err != nil {
		return "", err
	}
	c, err := e.builder.Commit(ctx, a, sha)
	if err != nil {
		return "", err
	}
	if err := e.st.PutRelease(ctx, store.Release{App: app, SHA: c.SHA, Subject: c.Subject, Author: c.Author, State: store.ReleaseBuilding}); err != nil {
		return "", fmt.Errorf("seed %s: %w", app, err)
	}
	rel, err := e.builder.Build(ctx, a, c.SHA)
	if err != nil {
		return "", fmt.Errorf("seed %s: %w", app, err)
	}
	if err := e.st.PutRelease(ctx, store.Release{App: app, SHA: c.SHA, Subject: c.Subject, Author: c.Author, State: "ready", Artifact: rel.Artifact, Checksum: rel.Checksum}); err != nil {
		return "", err
	}
	err = parallel(a.Regions, func(reg config.Region) error {
		dep, err := e.deployer(a, &reg)
		if err != nil {
			return err
		}
		err = parallel(e.Hosts(a, &reg), func(h deployers.Host) error {
			if err := dep.Upload(ctx, h, rel); err != nil {
				return fmt.Errorf("seed %s: %w", h, err)
			}
			if err := dep.Activate(ctx, h, rel.SHA); err != nil {
				return fmt.Errorf("seed %s: %w", h, err)
			}
			return e.st.SetLive(ctx, app, reg.Name, h.Name, rel.SHA)
		})
		if err == nil {
			err = e.st.AddHistory(ctx, store.HistoryEntry{App: app, Region: reg.Name, SHA: rel.SHA, Action: "seed", Actor: who.Name, ActorID: who.Key(), Via: who.Via})
		}
		if err == nil {
			e.emit(ctx, Event{Kind: Deployed, App: app, Region: reg.Name, SHA: rel.SHA, Actor: who, Message: fmt.Sprintf("%s %s is live in %s", app, short(rel.SHA), reg.Name)})
		}
		return err
	})
	e.audit(ctx, who, "seed", app, "", c.SHA, err)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s %s is live in every region", app, short(c.SHA)), nil
}

// Answer records in a run's log what a person who pressed a button of one of its
// region's reports was answered, and tells the listeners (Answered), which show it where
// the button was.
func (e *Engine) Answer(ctx context.Context, runID int64, region, msg string) error {
	if strings.TrimSpace(msg) == "" {
		return errors.New("answer: nothing to say")
	}
	if err := e.emitRun(ctx, Answered, runID, region, "", msg); err != nil {
		return fmt.Errorf("answer in run %d %s: %w", runID, region, err)
	}
	return nil
}

// Audit records an action decided outside the engine (a refusal, a parse error).
// A failure to write it is logged: the action itself has happened (or been refused).
func (e *Engine) Audit(ctx context.Context, who Actor, action, app, region, sha, args, outcome, detail string) {
	// Written even when the caller has gone away meanwhile.
	err := e.st.AddAudit(context.WithoutCancel(ctx), store.Audit{Actor: who.Name, ActorID: who.Key(), Via: who.Via, Action: action, App: app, Region: region, SHA: sha, Args: args, Outcome: outcome, Detail: detail})
	if err != nil {
		e.log.Error("audit log not written", "actor", who.Key(), "action", action, "app", app, "region", region, "outcome", outcome, "err", err)
	}
}

// command is one person's command that changes the store, and its audit entry: written by
// the store in the change's own transaction (store.AuditNote), so a change is never
// without the entry saying who made it, nor an entry without its change. A command that
// changed nothing (refused, failed, its state stale) is audited on its own, saying so (end).
type command struct {
	who                            Actor
	action, app, region, sha, args string
	note                           *store.AuditNote
}

func (e *Engine) command(who Actor, action, app, region, sha, args string) *command {
	return &command{who: who, action: action, app: app, region: region, sha: sha, args: args}
}

// in is ctx for the command's change: the store writes its entry with it.
func (c *command) in(ctx context.Context) context.Context {
	if c.note == nil {
		c.note = store.NewAuditNote(store.Audit{Actor: c.who.Name, ActorID: c.who.Key(), Via: c.who.Via, Action: c.action,
			App: c.app, Region: c.region, SHA: c.sha, Args: c.args, Outcome: "ok"})
	}
	return c.note.With(ctx)
}

// end audits a command that wrote no entry with a change: how it was refused or failed.
// One whose change was written is audited already; what failed after it is logged.
func (e *Engine) end(ctx context.Context, c *command, err error) {
	if c.note != nil && c.note.Written() {
		if err != nil {
			e.log.Warn("a command failed after its change", "actor", c.who.Key(), "action", c.action, "app", c.app, "region", c.region, "err", err)
		}
		return
	}
	e.auditArgs(ctx, c.who, c.action, c.app, c.region, c.sha, c.args, err)
}

func (e *Engine) audit(ctx context.Context, who Actor, action, app, region, sha string, err error) {
	e.auditArgs(ctx, who, action, app, region, sha, "", err)
}

func (e *Engine) auditArgs(ctx context.Context, who Actor, action, app, region, sha, args string, err error) {
	outcome, detail := "ok", ""
	if err != nil {
		outcome, detail = "failed", err.Error()
		if errors.Is(err, ErrLocked) || errors.Is(err, ErrNotHolder) || errors.Is(err, ErrBadInput) || errors.Is(err, ErrGate) || errors.Is(err, ErrFrozen) {
			outcome = "refused"
		}
	}
	e.Audit(ctx, who, action, app, region, sha, args, outcome, detail)
}

// holderName is who holds a lock, for people: the name, and the id when it says more.
func holderName(l store.Lock) string {
	if l.HolderID == "" || strings.HasSuffix(l.HolderID, ":"+l.Holder) {
		return l.Holder
	}
	return l.Holder + " (" + l.HolderID + ")"
}

// majority is the SHA most hosts of a region run.
func majority(live map[string]string) string {
	count := map[string]int{}
	best := ""
	for _, sha := range live {
		count[sha]++
		if count[sha] > count[best] || (count[sha] == count[best] && sha < best) {
			best = sha
		}
	}
	return best
}

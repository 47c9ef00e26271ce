package checks

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	gh "github.com/google/go-github/v60/github"

	"github.com/immunity-app/immunity/pipeline"
	"github.com/immunity-app/immunity/pipeline/config"
	"github.com/immunity-app/immunity/store"
)

// CheckName is the name of a region's check run.
func CheckName(region string) string { return "immunity / " + region }

// Button identifiers; app/github maps them back to commands.
const (
	ActionPromote  = "promote"
	ActionRollback = "rollback"
)

// checkView is what GitHub should show for one stage.
type checkView struct {
	Status     string // queued, in_progress, completed
	Conclusion string // set when completed
	Title      string
	Summary    string
	Actions    []*gh.CheckRunAction
}

// digest identifies a view, so an unchanged view is not sent again.
func (v checkView) digest() string {
	b, _ := json.Marshal(v)
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:12])
}

// statusOf maps a stage (and its run) to a check run status and conclusion. A stage a
// newer release took the place of before it started (its run superseded) is neutral
// where the newer release took over and skipped after it: nothing failed, nothing was
// cancelled by anyone.
func statusOf(run store.Run, st *store.Stage) (status, conclusion string) {
	if run.State == store.RunSuperseded && st.Started.IsZero() && (st.State == store.StageCancelled || st.State == store.StagePending) {
		if supersededAt(run) == st.Region {
			return "completed", "neutral"
		}
		return "completed", "skipped"
	}
	switch st.State {
	case store.StageAwaitingApproval:
		return "completed", "action_required"
	case store.StageApproved, store.StageDeploying, store.StageTesting, store.StageMonitoring, store.StageRollingBack:
		return "in_progress", ""
	case store.StageSucceeded:
		return "completed", "success"
	case store.StageFailed, store.StageRolledBack:
		return "completed", "failure"
	case store.StageSkipped:
		return "completed", "neutral"
	case store.StageCancelled:
		return "completed", "cancelled"
	}
	// pending: still to come, unless the run ended before reaching it
	switch run.State {
	case store.RunCancelled:
		return "completed", "cancelled"
	case store.RunFailed, store.RunSucceeded:
		return "completed", "skipped"
	}
	return "queued", ""
}

// supersededAt is the region where a superseded run's release gave way to a newer one:
// its first stage that never started.
func supersededAt(run store.Run) string {
	for _, st := range run.Stages {
		if st.Started.IsZero() && !st.State.Active() && st.State != store.StageSucceeded {
			return st.Region
		}
	}
	return ""
}

// view computes a stage's check run. live says whether the run's release is live in the
// stage's region now, and previous whether another release was live there before it that
// a rollback could put back: the Roll back button is offered only when both hold.
func view(cfg *config.Config, app *config.App, run store.Run, st *store.Stage, live, previous bool) checkView {
	status, concl := statusOf(run, st)
	v := checkView{Status: status, Conclusion: concl, Title: title(run, st, concl), Summary: summary(cfg, app, run, st)}
	region, _, _ := app.Region(st.Region)
	switch {
	case st.State == store.StageAwaitingApproval:
		v.Actions = append(v.Actions, button("Promote to "+st.Region, "Promote", "Deploy this release to "+st.Region, ActionPromote))
	case st.State == store.StageSucceeded && live && previous && region != nil:
		v.Actions = append(v.Actions, button("Roll back", "Roll back", "Put the previous release back on "+st.Region, ActionRollback))
	}
	return v
}

// button makes a check run action within GitHub's limits (label and identifier ≤ 20
// characters, description ≤ 40); short is the label when long does not fit.
func button(long, short, desc, id string) *gh.CheckRunAction {
	label := long
	if len([]rune(label)) > 20 {
		label = short
	}
	if r := []rune(desc); len(r) > 40 {
		desc = string(r[:39]) + "…"
	}
	return &gh.CheckRunAction{Label: label, Description: desc, Identifier: id}
}

func title(run store.Run, st *store.Stage, concl string) string {
	switch {
	case run.State == store.RunSuperseded && (concl == "neutral" || concl == "skipped") && st.Message != "":
		// the stage's message names the newer release: "superseded by abc1234 (run 9) at prod3"
		return fmt.Sprintf("%s %s: not deployed, %s", shortSHA(run.SHA), st.Region, clip(st.Message, 180))
	case st.State.Waiting() && pipeline.GateHold(st.Message):
		return fmt.Sprintf("%s %s: %s", shortSHA(run.SHA), st.Region, clip(st.Message, 180))
	case concl == "skipped" || concl == "cancelled" && st.State == store.StagePending:
		return fmt.Sprintf("%s %s: not reached (run %s)", shortSHA(run.SHA), st.Region, run.State)
	}
	return fmt.Sprintf("%s %s: %s", shortSHA(run.SHA), st.Region, st.State.Words())
}

// createOptions and updateOptions turn a view into the API's request bodies.
func createOptions(v checkView, run store.Run, st *store.Stage, details string, attempt int) gh.CreateCheckRunOptions {
	o := gh.CreateCheckRunOptions{Name: CheckName(st.Region), HeadSHA: run.SHA, Status: gh.String(v.Status),
		ExternalID: gh.String(externalID(run.ID, st.Region, attempt)), Output: output(v), Actions: v.Actions}
	if details != "" {
		o.DetailsURL = gh.String(details)
	}
	if !st.Started.IsZero() {
		o.StartedAt = &gh.Timestamp{Time: st.Started}
	}
	if v.Status == "completed" {
		o.Conclusion = gh.String(v.Conclusion)
		o.CompletedAt = &gh.Timestamp{Time: finished(st)}
	}
	return o
}

// checkUpdate is the body of PATCH /repos/{owner}/{repo}/check-runs/{id}. go-github's
// UpdateCheckRunOptions drops an empty actions list, and an empty list is how buttons that
// no longer apply are removed, so the body is ours.
type checkUpdate struct {
	Name        string               `json:"name"`
	DetailsURL  string               `json:"details_url,omitempty"`
	ExternalID  string               `json:"external_id"`
	Status      string               `json:"status"`
	Conclusion  string               `json:"conclusion,omitempty"`
	CompletedAt *gh.Timestamp        `json:"completed_at,omitempty"`
	Output      *gh.CheckRunOutput   `json:"output"`
	Actions     []*gh.CheckRunAction `json:"actions"`
}

func updateBody(v checkView, run store.Run, st *store.Stage, details string, attempt int) checkUpdate {
	u := checkUpdate{Name: CheckName(st.Region), DetailsURL: details, ExternalID: externalID(run.ID, st.Region, attempt),
		Status: v.Status, Output: output(v), Actions: v.Actions}
	if u.Actions == nil {
		u.Actions = []*gh.CheckRunAction{}
	}
	if v.Status == "completed" {
		u.Conclusion = v.Conclusion
		u.CompletedAt = &gh.Timestamp{Time: finished(st)}
	}
	return u
}

func output(v checkView) *gh.CheckRunOutput {
	return &gh.CheckRunOutput{Title: gh.String(v.Title), Summary: gh.String(v.Summary)}
}

func finished(st *store.Stage) time.Time {
	if !st.Finished.IsZero() {
		return st.Finished.UTC()
	}
	if !st.Updated.IsZero() {
		return st.Updated.UTC()
	}
	return time.Now().UTC()
}

// externalID ties a check run to its run, region and attempt (app/github reads the run
// and region back): run/ID/REGION for a stage's first check run, run/ID/REGION/N for its
// N-th. A create whose answer was lost is found again at GitHub by it.
func externalID(runID int64, region string, attempt int) string {
	if attempt <= 1 {
		return fmt.Sprintf("run/%d/%s", runID, region)
	}
	return fmt.Sprintf("run/%d/%s/%d", runID, region, attempt)
}

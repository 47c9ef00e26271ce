package github

import (
	"context"
	"fmt"

	"github.com/immunity-app/immunity/store"
)

// checkSuiteEvent is the part of a check_suite delivery we use, decoded here for the same
// reason as checkRunEvent.
type checkSuiteEvent struct {
	Action     string `json:"action"`
	CheckSuite struct {
		ID      int64  `json:"id"`
		HeadSHA string `json:"head_sha"`
	} `json:"check_suite"`
	Repository   repoRef `json:"repository"`
	Installation struct {
		ID int64 `json:"id"`
	} `json:"installation"`
	Sender sender `json:"sender"`
}

// repoRef is a payload's repository.
type repoRef struct {
	FullName string `json:"full_name"`
	Name     string `json:"name"`
	Owner    struct {
		Login string `json:"login"`
	} `json:"owner"`
}

// runsSearched bounds how far back a re-requested check suite's run is looked for.
const runsSearched = 200

// onCheckSuite handles "Re-run all checks" (rerequested): the failed stages of the run of
// that commit are run again, for someone who may write. Other actions are ignored.
func (a *App) onCheckSuite(ctx context.Context, ev *checkSuiteEvent) (string, error) {
	repo := ev.Repository
	a.remember(ctx, repo.FullName, ev.Installation.ID, repo.Owner.Login)
	if ev.Action != "rerequested" {
		return "ignored: check_suite " + ev.Action, nil
	}
	sha := ev.CheckSuite.HeadSHA
	run, ok, err := a.runOfCommit(ctx, repo.FullName, sha)
	if err != nil || !ok {
		return "ignored: no run of " + short(sha) + " in " + repo.FullName, err
	}
	failed := failedRegions(run)
	if len(failed) == 0 {
		return fmt.Sprintf("ignored: run %d of %s has no failed stage to re-run", run.ID, short(sha)), nil
	}
	c := conversation{client: a.clients.ForInstallation(ev.Installation.ID), owner: repo.Owner.Login, name: repo.Name,
		login: ev.Sender.Login, userID: ev.Sender.ID, via: "button"}
	return a.rerun(ctx, c, run.App, sha, "Re-run all checks", run.ID, failed)
}

// runOfCommit finds the newest run of sha among the apps bound to repo.
func (a *App) runOfCommit(ctx context.Context, repo, sha string) (store.Run, bool, error) {
	if sha == "" {
		return store.Run{}, false, nil
	}
	var best store.Run
	for _, app := range a.appsFor(repo) {
		runs, err := a.eng.Store().Runs(ctx, app.Name, false, runsSearched)
		if err != nil {
			return store.Run{}, false, fmt.Errorf("runs of %s: %w", app.Name, err)
		}
		for _, r := range runs { // newest first
			if r.SHA == sha && r.ID > best.ID {
				best = r
				break
			}
		}
	}
	return best, best.ID != 0, nil
}

// failedRegions lists the regions whose stage failed (or was rolled back) in a run.
func failedRegions(r store.Run) []string {
	var out []string
	for _, st := range r.Stages {
		if st.State == store.StageFailed || st.State == store.StageRolledBack {
			out = append(out, st.Region)
		}
	}
	return out
}

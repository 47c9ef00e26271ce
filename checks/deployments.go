package checks

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	gh "github.com/google/go-github/v60/github"

	"github.com/immunity-app/immunity/pipeline/config"
	"github.com/immunity-app/immunity/store"
)

// deployState maps a stage to the deployment status GitHub should show; "" means the
// stage has not started deploying (no deployment: a release approved, waiting or
// superseded never went to the region, and GitHub must not say it did).
func deployState(st *store.Stage) string {
	if st.Started.IsZero() {
		return ""
	}
	switch st.State {
	case store.StageDeploying, store.StageTesting, store.StageMonitoring, store.StageRollingBack:
		return "in_progress"
	case store.StageSucceeded:
		return "success"
	case store.StageFailed, store.StageRolledBack:
		return "failure"
	case store.StageCancelled:
		return "error"
	}
	return "" // started once, waiting again (a re-run): its deployment stays as it was
}

// deployment is one GitHub Deployment to create or move on.
type deployment struct {
	key        string
	app        *config.App
	region     *config.Region
	repo       string
	sha        string
	runID      int64
	task, desc string
	state      string // wanted status
	logURL     string
	statusDesc string
}

// syncDeployment creates the deployment if needed and posts the wanted status when it
// differs from the last one sent. A successful deployment makes our earlier ones of that
// environment inactive: GitHub's own auto_inactive leaves production and transient
// environments alone, and every region but production is transient here.
func (r *Reporter) syncDeployment(ctx context.Context, cl *gh.Client, d deployment) error {
	owner, name, _ := strings.Cut(d.repo, "/")
	row, found, err := r.st.Deployment(ctx, d.key)
	if err != nil {
		return err
	}
	if !found || row.DeploymentID == 0 {
		if row, err = r.createDeployment(ctx, cl, d, found); err != nil {
			return err
		}
	}
	if row.State == "inactive" && d.state == "success" {
		// A newer deployment replaced it (or a rollback did): a later snapshot of its
		// stage, still succeeded, must not make it active again.
		return nil
	}
	for _, state := range ladder(row.State, d.state) {
		desc := d.statusDesc
		if state != d.state {
			desc = words(state)
		}
		if err := r.postStatus(ctx, cl, &row, state, d.logURL, envURL(d.region), desc); err != nil {
			return err
		}
	}
	if d.state == "success" {
		return r.retireOthers(ctx, cl, owner, name, row)
	}
	return nil
}

// ladder lists the statuses to post to go from the last one sent to the wanted one, so
// the deployment's timeline always reads queued → in_progress → outcome even when the
// reporter only saw the outcome (events are coalesced while GitHub is slow).
func ladder(last, want string) []string {
	if last == want {
		return nil
	}
	var out []string
	if last == "" && want != "queued" {
		out = append(out, "queued")
	}
	if (last == "" || last == "queued") && want != "queued" && want != "in_progress" && want != "inactive" {
		out = append(out, "in_progress")
	}
	return append(out, want)
}

// createDeployment creates d's deployment, its row written first (deployment id 0), so a
// create whose answer was lost (sent, then the connection cut or the server stopped) is
// looked up at GitHub by its key, which the deployment's payload carries, not repeated.
func (r *Reporter) createDeployment(ctx context.Context, cl *gh.Client, d deployment, sent bool) (store.Deployment, error) {
	owner, name, _ := strings.Cut(d.repo, "/")
	row := store.Deployment{Key: d.key, App: d.app.Name, Region: d.region.Name, SHA: d.sha, RunID: d.runID, Repo: d.repo,
		Production: d.region.Production}
	if sent {
		id, ok, err := findDeployment(ctx, cl, owner, name, d)
		if err != nil {
			return store.Deployment{}, err
		}
		if ok {
			row.DeploymentID = id
			return row, r.st.SaveDeployment(ctx, row)
		}
	} else if err := r.st.SaveDeployment(ctx, row); err != nil {
		return store.Deployment{}, err
	}
	req := &gh.DeploymentRequest{
		Ref:                   gh.String(d.sha),
		Task:                  gh.String(d.task),
		AutoMerge:             gh.Bool(false),
		RequiredContexts:      &[]string{},
		Payload:               map[string]any{"app": d.app.Name, "run_id": d.runID, "region": d.region.Name, "key": d.key},
		Environment:           gh.String(d.region.Name),
		Description:           gh.String(clip(d.desc, 140)),
		ProductionEnvironment: gh.Bool(d.region.Production),
		TransientEnvironment:  gh.Bool(!d.region.Production),
	}
	dep, _, err := cl.Repositories.CreateDeployment(ctx, owner, name, req)
	if err != nil {
		return store.Deployment{}, fmt.Errorf("create deployment of %s@%s to %s: %w", d.app.Name, shortSHA(d.sha), d.region.Name, err)
	}
	if dep.GetID() == 0 {
		return store.Deployment{}, fmt.Errorf("create deployment of %s@%s to %s: GitHub answered without a deployment id", d.app.Name, shortSHA(d.sha), d.region.Name)
	}
	row.DeploymentID = dep.GetID()
	return row, r.st.SaveDeployment(ctx, row)
}

// findDeployment looks for d's deployment among the commit's deployments of its
// environment and task (newest first) by the key in its payload.
func findDeployment(ctx context.Context, cl *gh.Client, owner, repo string, d deployment) (int64, bool, error) {
	opts := &gh.DeploymentsListOptions{SHA: d.sha, Task: d.task, Environment: d.region.Name, ListOptions: gh.ListOptions{PerPage: 100}}
	for {
		deps, resp, err := cl.Repositories.ListDeployments(ctx, owner, repo, opts)
		if err != nil {
			return 0, false, fmt.Errorf("look for the deployment of %s@%s to %s: %w", d.app.Name, shortSHA(d.sha), d.region.Name, err)
		}
		for _, dep := range deps {
			var p struct {
				Key string `json:"key"`
			}
			if json.Unmarshal(dep.Payload, &p) == nil && p.Key == d.key {
				return dep.GetID(), true, nil
			}
		}
		if resp.NextPage == 0 {
			return 0, false, nil
		}
		opts.Page = resp.NextPage
	}
}

func (r *Reporter) postStatus(ctx context.Context, cl *gh.Client, row *store.Deployment, state, logURL, env, desc string) error {
	owner, name, _ := strings.Cut(row.Repo, "/")
	req := &gh.DeploymentStatusRequest{State: gh.String(state), Description: gh.String(clip(desc, 140))}
	if logURL != "" {
		req.LogURL = gh.String(logURL)
	}
	if env != "" {
		req.EnvironmentURL = gh.String(env)
	}
	if _, _, err := cl.Repositories.CreateDeploymentStatus(ctx, owner, name, row.DeploymentID, req); err != nil {
		return fmt.Errorf("deployment %d (%s@%s in %s) -> %s: %w", row.DeploymentID, row.App, shortSHA(row.SHA), row.Region, state, err)
	}
	row.State = state
	return r.st.SaveDeployment(ctx, *row)
}

// retireOthers marks our earlier successful deployments of a region inactive.
func (r *Reporter) retireOthers(ctx context.Context, cl *gh.Client, owner, name string, cur store.Deployment) error {
	others, err := r.st.ActiveDeployments(ctx, cur.Repo, cur.Region, cur.Key)
	if err != nil {
		return err
	}
	for _, o := range others {
		if err := r.postStatus(ctx, cl, &o, "inactive", "", "", fmt.Sprintf("replaced by %s", shortSHA(cur.SHA))); err != nil {
			return err
		}
	}
	return nil
}

// stageDeployment is the deployment a run's stage should have, if any.
func stageDeployment(cfg *config.Config, app *config.App, run store.Run, st *store.Stage) (deployment, bool) {
	region, _, ok := app.Region(st.Region)
	state := deployState(st)
	if !ok || state == "" || run.SHA == "" {
		return deployment{}, false
	}
	desc := st.Message
	if desc == "" {
		desc = st.State.Words()
	}
	return deployment{key: fmt.Sprintf("run/%d/%s", run.ID, st.Region), app: app, region: region, repo: app.Repo.GitHub,
		sha: run.SHA, runID: run.ID, task: "deploy", desc: fmt.Sprintf("%s %s to %s (run %d)", app.Name, shortSHA(run.SHA), region.Name, run.ID),
		state: state, logURL: RunURL(cfg, run.ID), statusDesc: desc}, true
}

// envURL is where the region's app answers: its first host's URL.
func envURL(r *config.Region) string {
	for _, h := range r.Hosts {
		if strings.HasPrefix(h.URL, "http://") || strings.HasPrefix(h.URL, "https://") {
			return h.URL
		}
	}
	return ""
}

func clip(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

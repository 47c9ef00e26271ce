package github

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/immunity-app/immunity/store"
)

// Immunity as a custom deployment protection rule of GitHub Actions environments: GitHub
// sends deployment_protection_rule (action requested) when a job with `environment: X`
// waits for its rules. The request is recorded in the store before the delivery is
// answered (parseGate, on the request path); the decision is taken afterwards, by the
// app's github_gate, by whoever WithGateWake wakes (checks.Gate), and sent through the
// outbox.

// WithGateWake is called after a gate request was recorded, to have it decided.
func WithGateWake(wake func()) Option { return func(o *options) { o.gateWake = wake } }

// gateEvent is the part of a deployment_protection_rule delivery Immunity reads
// (go-github v60 lacks its sha and ref).
type gateEvent struct {
	Action                string `json:"action"`
	Environment           string `json:"environment"`
	SHA                   string `json:"sha"`
	Ref                   string `json:"ref"`
	DeploymentCallbackURL string `json:"deployment_callback_url"`
	Deployment            struct {
		ID  int64  `json:"id"`
		SHA string `json:"sha"`
	} `json:"deployment"`
	Repository   eventRepo         `json:"repository"`
	Installation eventInstallation `json:"installation"`
}

// parseGate reads a deployment_protection_rule request into what the store keeps, or says
// what is wrong with it. The workflow run to review is read from deployment_callback_url,
// which must name the event's own repository: reviews are then sent to the configured API
// (never to a URL a payload names).
func parseGate(ev *gateEvent) (store.GateRequest, error) {
	repo := ev.Repository.FullName
	g := store.GateRequest{Repo: repo, Installation: ev.Installation.ID, Environment: ev.Environment,
		DeploymentID: ev.Deployment.ID, SHA: ev.SHA, Ref: ev.Ref, CallbackURL: ev.DeploymentCallbackURL}
	if g.SHA == "" {
		g.SHA = ev.Deployment.SHA
	}
	switch {
	case strings.Count(repo, "/") != 1:
		return g, fmt.Errorf("deployment_protection_rule: repository.full_name: expected owner/name, got %q", repo)
	case g.Installation == 0:
		return g, errors.New("deployment_protection_rule: no installation: the App's own deliveries name it")
	case strings.TrimSpace(g.Environment) == "":
		return g, errors.New("deployment_protection_rule: no environment")
	case !shaRE.MatchString(g.SHA):
		return g, fmt.Errorf("deployment_protection_rule: sha: expected a commit id of 40 hex digits, got %q", g.SHA)
	}
	runID, err := callbackRun(g.CallbackURL, repo)
	if err != nil {
		return g, fmt.Errorf("deployment_protection_rule: %w", err)
	}
	g.ActionsRunID = runID
	return g, nil
}

// badRequest is a delivery refused for what it says (400), not for a failure here.
type badRequest struct{ error }

var shaRE = regexp.MustCompile(`^[0-9a-f]{40}$`)

// callbackRun reads the workflow run id of a deployment_callback_url,
// https://api.github.com/repos/OWNER/REPO/actions/runs/ID/deployment_protection_rule (on
// GitHub Enterprise under /api/v3), which must be repo's.
func callbackRun(callback, repo string) (int64, error) {
	u, err := url.Parse(callback)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return 0, fmt.Errorf("deployment_callback_url: expected an https URL, got %q", callback)
	}
	path := strings.TrimPrefix(u.Path, "/api/v3")
	parts := strings.Split(strings.Trim(path, "/"), "/")
	if len(parts) != 7 || parts[0] != "repos" || parts[3] != "actions" || parts[4] != "runs" || parts[6] != "deployment_protection_rule" {
		return 0, fmt.Errorf("deployment_callback_url: expected .../repos/OWNER/REPO/actions/runs/ID/deployment_protection_rule, got %q", callback)
	}
	if !strings.EqualFold(parts[1]+"/"+parts[2], repo) {
		return 0, fmt.Errorf("deployment_callback_url names %s/%s, not the event's repository %s", parts[1], parts[2], repo)
	}
	id, err := strconv.ParseInt(parts[5], 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("deployment_callback_url: workflow run id %q is not a number", parts[5])
	}
	return id, nil
}

// recordGate stores a deployment_protection_rule request before its delivery is answered,
// bound to the app whose github_gate names its environment ("" when none does: it is
// rejected, saying so). Other actions are left to the router, which ignores them.
func (a *App) recordGate(ctx context.Context, ev *gateEvent) error {
	if ev.Action != "requested" {
		return nil
	}
	g, err := parseGate(ev)
	if err != nil {
		return badRequest{err}
	}
	for _, app := range a.appsFor(g.Repo) {
		if _, ok := app.Gate(g.Environment); ok {
			g.App = app.Name
			break
		}
	}
	stored, fresh, err := a.st.AddGateRequest(ctx, g)
	if err != nil {
		return err
	}
	a.log.Info("github gate request recorded", "gate", stored.ID, "repo", stored.Repo, "environment", stored.Environment,
		"sha", stored.SHA, "workflow_run", stored.ActionsRunID, "app", stored.App, "new", fresh)
	return nil
}

// onGate has a recorded request decided.
func (a *App) onGate(ctx context.Context, ev *gateEvent) (string, error) {
	if ev.Action != "requested" {
		return "ignored: deployment_protection_rule " + ev.Action, nil
	}
	a.remember(ctx, ev.Repository.FullName, ev.Installation.ID, ev.Repository.Owner.Login)
	if a.gateWake != nil {
		a.gateWake()
	}
	return fmt.Sprintf("gate request for %s of %s@%s recorded", ev.Environment, ev.Repository.FullName, ev.SHA), nil
}

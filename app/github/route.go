package github

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"

	gh "github.com/google/go-github/v60/github"

	"github.com/immunity-app/immunity/pipeline"
	"github.com/immunity-app/immunity/pipeline/config"
)

// handle routes one verified delivery, decoded once (see decode), and says what it did.
func (a *App) handle(ctx context.Context, event string, payload any) (string, error) {
	switch ev := payload.(type) {
	case nil:
		return "ignored: " + event, nil
	case *pushEvent:
		a.remember(ctx, ev.Repository.FullName, ev.Installation.ID, ev.Repository.Owner.Login)
		return a.onPush(ctx, ev)
	case *checkRunEvent:
		return a.onCheckRun(ctx, ev)
	case *checkSuiteEvent:
		return a.onCheckSuite(ctx, ev)
	case *gateEvent:
		return a.onGate(ctx, ev)
	}
	a.rememberFrom(ctx, payload)
	switch ev := payload.(type) {
	case *gh.PingEvent:
		return fmt.Sprintf("ping: %s", ev.GetZen()), nil
	case *gh.IssueCommentEvent:
		if ev.GetAction() != "created" {
			return "ignored: comment " + ev.GetAction(), nil
		}
		return a.onIssueComment(ctx, ev)
	case *gh.CommitCommentEvent:
		if ev.GetAction() != "created" {
			return "ignored: commit comment " + ev.GetAction(), nil
		}
		return a.onCommitComment(ctx, ev)
	case *gh.InstallationEvent:
		return a.onInstallation(ctx, ev)
	case *gh.InstallationRepositoriesEvent:
		return a.onInstallationRepos(ctx, ev)
	}
	return "ignored: " + event, nil
}

// rememberFrom records the installation named by any event that carries a repository.
func (a *App) rememberFrom(ctx context.Context, payload any) {
	var id int64
	var repo, owner string
	switch p := payload.(type) {
	case interface {
		GetInstallation() *gh.Installation
		GetRepo() *gh.Repository
	}:
		id, repo, owner = p.GetInstallation().GetID(), p.GetRepo().GetFullName(), p.GetRepo().GetOwner().GetLogin()
	}
	a.remember(ctx, repo, id, owner)
}

// remember records that installation id serves repo, unless that is known already: a
// delivery costs no write for an installation seen before.
func (a *App) remember(ctx context.Context, repo string, id int64, owner string) {
	if id == 0 || repo == "" || a.known.has(repo, id, owner) {
		return
	}
	if err := a.st.RememberInstallation(ctx, repo, id, owner); err != nil {
		a.log.Warn("remember installation", "err", err)
		return
	}
	a.known.add(repo, id, owner)
}

// installationCache is the installations remembered since the start, by repo.
type installationCache struct {
	mu sync.Mutex
	m  map[string]string // lower-case repo -> "id/owner"
}

func installationKey(id int64, owner string) string { return strconv.FormatInt(id, 10) + "/" + owner }

func (c *installationCache) has(repo string, id int64, owner string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[strings.ToLower(repo)] == installationKey(id, owner)
}

func (c *installationCache) add(repo string, id int64, owner string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]string{}
	}
	c.m[strings.ToLower(repo)] = installationKey(id, owner)
}

// forget drops everything: repos were removed from an installation.
func (c *installationCache) forget() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.m)
}

// appsFor lists the configured apps bound to a GitHub repo.
func (a *App) appsFor(repo string) []*config.App {
	cfg := a.eng.Config()
	var out []*config.App
	for i := range cfg.Apps {
		if repo != "" && strings.EqualFold(cfg.Apps[i].Repo.GitHub, repo) {
			out = append(out, &cfg.Apps[i])
		}
	}
	return out
}

// onPush starts a run for every app whose branch was pushed. Tags, other branches and
// branch deletions start nothing.
func (a *App) onPush(ctx context.Context, ev *pushEvent) (string, error) {
	repo := ev.Repository.FullName
	branch, isBranch := strings.CutPrefix(ev.Ref, "refs/heads/")
	if !isBranch || ev.Deleted || strings.Trim(ev.After, "0") == "" {
		return "ignored: push of " + ev.Ref, nil
	}
	actor := pipeline.Actor{Name: ev.Pusher.Name, Via: "push", GitHubLogin: ev.Sender.Login}
	if actor.Name == "" {
		actor.Name = actor.GitHubLogin
	}
	var started []string
	for _, app := range a.appsFor(repo) {
		if app.Repo.Branch != branch {
			continue
		}
		run, err := a.eng.StartRun(ctx, app.Name, ev.After, pipeline.Trigger{Kind: "push", Branch: branch, Actor: actor})
		if err != nil {
			return "", fmt.Errorf("push to %s@%s: start run of %s: %w", repo, branch, app.Name, err)
		}
		started = append(started, fmt.Sprintf("%s run %d", app.Name, run.ID))
		noteStarted(ctx, run)
	}
	if len(started) == 0 {
		return fmt.Sprintf("ignored: no app deploys %s@%s", repo, branch), nil
	}
	return "started " + strings.Join(started, ", "), nil
}

func (a *App) onInstallation(ctx context.Context, ev *gh.InstallationEvent) (string, error) {
	id := ev.GetInstallation().GetID()
	account := ev.GetInstallation().GetAccount().GetLogin()
	a.known.forget()
	switch ev.GetAction() {
	case "deleted", "suspend":
		return fmt.Sprintf("installation %d %s", id, ev.GetAction()), a.st.ForgetRepos(ctx, id, nil)
	}
	for _, r := range ev.Repositories {
		if err := a.st.RememberInstallation(ctx, r.GetFullName(), id, account); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("installation %d %s: %d repos", id, ev.GetAction(), len(ev.Repositories)), nil
}

func (a *App) onInstallationRepos(ctx context.Context, ev *gh.InstallationRepositoriesEvent) (string, error) {
	a.known.forget()
	id := ev.GetInstallation().GetID()
	account := ev.GetInstallation().GetAccount().GetLogin()
	for _, r := range ev.RepositoriesAdded {
		if err := a.st.RememberInstallation(ctx, r.GetFullName(), id, account); err != nil {
			return "", err
		}
	}
	var removed []string
	for _, r := range ev.RepositoriesRemoved {
		removed = append(removed, r.GetFullName())
	}
	if len(removed) > 0 {
		if err := a.st.ForgetRepos(ctx, id, removed); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("installation %d: +%d -%d repos", id, len(ev.RepositoriesAdded), len(removed)), nil
}

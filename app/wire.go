package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/slack-go/slack"

	"github.com/immunity-app/immunity/app/github"
	"github.com/immunity-app/immunity/app/metrics"
	"github.com/immunity-app/immunity/bot"
	"github.com/immunity-app/immunity/bot/slackbot"
	"github.com/immunity-app/immunity/canary"
	"github.com/immunity-app/immunity/canary/mirror"
	"github.com/immunity-app/immunity/checks"
	"github.com/immunity-app/immunity/deployers"
	"github.com/immunity-app/immunity/deployers/local"
	sshdeploy "github.com/immunity-app/immunity/deployers/ssh"
	"github.com/immunity-app/immunity/internal/logctx"
	"github.com/immunity-app/immunity/internal/wait"
	"github.com/immunity-app/immunity/pipeline"
	"github.com/immunity-app/immunity/pipeline/config"
	"github.com/immunity-app/immunity/pipeline/release"
	"github.com/immunity-app/immunity/store"
)

// Options configure an Instance.
type Options struct {
	Config    *config.Config
	Logger    *slog.Logger
	Listeners []pipeline.Listener
	BuildLog  io.Writer
	// Mounts add routes (GitHub, Slack) to the server.
	Mounts []func(gin.IRouter)
	// MirrorToken authenticates Immunity to the mirror sidecars of production hosts.
	MirrorToken string
	// Persisted is told the name of each transition right after it is written
	// (pipeline.Options.Persisted); the crash tests kill the server there.
	Persisted func(point string)
}

// Instance is a whole Immunity server: store, engine, deployers, canary monitor, command
// layer and HTTP server, built from one config.
type Instance struct {
	Config   *config.Config
	Store    *store.Store
	Engine   *pipeline.Engine
	Server   *Server
	Commands *bot.Commands
	Monitor  *canary.Monitor
	Mirrors  *mirror.Registry
	Metrics  *metrics.Metrics

	log     *slog.Logger
	closers []func(context.Context) error // reporters and handlers, drained on Close
	mu      sync.Mutex
	locals  map[string]*local.Deployer // per app
	builder *builder
	ssh     *sshdeploy.Deployer // every ssh region's hosts, one pooled connection each
}

// Open builds an Instance; Start sets it going.
func Open(ctx context.Context, o Options) (*Instance, error) {
	cfg := o.Config
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	o.Logger = slog.New(logctx.Handler(o.Logger.Handler())) // lines of a run's work say which
	if err := os.MkdirAll(cfg.Server.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	st, err := store.Open(ctx, cfg.Server.DatabaseSetting())
	if err != nil {
		return nil, err
	}
	st.SetReplica(cfg.Server.ReplicaName())
	st.SetLeaseTTL(cfg.Server.Lease.Duration)
	var gh *github.App
	in := &Instance{Config: cfg, Store: st, log: o.Logger, locals: map[string]*local.Deployer{}}
	in.builder = &builder{dir: cfg.Server.DataDir, artifacts: cfg.Server.ArtifactsDir, st: st, logs: o.Logger, log: o.BuildLog, repos: &release.Repos{}}
	in.ssh = sshdeploy.New(sshdeploy.Options{Settings: sshSettingsLookup(cfg), Logger: o.Logger})
	in.Mirrors = mirror.NewRegistry(mirror.Options{})
	in.Monitor = &canary.Monitor{Mirrors: switchMirrors(cfg, in.Mirrors, o.MirrorToken), Registry: in.Mirrors, Log: o.Logger}
	eng, err := pipeline.New(pipeline.Options{
		Config:    cfg,
		Store:     st,
		Builder:   in.builder,
		Tester:    testers{cfg: cfg, ssh: in.ssh, here: pipeline.CommandTester{Dir: cfg.Server.DataDir}},
		Monitor:   in.Monitor,
		Deployer:  in.deployer,
		Logger:    o.Logger,
		Persisted: o.Persisted,
		Secrets:   knownSecrets(cfg, o.MirrorToken, os.Environ()),
	})
	if err != nil {
		st.Close()
		return nil, err
	}
	for _, l := range o.Listeners {
		eng.AddListener(l)
	}
	in.Engine = eng
	in.Metrics = metrics.New(eng)
	if err := in.Metrics.Register(metrics.NewOutboxCollector(st)); err != nil {
		st.Close()
		return nil, err
	}
	eng.AddListener(in.Metrics)
	members := bot.MemberFuncs{GitHubTeam: func(ctx context.Context, team, login string) (bool, error) {
		if gh == nil {
			return false, errors.New("GitHub teams need the GitHub App to be configured")
		}
		return gh.Clients().InGitHubTeam(ctx, team, login)
	}}
	var slackClient *slack.Client
	if cfg.Slack.Configured() {
		if slackClient, err = slackbot.NewClient(cfg.Slack, slack.OptionHTTPClient(&http.Client{Transport: in.Metrics.Transport("slack", nil)})); err != nil {
			st.Close()
			return nil, err
		}
		members.SlackGroup = slackbot.NewGroups(slackClient).InSlackGroup
	}
	in.Commands = bot.New(eng, members)
	cmds := countedCommands{in.Commands, in.Metrics}
	mounts := o.Mounts
	var setup *github.Setup // the GitHub App's setup, while none is configured
	if slackClient != nil {
		sb, err := slackbot.New(slackbot.Options{Config: cfg, Client: slackClient, Commands: cmds, Store: st, Logger: o.Logger,
			OnRateLimit: func(d time.Duration) { in.Metrics.RateLimitWait("slack", d) }, OnRetry: func() { in.Metrics.Retry("slack") }})
		if err != nil {
			st.Close()
			return nil, err
		}
		eng.AddListener(sb)
		in.closers = append(in.closers, sb.Close)
		mounts = append(mounts, sb.Routes)
	}
	if cfg.GitHub.Configured() {
		in.builder.remote = func(ctx context.Context, a *config.App) (release.Remote, error) {
			tok, err := gh.Clients().CloneToken(ctx, a.Repo.GitHub)
			return release.Remote{URL: github.CloneURL(cfg.GitHub.BaseURL(), a.Repo.GitHub), Token: tok}, err
		}
		var gate *checks.Gate // made once the reporter is; no delivery arrives before Open returns
		gh, err = github.New(cfg.GitHub, eng, cmds, o.Logger, github.WithMetrics(in.Metrics), github.WithGateWake(func() { gate.Wake() }))
		if err != nil {
			st.Close()
			return nil, err
		}
		rep := checks.NewReporter(cfg, st, gh.Clients(), o.Logger, checks.WithRetries(func() { in.Metrics.Retry("github") }, func(d time.Duration) { in.Metrics.RateLimitWait("github", d) }))
		eng.AddListener(rep)
		gate = checks.NewGate(cfg, st, eng, rep, o.Logger)
		eng.AddListener(gate)
		in.closers = append(in.closers, gh.Close, gate.Close, rep.Close)
		mounts = append(mounts, gh.Routes)
	} else {
		url := cfg.Server.URL
		if url == "" {
			url = "http://" + cfg.Server.Listen
		}
		setup = github.NewSetup(cfg.GitHub, url, cfg.Server.DataDir, o.Logger)
		mounts = append(mounts, setup.Routes)
	}
	in.Server = NewServer(eng, in.Metrics, in.command, o.Logger, mounts...)
	if setup != nil {
		setup.Guard(in.Server.operatorOnly)
	}
	if err := in.Server.configureSignIn(cfg, in.Metrics.Transport("github", nil)); err != nil {
		st.Close()
		return nil, err
	}
	eng.AddListener(in.Server.live)
	return in, nil
}

func (in *Instance) command(ctx context.Context, who pipeline.Actor, text string) (string, bool) {
	r := countedCommands{in.Commands, in.Metrics}.Exec(ctx, bot.Request{Actor: who, Text: text})
	return r.Text, r.OK
}

// countedCommands is the command layer counting every command by surface, command and
// outcome.
type countedCommands struct {
	*bot.Commands
	m *metrics.Metrics
}

func (c countedCommands) Exec(ctx context.Context, req bot.Request) bot.Reply {
	r := c.Commands.Exec(ctx, req)
	name, outcome := r.Command, "ok"
	switch {
	case name == "":
		name, outcome = "unknown", "not_understood"
	case !r.OK:
		outcome = "refused"
	}
	c.m.Command(surface(req.Actor), name, outcome)
	return r
}

// surface is where a command was given, for the metrics: slack, github (a comment),
// slack_button, github_button, dashboard, socket (the CLI on the server's machine), api
// (the CLI or a script with a token, or anonymous).
func surface(a pipeline.Actor) string {
	if a.Via == "button" {
		if a.SlackUserID != "" {
			return "slack_button"
		}
		return "github_button"
	}
	return a.Via
}

// Start turns stale mirrors off, starts the in-process traffic mirrors in front of
// production hosts and resumes the engine, which puts the local hosts' apps of the apps
// whose lease it holds back up (adopting the ones running) as it takes them over.
func (in *Instance) Start(ctx context.Context) error {
	in.Monitor.Reset(ctx)
	for i := range in.Config.Apps {
		a := &in.Config.Apps[i]
		for j := range a.Regions {
			r := &a.Regions[j]
			if r.Deployer != "local" {
				continue
			}
			for _, h := range in.Engine.Hosts(a, r) {
				if r.Production {
					if _, err := in.Mirrors.Start(ctx, h, "127.0.0.1:0"); err != nil {
						return err
					}
				}
			}
		}
	}
	if err := in.Engine.Start(ctx); err != nil {
		return err
	}
	go in.housekeeping(ctx)
	return nil
}

// housekeeping deletes delivered outbox rows a week old, every hour, until ctx ends.
func (in *Instance) housekeeping(ctx context.Context) {
	for {
		if err := in.Store.PruneOutbox(ctx, 7*24*time.Hour); err != nil && ctx.Err() == nil {
			in.log.Warn("housekeeping", "err", err)
		}
		if wait.Sleep(ctx, time.Hour) != nil {
			return
		}
	}
}

// MirrorURL is where production traffic for a local host goes (its mirror), or the host's
// own URL when it has none.
func (in *Instance) MirrorURL(h deployers.Host) string {
	if p := in.Mirrors.Lookup(h); p != nil {
		return p.URL()
	}
	return h.URL
}

// Close stops the engine and closes the store; stopHosts also stops local apps.
func (in *Instance) Close(stopHosts bool) {
	in.Engine.Stop()
	dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer dcancel()
	for _, c := range in.closers {
		c(dctx)
	}
	in.Mirrors.Close()
	in.ssh.Close()
	if stopHosts {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, d := range in.locals {
			d.StopAll(ctx)
		}
	}
	in.Store.Close()
}

// deployer returns the deployer of an app's region.
func (in *Instance) deployer(a *config.App, r *config.Region) (deployers.Deployer, error) {
	switch r.Deployer {
	case "local":
		in.mu.Lock()
		defer in.mu.Unlock()
		if d, ok := in.locals[a.Name]; ok {
			return d, nil
		}
		d := local.New(local.Options{Run: a.Run.Command, Env: a.Run.Env, Health: a.Run.Health, HealthTimeout: a.Run.HealthTimeout.Duration,
			StartTimeout: a.Run.StartTimeout.Or(20 * time.Second), Keep: a.KeepReleases, Log: in.log})
		in.locals[a.Name] = d
		return d, nil
	case "ssh":
		return in.ssh, nil
	}
	return nil, fmt.Errorf("region %s: deployer %q is not available in this build", r.Name, r.Deployer)
}

// builder builds releases with pipeline/release from the app's local repository, or, for
// an app only on GitHub, from a mirror of it kept under data_dir/repos.
type builder struct {
	dir string
	// artifacts is server.artifacts_dir, a folder shared by the replicas ("": dir/artifacts).
	artifacts string
	// st, on PostgreSQL, makes builds once across replicas (artifacts.go); nil or SQLite:
	// builds of one process, artifacts on disk.
	st    *store.Store
	logs  *slog.Logger
	log   io.Writer
	repos *release.Repos // open repository handles, for looking pushed commits up
	// remote says where an app without repo.path is fetched from.
	remote func(ctx context.Context, a *config.App) (release.Remote, error)
}

var errNoRepo = errors.New("has no repository: expected repo.path, or repo.github with the GitHub App configured")

// repo is where the app's commits are read.
func (b builder) repo(a *config.App) (path string, mirrored bool, err error) {
	switch {
	case a.Repo.Path != "":
		return a.Repo.Path, false, nil
	case a.Repo.GitHub != "" && b.remote != nil:
		return filepath.Join(b.dir, "repos", a.Name+".git"), true, nil
	}
	return "", false, fmt.Errorf("app %s %w", a.Name, errNoRepo)
}

func (b builder) sync(ctx context.Context, a *config.App, path string) error {
	r, err := b.remote(ctx, a)
	if err != nil {
		return err
	}
	os.MkdirAll(filepath.Dir(path), 0o755)
	return release.Sync(ctx, path, r)
}

func (b builder) Build(ctx context.Context, a *config.App, sha string) (deployers.Release, error) {
	path, _, err := b.repo(a)
	if err != nil {
		return deployers.Release{}, fmt.Errorf("build %s: %w", a.Name, err)
	}
	spec := release.Spec{App: a.Name, RepoPath: path, SHA: sha, Command: a.Build.Command,
		Artifacts: a.Build.Artifacts, Env: a.Build.Env, Timeout: a.Build.Timeout.Duration, Dir: b.dir, ArtifactDir: b.artifacts, Log: b.log}
	if b.st != nil && b.st.Engine() == "postgres" {
		return b.buildOnce(ctx, spec)
	}
	return release.Build(ctx, spec)
}

// Commit looks a commit up; a mirror is fetched first when it lacks the commit (or always,
// for the head of the branch).
func (b builder) Commit(ctx context.Context, a *config.App, sha string) (pipeline.Commit, error) {
	path, mirrored, err := b.repo(a)
	if err != nil {
		return pipeline.Commit{}, err
	}
	lookup := func() (release.Commit, error) {
		if sha == "" {
			return b.repos.Head(path, a.Repo.Branch)
		}
		return b.repos.Lookup(path, sha)
	}
	c, err := lookup()
	if mirrored && (err != nil || sha == "") {
		if serr := b.sync(ctx, a, path); serr != nil {
			return pipeline.Commit{}, fmt.Errorf("app %s: %w", a.Name, serr)
		}
		c, err = lookup()
	}
	return pipeline.Commit{SHA: c.SHA, Subject: c.Subject, Author: c.Author, Committed: c.Committed}, err
}

// SocketPath is where the server's local socket lives: data_dir/immunity.sock.
func (in *Instance) SocketPath() string {
	return filepath.Join(in.Config.Server.DataDir, SocketName)
}

// secretName matches the names of environment variables that hold secrets.
var secretName = regexp.MustCompile(`(?i)(token|secret|password|passwd|private|api_?key|credential)`)

// knownSecrets are the server's own secret values, which test output shown to people
// must never hold: the GitHub and Slack credentials, the mirror token, and the value of
// every variable of its environment whose name says it is a secret (IMMUNITY_API_TOKEN,
// IMMUNITY_MIRROR_TOKEN, ...), files named by *_FILE variables included.
func knownSecrets(cfg *config.Config, mirrorToken string, environ []string) []string {
	out := []string{mirrorToken, cfg.GitHub.PrivateKey, cfg.GitHub.WebhookSecret}
	if b, err := cfg.GitHub.Secret(); err == nil {
		out = append(out, string(b))
	}
	if cfg.GitHub.SignIn() {
		if sec, err := cfg.GitHub.OAuthSecret(); err == nil {
			out = append(out, sec)
		}
	}
	if cfg.Slack.Configured() {
		if tok, err := cfg.Slack.Token(); err == nil {
			out = append(out, tok)
		}
		if sec, err := cfg.Slack.Secret(); err == nil {
			out = append(out, sec)
		}
	}
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		if !secretName.MatchString(k) || v == "" {
			continue
		}
		if strings.HasSuffix(k, "_FILE") {
			if b, err := os.ReadFile(v); err == nil && len(b) < 64<<10 {
				v = strings.TrimSpace(string(b))
			}
		}
		out = append(out, v)
	}
	var kept []string
	for _, s := range out {
		if s = strings.TrimSpace(s); s != "" {
			kept = append(kept, s)
		}
	}
	return kept
}

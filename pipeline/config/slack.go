package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// DefaultSlackAPIURL is Slack's Web API unless api_url (IMMUNITY_SLACK_API_URL) says otherwise.
const DefaultSlackAPIURL = "https://slack.com/api/"

// SlackConfig is the Slack bot's settings; the IMMUNITY_SLACK_* environment wins.
// Secrets are read from files or the environment and never logged.
type SlackConfig struct {
	BotToken          string `yaml:"bot_token"`
	BotTokenFile      string `yaml:"bot_token_file"`
	SigningSecret     string `yaml:"signing_secret"`
	SigningSecretFile string `yaml:"signing_secret_file"`
	APIURL            string `yaml:"api_url"` // default https://slack.com/api/
	// Channel is where runs of apps without their own slack.channel are posted.
	Channel string `yaml:"channel"`
	// Users links Slack user ids to GitHub logins (U024BE7LH: octocat), so that one access
	// policy written with GitHub logins or teams also serves Slack.
	Users map[string]string `yaml:"users"`
}

// FromEnv overrides s with the IMMUNITY_SLACK_* variables that are set; getenv is
// os.Getenv outside tests.
func (s *SlackConfig) FromEnv(getenv func(string) string) {
	if getenv == nil {
		getenv = os.Getenv
	}
	set := func(dst *string, name string) {
		if v := getenv(name); v != "" {
			*dst = v
		}
	}
	set(&s.BotToken, "IMMUNITY_SLACK_BOT_TOKEN")
	set(&s.BotTokenFile, "IMMUNITY_SLACK_BOT_TOKEN_FILE")
	set(&s.SigningSecret, "IMMUNITY_SLACK_SIGNING_SECRET")
	set(&s.SigningSecretFile, "IMMUNITY_SLACK_SIGNING_SECRET_FILE")
	set(&s.APIURL, "IMMUNITY_SLACK_API_URL")
}

// Configured reports whether Slack is on: a bot token is given.
func (s *SlackConfig) Configured() bool { return s.BotToken != "" || s.BotTokenFile != "" }

// BaseURL is the Web API base URL with a trailing slash.
func (s *SlackConfig) BaseURL() string {
	u := s.APIURL
	if u == "" {
		u = DefaultSlackAPIURL
	}
	if !strings.HasSuffix(u, "/") {
		u += "/"
	}
	return u
}

// Validate checks a configured bot has a token and a signing secret (no unsigned mode).
// Without a token Slack is off and the same thread goes to the console and dashboard.
func (s *SlackConfig) Validate() error {
	var errs []error
	if u, err := url.Parse(s.BaseURL()); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("slack.api_url: expected an http(s) URL such as %s, got %q", DefaultSlackAPIURL, s.APIURL))
	}
	if s.BotToken != "" && s.BotTokenFile != "" {
		errs = append(errs, errors.New("slack: give bot_token or bot_token_file, not both"))
	}
	if s.SigningSecret != "" && s.SigningSecretFile != "" {
		errs = append(errs, errors.New("slack: give signing_secret or signing_secret_file, not both"))
	}
	if s.Configured() && s.SigningSecret == "" && s.SigningSecretFile == "" {
		errs = append(errs, errors.New("slack bot configured but no signing secret: set IMMUNITY_SLACK_SIGNING_SECRET or IMMUNITY_SLACK_SIGNING_SECRET_FILE (slack.signing_secret[_file]); unsigned requests are refused"))
	}
	return errors.Join(errs...)
}

// ResolvePaths makes the token and signing secret file paths given in a config file
// relative to that file's folder (call it before FromEnv: paths from the environment are
// relative to the working directory), as GitHubConfig.ResolvePaths does.
func (s *SlackConfig) ResolvePaths(configDir string) {
	for _, p := range []*string{&s.BotTokenFile, &s.SigningSecretFile} {
		if *p != "" && !filepath.IsAbs(*p) && configDir != "" {
			*p = filepath.Join(configDir, *p)
		}
	}
}

// Token returns the bot token, reading bot_token_file when that is how it is given.
func (s *SlackConfig) Token() (string, error) {
	return secret("slack bot token", s.BotToken, s.BotTokenFile)
}

// Secret returns the signing secret, reading signing_secret_file when that is how it is given.
func (s *SlackConfig) Secret() (string, error) {
	return secret("slack signing secret", s.SigningSecret, s.SigningSecretFile)
}

func secret(what, value, file string) (string, error) {
	if value != "" {
		return value, nil
	}
	if file == "" {
		return "", fmt.Errorf("no %s configured", what)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("read %s file: %w", what, err)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", fmt.Errorf("%s file %s is empty", what, file)
	}
	return v, nil
}

// Actions that change a region, as named in access grants. ActionAll ("*") grants them all.
const (
	ActionPromote  = "promote"
	ActionRollback = "rollback"
	ActionDeploy   = "deploy"
	ActionLock     = "lock"
	ActionUnlock   = "unlock"
	// ActionForce lets a deploy walk around the pipeline's gates (deploy --force): a
	// release that has not passed the regions before the target, or failed one; and a
	// promotion or deploy pass a freeze, the deploy windows and soak (break-glass).
	ActionForce = "force"
	ActionAll   = "*"
)

// RegionActions lists the actions an access grant may name. A new action is added here
// and given to a command in bot's table; grants, checks and help follow.
var RegionActions = []string{ActionPromote, ActionRollback, ActionDeploy, ActionLock, ActionUnlock, ActionForce}

// Access says who may change an app's regions. Production and other regions are granted
// separately; a region listed under regions uses only its own grants. An app without an
// access section is open to everyone (a single-team or local setup); reading (status,
// history, help) is always open.
//
//	access:
//	  non_production:
//	    - {actions: ["*"], github_teams: [acme/devs]}
//	  production:
//	    - {actions: [promote, rollback], github_teams: [acme/sre], slack_groups: [S0123SRE]}
//	    - {actions: [lock, unlock], github_users: [alice]}
//	  regions:
//	    prod4: [{actions: ["*"], slack_users: [U024BE7LH]}]
type Access struct {
	NonProduction []Grant            `yaml:"non_production"`
	Production    []Grant            `yaml:"production"`
	Regions       map[string][]Grant `yaml:"regions"`
}

// Grant gives some actions to some people. Anyone matching one of the lists qualifies:
// a Slack user id, a member of a Slack user group (id), a GitHub login or numeric user
// id, a member of a GitHub team (org/team-slug), or the name of a personal API token
// (`immunity token create NAME`). Slack users linked to a GitHub login (slack.users) also
// match through that login. GitHub users are the same person in comments, check run
// buttons and the dashboard (signed in with GitHub).
type Grant struct {
	Actions     []string `yaml:"actions"` // promote, rollback, deploy, lock, unlock, force, or "*"
	SlackUsers  []string `yaml:"slack_users"`
	SlackGroups []string `yaml:"slack_groups"`
	GitHubUsers []string `yaml:"github_users"`
	GitHubTeams []string `yaml:"github_teams"`
	Tokens      []string `yaml:"tokens"`
}

// Allows reports whether the grant covers action.
func (g Grant) Allows(action string) bool {
	return slices.Contains(g.Actions, ActionAll) || slices.Contains(g.Actions, action)
}

// Grants returns the grants that apply to a region of the app.
func (a *Access) Grants(r *Region) []Grant {
	if gs, ok := a.Regions[r.Name]; ok {
		return gs
	}
	if r.Production {
		return a.Production
	}
	return a.NonProduction
}

// Validate checks the grants against the app's regions; problems name the app.
func (a *Access) Validate(app *App) error {
	var errs []error
	check := func(where string, gs []Grant) {
		for i, g := range gs {
			if len(g.Actions) == 0 {
				errs = append(errs, fmt.Errorf("app %s: access.%s[%d].actions: expected some of %s or \"*\"", app.Name, where, i, strings.Join(RegionActions, ", ")))
			}
			for _, act := range g.Actions {
				if act != ActionAll && !slices.Contains(RegionActions, act) {
					errs = append(errs, fmt.Errorf("app %s: access.%s[%d].actions: unknown action %q; expected one of %s or \"*\"", app.Name, where, i, act, strings.Join(RegionActions, ", ")))
				}
			}
			for _, t := range g.GitHubTeams {
				if strings.Count(t, "/") != 1 {
					errs = append(errs, fmt.Errorf("app %s: access.%s[%d].github_teams: expected org/team, got %q", app.Name, where, i, t))
				}
			}
		}
	}
	check("non_production", a.NonProduction)
	check("production", a.Production)
	for name, gs := range a.Regions {
		if _, _, ok := app.Region(name); !ok {
			errs = append(errs, fmt.Errorf("app %s: access.regions: no region %q; expected one of %s", app.Name, name, strings.Join(app.RegionNames(), ", ")))
		}
		check("regions."+name, gs)
	}
	return errors.Join(errs...)
}

package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
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
	a.check(app, func(_, format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) })
	return errors.Join(errs...)
}

// Identities as the surfaces verify them: a grant naming anything else never matches, so
// it is refused at load rather than found out when someone is refused.
var (
	slackUserID  = regexp.MustCompile(`^[UW][A-Z0-9]{2,}$`)
	slackGroupID = regexp.MustCompile(`^S[A-Z0-9]{2,}$`)
	// githubLogin: letters, digits and hyphens, not first (older logins may have two
	// hyphens in a row or one last), and underscores (Enterprise Managed Users' _SHORTCODE).
	githubLogin = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$`)
	// TokenName is the form of a personal token's name (`immunity token create NAME`).
	TokenName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
)

// check reports each problem of the grants at its path under access (for its line).
func (a *Access) check(app *App, add func(path, format string, args ...any)) {
	grants := func(where string, gs []Grant) {
		for i, g := range gs {
			gp := fmt.Sprintf("access.%s[%d]", where, i)
			if len(g.Actions) == 0 {
				add(gp+".actions", "app %s: %s.actions: expected some of %s or \"*\"", app.Name, gp, strings.Join(RegionActions, ", "))
			}
			for _, act := range g.Actions {
				if act != ActionAll && !slices.Contains(RegionActions, act) {
					add(gp+".actions", "app %s: %s.actions: unknown action %q; expected one of %s or \"*\"", app.Name, gp, act, strings.Join(RegionActions, ", "))
				}
			}
			for _, t := range g.GitHubTeams {
				if strings.Count(t, "/") != 1 {
					add(gp+".github_teams", "app %s: %s.github_teams: expected org/team, got %q", app.Name, gp, t)
				}
			}
			for _, u := range g.GitHubUsers {
				if !githubLogin.MatchString(u) {
					add(gp+".github_users", "app %s: %s.github_users: expected a GitHub login (without @) or a numeric user id, got %q", app.Name, gp, u)
				}
			}
			for _, u := range g.SlackUsers {
				if !slackUserID.MatchString(u) {
					add(gp+".slack_users", "app %s: %s.slack_users: expected a Slack user id such as U024BE7LH (a name is not matched: names change), got %q", app.Name, gp, u)
				}
			}
			for _, grp := range g.SlackGroups {
				if !slackGroupID.MatchString(grp) {
					add(gp+".slack_groups", "app %s: %s.slack_groups: expected a Slack user group id such as S0PAPIDEV, got %q", app.Name, gp, grp)
				}
			}
			for _, t := range g.Tokens {
				if !TokenName.MatchString(t) {
					add(gp+".tokens", "app %s: %s.tokens: expected a token's name (1-64 lower-case letters, digits, '.', '_' or '-'), got %q", app.Name, gp, t)
				}
			}
		}
	}
	grants("non_production", a.NonProduction)
	grants("production", a.Production)
	names := make([]string, 0, len(a.Regions))
	for name := range a.Regions {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if _, _, ok := app.Region(name); !ok {
			add("access.regions."+name, "app %s: access.regions: no region %q; expected one of %s", app.Name, name, strings.Join(app.RegionNames(), ", "))
		}
		grants("regions."+name, a.Regions[name])
	}
}

// slackChannelName is a channel's name as Slack allows it: lower case letters, digits,
// '-' and '_', at most 80 characters; slackChannelID a channel's (or DM's) id.
var (
	slackChannelName = regexp.MustCompile(`^[\p{Ll}\p{Lo}\p{N}_-]{1,80}$`)
	slackChannelID   = regexp.MustCompile(`^[CGD][A-Z0-9]{2,}$`)
)

// checkSlackChannel reports a channel that Slack could never post to: not an id, and not
// a name (with or without #) of letters, digits, '-' and '_' (Slack keeps names in lower
// case).
func checkSlackChannel(ch string) error {
	if ch == "" || slackChannelID.MatchString(ch) || slackChannelName.MatchString(strings.ToLower(strings.TrimPrefix(ch, "#"))) {
		return nil
	}
	return fmt.Errorf("expected a channel id such as C024BE91L or a name such as #deploys (letters, digits, - and _, at most 80), got %q", ch)
}

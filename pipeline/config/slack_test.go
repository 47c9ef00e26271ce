package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func TestSlackConfigFromEnv(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "signing")
	if err := os.WriteFile(secretFile, []byte("  s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"IMMUNITY_SLACK_BOT_TOKEN":           "xoxb-env",
		"IMMUNITY_SLACK_SIGNING_SECRET_FILE": secretFile,
		"IMMUNITY_SLACK_API_URL":             "http://127.0.0.1:9/api",
	}
	s := SlackConfig{BotToken: "xoxb-file", Channel: "C1"}
	s.FromEnv(func(k string) string { return env[k] })
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	tok, err := s.Token()
	if err != nil || tok != "xoxb-env" {
		t.Errorf("Token() = %q, %v; want the environment's", tok, err)
	}
	sec, err := s.Secret()
	if err != nil || sec != "s3cret" {
		t.Errorf("Secret() = %q, %v; want the file's, trimmed", sec, err)
	}
	if got := s.BaseURL(); got != "http://127.0.0.1:9/api/" {
		t.Errorf("BaseURL() = %q", got)
	}
}

func TestSlackConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		s    SlackConfig
		want string // "" = valid
	}{
		{SlackConfig{}, ""}, // Slack off
		{SlackConfig{BotToken: "x", SigningSecret: "y"}, ""},
		{SlackConfig{BotToken: "x"}, "no signing secret"},
		{SlackConfig{BotToken: "x", BotTokenFile: "f", SigningSecret: "y"}, "not both"},
		{SlackConfig{APIURL: "slack.com"}, "expected an http(s) URL"},
	}
	for _, tt := range tests {
		err := tt.s.Validate()
		if (err == nil) != (tt.want == "") || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%+v: Validate() = %v; want %q", tt.s, err, tt.want)
		}
	}
	if _, err := (&SlackConfig{SigningSecretFile: "/nonexistent/secret"}).Secret(); err == nil || !strings.Contains(err.Error(), "read slack signing secret file") {
		t.Errorf("a missing secret file: %v", err)
	}
}

const accessYAML = `
slack:
  channel: C0DEPLOYS
  users: {U024BE7LH: octocat}
apps:
  - name: papi
    repo: {path: .}
    build: {command: [go, build], artifacts: [papi]}
    run: {command: [./papi]}
    slack: {channel: C0PAPI}
    regions:
      - {name: sandbox1, hosts: [{name: h1, port: 18001}]}
      - {name: prod3, production: true, hosts: [{name: h1, port: 18002}]}
    access:
      non_production:
        - {actions: ["*"], github_teams: [acme/devs]}
      production:
        - {actions: [promote, rollback], slack_groups: [S0SRE], github_users: [alice, 4242, old--login-, ada_acme]}
      regions:
        prod3: [{actions: [lock, unlock], slack_users: [U024BE7LH]}]
`

func TestAccessConfig(t *testing.T) {
	t.Parallel()
	cfg, err := Parse("immunity.yml", []byte(accessYAML))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := cfg.App("papi")
	if err := a.Access.Validate(a); err != nil {
		t.Fatal(err)
	}
	if cfg.Slack.Users["U024BE7LH"] != "octocat" || a.Slack.Channel != "C0PAPI" {
		t.Errorf("slack config read as %+v, app channel %q", cfg.Slack, a.Slack.Channel)
	}
	sb, _, _ := a.Region("sandbox1")
	if gs := a.Access.Grants(sb); len(gs) != 1 || !gs[0].Allows(ActionDeploy) || gs[0].GitHubTeams[0] != "acme/devs" {
		t.Errorf("sandbox1 grants %+v", gs)
	}
	p3, _, _ := a.Region("prod3")
	if gs := a.Access.Grants(p3); len(gs) != 1 || gs[0].Allows(ActionPromote) || !gs[0].Allows(ActionLock) {
		t.Errorf("prod3 has its own grants; got %+v", gs)
	}

	bad := *a.Access
	bad.Production = []Grant{{Actions: []string{"promot"}, GitHubTeams: []string{"devs"}}, {}}
	bad.Regions = map[string][]Grant{"prod9": nil}
	err = bad.Validate(a)
	for _, want := range []string{`unknown action "promot"`, "github_teams: expected org/team", "access.production[1].actions: expected some of", `no region "prod9"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v; want it to say %q", err, want)
		}
	}

	_, err = Parse("immunity.yml", []byte(strings.Replace(accessYAML, "non_production:", "nonproduction:", 1)))
	if err == nil || !strings.Contains(err.Error(), `unknown key "nonproduction"`) {
		t.Errorf("a misspelt access key: %v", err)
	}
}

// TestSlackResolvePaths: secret files named in immunity.yml are found beside it, whatever
// the working directory; absolute paths and the environment's paths are left alone.
func TestSlackResolvePaths(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "secrets"), 0o700); err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]string{"token": "xoxb-file\n", "signing": "s3cret\n"} {
		if err := os.WriteFile(filepath.Join(dir, "secrets", name), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var cfg struct{ Slack SlackConfig }
	if err := yaml.Unmarshal([]byte("slack:\n  bot_token_file: secrets/token\n  signing_secret_file: secrets/signing\n"), &cfg); err != nil {
		t.Fatal(err)
	}
	cfg.Slack.ResolvePaths(dir)
	if tok, err := cfg.Slack.Token(); err != nil || tok != "xoxb-file" {
		t.Errorf("Token() = %q, %v; want the file beside immunity.yml", tok, err)
	}
	if sec, err := cfg.Slack.Secret(); err != nil || sec != "s3cret" {
		t.Errorf("Secret() = %q, %v; want the file beside immunity.yml", sec, err)
	}
	abs := SlackConfig{BotTokenFile: "/run/secrets/token"}
	abs.ResolvePaths(dir)
	if abs.BotTokenFile != "/run/secrets/token" {
		t.Errorf("an absolute path became %q", abs.BotTokenFile)
	}
}

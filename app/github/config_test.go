package github

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/immunity-app/immunity/app/github/githubtest"
	"github.com/immunity-app/immunity/pipeline/config"
)

func TestConfigFromEnv(t *testing.T) {
	t.Parallel()
	secretFile := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secretFile, []byte("s3cret\n"), 0o600)
	env := map[string]string{
		"IMMUNITY_GITHUB_APP_ID":              "12345",
		"IMMUNITY_GITHUB_PRIVATE_KEY_FILE":    "/etc/immunity/app.pem",
		"IMMUNITY_GITHUB_WEBHOOK_SECRET_FILE": secretFile,
		"IMMUNITY_GITHUB_API_URL":             "https://ghe.example.com/api/v3",
	}
	g := config.GitHubConfig{AppID: 1, PrivateKeyFile: "from-file.pem", APIURL: "https://other/"}
	if err := g.FromEnv(func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if g.AppID != 12345 || g.PrivateKeyFile != "/etc/immunity/app.pem" || g.BaseURL() != "https://ghe.example.com/api/v3/" {
		t.Errorf("env did not win: %+v", g)
	}
	if err := g.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	if u := g.SignInURL(); u != "https://ghe.example.com/" {
		t.Errorf("SignInURL of GitHub Enterprise = %q", u)
	}
	if u := (&config.GitHubConfig{}).SignInURL(); u != "https://github.com/" {
		t.Errorf("SignInURL of github.com = %q", u)
	}
	if u := (&config.GitHubConfig{WebURL: "https://gh.example"}).SignInURL(); u != "https://gh.example/" {
		t.Errorf("SignInURL with web_url = %q", u)
	}
	if g.SignIn() || (&config.GitHubConfig{ClientID: "Iv1.x"}).SignIn() {
		t.Error("sign-in configured without a client id and secret")
	}
	if s, err := g.Secret(); err != nil || string(s) != "s3cret" {
		t.Errorf("Secret() = %q, %v", s, err)
	}
	bad := config.GitHubConfig{}
	if err := bad.FromEnv(func(k string) string {
		if k == "IMMUNITY_GITHUB_APP_ID" {
			return "twelve"
		}
		return ""
	}); err == nil {
		t.Error("a malformed IMMUNITY_GITHUB_APP_ID was accepted")
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		g    config.GitHubConfig
		want string // "" = valid
	}{
		{"nothing configured", config.GitHubConfig{}, ""},
		{"no webhook secret", config.GitHubConfig{AppID: 1, PrivateKeyFile: "k.pem"}, "no webhook secret"},
		{"key without id", config.GitHubConfig{PrivateKeyFile: "k.pem", WebhookSecret: "s"}, "app_id"},
		{"id without key", config.GitHubConfig{AppID: 1, WebhookSecret: "s"}, "private_key_file"},
		{"bad api url", config.GitHubConfig{APIURL: "ftp://x"}, "api_url"},
		{"complete", config.GitHubConfig{AppID: 1, PrivateKeyFile: "k.pem", WebhookSecret: "s"}, ""},
	} {
		err := c.g.Validate()
		if (err == nil) != (c.want == "") || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: Validate() = %v, want %q", c.name, err, c.want)
		}
	}
}

// TestNewRefusesUnsigned: a configured App without a webhook secret does not start.
func TestNewRefusesUnsigned(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	_, err := New(config.GitHubConfig{AppID: 1, PrivateKeyFile: githubtest.KeyFile(t)}, h.eng, h.cmds, nil)
	if err == nil || !strings.Contains(err.Error(), "no webhook secret") {
		t.Errorf("New without a secret: %v", err)
	}
}

// TestConfigFileSection: the github: section of immunity.yml is read, typos are refused,
// and relative paths are taken from the config file's folder.
func TestConfigFileSection(t *testing.T) {
	t.Parallel()
	text := "github:\n  app_id: 5\n  private_key_file: keys/app.pem\n  webhook_secret_file: keys/secret\n  api_url: https://ghe.example.com/api/v3/\n" + e2eConfig
	cfg, err := config.Parse("/etc/immunity/immunity.yml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	cfg.GitHub.ResolvePaths(filepath.Dir(cfg.File))
	g := cfg.GitHub
	if g.AppID != 5 || g.PrivateKeyFile != "/etc/immunity/keys/app.pem" || g.WebhookSecretFile != "/etc/immunity/keys/secret" || g.BaseURL() != "https://ghe.example.com/api/v3/" {
		t.Errorf("github section: %+v", g)
	}
	if _, err := config.Parse("immunity.yml", []byte("github:\n  webhook_secrett: x\n"+e2eConfig)); err == nil || !strings.Contains(err.Error(), "webhook_secret") {
		t.Errorf("a typo in the github section: %v", err)
	}
}

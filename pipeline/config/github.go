package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// DefaultGitHubAPIURL is where the GitHub REST API lives unless api_url says otherwise
// (GitHub Enterprise: https://HOST/api/v3/).
const DefaultGitHubAPIURL = "https://api.github.com/"

// GitHubConfig is the GitHub App's settings; the IMMUNITY_GITHUB_* environment wins.
// Secrets are read from files or the environment and never logged.
type GitHubConfig struct {
	AppID             int64  `yaml:"app_id"`
	PrivateKeyFile    string `yaml:"private_key_file"`
	WebhookSecret     string `yaml:"webhook_secret"`
	WebhookSecretFile string `yaml:"webhook_secret_file"`
	APIURL            string `yaml:"api_url"` // default https://api.github.com/
	// PrivateKey is the PEM key itself, given through IMMUNITY_GITHUB_PRIVATE_KEY only.
	PrivateKey string `yaml:"-"`
	// The App's OAuth client, for "Sign in with GitHub" on the dashboard (the manifest
	// flow saves them). WebURL is where people sign in: https://github.com/ for the
	// default API, https://HOST/ for GitHub Enterprise's https://HOST/api/v3/.
	ClientID         string `yaml:"client_id"`
	ClientSecret     string `yaml:"client_secret"`
	ClientSecretFile string `yaml:"client_secret_file"`
	WebURL           string `yaml:"web_url"`
}

// SignIn reports whether dashboard sign-in with GitHub is configured.
func (g *GitHubConfig) SignIn() bool {
	return g.ClientID != "" && (g.ClientSecret != "" || g.ClientSecretFile != "")
}

// OAuthSecret returns the OAuth client secret, reading client_secret_file when that is how
// it is given.
func (g *GitHubConfig) OAuthSecret() (string, error) {
	return secret("github oauth client secret", g.ClientSecret, g.ClientSecretFile)
}

// SignInURL is the base of GitHub's web sign-in pages, with a trailing slash.
func (g *GitHubConfig) SignInURL() string {
	u := g.WebURL
	if u == "" {
		api := g.BaseURL()
		switch {
		case api == DefaultGitHubAPIURL:
			u = "https://github.com/"
		case strings.HasSuffix(api, "/api/v3/"):
			u = strings.TrimSuffix(api, "api/v3/")
		default:
			u = api
		}
	}
	if !strings.HasSuffix(u, "/") {
		u += "/"
	}
	return u
}

// FromEnv overrides g with the IMMUNITY_GITHUB_* variables that are set; getenv is
// os.Getenv outside tests. A malformed IMMUNITY_GITHUB_APP_ID is an error.
func (g *GitHubConfig) FromEnv(getenv func(string) string) error {
	if getenv == nil {
		getenv = os.Getenv
	}
	if v := getenv("IMMUNITY_GITHUB_APP_ID"); v != "" {
		id, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil || id <= 0 {
			return fmt.Errorf("IMMUNITY_GITHUB_APP_ID: expected a positive number, got %q", v)
		}
		g.AppID = id
	}
	set := func(dst *string, name string) {
		if v := getenv(name); v != "" {
			*dst = v
		}
	}
	set(&g.PrivateKeyFile, "IMMUNITY_GITHUB_PRIVATE_KEY_FILE")
	set(&g.PrivateKey, "IMMUNITY_GITHUB_PRIVATE_KEY")
	set(&g.WebhookSecret, "IMMUNITY_GITHUB_WEBHOOK_SECRET")
	set(&g.WebhookSecretFile, "IMMUNITY_GITHUB_WEBHOOK_SECRET_FILE")
	set(&g.APIURL, "IMMUNITY_GITHUB_API_URL")
	set(&g.ClientID, "IMMUNITY_GITHUB_CLIENT_ID")
	set(&g.ClientSecret, "IMMUNITY_GITHUB_CLIENT_SECRET")
	set(&g.ClientSecretFile, "IMMUNITY_GITHUB_CLIENT_SECRET_FILE")
	set(&g.WebURL, "IMMUNITY_GITHUB_WEB_URL")
	return nil
}

// Configured reports whether a GitHub App is configured at all (an app id or a key).
func (g *GitHubConfig) Configured() bool {
	return g.AppID != 0 || g.PrivateKeyFile != "" || g.PrivateKey != ""
}

// BaseURL is the API base URL with a trailing slash.
func (g *GitHubConfig) BaseURL() string {
	u := g.APIURL
	if u == "" {
		u = DefaultGitHubAPIURL
	}
	if !strings.HasSuffix(u, "/") {
		u += "/"
	}
	return u
}

// Validate checks a configured App has everything it needs: an app id, a key and a webhook
// secret (no unsigned mode). An unconfigured App is valid: GitHub is simply off.
func (g *GitHubConfig) Validate() error {
	var errs []error
	if u, err := url.Parse(g.BaseURL()); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("github.api_url: expected an http(s) URL such as %s, got %q", DefaultGitHubAPIURL, g.APIURL))
	}
	if !g.Configured() {
		return errors.Join(errs...)
	}
	if g.AppID == 0 {
		errs = append(errs, errors.New("github.app_id (IMMUNITY_GITHUB_APP_ID) is required when a GitHub App key is given"))
	}
	if g.PrivateKeyFile == "" && g.PrivateKey == "" {
		errs = append(errs, errors.New("github.private_key_file (IMMUNITY_GITHUB_PRIVATE_KEY_FILE) is required when a GitHub App id is given"))
	}
	if g.WebhookSecret == "" && g.WebhookSecretFile == "" {
		errs = append(errs, errors.New("GitHub App configured but no webhook secret: set IMMUNITY_GITHUB_WEBHOOK_SECRET or IMMUNITY_GITHUB_WEBHOOK_SECRET_FILE (github.webhook_secret[_file]); unsigned webhooks are refused"))
	}
	if g.WebhookSecret != "" && g.WebhookSecretFile != "" {
		errs = append(errs, errors.New("github: give webhook_secret or webhook_secret_file, not both"))
	}
	if g.WebhookSecret != "" && strings.TrimSpace(g.WebhookSecret) == "" {
		errs = append(errs, errors.New("github webhook secret (IMMUNITY_GITHUB_WEBHOOK_SECRET, github.webhook_secret) is only whitespace: anyone could sign with it; set the App's real secret"))
	}
	return errors.Join(errs...)
}

// Secret returns the webhook secret, reading webhook_secret_file when that is how it is given.
func (g *GitHubConfig) Secret() ([]byte, error) {
	if g.WebhookSecret != "" {
		return []byte(g.WebhookSecret), nil
	}
	if g.WebhookSecretFile == "" {
		return nil, errors.New("github: no webhook secret configured")
	}
	b, err := os.ReadFile(g.WebhookSecretFile)
	if err != nil {
		return nil, fmt.Errorf("read github webhook secret file: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return nil, fmt.Errorf("github webhook secret file %s is empty", g.WebhookSecretFile)
	}
	return []byte(s), nil
}

// Key returns the App's PEM private key.
func (g *GitHubConfig) Key() ([]byte, error) {
	if g.PrivateKey != "" {
		return []byte(g.PrivateKey), nil
	}
	if g.PrivateKeyFile == "" {
		return nil, errors.New("github: no private key configured")
	}
	b, err := os.ReadFile(g.PrivateKeyFile)
	if err != nil {
		return nil, fmt.Errorf("read github private key: %w", err)
	}
	return b, nil
}

// ResolvePaths makes the key and secret file paths given in a config file relative to
// that file's folder (call it before FromEnv: paths from the environment are relative to
// the working directory).
func (g *GitHubConfig) ResolvePaths(configDir string) {
	for _, p := range []*string{&g.PrivateKeyFile, &g.WebhookSecretFile, &g.ClientSecretFile} {
		if *p != "" && !filepath.IsAbs(*p) && configDir != "" {
			*p = filepath.Join(configDir, *p)
		}
	}
}

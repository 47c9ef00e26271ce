package github

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	gh "github.com/google/go-github/v60/github"

	"github.com/immunity-app/immunity/pipeline/config"
)

// Setup is the onboarding page served while no GitHub App is configured: it creates the
// App from the manifest through GitHub's manifest flow (as Probot and Atlantis do), then
// saves the App's id, key and webhook secret under the data dir and says how to start
// with them.
type Setup struct {
	serverURL string // where GitHub and the browser reach this server
	apiURL    string
	webURL    string // github.com, or the GitHub Enterprise host
	dir       string // where the credentials are written
	log       *slog.Logger
	mu        sync.Mutex
	states    map[string]time.Time // one-time state tokens of flows in progress
	allow     func(*gin.Context) bool
}

// Guard makes the setup page and its start ask allow first: it reports whether the
// request may set the App up, and answers it itself when not (sign in, refused).
func (s *Setup) Guard(allow func(*gin.Context) bool) { s.allow = allow }

// allowed reports whether the request may go on to the setup.
func (s *Setup) allowed(c *gin.Context) bool { return s.allow == nil || s.allow(c) }

// NewSetup makes the setup page. serverURL is Config.Server.URL (falls back to the listen
// address), dataDir is Config.Server.DataDir.
func NewSetup(cfg config.GitHubConfig, serverURL, dataDir string, logger *slog.Logger) *Setup {
	if logger == nil {
		logger = slog.Default()
	}
	api := cfg.BaseURL()
	web := "https://github.com"
	if u, err := url.Parse(api); err == nil && u.Host != "api.github.com" {
		web = u.Scheme + "://" + u.Host // GitHub Enterprise: https://HOST/api/v3/ -> https://HOST
	}
	return &Setup{serverURL: strings.TrimRight(serverURL, "/"), apiURL: api, webURL: web,
		dir: filepath.Join(dataDir, "github"), log: logger, states: map[string]time.Time{}}
}

// Routes registers GET /github/setup, POST /github/setup and GET /github/setup/callback.
func (s *Setup) Routes(r gin.IRouter) {
	r.GET("/github/setup", s.page)
	r.POST("/github/setup", s.start)
	r.GET("/github/setup/callback", s.callback)
}

var setupPage = template.Must(template.New("setup").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>Immunity: connect GitHub</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40em; margin: 3em auto">
<h1>Connect Immunity to GitHub</h1>
{{if .Manifest}}
<p>Sending you to GitHub to create the App <b>{{.Name}}</b>…</p>
<form id="gh" method="post" action="{{.Action}}">
<input type="hidden" name="manifest" value="{{.Manifest}}">
<button type="submit">Create the GitHub App on GitHub</button>
</form>
<script>document.getElementById("gh").submit()</script>
{{else}}
<p>No GitHub App is configured. Immunity can create one for you from its manifest
(<code>app.yml</code>): GitHub asks you to confirm, then sends back the App's key and webhook
secret, which are saved under <code>{{.Dir}}</code>.</p>
<p>GitHub will send webhooks to <code>{{.Hook}}</code>: this address must be reachable from GitHub.</p>
<form method="post" action="/github/setup">
<p><label>App name <input name="name" value="Immunity"></label></p>
<p><label>Organization (empty: your personal account) <input name="org"></label></p>
<button type="submit">Create the GitHub App</button>
</form>
{{end}}
</body></html>
`))

func (s *Setup) page(c *gin.Context) {
	if !s.allowed(c) {
		return
	}
	c.Header("Content-Type", "text/html; charset=utf-8")
	setupPage.Execute(c.Writer, map[string]any{"Dir": s.dir, "Hook": s.serverURL + "/webhooks/github"})
}

// start sends the browser to GitHub with the manifest.
func (s *Setup) start(c *gin.Context) {
	if !s.allowed(c) {
		return
	}
	name := strings.TrimSpace(c.PostForm("name"))
	org := strings.TrimSpace(c.PostForm("org"))
	if org != "" && !nameOK(org) {
		c.String(http.StatusBadRequest, "organization: expected a GitHub login\n")
		return
	}
	state := s.newState()
	action := s.webURL + "/settings/apps/new?state=" + url.QueryEscape(state)
	if org != "" {
		action = s.webURL + "/organizations/" + url.PathEscape(org) + "/settings/apps/new?state=" + url.QueryEscape(state)
	}
	m, _ := json.Marshal(Manifest(name, s.serverURL))
	c.Header("Content-Type", "text/html; charset=utf-8")
	setupPage.Execute(c.Writer, map[string]any{"Manifest": string(m), "Action": action, "Name": name})
}

func nameOK(s string) bool {
	for _, r := range s {
		if !(r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return s != ""
}

func (s *Setup) newState() string {
	b := make([]byte, 16)
	rand.Read(b)
	st := hex.EncodeToString(b)
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, t := range s.states {
		if time.Since(t) > time.Hour {
			delete(s.states, k)
		}
	}
	s.states[st] = time.Now()
	return st
}

func (s *Setup) takeState(st string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.states[st]
	delete(s.states, st)
	return ok && time.Since(t) < time.Hour
}

// callback exchanges GitHub's code for the App's credentials and saves them.
func (s *Setup) callback(c *gin.Context) {
	if !s.takeState(c.Query("state")) {
		c.String(http.StatusBadRequest, "unknown or expired setup state: start again at /github/setup\n")
		return
	}
	code := c.Query("code")
	if code == "" {
		c.String(http.StatusBadRequest, "GitHub sent no code\n")
		return
	}
	cfg, err := s.convert(c.Request.Context(), code)
	if err != nil {
		s.log.Error("github app setup", "err", err)
		c.String(http.StatusBadGateway, "creating the GitHub App failed: %v\n", err)
		return
	}
	env, err := s.save(cfg)
	if err != nil {
		s.log.Error("github app setup", "err", err)
		c.String(http.StatusInternalServerError, "the App was created on GitHub but its credentials could not be saved: %v\n", err)
		return
	}
	s.log.Info("github app created", "app_id", cfg.GetID(), "slug", cfg.GetSlug(), "saved", env)
	c.Header("Content-Type", "text/html; charset=utf-8")
	doneTmpl.Execute(c.Writer, map[string]any{"Name": cfg.GetName(), "Env": env, "Install": cfg.GetHTMLURL() + "/installations/new"})
}

var doneTmpl = template.Must(template.New("done").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>Immunity: GitHub App created</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40em; margin: 3em auto">
<h1>{{.Name}} is created</h1>
<p>Its key and webhook secret are saved. Restart Immunity with the variables in <code>{{.Env}}</code>:</p>
<pre>set -a; . {{.Env}}; set +a; immunity serve</pre>
<p>Then <a href="{{.Install}}">install the App</a> on your repositories.</p>
</body></html>
`))

func (s *Setup) convert(ctx context.Context, code string) (*gh.AppConfig, error) {
	base, err := url.Parse(s.apiURL)
	if err != nil {
		return nil, err
	}
	cl := gh.NewClient(&http.Client{Transport: newRetryTransport(nil, s.log), Timeout: 30 * time.Second})
	cl.BaseURL = base
	cfg, _, err := cl.Apps.CompleteAppManifest(ctx, code)
	if err != nil {
		return nil, fmt.Errorf("exchange the manifest code: %w", err)
	}
	if cfg.GetID() == 0 || cfg.GetPEM() == "" || cfg.GetWebhookSecret() == "" {
		return nil, fmt.Errorf("GitHub's answer lacks the app id, key or webhook secret")
	}
	return cfg, nil
}

// save writes the key, the secret and an env file naming them; it returns the env file.
func (s *Setup) save(cfg *gh.AppConfig) (string, error) {
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return "", err
	}
	key := filepath.Join(s.dir, "app.pem")
	secret := filepath.Join(s.dir, "webhook-secret")
	client := filepath.Join(s.dir, "client-secret")
	env := filepath.Join(s.dir, "github.env")
	content := fmt.Sprintf("IMMUNITY_GITHUB_APP_ID=%d\nIMMUNITY_GITHUB_PRIVATE_KEY_FILE=%s\nIMMUNITY_GITHUB_WEBHOOK_SECRET_FILE=%s\nIMMUNITY_GITHUB_API_URL=%s\n",
		cfg.GetID(), shellQuote(key), shellQuote(secret), shellQuote(s.apiURL))
	files := []struct{ path, data string }{{key, cfg.GetPEM()}, {secret, cfg.GetWebhookSecret()}}
	if cfg.GetClientID() != "" && cfg.GetClientSecret() != "" {
		// The App's OAuth client: "Sign in with GitHub" on the dashboard.
		content += fmt.Sprintf("IMMUNITY_GITHUB_CLIENT_ID=%s\nIMMUNITY_GITHUB_CLIENT_SECRET_FILE=%s\n", shellQuote(cfg.GetClientID()), shellQuote(client))
		files = append(files, struct{ path, data string }{client, cfg.GetClientSecret()})
	}
	for _, f := range append(files, struct{ path, data string }{env, content}) {
		if err := os.WriteFile(f.path, []byte(f.data), 0o600); err != nil {
			return "", fmt.Errorf("write %s: %w", f.path, err)
		}
	}
	return env, nil
}

// shellQuote single-quotes a value for a file that shells source.
func shellQuote(v string) string { return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'" }

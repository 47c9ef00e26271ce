package github

import (
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"

	"github.com/immunity-app/immunity/app/github/githubtest"
	"github.com/immunity-app/immunity/pipeline/config"
)

// TestManifestMatchesAppYML keeps app.yml (what people read) and Manifest (what the setup
// page sends) the same.
func TestManifestMatchesAppYML(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join("..", "..", "app.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var fromFile map[string]any
	if err := yaml.Unmarshal(b, &fromFile); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(fromFile, Manifest("", "https://immunity.example.com")); d != "" {
		t.Errorf("app.yml and Manifest differ (-app.yml +Manifest):\n%s", d)
	}
}

func TestSetupFlow(t *testing.T) {
	t.Parallel()
	contract := githubtest.LoadContract(t)
	fake := githubtest.New(t)
	fake.Manifest = map[string]any{"id": 4711, "slug": "immunity-test", "name": "Immunity test", "node_id": "A_1",
		"owner": map[string]any{"login": "Codertocat"}, "html_url": "https://github.com/apps/immunity-test",
		"pem": "-----BEGIN RSA PRIVATE KEY-----\nMIIfake\n-----END RSA PRIVATE KEY-----\n", "webhook_secret": "whsec", "client_id": "Iv1.x", "client_secret": "cs"}
	dataDir := t.TempDir()
	s := NewSetup(config.GitHubConfig{APIURL: fake.APIURL()}, "https://immunity.example.com/", dataDir, nil)
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	s.Routes(r)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	page := get(t, noRedirect, srv.URL+"/github/setup")
	if !strings.Contains(page, `action="/github/setup"`) || !strings.Contains(page, "https://immunity.example.com/webhooks/github") {
		t.Errorf("setup page:\n%s", page)
	}
	resp, err := noRedirect.PostForm(srv.URL+"/github/setup", url.Values{"name": {"Immunity test"}, "org": {"Octocoders"}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	form := string(b)
	m := regexp.MustCompile(`action="([^"]+)"`).FindStringSubmatch(form)
	// The API URL is the fake's, so its host stands for a GitHub Enterprise web host.
	if m == nil || !strings.HasPrefix(html.UnescapeString(m[1]), fake.URL+"/organizations/Octocoders/settings/apps/new?state=") {
		t.Fatalf("form to GitHub:\n%s", form)
	}
	state := strings.SplitN(html.UnescapeString(m[1]), "state=", 2)[1]
	mv := regexp.MustCompile(`name="manifest" value="([^"]+)"`).FindStringSubmatch(form)
	var manifest map[string]any
	if mv == nil || json.Unmarshal([]byte(html.UnescapeString(mv[1])), &manifest) != nil || manifest["name"] != "Immunity test" {
		t.Fatalf("manifest in the form: %v", mv)
	}

	if code := status(t, noRedirect, srv.URL+"/github/setup/callback?code=abc&state=forged"); code != 400 {
		t.Errorf("callback with a forged state: %d, want 400", code)
	}
	done := get(t, noRedirect, srv.URL+"/github/setup/callback?code=abc&state="+url.QueryEscape(state))
	if !strings.Contains(done, "Immunity test is created") {
		t.Errorf("done page:\n%s", done)
	}
	env, err := os.ReadFile(filepath.Join(dataDir, "github", "github.env"))
	if err != nil || !strings.Contains(string(env), "IMMUNITY_GITHUB_APP_ID=4711") {
		t.Errorf("env file: %s, %v", env, err)
	}
	if sec, _ := os.ReadFile(filepath.Join(dataDir, "github", "webhook-secret")); string(sec) != "whsec" {
		t.Errorf("webhook secret file: %q", sec)
	}
	// The App's OAuth client ("Sign in with GitHub"), read back as serve would.
	var g config.GitHubConfig
	vars := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(env)), "\n") {
		k, v, _ := strings.Cut(line, "=")
		vars[k] = strings.Trim(v, "'")
	}
	if err := g.FromEnv(func(k string) string { return vars[k] }); err != nil {
		t.Fatal(err)
	}
	if sec, err := g.OAuthSecret(); !g.SignIn() || g.ClientID != "Iv1.x" || sec != "cs" || err != nil {
		t.Errorf("OAuth client from the env file: %+v, secret %q, %v", g, sec, err)
	}
	if code := status(t, noRedirect, srv.URL+"/github/setup/callback?code=abc&state="+url.QueryEscape(state)); code != 400 {
		t.Errorf("state reused: %d, want 400", code)
	}
	contract.ValidateAll(t, fake)
}

func get(t *testing.T, c *http.Client, u string) string {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", u, resp.StatusCode, b)
	}
	return string(b)
}

func status(t *testing.T, c *http.Client, u string) int {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

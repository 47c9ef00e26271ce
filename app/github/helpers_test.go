package github

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/immunity-app/immunity/app/github/githubtest"
	"github.com/immunity-app/immunity/bot"
	"github.com/immunity-app/immunity/pipeline"
	"github.com/immunity-app/immunity/pipeline/config"
	"github.com/immunity-app/immunity/store"
)

const secret = "It's a Secret to Everybody"

func githubConfig(t testing.TB, fake *githubtest.Server) config.GitHubConfig {
	return config.GitHubConfig{AppID: 1, PrivateKeyFile: githubtest.KeyFile(t), WebhookSecret: secret, APIURL: fake.APIURL()}
}

// fakeEngine records what the App asked of the engine.
type fakeEngine struct {
	cfg    *config.Config
	st     *store.Store
	mu     sync.Mutex
	calls  []string
	status []pipeline.AppStatus
}

func (e *fakeEngine) Config() *config.Config { return e.cfg }
func (e *fakeEngine) Store() *store.Store    { return e.st }

func (e *fakeEngine) record(s string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.calls = append(e.calls, s)
}

func (e *fakeEngine) Calls() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.calls...)
}

func (e *fakeEngine) StartRun(ctx context.Context, app, sha string, t pipeline.Trigger) (store.Run, error) {
	e.record(fmt.Sprintf("start %s@%s %s %s by %s (%s, %s)", app, sha, t.Kind, t.Branch, t.Actor.Name, t.Actor.Via, t.Actor.GitHubLogin))
	return store.Run{ID: 7, App: app, SHA: sha}, nil
}

func (e *fakeEngine) Rerun(ctx context.Context, a pipeline.Actor, runID int64, region string) (string, error) {
	e.record(fmt.Sprintf("rerun %d %s by %s", runID, region, a))
	return "re-running", nil
}

func (e *fakeEngine) Status(ctx context.Context, app string) ([]pipeline.AppStatus, error) {
	return e.status, nil
}

func (e *fakeEngine) Audit(ctx context.Context, a pipeline.Actor, action, app, region, sha, args, outcome, detail string) {
	e.record(fmt.Sprintf("audit %s %s %s/%s %q %s: %s", a, action, app, region, args, outcome, detail))
}

func (e *fakeEngine) Answer(ctx context.Context, runID int64, region, msg string) error {
	e.record(fmt.Sprintf("answer %d %s: %s", runID, region, msg))
	return nil
}

// fakeCommands records the commands it was asked to run.
type fakeCommands struct {
	mu   sync.Mutex
	reqs []bot.Request
}

func (c *fakeCommands) Exec(ctx context.Context, r bot.Request) bot.Reply {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reqs = append(c.reqs, r)
	return bot.Reply{Text: "done: " + r.Text, OK: true}
}

func (c *fakeCommands) Requests() []bot.Request {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]bot.Request(nil), c.reqs...)
}

// testConfig binds papi to the fixtures' repo and branch.
func testConfig() *config.Config {
	return &config.Config{Apps: []config.App{
		{Name: "papi", Repo: config.Repo{GitHub: "Codertocat/Hello-World", Branch: "master"},
			Regions: []config.Region{{Name: "sandbox1"}, {Name: "prod3", Production: true, ManualApproval: true}}},
		{Name: "electron", Repo: config.Repo{GitHub: "electron/electron", Branch: "main"}, Regions: []config.Region{{Name: "prod3"}}},
		{Name: "hello", Repo: config.Repo{GitHub: "github/hello-world", Branch: "main"}, Regions: []config.Region{{Name: "sandbox1"}}},
	}}
}

type harness struct {
	app   *App
	eng   *fakeEngine
	cmds  *fakeCommands
	fake  *githubtest.Server
	http  *httptest.Server
	store *store.Store
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "immunity.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	h := &harness{eng: &fakeEngine{cfg: testConfig(), st: st}, cmds: &fakeCommands{}, fake: githubtest.New(t), store: st}
	h.app, err = New(githubConfig(t, h.fake), h.eng, h.cmds, nil)
	if err != nil {
		t.Fatal(err)
	}
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	h.app.Routes(r)
	h.http = httptest.NewServer(r)
	t.Cleanup(h.http.Close)
	t.Cleanup(func() { h.app.Close(context.Background()) })
	return h
}

func sign(body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// post delivers body as event with a delivery id; sig "" means a good signature, "-"
// none at all. It waits for the delivery's work to finish.
func (h *harness) post(t *testing.T, event, id string, body []byte, sig string) int {
	t.Helper()
	req, _ := http.NewRequest("POST", h.http.URL+"/webhooks/github", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", event)
	req.Header.Set("X-GitHub-Delivery", id)
	switch sig {
	case "":
		req.Header.Set("X-Hub-Signature-256", sign(body))
	case "-":
	default:
		req.Header.Set("X-Hub-Signature-256", sig)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	h.app.wg.Wait()
	return resp.StatusCode
}

// fixture reads fixtures/github/NAME and applies edits (dotted paths) in memory.
func fixture(t testing.TB, name string, edits map[string]any) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "fixtures", "github", name))
	if err != nil {
		t.Fatal(err)
	}
	if len(edits) == 0 {
		return b
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for path, v := range edits {
		setPath(m, path, v)
	}
	out, _ := json.Marshal(m)
	return out
}

func setPath(m map[string]any, path string, v any) {
	for {
		i := bytes.IndexByte([]byte(path), '.')
		if i < 0 {
			m[path] = v
			return
		}
		next, ok := m[path[:i]].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[path[:i]] = next
		}
		m, path = next, path[i+1:]
	}
}

// prHead is the head commit of pull request #1 in the fake.
const prHead = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"

// prComment is the issue_comment fixture made a comment on pull request #1 (GitHub marks
// an issue that is a pull request with issue.pull_request), whose head the fake knows.
func (h *harness) prComment(t testing.TB, text string) []byte {
	t.Helper()
	h.fake.SetPull("Codertocat/Hello-World", 1, githubtest.Pull{Head: prHead})
	return fixture(t, "issue_comment.created.json", map[string]any{"comment.body": text, "installation.id": 42,
		"issue.pull_request": map[string]any{
			"url":       "https://api.github.com/repos/Codertocat/Hello-World/pulls/1",
			"html_url":  "https://github.com/Codertocat/Hello-World/pull/1",
			"diff_url":  "https://github.com/Codertocat/Hello-World/pull/1.diff",
			"patch_url": "https://github.com/Codertocat/Hello-World/pull/1.patch",
		}})
}

func (h *harness) deliveries(t *testing.T) map[string]string {
	t.Helper()
	ds, err := h.store.Deliveries(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, d := range ds {
		out[d.ID] = d.State
	}
	return out
}

func jsonField(t *testing.T, body []byte, key string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	s, _ := m[key].(string)
	return s
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

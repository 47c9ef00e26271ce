package github

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/go-cmp/cmp"

	"net/http/httptest"

	"github.com/immunity-app/immunity/app/github/githubtest"
	"github.com/immunity-app/immunity/bot"
	"github.com/immunity-app/immunity/checks"
	"github.com/immunity-app/immunity/deployers"
	"github.com/immunity-app/immunity/pipeline"
	"github.com/immunity-app/immunity/pipeline/config"
	"github.com/immunity-app/immunity/store"
)

const e2eConfig = `
server:
  url: https://immunity.example.com
apps:
  - name: papi
    repo: {github: Codertocat/Hello-World, branch: master}
    build: {command: [true], artifacts: [README.md]}
    run: {command: [./papi]}
    tests: {command: [true]}
    regions:
      - name: sandbox1
        hosts: [{name: s1, port: 18901}]
      - name: prod3
        production: true
        manual_approval: true
        hosts: [{name: p1, port: 18911}]
`

// builder is a hand-written Builder: the push's commit, packed as a tiny artifact.
type builder struct{ dir string }

func (b builder) Commit(ctx context.Context, a *config.App, sha string) (pipeline.Commit, error) {
	return pipeline.Commit{SHA: sha, Subject: "Update README.md", Author: "Codertocat"}, nil
}

func (b builder) Build(ctx context.Context, a *config.App, sha string) (deployers.Release, error) {
	p := filepath.Join(b.dir, sha+".tar.gz")
	sum := sha256.Sum256([]byte(sha))
	return deployers.Release{App: a.Name, SHA: sha, Artifact: p, Checksum: hex.EncodeToString(sum[:])}, os.WriteFile(p, []byte(sha), 0o644)
}

// hosts is a hand-written Deployer keeping each host's current release in memory.
type hosts struct {
	mu    sync.Mutex
	state map[string]deployers.HostState
}

func (d *hosts) Upload(ctx context.Context, h deployers.Host, rel deployers.Release) error {
	return nil
}
func (d *hosts) Activate(ctx context.Context, h deployers.Host, sha string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.state[h.String()]
	d.state[h.String()] = deployers.HostState{Current: sha, Previous: s.Current, Releases: append([]string{sha}, s.Releases...)}
	return nil
}
func (d *hosts) Switch(ctx context.Context, h deployers.Host, sha string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.state[h.String()]
	if s.Current != sha {
		d.state[h.String()] = deployers.HostState{Current: sha, Previous: s.Current, Releases: append([]string{sha}, s.Releases...)}
	}
	return nil
}
func (d *hosts) Restart(context.Context, deployers.Host) error { return nil }
func (d *hosts) State(ctx context.Context, h deployers.Host) (deployers.HostState, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.state[h.String()], nil
}
func (d *hosts) Close() error { return nil }

func (d *hosts) Healthy(context.Context, deployers.Host) error { return nil }

// tester passes every release but those it is told fail.
type tester struct{ fail []string }

func (t tester) Test(_ context.Context, rel deployers.Release, _ deployers.Host, _ deployers.Tests) (string, error) {
	if slices.Contains(t.fail, rel.SHA) {
		return "--- FAIL: TestItems (0.01s)\nFAIL\tpapi/itest\t0.31s", errors.New("exit status 1")
	}
	return "ok  \tpapi/itest\t0.31s", nil
}

// TestEndToEnd: a push webhook starts a real engine run; the reporter shows it as check
// runs and deployments; a /promote comment by a writer takes it to production. Every
// request sent to GitHub is checked against GitHub's OpenAPI description.
func TestEndToEnd(t *testing.T) {
	t.Parallel()
	contract := githubtest.LoadContract(t)
	ctx := context.Background()
	h, eng, rep, dep := newEndToEnd(t, contract)
	fake := h.fake
	fake.SetPermission("Codertocat", "write")

	push := fixture(t, "push.json", nil)
	sha := jsonField(t, push, "after")
	if code := h.post(t, "push", "e2e-push", push, ""); code != 202 {
		t.Fatalf("push: %d", code)
	}
	waitRun(t, eng, "waiting")
	flushReports(t, rep)

	// A /promote on a pull request whose head is not the release waiting promotes nothing
	// and says which release is waiting.
	comment := h.prComment(t, "/promote prod3")
	h.post(t, "issue_comment", "e2e-promote-other", comment, "")
	replies := fake.Find("POST " + hello + "/issues/1/comments")
	if len(replies) != 1 || !strings.Contains(replies[0].JSON()["body"].(string), "The head of pull request #1 (ec26c3e) is not the release waiting for promotion to prod3") {
		t.Errorf("reply to /promote of a PR whose head does not wait: %v", replies)
	}
	if runs, _ := eng.Runs(ctx, "papi", false, 1); len(runs) != 1 || runs[0].State != "waiting" {
		t.Fatalf("after a /promote of another commit: %v, want the run still waiting", runs)
	}
	// The /promote typed on the pull request whose head is the pushed commit promotes it.
	comment = fixture(t, "issue_comment.created.json", map[string]any{"comment.body": "/promote prod3", "installation.id": 1, "comment.id": 492700401,
		"issue.pull_request": map[string]any{"url": "https://api.github.com/repos/Codertocat/Hello-World/pulls/1"}})
	fake.SetPull("Codertocat/Hello-World", 1, githubtest.Pull{Head: sha})
	h.post(t, "issue_comment", "e2e-promote", comment, "")
	run := waitRun(t, eng, "succeeded")
	// The store says the run succeeded a moment before the reporter is told.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		flushReports(t, rep)
		done := false
		for _, req := range fake.Requests() {
			if m := req.JSON(); strings.Contains(req.Path, "/check-runs") && m["name"] == "immunity / prod3" && m["conclusion"] != nil {
				done = true
			}
		}
		if done || time.Now().After(deadline) {
			break
		}
	}

	if run.SHA != sha {
		t.Errorf("run of %s, want the pushed %s", run.SHA, sha)
	}
	if got := dep.state["prod3/p1"].Current; got != sha {
		t.Errorf("prod3/p1 runs %q, want %s", got, sha)
	}
	// The final word on each region's check run and deployment.
	conclusions := map[string]string{}
	for _, req := range fake.Requests() {
		if m := req.JSON(); strings.Contains(req.Path, "/check-runs") && m["conclusion"] != nil {
			conclusions[m["name"].(string)] = m["conclusion"].(string)
		}
	}
	want := map[string]string{"immunity / sandbox1": "success", "immunity / prod3": "success"}
	if d := cmp.Diff(want, conclusions); d != "" {
		t.Errorf("check run conclusions (-want +got):\n%s", d)
	}
	var reply []githubtest.Request
	for _, req := range fake.Requests() {
		if strings.HasSuffix(req.Path, "/issues/1/comments") {
			reply = append(reply, req)
		}
	}
	if len(reply) != 2 || !strings.Contains(reply[1].JSON()["body"].(string), "promoted papi 6113728 to prod3") {
		t.Errorf("reply to /promote: %v", reply)
	}
	t.Logf("%d requests to GitHub:\n%s", len(fake.Requests()), strings.Join(fake.Calls(), "\n"))
	contract.ValidateAll(t, fake)
}

// newEndToEnd starts a real engine on e2eConfig with the hand-written deployer, the App
// and the checks reporter on one store (the failing releases fail their tests), and a fake GitHub that refuses what GitHub's
// description does not allow.
func newEndToEnd(t *testing.T, contract *githubtest.Contract, failing ...string) (*harness, *pipeline.Engine, *checks.Reporter, *hosts) {
	t.Helper()
	return newEndToEndWith(t, contract, nil, failing...)
}

// newEndToEndWith is newEndToEnd with the config changed by edit first.
func newEndToEndWith(t *testing.T, contract *githubtest.Contract, edit func(*config.Config), failing ...string) (*harness, *pipeline.Engine, *checks.Reporter, *hosts) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	cfg, err := config.Parse(filepath.Join(dir, "immunity.yml"), []byte(e2eConfig))
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(cfg)
	}
	st, err := store.Open(ctx, filepath.Join(dir, "immunity.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	dep := &hosts{state: map[string]deployers.HostState{}}
	eng, err := pipeline.New(pipeline.Options{Config: cfg, Store: st, Builder: builder{dir}, Tester: tester{fail: failing},
		Deployer: func(*config.App, *config.Region) (deployers.Deployer, error) { return dep, nil }, Tick: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	fake := githubtest.New(t)
	fake.Enforce(contract)
	ghApp, err := New(githubConfig(t, fake), eng, bot.New(eng, nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	rep := checks.NewReporter(cfg, st, ghApp.Clients(), nil)
	eng.AddListener(rep)
	if err := eng.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Stop(); rep.Close(ctx); ghApp.Close(ctx) })
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	ghApp.Routes(r)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return &harness{app: ghApp, fake: fake, http: srv, store: st}, eng, rep, dep
}

func waitRun(t *testing.T, eng *pipeline.Engine, state store.RunState) store.Run {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		runs, err := eng.Runs(context.Background(), "papi", false, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(runs) == 1 && runs[0].State == state {
			return runs[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("run never reached %s: %v", state, fmt.Sprint(runs))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func flushReports(t *testing.T, rep *checks.Reporter) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := rep.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

package slackbot

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/immunity-app/immunity/bot"
	"github.com/immunity-app/immunity/deployers"
	"github.com/immunity-app/immunity/pipeline"
	"github.com/immunity-app/immunity/pipeline/config"
	"github.com/immunity-app/immunity/store"
)

// The end-to-end tests drive the real engine (pipeline.New, a real SQLite store) through
// signed Slack requests, with hand-written builder, deployer and tester that record what
// they were asked, and check the run in the store and the thread in the fake Slack.

const (
	sha1 = "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d" // the release the fixture's button promotes
	sha2 = "2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e"
)

type fakeBuilder struct{ dir string }

func (b fakeBuilder) Build(ctx context.Context, app *config.App, sha string) (deployers.Release, error) {
	path := filepath.Join(b.dir, sha+".tar.gz")
	body := []byte("release " + sha)
	if err := os.WriteFile(path, body, 0o644); err != nil {
		return deployers.Release{}, err
	}
	sum := sha256.Sum256(body)
	return deployers.Release{App: app.Name, SHA: sha, Artifact: path, Checksum: hex.EncodeToString(sum[:])}, nil
}

func (b fakeBuilder) Commit(ctx context.Context, app *config.App, sha string) (pipeline.Commit, error) {
	return pipeline.Commit{SHA: sha, Subject: "change " + sha[:4], Author: "Alice Doe"}, nil
}

// fakeDeployer keeps each host's releases in memory and records the switches.
type fakeDeployer struct {
	mu       sync.Mutex
	current  map[string]string
	previous map[string]string
	switches []string
}

func (d *fakeDeployer) Upload(ctx context.Context, h deployers.Host, rel deployers.Release) error {
	return nil
}

func (d *fakeDeployer) Activate(ctx context.Context, h deployers.Host, sha string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.previous[h.String()] = d.current[h.String()]
	d.current[h.String()] = sha
	d.switches = append(d.switches, h.String()+"="+sha[:7])
	return nil
}

func (d *fakeDeployer) Switch(ctx context.Context, h deployers.Host, sha string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.current[h.String()] != sha {
		d.previous[h.String()] = d.current[h.String()]
		d.current[h.String()] = sha
		d.switches = append(d.switches, h.String()+"="+sha[:7])
	}
	return nil
}

func (d *fakeDeployer) Restart(context.Context, deployers.Host) error { return nil }

func (d *fakeDeployer) State(ctx context.Context, h deployers.Host) (deployers.HostState, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return deployers.HostState{Current: d.current[h.String()], Previous: d.previous[h.String()]}, nil
}

func (d *fakeDeployer) Close() error { return nil }

func (d *fakeDeployer) Healthy(context.Context, deployers.Host) error { return nil }

type passTester struct{}

func (passTester) Test(context.Context, deployers.Release, deployers.Host, deployers.Tests) (string, error) {
	return "ok", nil
}

// e2e is a running engine with the Slack bot as its listener and routes.
type e2e struct {
	eng    *pipeline.Engine
	st     *store.Store
	slack  *fakeSlack
	resp   *responses
	bot    *Bot
	router *gin.Engine
	dep    *fakeDeployer
	last   string
}

func newE2E(t *testing.T) *e2e {
	t.Helper()
	f := newFakeSlack(t)
	cfg := testConfig(f.GetAPIURL())
	cfg.Server.DataDir = t.TempDir()
	cfg.Apps[0].Regions = []config.Region{
		{Name: "sandbox1", Deployer: "local", Hosts: []config.Host{{Name: "s1", Port: 1}}, HostsAtATime: 1},
		{Name: "prod3", Deployer: "local", Production: true, ManualApproval: true, Hosts: []config.Host{{Name: "p3a", Port: 2}, {Name: "p3b", Port: 3}}, HostsAtATime: 1},
	}
	// Production is granted to amy (the fixture button's user) and a Slack group holding steve.
	cfg.Apps[0].Access = &config.Access{
		NonProduction: []config.Grant{{Actions: []string{"*"}, SlackUsers: []string{"U2147483697", "U0CA5"}}},
		Production:    []config.Grant{{Actions: []string{"*"}, SlackUsers: []string{"U0CA5"}, SlackGroups: []string{"S0SRE"}}},
	}
	f.Groups["S0SRE"] = []string{"U2147483697"}
	st := openStore(t, filepath.Join(t.TempDir(), "immunity.db"))
	dep := &fakeDeployer{current: map[string]string{}, previous: map[string]string{}}
	eng, err := pipeline.New(pipeline.Options{Config: cfg, Store: st, Builder: fakeBuilder{t.TempDir()}, Tester: passTester{},
		Deployer: func(*config.App, *config.Region) (deployers.Deployer, error) { return dep, nil }, Tick: 20 * time.Millisecond, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	client, err := NewClient(cfg.Slack)
	if err != nil {
		t.Fatal(err)
	}
	cmds := bot.New(eng, bot.MemberFuncs{SlackGroup: NewGroups(client).InSlackGroup})
	b, err := New(Options{Config: cfg, Client: client, Commands: cmds, Store: st, NoCharts: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	eng.AddListener(b)
	if err := eng.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		eng.Stop()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		b.Close(ctx)
	})
	gin.SetMode(gin.TestMode)
	r := gin.New()
	b.Routes(r)
	return &e2e{eng: eng, st: st, slack: f, resp: newResponses(t, f), bot: b, router: r, dep: dep}
}

// slash sends `/immunity text` as a Slack user and waits for the answer.
func (e *e2e) slash(t *testing.T, userID, userName, text string) slackAnswer {
	t.Helper()
	v, _ := url.ParseQuery(slashBody(t, text, e.resp.URL))
	v.Set("user_id", userID)
	v.Set("user_name", userName)
	before := len(e.resp.Msgs())
	if w := serve(e.router, signedRequest("/slack/commands", secret, v.Encode(), time.Now())); w.Code != http.StatusOK {
		t.Fatalf("/immunity %s: %d %s", text, w.Code, w.Body)
	}
	return e.answer(t, before, "/immunity "+text)
}

// press presses the fixture's "Promote to prod3" button as amy and waits for the answer.
func (e *e2e) press(t *testing.T) slackAnswer {
	t.Helper()
	before := len(e.resp.Msgs())
	if w := serve(e.router, signedRequest("/slack/interactions", secret, buttonBody(t, e.resp.URL), time.Now())); w.Code != http.StatusOK {
		t.Fatalf("button: %d %s", w.Code, w.Body)
	}
	return e.answer(t, before, "the button")
}

type slackAnswer struct {
	Text     string
	Public   bool
	Replaced bool
}

func (e *e2e) answer(t *testing.T, before int, what string) slackAnswer {
	t.Helper()
	waitFor(t, what+" answered", func() bool { return len(e.resp.Msgs()) > before })
	m := e.resp.Msgs()[before]
	text := m.Text
	if m.Blocks != nil {
		for _, b := range m.Blocks.BlockSet {
			j, _ := json.Marshal(b)
			text += " " + strings.NewReplacer(`\u003c`, "<", `\u003e`, ">").Replace(string(j))
		}
	}
	return slackAnswer{Text: text, Public: m.ResponseType == "in_channel", Replaced: m.ReplaceOriginal}
}

// stage returns the state of a run's stage in a region.
func (e *e2e) stage(t *testing.T, runID int64, region string) store.StageState {
	t.Helper()
	r, err := e.st.Run(context.Background(), runID)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range r.Stages {
		if s.Region == region {
			return s.State
		}
	}
	t.Fatalf("run %d has no stage %s", runID, region)
	return ""
}

func (e *e2e) waitStage(t *testing.T, runID int64, region string, state store.StageState) {
	t.Helper()
	waitFor(t, fmt.Sprintf("run %d %s %s", runID, region, state), func() bool {
		if e.stage(t, runID, region) == state {
			return true
		}
		r, _ := e.st.Run(context.Background(), runID)
		last := fmt.Sprintf("run %d %s (%s):", r.ID, r.State, r.Message)
		for _, s := range r.Stages {
			last += fmt.Sprintf(" %s=%s(%s)", s.Region, s.State, s.Message)
		}
		e.last = last
		return false
	}, func() string { return e.last })
}

// waitWaiting waits until the pipeline is at rest with a run waiting for promotion to
// region: the stage waits, the run says so (written just after the stage, so a look
// between the two sees a stage waiting in a running run), the thread says so (told once
// both are written) and the bot has delivered every Slack message it queued. Only then
// does nothing change on its own, and a snapshot can show what a command changed.
func (e *e2e) waitWaiting(t *testing.T, runID int64, region string) {
	t.Helper()
	ctx := context.Background()
	e.waitStage(t, runID, region, store.StageAwaitingApproval)
	var r store.Run
	waitFor(t, fmt.Sprintf("run %d waiting", runID), func() bool {
		var err error
		r, err = e.st.Run(ctx, runID)
		return err == nil && r.State == store.RunWaiting
	}, func() string { return fmt.Sprintf("run %d %s (%s)", r.ID, r.State, r.Message) })
	said := fmt.Sprintf("%s %s is ready for %s: waiting for promotion", r.App, r.SHA[:7], region)
	waitFor(t, "the thread says "+said, func() bool {
		for _, c := range e.slack.Calls() {
			if c.Method == "chat.postMessage" && c.ThreadTS != "" && strings.Contains(c.Text, said) {
				return true
			}
		}
		return false
	})
	flush, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	e.bot.Flush(flush)
	if heads, err := e.st.OutboxHeads(ctx, "slack/", 1); err != nil || len(heads) != 0 {
		t.Fatalf("the Slack outbox is not delivered after 15s: %+v, %v", heads, err)
	}
}

// snapshot is what a command could change in the store and on the hosts: the runs and
// their stages (state, message, who approved, forced), each region's live releases and
// history, the locks and freezes, and the releases the deployer switched to.
func (e *e2e) snapshot(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	var b strings.Builder
	runs, err := e.st.Runs(ctx, "papi", false, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range runs {
		fmt.Fprintf(&b, "run %d %s %s:", r.ID, r.SHA[:7], r.State)
		for _, s := range r.Stages {
			fmt.Fprintf(&b, " %s=%s(%s)[%s forced=%v]", s.Region, s.State, s.Message, s.ApprovedBy, s.Forced)
		}
		b.WriteString("; ")
	}
	for _, reg := range e.eng.Config().Apps[0].Regions {
		live, err := e.st.Live(ctx, "papi", reg.Name)
		if err != nil {
			t.Fatal(err)
		}
		hist, err := e.st.History(ctx, "papi", reg.Name, 1000)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s live=%v history=%d; ", reg.Name, live, len(hist))
	}
	locks, err := e.st.Locks(ctx, "papi")
	if err != nil {
		t.Fatal(err)
	}
	freezes, err := e.st.Freezes(ctx, "papi", e.eng.Now())
	if err != nil {
		t.Fatal(err)
	}
	e.dep.mu.Lock()
	defer e.dep.mu.Unlock()
	fmt.Fprintf(&b, "locks=%d freezes=%d switches=%v", len(locks), len(freezes), e.dep.switches)
	return b.String()
}

// waitFor polls cond until it holds, for at most 15s; state says where things stood.
func waitFor(t *testing.T, what string, cond func() bool, state ...func() string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			for _, s := range state {
				what += "; last seen: " + s()
			}
			t.Fatalf("waited 15s for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestE2EPromoteFromButtonAndSlashCommand(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	ctx := context.Background()
	run1, err := e.eng.StartRun(ctx, "papi", sha1, pipeline.Trigger{Kind: "push"})
	if err != nil {
		t.Fatal(err)
	}
	e.waitStage(t, run1.ID, "prod3", store.StageAwaitingApproval)

	// The fixture's button, pressed by amy, promotes sha1 to prod3.
	a := e.press(t)
	if !a.Replaced || !strings.Contains(a.Text, "<@U0CA5> pressed *Promote to prod3*: promoted papi 1a2b3c4 to prod3") {
		t.Errorf("button answer %+v; want the message rewritten to show amy promoted", a)
	}
	e.waitStage(t, run1.ID, "prod3", store.StageSucceeded)

	// The next release waits in turn, and a slash command from steve (in S0SRE) promotes it.
	run2, err := e.eng.StartRun(ctx, "papi", sha2, pipeline.Trigger{Kind: "push"})
	if err != nil {
		t.Fatal(err)
	}
	e.waitStage(t, run2.ID, "prod3", store.StageAwaitingApproval)
	a = e.slash(t, "U2147483697", "steve", "promote papi prod3")
	if !a.Public || !strings.Contains(a.Text, "promoted papi 2b3c4d5 to prod3") {
		t.Errorf("slash answer %+v; want a public \"promoted\"", a)
	}
	e.waitStage(t, run2.ID, "prod3", store.StageSucceeded)
	waitFor(t, "run 2 succeeded", func() bool { r, _ := e.st.Run(ctx, run2.ID); return r.State == store.RunSucceeded })

	// Each run has one thread: one root message, every reply under it. (The store says
	// the run succeeded a moment before the engine tells its listeners.)
	waitFor(t, "the last reply", func() bool {
		for _, c := range e.slack.Calls() {
			if strings.Contains(c.Text, "papi 2b3c4d5 is live in every region") {
				return true
			}
		}
		return false
	})
	roots := map[string]bool{}
	var texts []string
	for _, c := range e.slack.Calls() {
		if c.Method == "chat.postMessage" && c.ThreadTS == "" {
			roots[c.TS] = true
		}
	}
	for _, c := range e.slack.Calls() {
		if c.Method == "chat.postMessage" && c.ThreadTS != "" {
			if !roots[c.ThreadTS] {
				t.Errorf("reply %q outside the runs' threads", c.Text)
			}
			texts = append(texts, c.Text)
		}
	}
	if len(roots) != 2 {
		t.Errorf("%d root messages; want one per run", len(roots))
	}
	joined := strings.Join(texts, "\n")
	for _, want := range []string{"papi 1a2b3c4 is ready for prod3: waiting for promotion", "amy promoted papi 1a2b3c4 to prod3",
		"papi 1a2b3c4 passed prod3", "steve promoted papi 2b3c4d5 to prod3", "papi 2b3c4d5 is live in every region"} {
		if !strings.Contains(joined, want) {
			t.Errorf("thread replies lack %q:\n%s", want, joined)
		}
	}

	// The "Roll back prod3" button under run 2's result, pressed as Slack would send it,
	// puts run 1's release back on both prod3 hosts.
	a = e.pressPosted(t, "papi 2b3c4d5 passed prod3", "immunity_rollback")
	if !a.Replaced || !strings.Contains(a.Text, "pressed *Roll back prod3*") {
		t.Errorf("rollback button answer %+v", a)
	}
	waitFor(t, "prod3 back on 1a2b3c4", func() bool {
		e.dep.mu.Lock()
		defer e.dep.mu.Unlock()
		return e.dep.current["prod3/p3a"] == sha1 && e.dep.current["prod3/p3b"] == sha1
	})

	// Pressed again on that old post, the button refuses: 2b3c4d5 is no longer live, and
	// rolling back what runs now (1a2b3c4) is not what the post offered.
	a = e.pressPosted(t, "papi 2b3c4d5 passed prod3", "immunity_rollback")
	if a.Replaced || !strings.Contains(a.Text, "2b3c4d5 is no longer live in prod3") {
		t.Errorf("stale rollback button answer %+v", a)
	}
	time.Sleep(200 * time.Millisecond)
	e.dep.mu.Lock()
	defer e.dep.mu.Unlock()
	if e.dep.current["prod3/p3a"] != sha1 || e.dep.current["prod3/p3b"] != sha1 {
		t.Errorf("a stale button changed prod3: %v", e.dep.current)
	}
}

// pressPosted presses a button of a message the bot posted, building the block_actions
// payload from the message's own blocks as Slack does, as amy.
func (e *e2e) pressPosted(t *testing.T, text, actionID string) slackAnswer {
	t.Helper()
	var msg call
	for _, c := range e.slack.Calls() {
		if c.Method == "chat.postMessage" && strings.HasPrefix(c.Text, text) {
			msg = c
		}
	}
	var blocks []map[string]any
	if err := json.Unmarshal(msg.Blocks, &blocks); err != nil {
		t.Fatalf("blocks of %q: %v", text, err)
	}
	var action map[string]any
	for _, b := range blocks {
		els, _ := b["elements"].([]any)
		for _, el := range els {
			if m, _ := el.(map[string]any); strings.HasPrefix(fmt.Sprint(m["action_id"]), actionID) {
				action = m
				action["block_id"] = b["block_id"]
				action["action_ts"] = fmt.Sprintf("%d.000100", time.Now().UnixNano()) // each press is its own request
			}
		}
	}
	if action == nil {
		t.Fatalf("no %s button under %q", actionID, text)
	}
	payload, _ := json.Marshal(map[string]any{
		"type": "block_actions", "user": map[string]any{"id": "U0CA5", "username": "amy", "name": "amy"},
		"channel": map[string]any{"id": msg.Channel}, "response_url": e.resp.URL,
		"message": map[string]any{"type": "message", "ts": msg.TS, "thread_ts": msg.ThreadTS, "text": msg.Text, "blocks": blocks},
		"actions": []any{action},
	})
	before := len(e.resp.Msgs())
	body := url.Values{"payload": {string(payload)}}.Encode()
	if w := serve(e.router, signedRequest("/slack/interactions", secret, body, time.Now())); w.Code != http.StatusOK {
		t.Fatalf("button: %d %s", w.Code, w.Body)
	}
	return e.answer(t, before, actionID)
}

func TestE2EUnauthorisedIsRefusedAndAudited(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	ctx := context.Background()
	run, err := e.eng.StartRun(ctx, "papi", sha1, pipeline.Trigger{Kind: "push"})
	if err != nil {
		t.Fatal(err)
	}
	e.waitWaiting(t, run.ID, "prod3")
	before := e.snapshot(t)
	a := e.slash(t, "U0MALLORY", "mallory", "promote papi prod3")
	if a.Public || !strings.Contains(a.Text, "mallory may not promote papi/prod3") {
		t.Errorf("answer %+v; want a private refusal", a)
	}
	if got := e.snapshot(t); got != before {
		t.Errorf("a refused promotion changed the store:\nbefore %s\nafter  %s", before, got)
	}
	audits, err := e.st.Audits(ctx, "papi", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(audits) == 0 || audits[0].Actor != "mallory" || audits[0].Via != "slack" || audits[0].Action != "promote" || audits[0].Outcome != "refused" {
		t.Errorf("audit log %+v; want mallory's refused promote first", audits)
	}
}

func TestE2ELockHoldsRunUntilUnlocked(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	ctx := context.Background()
	if a := e.slash(t, "U2147483697", "steve", "lock papi sandbox1 database migration"); !a.Public || !strings.Contains(a.Text, "locked papi sandbox1") {
		t.Fatalf("lock answer %+v", a)
	}
	run, err := e.eng.StartRun(ctx, "papi", sha1, pipeline.Trigger{Kind: "push"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the release built", func() bool { r, _ := e.st.Run(ctx, run.ID); return r.State != store.RunBuilding })
	for i := 0; i < 5; i++ { // let the scheduler look several times
		e.eng.Kick()
		time.Sleep(30 * time.Millisecond)
	}
	if got := e.stage(t, run.ID, "sandbox1"); got != store.StagePending {
		t.Fatalf("sandbox1 is %s while locked; want pending", got)
	}
	// amy may not lift steve's lock without --force; steve may.
	if a := e.slash(t, "U0CA5", "amy", "unlock papi sandbox1"); !strings.Contains(a.Text, "only they can unlock it") {
		t.Errorf("amy's unlock answer %+v; want a refusal naming the holder", a)
	}
	if a := e.slash(t, "U2147483697", "steve", "unlock papi sandbox1"); !strings.Contains(a.Text, "unlocked papi sandbox1") {
		t.Errorf("unlock answer %+v", a)
	}
	e.waitStage(t, run.ID, "prod3", store.StageAwaitingApproval)
	if got := e.stage(t, run.ID, "sandbox1"); got != store.StageSucceeded {
		t.Errorf("sandbox1 is %s after the unlock; want succeeded", got)
	}
}

// TestE2ELocksAreKeyedByUserID: a signed command carries the user's id and a name they
// chose; a lock belongs to the id. Bob, calling himself ada, cannot lift ada's lock, and
// the audit log records who each was by id.
func TestE2ELocksAreKeyedByUserID(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	ctx := context.Background()
	const ada, bob = "U0CA5", "U2147483697"
	if a := e.slash(t, ada, "ada", "lock papi prod3 incident 42"); !strings.Contains(a.Text, "locked papi prod3") {
		t.Fatalf("ada's lock: %+v", a)
	}
	if a := e.slash(t, bob, "ada", "unlock papi prod3"); !strings.Contains(a.Text, "only they can unlock it") {
		t.Fatalf("bob as ada unlocks: %+v; want a refusal", a)
	}
	l, err := e.st.Lock(ctx, "papi", "prod3")
	if err != nil || l.HolderID != "slack:T0001/"+ada {
		t.Fatalf("after the spoofed unlock the lock is %+v, %v; want it held by ada's id", l, err)
	}
	audit, _ := e.st.Audits(ctx, "papi", 10)
	if len(audit) < 2 || audit[0].Action != "unlock" || audit[0].Outcome != "refused" || audit[0].ActorID != "slack:T0001/"+bob ||
		audit[1].Action != "lock" || audit[1].ActorID != "slack:T0001/"+ada {
		t.Fatalf("audit = %+v", audit)
	}
	if a := e.slash(t, ada, "ada-renamed", "unlock papi prod3"); !strings.Contains(a.Text, "unlocked papi prod3") {
		t.Fatalf("ada, renamed, unlocks her lock: %+v", a)
	}
}

// TestE2EGatesHold: deploying a release that has not passed the regions before the
// target, or that failed one, is refused and changes nothing; a forced deploy needs the
// force grant; a deploy never drops the release waiting for promotion, and its messages
// say "deployed".
func TestE2EGatesHold(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	ctx := context.Background()
	// amy has every action but force in production; steve (via S0SRE) has force too.
	e.eng.Config().Apps[0].Access.Production = []config.Grant{
		{Actions: []string{"promote", "rollback", "deploy", "lock", "unlock"}, SlackUsers: []string{"U0CA5"}},
		{Actions: []string{"*"}, SlackGroups: []string{"S0SRE"}},
	}
	const amy, steve = "U0CA5", "U2147483697"
	// sha2 passed sandbox1 and waits for prod3; sha1 is built but reached no region.
	e.st.PutRelease(ctx, store.Release{App: "papi", SHA: sha1, State: store.ReleaseReady, Artifact: "/dev/null", Checksum: "x"})
	run, err := e.eng.StartRun(ctx, "papi", sha2, pipeline.Trigger{Kind: "push"})
	if err != nil {
		t.Fatal(err)
	}
	e.waitWaiting(t, run.ID, "prod3")
	before := e.snapshot(t)
	a := e.slash(t, amy, "amy", "deploy papi "+sha1[:7]+" to prod3")
	if !strings.Contains(a.Text, "has not passed sandbox1") || !strings.Contains(a.Text, "nothing was changed") {
		t.Fatalf("deploy of an untested release: %+v", a)
	}
	if a := e.slash(t, amy, "amy", "deploy papi "+sha1[:7]+" to prod3 --force"); !strings.Contains(a.Text, `may not force`) {
		t.Fatalf("amy forces without the grant: %+v", a)
	}
	if got := e.snapshot(t); got != before {
		t.Fatalf("refused deploys changed the store:\nbefore %s\nafter  %s", before, got)
	}
	audit, _ := e.st.Audits(ctx, "papi", 2)
	if len(audit) != 2 || audit[0].Outcome != "refused" || audit[1].Outcome != "refused" {
		t.Fatalf("refusals not audited: %+v", audit)
	}
	// steve may force: it deploys, says so, and the release waiting for prod3 still waits.
	a = e.slash(t, steve, "steve", "deploy papi "+sha1[:7]+" to prod3 --force")
	if !strings.Contains(a.Text, "deploying papi "+sha1[:7]+" to prod3") {
		t.Fatalf("forced deploy: %+v", a)
	}
	waitFor(t, "the forced deploy finished", func() bool {
		runs, _ := e.st.Runs(ctx, "papi", false, 1)
		return len(runs) == 1 && runs[0].State == store.RunSucceeded
	}, func() string { return e.snapshot(t) })
	if got := e.stage(t, run.ID, "prod3"); got != store.StageAwaitingApproval {
		t.Fatalf("after the deploy the waiting release's prod3 stage is %s; want it still waiting", got)
	}
	runs, _ := e.st.Runs(ctx, "papi", false, 1)
	if !strings.Contains(runs[0].Message, "is deployed to prod3") {
		t.Errorf("deploy run's message %q; want it to say deployed", runs[0].Message)
	}
	hist, _ := e.st.History(ctx, "papi", "prod3", 1)
	if len(hist) != 1 || hist[0].Action != "deploy" || hist[0].ActorID != "slack:T0001/"+steve || hist[0].Via != "slack" {
		t.Errorf("history = %+v; want steve's deploy", hist)
	}
	waitFor(t, "the thread says deployed", func() bool {
		for _, c := range e.slack.Calls() {
			if strings.Contains(c.Text+string(c.Blocks), "steve deployed papi "+sha1[:7]+" to prod3") {
				return true
			}
		}
		return false
	})
}

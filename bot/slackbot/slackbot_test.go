package slackbot

import (
	"context"
	"encoding/json"
	"flag"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/go-cmp/cmp"

	"github.com/immunity-app/immunity/bot"
	"github.com/immunity-app/immunity/pipeline"
	"github.com/immunity-app/immunity/pipeline/config"
	"github.com/immunity-app/immunity/store"
)

var update = flag.Bool("update", false, "rewrite golden files")

const secret = "8f742231b10e8888abcd99yyyzzz85a5"

// quiet keeps the tests' output to their failures.
var quiet = slog.New(slog.DiscardHandler)

// fakeExec records the commands it was asked to run and answers OK.
type fakeExec struct {
	mu    sync.Mutex
	reqs  []bot.Request
	reply bot.Reply
}

func (f *fakeExec) Exec(ctx context.Context, req bot.Request) bot.Reply {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reqs = append(f.reqs, req)
	r := f.reply
	if r.Text == "" {
		r = bot.Reply{Text: "promoted papi 1a2b3c4 to prod3", OK: true, Command: "promote", Changed: true}
	}
	return r
}

func (f *fakeExec) Reqs() []bot.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]bot.Request(nil), f.reqs...)
}

func testConfig(apiURL string) *config.Config {
	return &config.Config{
		Server: config.ServerConfig{URL: "https://immunity.example.com"},
		Slack:  config.SlackConfig{BotToken: "xoxb-test", SigningSecret: secret, APIURL: apiURL},
		Apps: []config.App{{Name: "papi", Slack: config.AppSlack{Channel: "#deploys"}, Regions: []config.Region{
			{Name: "sandbox1"}, {Name: "sandbox2"}, {Name: "prod3", Production: true, ManualApproval: true}, {Name: "prod4", Production: true},
		}}},
	}
}

func openStore(t *testing.T, path string) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// newTestBot makes a bot talking to the fake Slack, with its routes on a gin engine.
func newTestBot(t *testing.T, cfg *config.Config, st *store.Store, exec executor) (*Bot, *gin.Engine) {
	t.Helper()
	client, err := NewClient(cfg.Slack)
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Options{Config: cfg, Client: client, Commands: exec, Store: st, Logger: quiet, Clock: newFastClock(1000)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		b.Close(ctx)
	})
	gin.SetMode(gin.TestMode)
	r := gin.New()
	b.Routes(r)
	return b, r
}

func slashBody(t *testing.T, text, responseURL string) string {
	t.Helper()
	raw, err := os.ReadFile("../../fixtures/slack/slash_command.form")
	if err != nil {
		t.Fatal(err)
	}
	v, err := url.ParseQuery(string(raw))
	if err != nil {
		t.Fatal(err)
	}
	v.Set("text", text)
	v.Set("response_url", responseURL)
	return v.Encode()
}

func buttonBody(t *testing.T, responseURL string) string {
	t.Helper()
	raw, err := os.ReadFile("../../fixtures/slack/block_actions.json")
	if err != nil {
		t.Fatal(err)
	}
	var payload map[string]any
	if err := json.Unmarshal(raw, &payload); err != nil {
		t.Fatal(err)
	}
	payload["response_url"] = responseURL
	b, _ := json.Marshal(payload)
	return url.Values{"payload": {string(b)}}.Encode()
}

func serve(r http.Handler, req *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	r.ServeHTTP(w, req)
	return w
}

func TestSlashCommand(t *testing.T) {
	t.Parallel()
	f := newFakeSlack(t)
	resp := newResponses(t, f)
	exec := &fakeExec{}
	b, r := newTestBot(t, testConfig(f.GetAPIURL()), openStore(t, filepath.Join(t.TempDir(), "db")), exec)

	w := serve(r, signedRequest("/slack/commands", secret, slashBody(t, "promote papi prod3", resp.URL), time.Now()))
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"response_type":"ephemeral"`) || !strings.Contains(w.Body.String(), "working on it") {
		t.Fatalf("slash command answered %d %s; want 200 and an ephemeral \"working on it\"", w.Code, w.Body)
	}
	b.Close(context.Background())
	want := []bot.Request{{Actor: pipeline.Actor{ID: "slack:T0001/U2147483697", Name: "steve", Via: "slack", SlackUserID: "U2147483697"}, Text: "promote papi prod3"}}
	if d := cmp.Diff(want, exec.Reqs()); d != "" {
		t.Errorf("commands run (-want +got):\n%s", d)
	}
	msgs := resp.Msgs()
	if len(msgs) != 1 || msgs[0].ResponseType != "in_channel" || msgs[0].Text != "<@U2147483697>: promoted papi 1a2b3c4 to prod3" {
		t.Errorf("response_url got %+v; want one in_channel answer naming the user", msgs)
	}
}

func TestSlashCommandAnswersPrivatelyWhenNothingChanged(t *testing.T) {
	t.Parallel()
	f := newFakeSlack(t)
	resp := newResponses(t, f)
	exec := &fakeExec{reply: bot.Reply{Text: "papi\n  prod3  live 1a2b3c4", OK: true, Command: "status"}}
	b, r := newTestBot(t, testConfig(f.GetAPIURL()), openStore(t, filepath.Join(t.TempDir(), "db")), exec)
	serve(r, signedRequest("/slack/commands", secret, slashBody(t, "status papi", resp.URL), time.Now()))
	b.Close(context.Background())
	msgs := resp.Msgs()
	if len(msgs) != 1 || msgs[0].ResponseType != "ephemeral" || msgs[0].Text != "```\npapi\n  prod3  live 1a2b3c4\n```" {
		t.Errorf("response_url got %+v; want one ephemeral code block", msgs)
	}
}

func TestSlashHelpAnsweredAtOnce(t *testing.T) {
	t.Parallel()
	f := newFakeSlack(t)
	resp := newResponses(t, f)
	exec := &fakeExec{reply: bot.Reply{Text: "Commands (`/immunity COMMAND` in Slack …", OK: true, Command: "help"}}
	b, r := newTestBot(t, testConfig(f.GetAPIURL()), openStore(t, filepath.Join(t.TempDir(), "db")), exec)
	w := serve(r, signedRequest("/slack/commands", secret, slashBody(t, "", resp.URL), time.Now()))
	b.Close(context.Background())
	if reqs := exec.Reqs(); len(reqs) != 1 || reqs[0].Text != "help" {
		t.Errorf("an empty /immunity ran %+v; want help", reqs)
	}
	if !strings.Contains(w.Body.String(), `"text":"Commands (`+"`/immunity COMMAND`"+` in Slack …"`) || len(resp.Msgs()) != 0 {
		t.Errorf("help answered %s and %+v on the response_url; want the help in the answer itself", w.Body, resp.Msgs())
	}
}

func TestRefusesBadSignatures(t *testing.T) {
	t.Parallel()
	f := newFakeSlack(t)
	resp := newResponses(t, f)
	exec := &fakeExec{}
	b, r := newTestBot(t, testConfig(f.GetAPIURL()), openStore(t, filepath.Join(t.TempDir(), "db")), exec)
	body := slashBody(t, "rollback papi prod3", resp.URL)
	button := buttonBody(t, resp.URL)

	unsigned := httptest.NewRequest(http.MethodPost, "/slack/commands", strings.NewReader(body))
	unsigned.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	wrong := signedRequest("/slack/commands", "not-the-secret", body, time.Now())
	old := signedRequest("/slack/commands", secret, body, time.Now().Add(-6*time.Minute))
	tampered := httptest.NewRequest(http.MethodPost, "/slack/commands", strings.NewReader(strings.Replace(body, "prod3", "prod4", 1)))
	tampered.Header = signedRequest("/slack/commands", secret, body, time.Now()).Header
	oldButton := signedRequest("/slack/interactions", secret, button, time.Now().Add(-6*time.Minute))
	unsignedButton := httptest.NewRequest(http.MethodPost, "/slack/interactions", strings.NewReader(button))

	// A request replayed while its timestamp is still accepted: the first one runs.
	first := signedRequest("/slack/commands", secret, body, time.Now())
	replayed := httptest.NewRequest(http.MethodPost, "/slack/commands", strings.NewReader(body))
	replayed.Header = first.Header.Clone()
	if w := serve(r, first); w.Code != http.StatusOK {
		t.Fatalf("a signed request: %d %s", w.Code, w.Body)
	}
	for name, req := range map[string]*http.Request{"replayed": replayed, "unsigned": unsigned, "wrongly signed": wrong, "6 minutes old": old,
		"body changed after signing": tampered, "old button": oldButton, "unsigned button": unsignedButton} {
		if w := serve(r, req); w.Code != http.StatusUnauthorized {
			t.Errorf("%s: answered %d %s; want 401", name, w.Code, w.Body)
		}
	}
	b.Close(context.Background())
	if reqs := exec.Reqs(); len(reqs) != 1 {
		t.Errorf("refused requests ran commands: %+v; want only the first signed one", reqs)
	}
	if msgs := resp.Msgs(); len(msgs) != 1 {
		t.Errorf("refused requests were answered: %+v; want only the first signed one", msgs)
	}
	if calls := f.Calls(); len(calls) != 0 {
		t.Errorf("refused requests called Slack: %+v", calls)
	}
}

func TestButton(t *testing.T) {
	t.Parallel()
	f := newFakeSlack(t)
	resp := newResponses(t, f)
	exec := &fakeExec{}
	b, r := newTestBot(t, testConfig(f.GetAPIURL()), openStore(t, filepath.Join(t.TempDir(), "db")), exec)
	if w := serve(r, signedRequest("/slack/interactions", secret, buttonBody(t, resp.URL), time.Now())); w.Code != http.StatusOK {
		t.Fatalf("button answered %d %s", w.Code, w.Body)
	}
	b.Close(context.Background())
	want := []bot.Request{{Actor: pipeline.Actor{ID: "slack:T0CAG/U0CA5", Name: "amy", Via: "button", SlackUserID: "U0CA5"},
		Text: "promote papi prod3 --release 1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d"}}
	if d := cmp.Diff(want, exec.Reqs()); d != "" {
		t.Errorf("commands run (-want +got):\n%s", d)
	}
	msgs := resp.Msgs()
	if len(msgs) != 1 || !msgs[0].ReplaceOriginal {
		t.Fatalf("response_url got %+v; want the message replaced", msgs)
	}
	got, _ := json.MarshalIndent(msgs[0], "", "  ")
	golden(t, "button_pressed.json", string(got)+"\n")
}

func TestButtonRefused(t *testing.T) {
	t.Parallel()
	f := newFakeSlack(t)
	resp := newResponses(t, f)
	exec := &fakeExec{reply: bot.Reply{Text: "amy may not promote papi/prod3", Command: "promote", Changed: true}}
	b, r := newTestBot(t, testConfig(f.GetAPIURL()), openStore(t, filepath.Join(t.TempDir(), "db")), exec)
	serve(r, signedRequest("/slack/interactions", secret, buttonBody(t, resp.URL), time.Now()))
	b.Close(context.Background())
	msgs := resp.Msgs()
	if len(msgs) != 1 || msgs[0].ReplaceOriginal || msgs[0].ResponseType != "ephemeral" || !strings.Contains(msgs[0].Text, "may not promote") {
		t.Errorf("response_url got %+v; want one ephemeral refusal that leaves the buttons", msgs)
	}
}

// golden compares got with testdata/NAME, rewriting it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		os.MkdirAll("testdata", 0o755)
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (go test -update writes it): %v", err)
	}
	if d := cmp.Diff(string(want), got); d != "" {
		t.Errorf("%s (-want +got):\n%s", path, d)
	}
}

// fastClock is a clock running speed times faster than the real one: a minute of
// Retry-After, or the second between two edits, passes in a moment of the test.
type fastClock struct {
	start time.Time
	speed time.Duration
}

func newFastClock(speed int) *fastClock {
	return &fastClock{start: time.Now(), speed: time.Duration(speed)}
}

func (c *fastClock) Now() time.Time { return c.start.Add(time.Since(c.start) * c.speed) }

func (c *fastClock) After(d time.Duration) <-chan time.Time { return time.After(d / c.speed) }

package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"

	"github.com/immunity-app/immunity/app/github/githubtest"
	"github.com/immunity-app/immunity/canary/prom/promtest"
	"github.com/immunity-app/immunity/store"
)

// TestOperatorsFollowARunInPrometheusAndTheLogs runs the real binary with JSON logs, the
// GitHub App (a fake GitHub held to GitHub's OpenAPI description) and Slack (a fake Web
// API) configured, and a real Prometheus scraping its /metrics. Two releases are pushed
// as GitHub delivers them (one redelivered, one forged); A is promoted from Slack, B from
// a commit comment and judged against A by the canary while the test sends both hosts
// traffic; Slack rate-limits once and is down for a while, GitHub rate-limits once;
// prod is locked from Slack. Then a PromQL query for each of Immunity's series answers
// what happened, and every line the server wrote is JSON, each about a run with its app,
// run, region, host and release.
func TestOperatorsFollowARunInPrometheusAndTheLogs(t *testing.T) {
	if testing.Short() {
		t.Skip("builds papi and the immunity binary")
	}
	w := newObserved(t)
	prom := promtest.Start(t, []string{w.addr})
	w.prom = prom
	w.until("Prometheus scrapes the server", time.Minute, func() bool { return w.value(`up{job="app"}`) == "1" })

	// Release A: pushed (the first Slack post is rate limited), promoted from Slack.
	a := w.commit("release A", "")
	w.slack.limit("chat.postMessage", 1)
	if code := w.deliver("push", "delivery-a", w.pushBody(a), webhookSecret); code != http.StatusAccepted {
		t.Fatalf("push of A answered %d", code)
	}
	runA := w.waitRun(a, store.RunWaiting, 3*time.Minute)
	w.expect(`immunity_runs_in_flight{app="papi",state="waiting"}`, "1")
	if reply := w.slash("promote papi prod"); !strings.Contains(reply, "promoted papi") {
		t.Fatalf("promote A from Slack answered %q", reply)
	}
	w.waitRun(a, store.RunSucceeded, 3*time.Minute)

	// Release B: Slack is down while it is pushed (its effects wait in the outbox);
	// GitHub rate-limits the next call; B is delivered twice and a forged delivery comes.
	b := w.commit("release B", `"hello from B"`)
	w.slack.setDown(true)
	w.gh.FailNext(githubtest.Fault{Status: http.StatusTooManyRequests, Header: map[string]string{"Retry-After": "1"},
		Body: `{"message":"You have exceeded a secondary rate limit.","documentation_url":"https://docs.github.com/rest"}`})
	if code := w.deliver("push", "delivery-b", w.pushBody(b), webhookSecret); code != http.StatusAccepted {
		t.Fatalf("push of B answered %d", code)
	}
	if code := w.deliver("push", "delivery-b", w.pushBody(b), webhookSecret); code != http.StatusOK {
		t.Fatalf("redelivery of B answered %d, want 200 (a duplicate)", code)
	}
	if code := w.deliver("push", "delivery-forged", w.pushBody(b), "not-the-secret"); code != http.StatusUnauthorized {
		t.Fatalf("a forged delivery answered %d, want 401", code)
	}
	runB := w.waitRun(b, store.RunWaiting, 3*time.Minute)
	w.until("Slack's effects waiting in the outbox", time.Minute, func() bool {
		return w.number(`immunity_outbox_depth{service="slack"}`) > 0 && w.number(`immunity_outbox_oldest_seconds{service="slack"}`) > 0
	})
	w.slack.setDown(false)

	// B is promoted by a commit comment and judged against A while both hosts get traffic.
	stop := w.traffic()
	if code := w.deliver("commit_comment", "delivery-comment", w.commentBody(b, "/promote prod"), webhookSecret); code != http.StatusAccepted {
		t.Fatalf("the commit comment answered %d", code)
	}
	w.waitRun(b, store.RunSucceeded, 3*time.Minute)
	stop()

	// Slack: a lock, a promotion the lock refuses, a typo.
	if reply := w.slash("lock papi prod incident 7"); !strings.Contains(reply, "locked") {
		t.Fatalf("lock from Slack answered %q", reply)
	}
	if reply := w.slash("promote papi prod --release " + b); strings.Contains(reply, "promoted papi") {
		t.Fatalf("promote into a locked region answered %q", reply)
	}
	w.slashAtOnce("promte papi prod")

	// Everything delivered: the outboxes are empty and nothing is in flight.
	w.expect(`immunity_outbox_depth{service="slack"}`, "0")
	w.expect(`immunity_outbox_depth{service="github"}`, "0")
	w.expect(`immunity_outbox_oldest_seconds{service="slack"}`, "0")
	w.expectNone(`immunity_runs_in_flight{app="papi"}`)

	t.Run("prometheus", func(t *testing.T) {
		w.t = t
		// Runs and stages.
		w.expect(`immunity_runs_started_total{app="papi"}`, "2")
		w.expect(`immunity_runs_finished_total{app="papi",outcome="succeeded"}`, "2")
		w.expect(`sum(immunity_runs_finished_total)`, "2")
		// Each run's prod stage: two batches of one host (deploy, test), B's first batch
		// monitored against A on host2 (host1's A had no baseline).
		w.expect(`immunity_stage_duration_seconds_count{app="papi",region="prod",step="stage",outcome="succeeded"}`, "2")
		w.expect(`immunity_stage_duration_seconds_count{app="papi",region="prod",step="deploying",outcome="ok"}`, "4")
		w.expect(`immunity_stage_duration_seconds_count{app="papi",region="prod",step="testing",outcome="ok"}`, "4")
		w.expect(`immunity_stage_duration_seconds_count{app="papi",region="prod",step="monitoring",outcome="ok"}`, "1")
		stages := w.stageSeconds(runA.ID) + w.stageSeconds(runB.ID)
		if got := w.number(`immunity_stage_duration_seconds_sum{app="papi",region="prod",step="stage"}`); got < stages-1 || got > stages+1 {
			t.Errorf("stage seconds = %.3f, the store's stages took %.3f", got, stages)
		}
		// The canary: one final verdict, and as many looks as B's log has interim verdicts.
		w.expect(`immunity_verdicts_total{app="papi",region="prod",outcome="pass"}`, "1")
		w.expect(`sum(immunity_verdicts_total)`, "1")
		looks := w.events(runB.ID, "stage.looked")
		if looks == 0 {
			t.Errorf("run B's log has no interim verdict")
		}
		w.expect(`sum(immunity_judge_looks_total{app="papi",region="prod"})`, strconv.Itoa(looks))
		// Webhooks.
		w.expect(`immunity_webhook_deliveries_total{event="push",outcome="accepted"}`, "2")
		w.expect(`immunity_webhook_deliveries_total{event="push",outcome="duplicate"}`, "1")
		w.expect(`immunity_webhook_deliveries_total{event="unverified",outcome="unauthorized"}`, "1")
		w.expect(`immunity_webhook_deliveries_total{event="commit_comment",outcome="accepted"}`, "1")
		w.expect(`sum(immunity_webhook_deliveries_total)`, "5")
		w.expect(`immunity_webhook_handling_seconds_count{event="push"}`, "3")
		w.expect(`immunity_webhook_handling_seconds_count{event="commit_comment"}`, "1")
		// Commands, by surface.
		w.expect(`immunity_commands_total{surface="slack",command="promote",outcome="ok"}`, "1")
		w.expect(`immunity_commands_total{surface="slack",command="promote",outcome="refused"}`, "1")
		w.expect(`immunity_commands_total{surface="slack",command="lock",outcome="ok"}`, "1")
		w.expect(`immunity_commands_total{surface="slack",command="unknown",outcome="not_understood"}`, "1")
		w.expect(`immunity_commands_total{surface="github",command="promote",outcome="ok"}`, "1")
		w.expect(`sum(immunity_commands_total)`, "5")
		// GitHub's API: every request the fake received, its one rate limit waited out.
		w.expect(`sum(immunity_api_requests_total{service="github"})`, strconv.Itoa(len(w.gh.Requests())))
		w.expect(`sum(immunity_api_requests_total{service="github",status="429"})`, "1")
		w.expect(`immunity_api_retries_total{service="github"}`, "1")
		w.expect(`immunity_api_rate_limit_wait_seconds_total{service="github"}`, "1")
		w.expect(`immunity_api_request_duration_seconds_count{service="github"}`, strconv.Itoa(len(w.gh.Requests())))
		// Slack's API: each answer the fake gave, by status; the 429 and the 500s retried.
		answers := w.slack.answers()
		for status, n := range answers {
			w.expect(fmt.Sprintf(`sum(immunity_api_requests_total{service="slack",method="POST",status="%d"})`, status), strconv.Itoa(n))
		}
		if answers[http.StatusInternalServerError] == 0 || answers[http.StatusTooManyRequests] != 1 {
			t.Errorf("fake Slack answered %v; want one 429 and some 500s", answers)
		}
		w.expect(`immunity_api_retries_total{service="slack"}`, strconv.Itoa(answers[http.StatusTooManyRequests]+answers[http.StatusInternalServerError]))
		w.expect(`immunity_api_rate_limit_wait_seconds_total{service="slack"}`, "1")
		// What is live where, and the lock.
		for _, h := range []string{"host1", "host2"} {
			w.expect(fmt.Sprintf(`immunity_release_info{app="papi",region="prod",host=%q,sha=%q}`, h, b), "1")
		}
		w.expect(`count(immunity_release_info)`, "2")
		w.expect(`immunity_locks_held{app="papi",region="prod"}`, "1")
		// The Go runtime and the process.
		if n := w.number(`go_goroutines`); n < 1 {
			t.Errorf("go_goroutines = %v", n)
		}
		if start := w.number(`process_start_time_seconds`); start < float64(w.started.Unix()-1) || start > float64(time.Now().Unix()) {
			t.Errorf("process_start_time_seconds = %v, the server started at %d", start, w.started.Unix())
		}
		if n := w.number(`process_resident_memory_bytes`); n < 1<<20 {
			t.Errorf("process_resident_memory_bytes = %v", n)
		}
	})

	t.Run("json logs", func(t *testing.T) {
		checkRunLogs(t, w.logs.String(), map[string]store.Run{a: runA, b: runB})
	})
}

// checkRunLogs checks that every line of a JSON log is an object with time, level and msg,
// and that every line about a run names its app, run and release (the full SHA); about a
// host, also its region; about a region of a run, its region.
func checkRunLogs(t *testing.T, logs string, runs map[string]store.Run) {
	t.Helper()
	byID := map[int64]store.Run{}
	var shas []string
	for sha, r := range runs {
		byID[r.ID] = r
		shas = append(shas, sha, sha[:7])
	}
	runRef := regexp.MustCompile(`\brun[/ #](\d+)\b`)
	lines, about := 0, 0
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		lines++
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("log line is not JSON: %q", line)
			continue
		}
		for _, k := range []string{"time", "level", "msg"} {
			if _, ok := rec[k]; !ok {
				t.Errorf("log line without %s: %s", k, line)
			}
		}
		// Which run is the line about, if any: its run field, a run named in a value
		// (a stream such as slack/run/3, an error), or a release of a run. A delivery's
		// dedupe key holds a release as part of an identifier: that alone is no line
		// about the run.
		var id int64
		if v, ok := rec["run"].(float64); ok {
			id = int64(v)
		}
		for k, v := range rec {
			s, ok := v.(string)
			if !ok || k == "time" || k == "key" {
				continue
			}
			if m := runRef.FindStringSubmatch(s); m != nil && id == 0 {
				id, _ = strconv.ParseInt(m[1], 10, 64)
			}
			for _, sha := range shas {
				if strings.Contains(s, sha) && id == 0 {
					for _, r := range runs {
						if strings.HasPrefix(r.SHA, sha) {
							id = r.ID
						}
					}
				}
			}
		}
		if id == 0 {
			continue
		}
		about++
		r, known := byID[id]
		switch {
		case !known:
			t.Errorf("a line about run %d, which is not one of this test's: %s", id, line)
		case rec["app"] != r.App || rec["run"] != float64(r.ID) || rec["sha"] != r.SHA:
			t.Errorf("a line about run %d without its app %q, run %d and release %s: %s", id, r.App, r.ID, r.SHA, line)
		case rec["host"] != nil && rec["region"] == nil:
			t.Errorf("a line about a host of run %d without its region: %s", id, line)
		}
	}
	if about < 20 {
		t.Errorf("%d of %d lines are about the runs; want the runs' transitions among them", about, lines)
	}
	t.Logf("%d lines, %d about a run", lines, about)
}

// observed is the server under test and what it talks to.
type observed struct {
	t       *testing.T
	dir     string
	addr    string
	repo    *git.Repository
	gh      *githubtest.Server
	slack   *fakeSlackAPI
	ports   []int
	logs    *syncBuffer
	started time.Time
	prom    string
}

func newObserved(t *testing.T) *observed {
	t.Helper()
	bin := immunityBinary(t)
	dir := t.TempDir()
	gh := githubtest.New(t)
	gh.Enforce(githubtest.LoadContract(t))
	gh.SetPermission("Codertocat", "write")
	w := &observed{t: t, dir: dir, addr: freeAddr(t), gh: gh, slack: newFakeSlackAPI(t), ports: []int{freePort(t), freePort(t)}, logs: &syncBuffer{}}
	w.repo = papiRepo(t, filepath.Join(dir, "papi.git"))
	cfg := fmt.Sprintf(`github: {app_id: 1, private_key_file: %s, webhook_secret: %q, api_url: %q}
slack: {bot_token: xoxb-observed, signing_secret: %q, api_url: %q, channel: "#deploys"}
server:
  data_dir: data
apps:
  - name: papi
    repo: {github: Codertocat/Hello-World, path: papi.git, branch: main}
    build: {command: [go, build, -o, bin/, ., ./itest], artifacts: [bin]}
    run: {command: [bin/papi], health: /healthz}
    tests: {command: [bin/itest]}
    metrics:
      - {name: error_rate, kind: rate, critical: true, allowed_effect: 10}
      - {name: latency, kind: latency, unit: s, allowed_effect: 10}
    regions:
      - name: prod
        production: true
        manual_approval: true
        hosts_at_a_time: 1
        monitor: {period: 3s, interval: 1s}
        hosts: [{name: host1, port: %d}, {name: host2, port: %d}]
`, githubtest.KeyFile(t), webhookSecret, gh.APIURL(), slackSecret, w.slack.URL+"/api/", w.ports[0], w.ports[1])
	if err := os.WriteFile(filepath.Join(dir, "immunity.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", "--config", "immunity.yml")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "IMMUNITY_LISTEN="+w.addr, "IMMUNITY_LOG_FORMAT=json", "IMMUNITY_LOG_LEVEL=debug")
	cmd.Stdout, cmd.Stderr = w.logs, w.logs
	w.started = time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		if t.Failed() {
			t.Logf("server log:\n%s", w.logs.String())
		}
		stopApps(dir)
	})
	w.until("the server ready", time.Minute, func() bool {
		resp, err := http.Get("http://" + w.addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return w
}

// slackSecret is the Slack app's signing secret in this test.
const slackSecret = "observed-signing-secret"

func (w *observed) commit(msg, greeting string) string { return commit(w.t, w.repo, msg, greeting) }

func (w *observed) until(what string, limit time.Duration, cond func() bool) {
	w.t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			w.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// query asks Prometheus an instant query.
func (w *observed) query(q string) []promtest.Sample { return promtest.Query(w.t, w.prom, q) }

// value is the query's one value, or "" when it has none or several.
func (w *observed) value(q string) string {
	if got := w.query(q); len(got) == 1 {
		return got[0].Value
	}
	return ""
}

func (w *observed) number(q string) float64 {
	f, err := strconv.ParseFloat(w.value(q), 64)
	if err != nil {
		return -1
	}
	return f
}

// expect waits (a scrape is every second) until the query answers one series of value want.
func (w *observed) expect(q, want string) {
	w.t.Helper()
	var got []promtest.Sample
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		if got = w.query(q); len(got) == 1 && got[0].Value == want {
			return
		}
	}
	w.t.Errorf("%s = %v, want one series of %s", q, got, want)
}

// expectNone waits until the query answers no series.
func (w *observed) expectNone(q string) {
	w.t.Helper()
	var got []promtest.Sample
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		if got = w.query(q); len(got) == 0 {
			return
		}
	}
	w.t.Errorf("%s = %v, want none", q, got)
}

func (w *observed) waitRun(sha string, state store.RunState, timeout time.Duration) store.Run {
	w.t.Helper()
	r := waitRun(w.t, "http://"+w.addr, sha, string(state), timeout)
	return *r
}

// runDetail is GET /api/runs/ID.
func (w *observed) runDetail(id int64) (store.Run, []store.Event) {
	w.t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://%s/api/runs/%d", w.addr, id))
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Run    store.Run     `json:"run"`
		Events []store.Event `json:"events"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		w.t.Fatal(err)
	}
	return body.Run, body.Events
}

// stageSeconds is how long the run's stages took, as the store has them.
func (w *observed) stageSeconds(id int64) float64 {
	r, _ := w.runDetail(id)
	total := 0.0
	for _, s := range r.Stages {
		total += s.Finished.Sub(s.Started).Seconds()
	}
	return total
}

// events counts the run's log entries of a kind.
func (w *observed) events(id int64, kind string) int {
	_, evs := w.runDetail(id)
	n := 0
	for _, e := range evs {
		if e.Kind == kind {
			n++
		}
	}
	return n
}

// deliver posts a webhook delivery as GitHub does, signed with secret.
func (w *observed) deliver(event, delivery string, body []byte, secret string) int {
	w.t.Helper()
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	req, _ := http.NewRequest("POST", "http://"+w.addr+"/webhooks/github", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "GitHub-Hookshot/044aadd")
	req.Header.Set("X-GitHub-Event", event)
	req.Header.Set("X-GitHub-Delivery", delivery)
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// fixtureWith reads fixtures/github/NAME and sets fields (dotted paths).
func (w *observed) fixtureWith(name string, set map[string]any) []byte {
	w.t.Helper()
	raw, err := os.ReadFile(filepath.Join("fixtures", "github", name))
	if err != nil {
		w.t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		w.t.Fatal(err)
	}
	for path, v := range set {
		keys := strings.Split(path, ".")
		at := m
		for _, k := range keys[:len(keys)-1] {
			next, ok := at[k].(map[string]any)
			if !ok {
				next = map[string]any{}
				at[k] = next
			}
			at = next
		}
		at[keys[len(keys)-1]] = v
	}
	b, _ := json.Marshal(m)
	return b
}

func (w *observed) pushBody(sha string) []byte {
	return w.fixtureWith("push.json", map[string]any{"ref": "refs/heads/main", "after": sha, "head_commit.id": sha})
}

func (w *observed) commentBody(sha, text string) []byte {
	return w.fixtureWith("commit_comment.created.json", map[string]any{"comment.body": text, "comment.commit_id": sha, "installation.id": 1})
}

// slash sends a signed /immunity command as Slack does and returns the answer it posts
// to the command's response_url.
func (w *observed) slash(text string) string {
	w.t.Helper()
	n := w.slack.nextResponse()
	w.slashRequest(text, w.slack.URL+"/response/"+strconv.Itoa(n))
	var got string
	w.until("Slack's answer to "+text, time.Minute, func() bool { got = w.slack.response(n); return got != "" })
	return got
}

// slashAtOnce sends a command answered in the request itself (help, a mistake).
func (w *observed) slashAtOnce(text string) string {
	w.t.Helper()
	return w.slashRequest(text, w.slack.URL+"/response/none")
}

func (w *observed) slashRequest(text, responseURL string) string {
	w.t.Helper()
	form := url.Values{"token": {"x"}, "team_id": {"T0001"}, "channel_id": {"C0DEPLOYS"}, "user_id": {"U0ADA"}, "user_name": {"ada"},
		"command": {"/immunity"}, "text": {text}, "response_url": {responseURL}}
	body := form.Encode()
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	mac := hmac.New(sha256.New, []byte(slackSecret))
	io.WriteString(mac, "v0:"+ts+":"+body)
	req, _ := http.NewRequest("POST", "http://"+w.addr+"/slack/commands", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Slack-Request-Timestamp", ts)
	req.Header.Set("X-Slack-Signature", "v0="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		w.t.Fatalf("slash command %q answered %s: %s", text, resp.Status, b)
	}
	return string(b)
}

// traffic sends both hosts requests until the returned stop is called.
func (w *observed) traffic() (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	for _, p := range w.ports {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := &http.Client{Timeout: 5 * time.Second}
			for {
				select {
				case <-done:
					return
				case <-time.After(10 * time.Millisecond):
				}
				if resp, err := cl.Get(fmt.Sprintf("http://127.0.0.1:%d/api/items", p)); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		}()
	}
	return func() { close(done); wg.Wait() }
}

// fakeSlackAPI answers Slack's Web API calls a bot makes (chat.postMessage, chat.update,
// the file upload flow) and the command answers posted to response_urls. It can rate-limit
// a method's next calls (429, Retry-After: 1) and be down (500), and counts its answers.
type fakeSlackAPI struct {
	*httptest.Server
	mu        sync.Mutex
	n         int
	limited   map[string]int
	down      bool
	byStatus  map[int]int
	responses map[int]string
	nextResp  int
}

func newFakeSlackAPI(t *testing.T) *fakeSlackAPI {
	f := &fakeSlackAPI{limited: map[string]int{}, byStatus: map[int]int{}, responses: map[int]string{}}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeSlackAPI) serve(w http.ResponseWriter, r *http.Request) {
	if rest, ok := strings.CutPrefix(r.URL.Path, "/response/"); ok {
		var msg struct {
			Text string `json:"text"`
		}
		json.NewDecoder(r.Body).Decode(&msg)
		n, _ := strconv.Atoi(rest)
		f.mu.Lock()
		f.responses[n] = msg.Text
		f.mu.Unlock()
		return
	}
	r.ParseMultipartForm(1 << 20)
	method := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, "/api/"), "/")
	f.mu.Lock()
	defer f.mu.Unlock()
	status := http.StatusOK
	switch {
	case f.limited[method] > 0:
		f.limited[method]--
		status = http.StatusTooManyRequests
		w.Header().Set("Retry-After", "1")
	case f.down:
		status = http.StatusInternalServerError
	}
	f.byStatus[status]++
	if status != http.StatusOK {
		w.WriteHeader(status)
		return
	}
	f.n++
	ts := fmt.Sprintf("1700000000.%06d", f.n)
	var answer any = map[string]any{"ok": true}
	switch {
	case method == "chat.postMessage":
		answer = map[string]any{"ok": true, "channel": "C0DEPLOYS", "ts": ts}
	case method == "chat.update":
		answer = map[string]any{"ok": true, "channel": r.FormValue("channel"), "ts": r.FormValue("ts")}
	case method == "files.getUploadURLExternal":
		id := fmt.Sprintf("F%06d", f.n)
		answer = map[string]any{"ok": true, "file_id": id, "upload_url": f.URL + "/upload/" + id}
	case method == "files.completeUploadExternal":
		answer = map[string]any{"ok": true, "files": []map[string]any{{"id": "F1", "title": "verdict"}}}
	case strings.HasPrefix(method, "upload/"):
		w.Write([]byte("OK"))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(answer)
}

func (f *fakeSlackAPI) limit(method string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.limited[method] += n
}

func (f *fakeSlackAPI) setDown(down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = down
}

// answers counts the Web API answers given, by status.
func (f *fakeSlackAPI) answers() map[int]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[int]int{}
	for k, v := range f.byStatus {
		out[k] = v
	}
	return out
}

func (f *fakeSlackAPI) nextResponse() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextResp++
	return f.nextResp
}

func (f *fakeSlackAPI) response(n int) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.responses[n]
}

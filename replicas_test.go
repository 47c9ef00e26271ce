package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/immunity-app/immunity/app/github/githubtest"
	"github.com/immunity-app/immunity/bot/slackbot/slackfake"
	"github.com/immunity-app/immunity/internal/pgtest"
	"github.com/immunity-app/immunity/store"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// replicaLease is the lease the replica tests give their servers (server.lease): a
// replica that dies is taken over within two.
const replicaLease = 3 * time.Second

// TestReplicasTakeOverARolloutOfOneKilled runs the real binary as four replicas on one
// PostgreSQL database and one data_dir (the local deployer's hosts, the releases). The
// first holds the app's lease and is SIGKILLed in the middle of the production rollout,
// right after the first of three hosts is done; the promotion that started it went
// through another replica's API. One of the others takes the app over within two lease
// periods, asks the hosts first, and finishes the run: every host runs the release, each
// app was started once per host and the tests ran once per host. The heir adopts the
// app processes r1 left running (the same pids, never restarted) and starts the ones of
// the hosts left to do, once each. The replicas post to a fake Slack: the run got one
// root, each of its replies once and none lost across the SIGKILL, and the root's last
// edit says the run succeeded.
func TestReplicasTakeOverARolloutOfOneKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("builds papi and the immunity binary")
	}
	sl := slackfake.New(t)
	c := newReplicaCluster(t, nil, sl)
	a := c.commit("release A", "")
	first := c.start("r1", "done#2") // staging's host, then prod's host1
	c.waitLease("engine/papi", "r1")
	for _, name := range []string{"r2", "r3", "r4"} {
		c.start(name, "")
	}
	c.waitRun(c.replicas["r3"], a, store.RunWaiting, 3*time.Minute)
	c.command(c.replicas["r4"], "promote papi prod --release "+a)

	select {
	case <-first.done:
	case <-time.After(2 * time.Minute):
		t.Fatalf("r1 never reached prod host1's done; run %+v", c.run(c.replicas["r2"], a))
	}
	killed := first.logTime(t, "kill point reached")
	left := c.pids() // the apps r1 started, which outlive it
	if len(left) != 2 {
		t.Fatalf("apps running when r1 was killed: %v; want staging/host1's and prod/host1's", left)
	}
	c.waitRun(c.replicas["r2"], a, store.RunSucceeded, 2*time.Minute)

	heir, taken := c.takenBy(t, "engine/papi")
	took := taken.Sub(killed)
	t.Logf("r1 killed after prod host1; %s took papi over %s later (lease %s)", heir.name, took.Round(10*time.Millisecond), replicaLease)
	if took > 2*replicaLease {
		t.Errorf("%s took papi over %s after r1 was killed; want within 2 lease periods (%s)", heir.name, took, 2*replicaLease)
	}
	heir.checkReconciledBeforeWork(t, "papi")
	c.checkAdopted(t, heir, left, a)
	c.checkAppsTouchedUnderLease(t, first)
	c.checkSlackOnce(t, sl, c.run(heir, a))
	for _, h := range c.hosts {
		if cur := c.current(h); cur != a {
			t.Errorf("%s runs %.7s, want A %.7s", h, cur, a)
		}
		if got := c.starts(h); !slices.Equal(got, []string{a}) {
			t.Errorf("%s started %v; want A once", h, shorts(got))
		}
	}
	wantTests := []string{}
	for _, h := range c.hosts {
		wantTests = append(wantTests, filepath.Base(filepath.Dir(h))+"/"+filepath.Base(h)+" "+a)
	}
	sort.Strings(wantTests)
	if got := c.testRuns(); !slices.Equal(got, wantTests) {
		t.Errorf("tests ran %q; want once per host: %q", got, wantTests)
	}
}

// TestReplicasFenceOffAPausedHolder runs three replicas of the real binary; r1 holds the
// app's lease and is paused (SIGSTOP, which it sends itself at IMMUNITY_TEST_STOP_AT)
// right after it recorded that it switches production's second host, before it does.
// Its lease expires, another replica takes the app over and finishes the run. Then r1 is
// resumed (SIGCONT): it logs that it lost the lease and writes nothing: no row of the
// store's runs, steps, events, outbox and the rest changes, no host's current link is
// replaced, no app is started or stopped and no test runs.
func TestReplicasFenceOffAPausedHolder(t *testing.T) {
	if testing.Short() {
		t.Skip("builds papi and the immunity binary")
	}
	c := newReplicaCluster(t, nil, nil)
	a := c.commit("release A", "")
	paused := c.startWith("r1", "", "switch#3") // staging's host, prod's host1, then host2
	c.waitLease("engine/papi", "r1")
	for _, name := range []string{"r2", "r3"} {
		c.start(name, "")
	}
	c.waitRun(c.replicas["r2"], a, store.RunWaiting, 3*time.Minute)
	c.command(c.replicas["r3"], "promote papi prod --release "+a)
	paused.waitStopped(t, 2*time.Minute)
	c.waitRun(c.replicas["r2"], a, store.RunSucceeded, 2*time.Minute)
	heir, _ := c.takenBy(t, "engine/papi")
	// The run's state is written before its event: the heir has written everything of the
	// run once it logged the event.
	heir.waitLog(t, fmt.Sprintf("papi %.7s is live in every region", a), time.Minute)
	if !paused.stopped() {
		t.Fatal("r1 went on before it was resumed")
	}
	// r1 is paused where its stop point says, not some work later: it has not touched
	// prod/host2 since it recorded the switch (a call in flight in a paused server is
	// the local deployer's fence tests' case).
	for _, e := range paused.afterLog("stop point reached") {
		if e.Region+"/"+e.Host == "prod/host2" {
			t.Fatalf("r1 went on with prod/host2 after its stop point, before it stopped: %q", e.Msg)
		}
	}

	rows, links, pids, tests := c.storeRows(t), c.links(), c.pids(), c.testRuns()
	starts := map[string][]string{}
	for _, h := range c.hosts {
		starts[h] = c.starts(h)
	}
	if err := paused.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	paused.waitLog(t, "lease lost: stopping this app's work here", time.Minute)
	time.Sleep(2 * replicaLease) // time to act on what it was doing, had it not lost the lease
	// r1 goes on with the transition it paused in, whose next write is refused (fenced by
	// its old token), before its stage would switch the host; had it reached the switch,
	// the fence refuses that: either way the host must be left alone.
	how := "its work cancelled before the switch"
	if slices.ContainsFunc(paused.logLines(), func(e logLine) bool {
		return e.Msg == "lease lost: leaving the host alone" && e.Region+"/"+e.Host == "prod/host2" && e.Step == "switch"
	}) {
		how = "the switch refused, the lease lost"
	}
	t.Logf("r1 paused after recording prod/host2's switch; %s took papi over and finished; r1 resumed: %s", heir.name, how)
	for table, was := range rows {
		if now := c.storeRows(t)[table]; !slices.Equal(now, was) {
			t.Errorf("%s changed after r1 resumed:\nbefore %q\nafter  %q", table, was, now)
		}
	}
	if now := c.links(); !maps.Equal(now, links) {
		t.Errorf("current links (target and inode) after r1 resumed %v; before %v", now, links)
	}
	if now := c.pids(); !maps.Equal(now, pids) {
		t.Errorf("apps running after r1 resumed %v; before %v", now, pids)
	}
	for _, h := range c.hosts {
		if got := c.starts(h); !slices.Equal(got, starts[h]) || !slices.Equal(got, []string{a}) {
			t.Errorf("%s started %v (before r1 resumed %v); want A once", hostKey(h), shorts(got), shorts(starts[h]))
		}
		if cur := c.current(h); cur != a {
			t.Errorf("%s runs %.7s, want A %.7s", hostKey(h), cur, a)
		}
	}
	if got := c.testRuns(); !slices.Equal(got, tests) || len(got) != len(c.hosts) {
		t.Errorf("tests ran %q (before r1 resumed %q); want once per host", got, tests)
	}
	c.checkAppsTouchedUnderLease(t, paused)
}

// webhookSecret is the GitHub App's webhook secret in the replica tests.
const webhookSecret = "replica-webhook-secret"

// TestReplicasReportOnceToGitHub runs four replicas of the real binary with the GitHub
// App configured (a fake GitHub that refuses what GitHub's OpenAPI description does not
// allow): release A's push is delivered to r2 and redelivered to r3, B's to r3; A is
// promoted through r4. r1, holding the app's and the GitHub outbox's leases, is
// SIGKILLed after production's first host; later, while B waits for promotion, the
// replica then holding the GitHub outbox is SIGKILLed too. Each delivery started one run,
// every run ends succeeded, each stage got one check run and each region one deployment
// per release, and no host was started or tested twice.
func TestReplicasReportOnceToGitHub(t *testing.T) {
	if testing.Short() {
		t.Skip("builds papi and the immunity binary")
	}
	gh := githubtest.New(t)
	contract := githubtest.LoadContract(t)
	gh.Enforce(contract)
	c := newReplicaCluster(t, gh, nil)
	a := c.commit("release A", "")
	first := c.start("r1", "done#2")
	c.waitLease("engine/papi", "r1")
	c.waitLease("outbox/github", "r1")
	for _, name := range []string{"r2", "r3", "r4"} {
		c.start(name, "")
	}
	c.push(c.replicas["r2"], "delivery-a", a)
	c.push(c.replicas["r3"], "delivery-a", a) // GitHub redelivers it, to another replica
	c.waitRun(c.replicas["r3"], a, store.RunWaiting, 3*time.Minute)
	c.command(c.replicas["r4"], "promote papi prod --release "+a)
	select {
	case <-first.done:
	case <-time.After(2 * time.Minute):
		t.Fatalf("r1 never reached prod host1's done; run %+v", c.run(c.replicas["r2"], a))
	}
	c.waitRun(c.replicas["r2"], a, store.RunSucceeded, 2*time.Minute)
	heir, _ := c.takenBy(t, "engine/papi")

	b := c.commit("release B", `"hello from B"`)
	c.push(c.replicas["r3"], "delivery-b", b)
	c.waitRun(c.replicas["r3"], b, store.RunWaiting, 3*time.Minute)
	outbox := c.holder("outbox/github")
	if outbox == nil || outbox.name == "r1" {
		t.Fatalf("the GitHub outbox is held by %v, not a live replica", outbox)
	}
	outbox.kill()
	t.Logf("r1 killed after prod host1 (%s took papi over); %s killed holding the GitHub outbox while B waited", heir.name, outbox.name)
	api := c.alive()[0]
	c.command(api, "promote papi prod --release "+b)
	c.waitRun(api, b, store.RunSucceeded, 2*time.Minute)

	runA, runB := c.run(api, a), c.run(api, b)
	var runs []store.Run
	if err := api.api("GET", "/api/runs?app=papi", nil, &runs); err != nil || len(runs) != 2 {
		t.Fatalf("runs %+v (%v); want one per delivered release", runs, err)
	}
	wantChecks := []string{}
	for _, r := range []*store.Run{runA, runB} {
		for _, region := range []string{"staging", "prod"} {
			wantChecks = append(wantChecks, fmt.Sprintf("run/%d/%s completed success", r.ID, region))
		}
	}
	sort.Strings(wantChecks)
	var got []string
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if got = checkRunsOf(gh); slices.Equal(got, wantChecks) {
			break
		}
	}
	if !slices.Equal(got, wantChecks) {
		t.Errorf("check runs (external id, last status and conclusion) %q; want every stage's, completed: %q", got, wantChecks)
	}
	if twice := createdTwice(gh); len(twice) > 0 {
		t.Errorf("check runs created twice alike: %q", twice)
	}
	deps := map[string]int{}
	for _, d := range gh.Deployments() {
		deps[fmt.Sprintf("%.7s %s", d.Ref, d.Environment)]++
	}
	wantDeps := map[string]int{}
	for _, sha := range []string{a, b} {
		for _, region := range []string{"staging", "prod"} {
			wantDeps[fmt.Sprintf("%.7s %s", sha, region)] = 1
		}
	}
	if !maps.Equal(deps, wantDeps) {
		t.Errorf("deployments created %v; want one per region and release: %v", deps, wantDeps)
	}
	for _, h := range c.hosts {
		if cur := c.current(h); cur != b {
			t.Errorf("%s runs %.7s, want B %.7s", h, cur, b)
		}
		if got := c.starts(h); !slices.Equal(got, []string{a, b}) {
			t.Errorf("%s started %v; want A and B once each", h, shorts(got))
		}
	}
	var wantTests []string
	for _, h := range c.hosts {
		for _, sha := range []string{a, b} {
			wantTests = append(wantTests, filepath.Base(filepath.Dir(h))+"/"+filepath.Base(h)+" "+sha)
		}
	}
	sort.Strings(wantTests)
	if got := c.testRuns(); !slices.Equal(got, wantTests) {
		t.Errorf("tests ran %q; want once per host and release: %q", got, wantTests)
	}
	c.checkAppsTouchedUnderLease(t, first)
	contract.ValidateAll(t, gh)
}

// checkRunsOf lists the stages the fake GitHub was sent check runs of, each as its
// external id with the last status and conclusion sent, sorted.
func checkRunsOf(gh *githubtest.Server) []string {
	last := map[string]map[string]any{} // external id -> the last body sent
	for _, r := range gh.Requests() {
		if strings.Contains(r.Path, "/check-runs") && (r.Method == "POST" || r.Method == "PATCH") {
			body := r.JSON()
			id, _ := body["external_id"].(string)
			if parts := strings.Split(id, "/"); len(parts) > 3 { // run/ID/REGION/ATTEMPT: the stage's later check run
				id = strings.Join(parts[:3], "/")
			}
			last[id] = body
		}
	}
	var out []string
	for id, body := range last {
		out = append(out, fmt.Sprintf("%s %v %v", id, body["status"], body["conclusion"]))
	}
	sort.Strings(out)
	return out
}

// createdTwice lists the check runs created twice: a stage gets a new check run (its
// external id names the attempt) when it starts again after one completed (waiting for
// promotion, then deploying), never the same one twice.
func createdTwice(gh *githubtest.Server) []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range gh.Find("POST /repos/Codertocat/Hello-World/check-runs") {
		body := r.JSON()
		key := fmt.Sprint(body["external_id"])
		if seen[key] {
			out = append(out, key)
		}
		seen[key] = true
	}
	return out
}

// push delivers a push of sha to the app's branch to a replica, as GitHub does (retrying
// while the replica is not up yet); the answer must be 2xx.
func (c *replicaCluster) push(r *replica, delivery, sha string) {
	c.t.Helper()
	raw, err := os.ReadFile(filepath.Join("fixtures", "github", "push.json"))
	if err != nil {
		c.t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		c.t.Fatal(err)
	}
	m["ref"], m["after"] = "refs/heads/main", sha
	m["head_commit"].(map[string]any)["id"] = sha
	body, _ := json.Marshal(m)
	mac := hmac.New(sha256.New, []byte(webhookSecret))
	mac.Write(body)
	addr := r.address(c.t)
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		req, _ := http.NewRequest("POST", "http://"+addr+"/webhooks/github", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-GitHub-Event", "push")
		req.Header.Set("X-GitHub-Delivery", delivery)
		req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode/100 != 2 {
				c.t.Fatalf("push %s to %s: %s", delivery, r.name, resp.Status)
			}
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("push %s to %s: %v", delivery, r.name, err)
		}
	}
}

// holder is the live replica holding the lease name (nil when none).
func (c *replicaCluster) holder(name string) *replica {
	c.t.Helper()
	st, err := store.Open(context.Background(), c.db)
	if err != nil {
		c.t.Fatal(err)
	}
	defer st.Close()
	l, err := st.ReadLease(context.Background(), name)
	if err != nil {
		c.t.Fatal(err)
	}
	if r := c.replicas[l.Holder]; r != nil && l.Expires.After(time.Now()) {
		select {
		case <-r.done:
		default:
			return r
		}
	}
	return nil
}

// alive lists the replicas still running, by name.
func (c *replicaCluster) alive() []*replica {
	var out []*replica
	for _, name := range slices.Sorted(maps.Keys(c.replicas)) {
		select {
		case <-c.replicas[name].done:
		default:
			out = append(out, c.replicas[name])
		}
	}
	return out
}

// replicaCluster is a PostgreSQL database, a repository of papi, one shared data_dir and
// the replicas serving them.
type replicaCluster struct {
	t        *testing.T
	dir      string
	bin      string
	db       string
	commits  func(msg, greeting string) string
	hosts    []string       // host folders: staging/host1, prod/host1..3
	ports    map[string]int // each host folder's app port
	counts   string         // where the test command records its runs
	replicas map[string]*replica
}

// replica is one immunity serve process of the cluster.
type replica struct {
	name   string
	sock   string
	cmd    *exec.Cmd
	logs   *syncBuffer
	done   chan struct{}
	killAt string
}

// newReplicaCluster makes the cluster's folder and config: an app whose runs start from
// polling its repository, or, with a fake GitHub, from push webhooks of
// Codertocat/Hello-World; with a fake Slack, the Slack bot posts runs to #deploys.
func newReplicaCluster(t *testing.T, gh *githubtest.Server, sl *slackfake.Server) *replicaCluster {
	t.Helper()
	db := pgtest.Database(t)
	dir, err := os.MkdirTemp("", "imr") // short: socket paths have at most 100 bytes
	if err != nil {
		t.Fatal(err)
	}
	c := &replicaCluster{t: t, dir: dir, bin: immunityBinary(t), db: db, counts: filepath.Join(dir, "test-runs"), replicas: map[string]*replica{}, ports: map[string]int{}}
	t.Cleanup(func() {
		for _, r := range c.replicas {
			r.kill()
		}
		stopApps(dir)
		if !t.Failed() {
			os.RemoveAll(dir)
		}
	})
	repo := papiRepo(t, filepath.Join(dir, "papi.git"))
	c.commits = func(msg, greeting string) string { return commit(t, repo, msg, greeting) }
	hosts := ""
	stagingPort := freePort(t)
	c.hosts = []string{filepath.Join(dir, "data", "hosts", "papi", "staging", "host1")}
	c.ports[c.hosts[0]] = stagingPort
	for i := 1; i <= 3; i++ {
		port := freePort(t)
		hosts += fmt.Sprintf("{name: host%d, port: %d}, ", i, port)
		h := filepath.Join(dir, "data", "hosts", "papi", "prod", fmt.Sprintf("host%d", i))
		c.hosts = append(c.hosts, h)
		c.ports[h] = port
	}
	server, repoLine := "", "{path: papi.git, branch: main, poll: 200ms}"
	if gh != nil {
		server = fmt.Sprintf("github: {app_id: 1, private_key_file: %s, webhook_secret: %q, api_url: %q}\n", githubtest.KeyFile(t), webhookSecret, gh.APIURL())
		repoLine = "{github: Codertocat/Hello-World, path: papi.git, branch: main}"
	}
	if sl != nil {
		server += fmt.Sprintf("slack: {bot_token: xoxb-replicas, signing_secret: replica-signing-secret, api_url: %q, channel: \"#deploys\"}\n", sl.GetAPIURL())
	}
	cfg := fmt.Sprintf(`%sserver:
  data_dir: data
  lease: %s
apps:
  - name: papi
    repo: %s
    build: {command: [go, build, -o, bin/, ., ./itest], artifacts: [bin]}
    run: {command: [bin/papi], health: /healthz}
    tests:
      command: [sh, -c, 'echo "$IMMUNITY_REGION/$IMMUNITY_HOST $IMMUNITY_RELEASE" >> "$REPLICA_TEST_RUNS" && exec bin/itest']
      env: {REPLICA_TEST_RUNS: %s}
    regions:
      - name: staging
        hosts: [{name: host1, port: %d}]
      - name: prod
        production: true
        manual_approval: true
        hosts_at_a_time: 1
        hosts: [%s]
`, server, replicaLease, repoLine, c.counts, stagingPort, strings.TrimSuffix(hosts, ", "))
	if err := os.WriteFile(filepath.Join(dir, "immunity.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return c
}

// commit commits papi, with a new greeting when given (a Go string literal).
func (c *replicaCluster) commit(msg, greeting string) string { return c.commits(msg, greeting) }

// start starts a replica; killAt arms a kill point (IMMUNITY_TEST_KILL_AT).
func (c *replicaCluster) start(name, killAt string) *replica { return c.startWith(name, killAt, "") }

// startWith starts a replica with a kill point and a stop point (IMMUNITY_TEST_STOP_AT),
// either "" for none. It listens on a port the OS picks (its log says which), so no
// port another test took in between is ever in its way.
func (c *replicaCluster) startWith(name, killAt, stopAt string) *replica {
	c.t.Helper()
	r := &replica{name: name, sock: filepath.Join(c.dir, name+".sock"), logs: &syncBuffer{}, done: make(chan struct{}), killAt: killAt + stopAt}
	r.cmd = exec.Command(c.bin, "serve", "--config", "immunity.yml")
	r.cmd.Dir = c.dir
	r.cmd.Env = append(os.Environ(), "IMMUNITY_LISTEN=127.0.0.1:0", "IMMUNITY_LOG_FORMAT=json", "IMMUNITY_LOG_LEVEL=",
		"IMMUNITY_DATABASE_URL="+c.db, "IMMUNITY_REPLICA="+name, "IMMUNITY_SOCKET="+r.sock, "IMMUNITY_TEST_KILL_AT="+killAt, "IMMUNITY_TEST_STOP_AT="+stopAt)
	r.cmd.Stdout, r.cmd.Stderr = r.logs, r.logs
	if err := r.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	go func() { r.cmd.Wait(); close(r.done) }()
	c.replicas[name] = r
	c.t.Cleanup(func() {
		if c.t.Failed() {
			c.t.Logf("replica %s's log (kill at %q):\n%s", name, killAt, r.logs.String())
		}
	})
	return r
}

func (r *replica) kill() {
	r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.done
}

// address is the replica's TCP listen address, once it serves (its log says it).
func (r *replica) address(t *testing.T) string {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		for _, e := range r.logLines() {
			if e.Msg == "immunity serving" {
				return strings.TrimPrefix(e.URL, "http://")
			}
		}
		select {
		case <-r.done:
			t.Fatalf("%s exited before it served:\n%s", r.name, r.logs.String())
		default:
		}
	}
	t.Fatalf("%s never said where it serves:\n%s", r.name, r.logs.String())
	return ""
}

// api calls a replica over its local socket (as the OS user, an admin).
func (r *replica) api(method, path string, body, out any) error {
	cl := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", r.sock)
	}}}
	b, _ := json.Marshal(body)
	if body == nil {
		b = nil
	}
	req, _ := http.NewRequest(method, "http://immunity"+path, strings.NewReader(string(b)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := cl.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	if out != nil {
		return json.NewDecoder(resp.Body).Decode(out)
	}
	return nil
}

func (c *replicaCluster) run(r *replica, sha string) *store.Run {
	var runs []store.Run
	if err := r.api("GET", "/api/runs?app=papi", nil, &runs); err != nil {
		return nil
	}
	for i := range runs {
		if runs[i].SHA == sha {
			return &runs[i]
		}
	}
	return nil
}

func (c *replicaCluster) waitRun(r *replica, sha string, state store.RunState, timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		run := c.run(r, sha)
		switch {
		case run != nil && run.State == state:
			return
		case run != nil && run.State.Terminal():
			c.t.Fatalf("run of %.7s ended %s: %s", sha, run.State, run.Message)
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.t.Fatalf("run of %.7s did not reach %s in %s (asked of %s): %+v", sha, state, timeout, r.name, c.run(r, sha))
}

func (c *replicaCluster) command(r *replica, text string) {
	c.t.Helper()
	var reply struct {
		OK   bool   `json:"ok"`
		Text string `json:"text"`
	}
	if err := r.api("POST", "/api/commands", map[string]string{"text": text}, &reply); err != nil || !reply.OK {
		c.t.Fatalf("%s through %s: %v %s", text, r.name, err, reply.Text)
	}
}

// waitLease waits until holder holds the lease name.
func (c *replicaCluster) waitLease(name, holder string) {
	c.t.Helper()
	st, err := store.Open(context.Background(), c.db)
	if err != nil {
		c.t.Fatal(err)
	}
	defer st.Close()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if l, err := st.ReadLease(context.Background(), name); err == nil && l.Holder == holder && l.Expires.After(time.Now()) {
			return
		}
	}
	c.t.Fatalf("%s never held %s", holder, name)
}

// takenBy is the replica that took the lease name over (it says so in its log), and when:
// the last to take it. Two replicas still alive that both took it over are an error. A
// replica killed since may have taken it too: on a starved machine a holder can miss its
// renewals, lose the lease and take it again before the kill, and that is the lease
// working, not two holders (the store's tokens fence them).
func (c *replicaCluster) takenBy(t *testing.T, name string) (*replica, time.Time) {
	t.Helper()
	app := strings.TrimPrefix(name, "engine/")
	var heir, live *replica
	var at time.Time
	alive := c.alive()
	for _, r := range c.replicas {
		for _, e := range r.logLines() {
			if e.Msg != "lease taken: working this app here" || e.App != app {
				continue
			}
			if slices.Contains(alive, r) {
				if live != nil && live != r {
					t.Errorf("both %s and %s took %s over", live.name, r.name, name)
				}
				live = r
			}
			if heir == nil || e.Time.After(at) {
				heir, at = r, e.Time
			}
		}
	}
	if heir == nil {
		t.Fatalf("no replica says it took %s over", name)
	}
	return heir, at
}

// logLine is what the tests read of a JSON log line.
type logLine struct {
	Time            time.Time
	Msg, App, Host  string
	Event, Point    string
	Found, Store    string
	Region, Replica string
	SHA, URL, Step  string
	Pid             int
}

func (r *replica) logLines() []logLine {
	var out []logLine
	for _, l := range strings.Split(r.logs.String(), "\n") {
		var e logLine
		if json.Unmarshal([]byte(l), &e) == nil {
			out = append(out, e)
		}
	}
	return out
}

// afterLog is what the replica logged after it first logged msg (nothing when it never did).
func (r *replica) afterLog(msg string) []logLine {
	lines := r.logLines()
	for i, e := range lines {
		if e.Msg == msg {
			return lines[i+1:]
		}
	}
	return nil
}

// logTime is when the replica first logged msg.
func (r *replica) logTime(t *testing.T, msg string) time.Time {
	t.Helper()
	for _, e := range r.logLines() {
		if e.Msg == msg {
			return e.Time
		}
	}
	t.Fatalf("%s never logged %q:\n%s", r.name, msg, r.logs.String())
	return time.Time{}
}

// checkReconciledBeforeWork: the replica that took app over did no host step of it before
// it took the app over (and so before it asked the hosts, which a takeover does first).
func (r *replica) checkReconciledBeforeWork(t *testing.T, app string) {
	t.Helper()
	taken := false
	for _, e := range r.logLines() {
		switch {
		case e.Msg == "lease taken: working this app here" && e.App == app:
			taken = true
		case e.App == app && e.Host != "" && e.Event != "" && !taken:
			t.Errorf("%s worked host %s of %s (%s) before it took the app over", r.name, e.Host, app, e.Msg)
		}
	}
}

// current is the release a host's current link points at ("" when none).
func (c *replicaCluster) current(host string) string {
	target, err := os.Readlink(filepath.Join(host, "current"))
	if err != nil {
		return ""
	}
	return filepath.Base(target)
}

// starts lists the releases a host's app was started with, in order.
func (c *replicaCluster) starts(host string) []string {
	var out []string
	b, _ := os.ReadFile(filepath.Join(host, "app.log"))
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "--- immunity: starting "); ok {
			sha, _, _ := strings.Cut(rest, " ")
			out = append(out, sha)
		}
	}
	return out
}

// testRuns lists "REGION/HOST SHA" per run of the integration tests, sorted.
func (c *replicaCluster) testRuns() []string {
	b, _ := os.ReadFile(c.counts)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	sort.Strings(lines)
	return lines
}

// hostKey names a host folder as the logs do: "region/host".
func hostKey(host string) string {
	return filepath.Base(filepath.Dir(host)) + "/" + filepath.Base(host)
}

// pids lists the app process each host's app.pid names while it is alive, by host folder.
func (c *replicaCluster) pids() map[string]int {
	out := map[string]int{}
	for _, h := range c.hosts {
		b, err := os.ReadFile(filepath.Join(h, "app.pid"))
		if err != nil {
			continue
		}
		var pid int
		if _, err := fmt.Sscan(string(b), &pid); err == nil && pid > 0 && syscall.Kill(pid, 0) == nil {
			out[h] = pid
		}
	}
	return out
}

// answers is the release the app on a host says it runs (GET /), or the error.
func (c *replicaCluster) answers(host string) (string, error) {
	cl := &http.Client{Timeout: 10 * time.Second}
	resp, err := cl.Get(fmt.Sprintf("http://127.0.0.1:%d/", c.ports[host]))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var v struct{ Release string }
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return "", err
	}
	return v.Release, nil
}

// processMsgs are what the local deployer logs when it starts, stops or adopts an app.
var processMsgs = []string{"app started", "app stopped", "app adopted", "stray app stopped"}

// checkAdopted: after heir took the app over, every host's app is either the process
// that ran there when the holder before it died (the same pid, adopted by heir, never
// restarted) or one heir started there exactly once; and each answers with sha.
func (c *replicaCluster) checkAdopted(t *testing.T, heir *replica, left map[string]int, sha string) {
	t.Helper()
	now := c.pids()
	for _, h := range c.hosts {
		key := hostKey(h)
		var adopted, started []int
		for _, e := range heir.logLines() {
			if e.App == "papi" && e.Region+"/"+e.Host == key {
				switch e.Msg {
				case "app adopted":
					adopted = append(adopted, e.Pid)
				case "app started":
					started = append(started, e.Pid)
				}
			}
		}
		if pid, ok := left[h]; ok {
			if now[h] != pid || !slices.Equal(adopted, []int{pid}) || len(started) != 0 {
				t.Errorf("%s: app %d ran when the holder died; now %d, %s adopted %v and started %v; want it adopted once, still running", key, pid, now[h], heir.name, adopted, started)
			}
		} else if now[h] == 0 || !slices.Equal(started, []int{now[h]}) || len(adopted) != 0 {
			t.Errorf("%s: app %d runs; %s started %v and adopted %v; want it started there once by %s", key, now[h], heir.name, started, adopted, heir.name)
		}
		if got, err := c.answers(h); err != nil || got != sha {
			t.Errorf("%s answers release %.7s (%v); want %.7s", key, got, err, sha)
		}
	}
}

// checkAppsTouchedUnderLease: a replica starts, stops or adopts the app's processes only
// while it holds the app's lease: from its start for first (it held it from the start),
// else from "lease taken" on, until "lease lost".
func (c *replicaCluster) checkAppsTouchedUnderLease(t *testing.T, first *replica) {
	t.Helper()
	for _, r := range c.replicas {
		holding := r == first
		for _, e := range r.logLines() {
			switch {
			case e.App != "papi":
			case e.Msg == "lease taken: working this app here":
				holding = true
			case e.Msg == "lease lost: stopping this app's work here":
				holding = false
			case slices.Contains(processMsgs, e.Msg) && !holding:
				t.Errorf("%s, not holding papi's lease, logged %q on %s/%s (pid %d)", r.name, e.Msg, e.Region, e.Host, e.Pid)
			}
		}
	}
}

// stopped reports whether the replica's process is stopped (SIGSTOP).
func (r *replica) stopped() bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", r.cmd.Process.Pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i >= 0 && i+2 < len(b) && b[i+2] == 'T'
}

// waitStopped waits until the replica reached its stop point and is stopped.
func (r *replica) waitStopped(t *testing.T, timeout time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if r.stopped() {
			r.logTime(t, "stop point reached")
			return
		}
		select {
		case <-r.done:
			t.Fatalf("%s exited before its stop point:\n%s", r.name, r.logs.String())
		default:
		}
	}
	t.Fatalf("%s never stopped at %s", r.name, r.killAt)
}

// waitLog waits until the replica logs msg.
func (r *replica) waitLog(t *testing.T, msg string, timeout time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		for _, e := range r.logLines() {
			if e.Msg == msg {
				return
			}
		}
	}
	t.Fatalf("%s never logged %q in %s:\n%s", r.name, msg, timeout, r.logs.String())
}

// fencedTables are the store's tables of an app's work (every write to them under the
// app's lease is fenced), as the fencing test compares them.
var fencedTables = []string{"releases", "runs", "stages", "host_steps", "live", "region_history", "events", "outbox",
	"rollbacks", "rollback_hosts", "stage_verdicts", "slack_threads", "github_check_runs", "github_deployments"}

// storeRows reads every row of fencedTables, each as text, sorted, by table.
func (c *replicaCluster) storeRows(t *testing.T) map[string][]string {
	t.Helper()
	db, err := sql.Open("pgx", c.db)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	out := map[string][]string{}
	for _, table := range fencedTables {
		rows, err := db.Query("SELECT * FROM " + table)
		if err != nil {
			t.Fatalf("read %s: %v", table, err)
		}
		cols, _ := rows.Columns()
		var got []string
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatalf("read %s: %v", table, err)
			}
			got = append(got, fmt.Sprintf("%v", vals))
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("read %s: %v", table, err)
		}
		rows.Close()
		sort.Strings(got)
		out[table] = got
	}
	return out
}

// links is each host's current link as its target and inode: a link replaced, even by
// one to the same release, has a new inode.
func (c *replicaCluster) links() map[string]string {
	out := map[string]string{}
	for _, h := range c.hosts {
		path := filepath.Join(h, "current")
		target, err := os.Readlink(path)
		fi, err2 := os.Lstat(path)
		if err != nil || err2 != nil {
			continue
		}
		out[hostKey(h)] = fmt.Sprintf("%s inode %d", filepath.Base(target), fi.Sys().(*syscall.Stat_t).Ino)
	}
	return out
}

// checkSlackOnce waits until the Slack outbox is delivered, then checks what the fake
// Slack got of the run: one root; in its thread each post of the run's outbox exactly
// once (none lost, none twice, whoever delivered it); chat.update only of the root,
// the last one saying how the run ended; as many uploads as charts recorded.
func (c *replicaCluster) checkSlackOnce(t *testing.T, sl *slackfake.Server, run *store.Run) {
	t.Helper()
	if run == nil {
		t.Fatal("no run to check Slack of")
	}
	db, err := sql.Open("pgx", c.db)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	stream := fmt.Sprintf("slack/run/%d", run.ID)
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		var pending int
		if err := db.QueryRow(`SELECT count(*) FROM outbox WHERE stream LIKE 'slack/%' AND state = 'pending'`).Scan(&pending); err != nil {
			t.Fatal(err)
		}
		if pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d Slack outbox rows still pending", pending)
		}
	}
	want := map[string]int{} // reply text -> times
	charts := 0
	rows, err := db.Query(`SELECT kind, state, payload FROM outbox WHERE stream = $1`, stream)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var kind, state, payload string
		if err := rows.Scan(&kind, &state, &payload); err != nil {
			t.Fatal(err)
		}
		if state != store.OutboxSent {
			t.Errorf("Slack row %s of run %d is %s, not sent: %s", kind, run.ID, state, payload)
		}
		var it struct{ Post struct{ Text string } }
		json.Unmarshal([]byte(payload), &it)
		switch kind {
		case "slack.post":
			want[it.Post.Text]++
		case "slack.chart":
			charts++
		}
	}
	rows.Close()
	if len(want) == 0 {
		t.Fatalf("no Slack post of run %d recorded", run.ID)
	}

	calls := sl.Calls()
	var roots []slackfake.Call
	prefix := fmt.Sprintf("papi %.7s ", run.SHA)
	for _, call := range calls {
		if call.Method == "chat.postMessage" && call.ThreadTS == "" && strings.HasPrefix(call.Text, prefix) {
			roots = append(roots, call)
		}
	}
	if len(roots) != 1 {
		t.Fatalf("run %d got %d roots in Slack; want one: %+v", run.ID, len(roots), roots)
	}
	root := roots[0]
	got := map[string]int{}
	last, uploads, updates := root.Text, 0, 0
	for _, call := range calls {
		switch {
		case call.Method == "chat.postMessage" && call.ThreadTS == root.TS:
			got[call.Text]++
		case call.Method == "chat.update" && call.TS == root.TS:
			last = call.Text
			updates++
		case call.Method == "chat.update":
			t.Errorf("chat.update of %s, not the root %s: %q", call.TS, root.TS, call.Text)
		case call.Method == "files.completeUploadExternal" && call.ThreadTS == root.TS:
			uploads++
		}
	}
	if !maps.Equal(got, want) {
		t.Errorf("replies in run %d's thread (text: times) %v; want each post once: %v", run.ID, got, want)
	}
	if !strings.HasSuffix(last, ": "+store.RunSucceeded.Words()) {
		t.Errorf("the root's last content %q; want it to say the run %s", last, store.RunSucceeded.Words())
	}
	if uploads != charts {
		t.Errorf("%d uploads in the thread; want one per chart recorded (%d)", uploads, charts)
	}
	t.Logf("Slack: one root, %d distinct replies, %d updates of it, %d uploads", len(got), updates, uploads)
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
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
// app was started once per host and the tests ran once per host.
func TestReplicasTakeOverARolloutOfOneKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("builds papi and the immunity binary")
	}
	c := newReplicaCluster(t)
	a := c.commit("release A")
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
	c.waitRun(c.replicas["r2"], a, store.RunSucceeded, 2*time.Minute)

	heir, taken := c.takenBy(t, "engine/papi")
	took := taken.Sub(killed)
	t.Logf("r1 killed after prod host1; %s took papi over %s later (lease %s)", heir.name, took.Round(10*time.Millisecond), replicaLease)
	if took > 2*replicaLease {
		t.Errorf("%s took papi over %s after r1 was killed; want within 2 lease periods (%s)", heir.name, took, 2*replicaLease)
	}
	heir.checkReconciledBeforeWork(t, "papi")
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

// replicaCluster is a PostgreSQL database, a repository of papi, one shared data_dir and
// the replicas serving them.
type replicaCluster struct {
	t        *testing.T
	dir      string
	bin      string
	db       string
	commits  func(msg string) string
	hosts    []string // host folders: staging/host1, prod/host1..3
	counts   string   // where the test command records its runs
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

func newReplicaCluster(t *testing.T) *replicaCluster {
	t.Helper()
	db := pgtest.Database(t)
	dir, err := os.MkdirTemp("", "imr") // short: socket paths have at most 100 bytes
	if err != nil {
		t.Fatal(err)
	}
	c := &replicaCluster{t: t, dir: dir, bin: immunityBinary(t), db: db, counts: filepath.Join(dir, "test-runs"), replicas: map[string]*replica{}}
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
	c.commits = func(msg string) string { return commit(t, repo, msg, "") }
	hosts := ""
	for i := 1; i <= 3; i++ {
		hosts += fmt.Sprintf("{name: host%d, port: %d}, ", i, freePort(t))
		c.hosts = append(c.hosts, filepath.Join(dir, "data", "hosts", "papi", "prod", fmt.Sprintf("host%d", i)))
	}
	c.hosts = append([]string{filepath.Join(dir, "data", "hosts", "papi", "staging", "host1")}, c.hosts...)
	cfg := fmt.Sprintf(`server:
  data_dir: data
  lease: %s
apps:
  - name: papi
    repo: {path: papi.git, branch: main, poll: 200ms}
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
`, replicaLease, c.counts, freePort(t), strings.TrimSuffix(hosts, ", "))
	if err := os.WriteFile(filepath.Join(dir, "immunity.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *replicaCluster) commit(msg string) string { return c.commits(msg) }

// start starts a replica; killAt arms a kill point (IMMUNITY_TEST_KILL_AT).
func (c *replicaCluster) start(name, killAt string) *replica {
	c.t.Helper()
	r := &replica{name: name, sock: filepath.Join(c.dir, name+".sock"), logs: &syncBuffer{}, done: make(chan struct{}), killAt: killAt}
	r.cmd = exec.Command(c.bin, "serve", "--config", "immunity.yml")
	r.cmd.Dir = c.dir
	r.cmd.Env = append(os.Environ(), "IMMUNITY_LISTEN="+freeAddr(c.t), "IMMUNITY_LOG_FORMAT=json", "IMMUNITY_LOG_LEVEL=",
		"IMMUNITY_DATABASE_URL="+c.db, "IMMUNITY_REPLICA="+name, "IMMUNITY_SOCKET="+r.sock, "IMMUNITY_TEST_KILL_AT="+killAt)
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

// takenBy is the replica that took the lease name over (it says so in its log), and when.
func (c *replicaCluster) takenBy(t *testing.T, name string) (*replica, time.Time) {
	t.Helper()
	app := strings.TrimPrefix(name, "engine/")
	var heir *replica
	var at time.Time
	for _, r := range c.replicas {
		for _, e := range r.logLines() {
			if e.Msg == "lease taken: working this app here" && e.App == app {
				if heir != nil && heir != r {
					t.Errorf("both %s and %s took %s over", heir.name, r.name, name)
				}
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

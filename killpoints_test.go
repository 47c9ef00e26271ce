package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"

	"github.com/immunity-app/immunity/deployers/ssh/sshtest"
	"github.com/immunity-app/immunity/store"
)

// The kill-point tests run the real binary through one production story, on the local
// deployer and on the ssh one (a real sshd): release A is promoted to a region of three
// hosts, then B, then C, whose integration tests fail on the first host (an automatic
// rollback), then a person rolls the region back to A. The server is SIGKILLed right
// after each kind of transition is written (IMMUNITY_TEST_KILL_AT), once each, in the
// order the story reaches them, and started again; at every kill the store must agree
// with every host, and at the end every run is final, every host runs a complete
// release, C is live nowhere, and no step that was recorded as done ran twice (app starts
// and test runs are counted on the hosts).

// killPoints are the transitions the engine names for Options.Persisted, in the order
// the story reaches them.
var killPoints = []string{
	"build", "promote", "upload", "switch", "restart", "health", "test", "monitor", "done",
	"rollback-plan", "rollback-switch", "rollback-restart", "rollback-health", "rollback-host", "rollback-done",
	"manual-rollback-plan", "manual-rollback-switch", "manual-rollback-restart", "manual-rollback-health", "manual-rollback-host", "manual-rollback-done",
}

func TestKillAtEveryTransitionLocal(t *testing.T) {
	t.Parallel()
	k := newKillStory(t, false)
	k.killAtEveryPoint()
}

func TestKillAtEveryTransitionSSH(t *testing.T) {
	t.Parallel()
	k := newKillStory(t, true)
	k.killAtEveryPoint()
}

// randomKills is how many times TestRandomKills kills the server (CI relies on it).
const randomKills = 20

// TestRandomKills kills the server at random moments of the same story, randomKills times
// in all, most of them in the middle of an effect whose outcome the store cannot know.
// When the story ends before the kills are all done, it is checked and played again from
// the start in a new folder.
func TestRandomKills(t *testing.T) {
	t.Parallel()
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewPCG(uint64(seed), 10))
	t.Logf("random kill seed %d", seed)
	kills, stories := 0, 0
	for kills < randomKills {
		k := newKillStory(t, false)
		stories++
		for kills < randomKills && !k.finished() {
			srv := k.start("")
			delay := time.Duration(300+rng.IntN(2500)) * time.Millisecond
			k.driveFor(srv, delay)
			srv.kill()
			kills++
			k.kills = append(k.kills, fmt.Sprintf("random@%s", delay.Round(10*time.Millisecond)))
			k.checkStoreAgreesWithHosts(false)
		}
		k.finish()
	}
	t.Logf("%d random kills in %d plays of the story", kills, stories)
}

// TestKillMidBuild kills the server while the build command of each release (A, B, C)
// runs (seen as a process working in its checkout): the next server builds the release
// again from a clean checkout, and the story ends as it must, no recorded step repeated.
// That the build command dies with the server is TestBuildCommandDiesWithTheServer's
// (pipeline/release).
func TestKillMidBuild(t *testing.T) {
	t.Parallel()
	k := newKillStory(t, false)
	checkouts := filepath.Join(k.dir, "data", "checkouts", "papi")
	for i := range 3 {
		srv := k.start("")
		deadline := time.Now().Add(3 * time.Minute)
		for len(k.commits) <= i || !buildingIn(checkouts) {
			if srv.exited() || time.Now().After(deadline) {
				k.t.Fatalf("release %c was never seen building; story at %s", 'A'+i, k.where())
			}
			k.step()
			time.Sleep(20 * time.Millisecond)
		}
		srv.kill()
		k.kills = append(k.kills, fmt.Sprintf("mid-build of %c", 'A'+i))
		k.checkStoreAgreesWithHosts(true)
	}
	k.finish()
}

// buildingIn: a process (of this user) works in a folder under dir.
func buildingIn(dir string) bool {
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		if cwd, err := os.Readlink(filepath.Join("/proc", p.Name(), "cwd")); err == nil && strings.HasPrefix(cwd, dir+string(filepath.Separator)) {
			return true
		}
	}
	return false
}

type killStory struct {
	t       *testing.T
	dir     string
	bin     string
	repo    *git.Repository
	ssh     bool
	hosts   []string // host base folders, host1..host3
	ports   []int
	commits []string // A, B, C as made
	kills   []string
	servers []*server // every life of the server, for what reconciliation found
	counts  string    // where the test command records its runs
}

func newKillStory(t *testing.T, ssh bool) *killStory {
	if testing.Short() {
		t.Skip("builds papi and the immunity binary")
	}
	dir, err := os.MkdirTemp("", "imk") // short: the socket path has at most 100 bytes
	if err != nil {
		t.Fatal(err)
	}
	k := &killStory{t: t, dir: dir, bin: immunityBinary(t), ssh: ssh, counts: filepath.Join(dir, "test-runs")}
	t.Cleanup(func() {
		k.stopApps()
		if !t.Failed() {
			os.RemoveAll(dir)
		}
	})
	k.repo = papiRepo(t, filepath.Join(dir, "papi.git"))
	os.WriteFile(filepath.Join(dir, "papi.git", "restart.sh"), []byte(restartScript), 0o755)
	k.commit("release A", "")
	for i := 0; i < 3; i++ {
		k.ports = append(k.ports, freePort(t))
	}
	listen := freeAddr(t)
	hosts := ""
	region := "production: true\n        manual_approval: true"
	if ssh {
		env := sshtest.New(t)
		srv, err := env.Start()
		if err != nil {
			t.Fatal(err)
		}
		region += fmt.Sprintf("\n        deployer: ssh\n        ssh: {key_file: %s, known_hosts: %s, restart: [sh, restart.sh], health: /healthz, timeout: 30s}", env.KeyFile, env.KnownHosts)
		for i := 0; i < 3; i++ {
			base := filepath.Join(dir, "sshhosts", fmt.Sprintf("host%d", i+1))
			os.MkdirAll(base, 0o755)
			os.WriteFile(filepath.Join(base, "port"), []byte(fmt.Sprint(k.ports[i])), 0o644)
			k.hosts = append(k.hosts, base)
			hosts += fmt.Sprintf("{name: host%d, address: %q, path: %s, url: \"http://127.0.0.1:%d\"}, ", i+1, env.Address(srv), base, k.ports[i])
		}
	} else {
		for i := 0; i < 3; i++ {
			k.hosts = append(k.hosts, filepath.Join(dir, "data", "hosts", "papi", "prod", fmt.Sprintf("host%d", i+1)))
			hosts += fmt.Sprintf("{name: host%d, port: %d}, ", i+1, k.ports[i])
		}
	}
	cfg := fmt.Sprintf(`server:
  listen: %s
  data_dir: data
apps:
  - name: papi
    repo: {path: papi.git, branch: main, poll: 200ms}
    build: {command: [go, build, -o, bin/, ., ./itest], artifacts: [bin, restart.sh]}
    run: {command: [bin/papi], health: /healthz}
    tests:
      command: [sh, -c, 'echo "$IMMUNITY_HOST $IMMUNITY_RELEASE" >> "$KILL_TEST_RUNS" && exec bin/itest']
      env: {KILL_TEST_RUNS: %s}
    regions:
      - name: prod
        %s
        monitor: {period: 600ms, interval: 200ms}
        hosts: [%s]
`, listen, k.counts, region, strings.TrimSuffix(hosts, ", "))
	os.WriteFile(filepath.Join(dir, "immunity.yml"), []byte(cfg), 0o644)
	return k
}

// restartScript is the ssh hosts' restart command, shipped in the release: it stops the
// host's papi and starts this release's, counting starts in $IMMUNITY_BASE/starts.log.
const restartScript = `#!/bin/sh
set -u
base=$IMMUNITY_BASE
alive() { s=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1); [ -n "$s" ] && [ "$s" != Z ]; }
echo "starting $IMMUNITY_RELEASE" >>"$base/starts.log"
if [ -s "$base/app.pid" ]; then
	old=$(cat "$base/app.pid")
	kill "$old" 2>/dev/null
	i=0
	while alive "$old" && [ "$i" -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
	kill -9 "$old" 2>/dev/null
fi
PORT=$(cat "$base/port") setsid bin/papi >>"$base/app.log" 2>&1 </dev/null &
echo $! >"$base/app.pid"
`

func (k *killStory) commit(msg, knob string) {
	k.t.Helper()
	wt, _ := k.repo.Worktree()
	if knob != "" {
		path := filepath.Join(wt.Filesystem.Root(), "knobs.go")
		b, _ := os.ReadFile(path)
		name, _, _ := strings.Cut(knob, " = ")
		lines := strings.Split(string(b), "\n")
		for i, l := range lines {
			if strings.HasPrefix(l, name+" = ") {
				lines[i] = knob
			}
		}
		os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o644)
	}
	k.commits = append(k.commits, commit(k.t, k.repo, msg, ""))
}

// server is one life of the immunity server.
type server struct {
	cmd  *exec.Cmd
	logs *syncBuffer
	done chan struct{}
}

func (s *server) exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

func (s *server) kill() {
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
}

func (k *killStory) start(killAt string) *server {
	k.t.Helper()
	cmd := exec.Command(k.bin, "serve", "--config", "immunity.yml")
	cmd.Dir = k.dir
	cmd.Env = append(os.Environ(), "IMMUNITY_LISTEN=", "IMMUNITY_LOG_FORMAT=json", "IMMUNITY_LOG_LEVEL=", "IMMUNITY_TEST_KILL_AT="+killAt)
	s := &server{cmd: cmd, logs: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = s.logs, s.logs
	if err := cmd.Start(); err != nil {
		k.t.Fatal(err)
	}
	go func() { cmd.Wait(); close(s.done) }()
	k.servers = append(k.servers, s)
	k.t.Cleanup(func() {
		if !s.exited() {
			s.kill()
		}
		if k.t.Failed() {
			k.t.Logf("server log (kill at %q):\n%s", killAt, s.logs.String())
		}
	})
	return s
}

// killAtEveryPoint arms each kill point in turn, drives the story until the server kills
// itself there, checks the store against the hosts, and at the end lets the story finish.
func (k *killStory) killAtEveryPoint() {
	k.t.Helper()
	for _, p := range killPoints {
		srv := k.start(p)
		deadline := time.Now().Add(3 * time.Minute)
		for !srv.exited() {
			if time.Now().After(deadline) {
				k.t.Fatalf("the server never reached kill point %q; story at %s", p, k.where())
			}
			k.step()
			time.Sleep(50 * time.Millisecond)
		}
		if !strings.Contains(srv.logs.String(), `"point":"`+p+`"`) {
			k.t.Fatalf("the server exited, but not at kill point %q:\n%s", p, srv.logs.String())
		}
		k.kills = append(k.kills, p)
		// A manual rollback switches every host at once: the kill after one host's
		// transition may catch another in the middle of its switch (recorded as under way).
		k.checkStoreAgreesWithHosts(!strings.HasPrefix(p, "manual-"))
	}
	k.finish()
}

// driveFor drives the story for d, or until the server exits.
func (k *killStory) driveFor(srv *server, d time.Duration) {
	for end := time.Now().Add(d); time.Now().Before(end) && !srv.exited(); time.Sleep(50 * time.Millisecond) {
		k.step()
	}
}

// finish starts the server without a kill point, drives the story to its end and checks
// the invariants.
func (k *killStory) finish() {
	k.t.Helper()
	srv := k.start("")
	deadline := time.Now().Add(4 * time.Minute)
	for !k.finished() {
		if srv.exited() {
			k.t.Fatalf("the server exited: %s", srv.logs.String())
		}
		if time.Now().After(deadline) {
			k.t.Fatalf("the story did not finish; at %s", k.where())
		}
		k.step()
		time.Sleep(50 * time.Millisecond)
	}
	srv.kill()
	k.t.Logf("%d kills: %s", len(k.kills), strings.Join(k.kills, ", "))
	if found := k.reconciled(); len(found) > 0 {
		k.t.Logf("reconciliation corrected the store %d times over %d starts:\n%s", len(found), len(k.servers), strings.Join(found, "\n"))
	} else {
		k.t.Logf("reconciliation found nothing to correct over %d starts", len(k.servers))
	}
	k.checkFinal()
}

// reconciled lists what reconciliation corrected in every life of the server: "host
// found F, store said S".
func (k *killStory) reconciled() []string {
	var out []string
	for _, s := range k.servers {
		for _, l := range strings.Split(s.logs.String(), "\n") {
			var e struct{ Msg, Host, Found, Store string }
			if json.Unmarshal([]byte(l), &e) == nil && e.Msg == "reconciled" {
				out = append(out, fmt.Sprintf("%s found %.7s, store said %.7s", e.Host, e.Found, e.Store))
			}
		}
	}
	return out
}

// api calls the server over its local socket (as the OS user).
func (k *killStory) api(method, path string, body any, out any) error {
	sock := filepath.Join(k.dir, "data", "immunity.sock")
	c := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	var rd *strings.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = strings.NewReader(string(b))
	} else {
		rd = strings.NewReader("")
	}
	req, _ := http.NewRequest(method, "http://immunity"+path, rd)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out != nil {
		return json.NewDecoder(resp.Body).Decode(out)
	}
	return nil
}

func (k *killStory) runs() map[string]store.Run {
	var runs []store.Run
	if err := k.api("GET", "/api/runs?app=papi", nil, &runs); err != nil {
		return nil
	}
	out := map[string]store.Run{}
	for _, r := range runs {
		if _, seen := out[r.SHA]; !seen {
			out[r.SHA] = r
		}
	}
	return out
}

func (k *killStory) command(text string) {
	var reply struct {
		OK   bool   `json:"ok"`
		Text string `json:"text"`
	}
	if err := k.api("POST", "/api/commands", map[string]string{"text": text}, &reply); err == nil && !reply.OK && !strings.Contains(reply.Text, "is under way") {
		k.t.Logf("%s: %s", text, reply.Text)
	}
}

// want is how each release's run must end.
var want = []store.RunState{store.RunSucceeded, store.RunSucceeded, store.RunFailed}

// step moves the story on by one action when the server is where the story expects.
func (k *killStory) step() {
	runs := k.runs()
	if runs == nil {
		return // not up (yet)
	}
	for i, sha := range k.commits {
		r, ok := runs[sha]
		switch {
		case !ok:
			return // the poll has not seen it yet
		case r.State == store.RunWaiting:
			k.command("promote papi prod --release " + sha)
			return
		case !r.State.Terminal():
			return
		case r.State != want[i]:
			k.t.Fatalf("run of release %c ended %s (%s); want %s", 'A'+i, r.State, r.Message, want[i])
		}
	}
	switch len(k.commits) {
	case 1:
		k.commit("release B", `var Greeting = "hello from B"`)
		return
	case 2:
		k.commit("release C: breaks sorting", "var ItemsSorted = false")
		return
	}
	if !k.rolledBack() {
		k.command("rollback papi prod --to " + k.commits[0])
	}
}

// rolledBack reports whether the region's history shows the manual rollback to A.
func (k *killStory) rolledBack() bool {
	var hist []store.HistoryEntry
	if err := k.api("GET", "/api/history?app=papi&region=prod", nil, &hist); err != nil {
		return false
	}
	return len(hist) > 0 && hist[0].Action == "rollback" && hist[0].RunID == 0 && len(k.commits) == 3 && hist[0].SHA == k.commits[0]
}

func (k *killStory) finished() bool {
	runs := k.runs()
	if runs == nil || len(k.commits) < 3 {
		return false
	}
	for i, sha := range k.commits {
		if r, ok := runs[sha]; !ok || r.State != want[i] {
			return false
		}
	}
	return k.rolledBack()
}

func (k *killStory) where() string {
	var parts []string
	for i, sha := range k.commits {
		r := k.runs()[sha]
		part := fmt.Sprintf("%c:%s", 'A'+i, r.State)
		for _, s := range r.Stages {
			part += fmt.Sprintf(" %s=%s(%s)", s.Region, s.State, s.Message)
			for _, h := range s.Hosts {
				part += fmt.Sprintf(" %s:%s", h.Host, h.Step)
			}
		}
		parts = append(parts, part)
	}
	return strings.Join(parts, "; ")
}

// current reads a host's current link and checks it points at a complete release.
func (k *killStory) current(i int) string {
	k.t.Helper()
	target, err := os.Readlink(filepath.Join(k.hosts[i], "current"))
	if os.IsNotExist(err) {
		return ""
	}
	if err != nil {
		k.t.Fatal(err)
	}
	sha := filepath.Base(target)
	if _, err := os.Stat(filepath.Join(k.hosts[i], "releases", sha, ".immunity-release")); err != nil {
		k.t.Fatalf("host%d: current points at %s, not a complete release: %v", i+1, sha, err)
	}
	return sha
}

// checkStoreAgreesWithHosts reads the store of the dead server: at a kill right after a
// transition is written (exact), what it says is live is what every host's current link
// says; after a random kill a host may be ahead of its record (a switch under way), and
// then the store must record that switch as under way.
func (k *killStory) checkStoreAgreesWithHosts(exact bool) {
	k.t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(k.dir, "data", "immunity.db"))
	if err != nil {
		k.t.Fatal(err)
	}
	defer st.Close()
	live, err := st.Live(ctx, "papi", "prod")
	if err != nil {
		k.t.Fatal(err)
	}
	runs, _ := st.Runs(ctx, "papi", true, 0)
	open, _ := st.OpenRollbacks(ctx)
	for i := range k.hosts {
		name := fmt.Sprintf("host%d", i+1)
		cur := k.current(i)
		if cur == live[name] {
			continue
		}
		if exact {
			k.t.Fatalf("after kill at %q: the store says %s runs %.7s, its current link says %.7s", k.kills[len(k.kills)-1], name, live[name], cur)
		}
		if !switchUnderWay(runs, open, name, cur) {
			k.t.Fatalf("after %s: the store says %s runs %.7s, its current link says %.7s, and no switch to it is recorded", k.kills[len(k.kills)-1], name, live[name], cur)
		}
	}
}

// switchUnderWay: a host step or rollback step of host records a switch to sha.
func switchUnderWay(runs []store.Run, open []store.Rollback, host, sha string) bool {
	for _, r := range runs {
		for _, s := range r.Stages {
			for _, h := range s.Hosts {
				if h.Host == host && r.SHA == sha && h.Step == store.HostSwitching {
					return true
				}
			}
		}
	}
	for _, rb := range open {
		for _, h := range rb.Hosts {
			if h.Host == host && h.To == sha && h.Step == store.HostSwitching {
				return true
			}
		}
	}
	return false
}

// checkFinal checks the end of the story: runs final, hosts on complete releases the
// store agrees with, A live everywhere and C nowhere, and no recorded step repeated.
func (k *killStory) checkFinal() {
	k.t.Helper()
	k.checkStoreAgreesWithHosts(true)
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(k.dir, "data", "immunity.db"))
	if err != nil {
		k.t.Fatal(err)
	}
	defer st.Close()
	if active, _ := st.Runs(ctx, "", true, 0); len(active) > 0 {
		k.t.Errorf("%d runs are not final: %+v", len(active), active)
	}
	if open, _ := st.OpenRollbacks(ctx); len(open) > 0 {
		k.t.Errorf("%d rollbacks are still open", len(open))
	}
	a, b, c := k.commits[0], k.commits[1], k.commits[2]
	for i := range k.hosts {
		if cur := k.current(i); cur != a {
			k.t.Errorf("host%d runs %.7s, want A %.7s", i+1, cur, a)
		}
	}
	// No completed step ran twice: the app was started once per switch (host1: A, B, C,
	// B again by the automatic rollback, A by the manual one; the others A, B, A) and the
	// tests ran once per host and release. The manual rollback switches the three hosts
	// at once, so a kill recorded on one host may cut another's restart short (its
	// completion not recorded): that restart is done again, once per such kill at most.
	if k.exact() {
		manualKills := 0
		for _, p := range k.kills {
			if strings.HasPrefix(p, "manual-") {
				manualKills++
			}
		}
		wantStarts := [][]string{{a, b, c, b, a}, {a, b, a}, {a, b, a}}
		for i := range k.hosts {
			got := k.starts(i)
			head := len(wantStarts[i]) - 1
			extra := len(got) - len(wantStarts[i])
			if len(got) < len(wantStarts[i]) || !slices.Equal(got[:head], wantStarts[i][:head]) || extra > manualKills ||
				slices.ContainsFunc(got[head:], func(s string) bool { return s != a }) {
				k.t.Errorf("host%d started %v; want %v (the last, the manual rollback's, at most %d more times)", i+1, shorts(got), shorts(wantStarts[i]), manualKills)
			}
		}
		runs, _ := os.ReadFile(k.counts)
		lines := strings.Split(strings.TrimSpace(string(runs)), "\n")
		sort.Strings(lines)
		wantRuns := []string{"host1 " + a, "host1 " + b, "host1 " + c, "host2 " + a, "host2 " + b, "host3 " + a, "host3 " + b}
		sort.Strings(wantRuns)
		if !slices.Equal(lines, wantRuns) {
			k.t.Errorf("tests ran %q; want each once: %q", lines, wantRuns)
		}
	}
	// C, whose tests failed in production, runs nowhere; the app on every host answers A.
	for i, p := range k.ports {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", p))
		if err != nil {
			k.t.Errorf("host%d does not answer: %v", i+1, err)
			continue
		}
		var body struct{ Release string }
		json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if body.Release != a {
			k.t.Errorf("host%d serves %.7s, want A %.7s (C is %.7s)", i+1, body.Release, a, c)
		}
	}
}

// exact: every kill was at a kill point (not a random moment).
func (k *killStory) exact() bool {
	for _, p := range k.kills {
		if strings.HasPrefix(p, "random") {
			return false
		}
	}
	return true
}

// starts lists the releases a host's app was started with, in order.
func (k *killStory) starts(i int) []string {
	var out []string
	if k.ssh {
		b, _ := os.ReadFile(filepath.Join(k.hosts[i], "starts.log"))
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if sha, ok := strings.CutPrefix(l, "starting "); ok {
				out = append(out, sha)
			}
		}
		return out
	}
	b, _ := os.ReadFile(filepath.Join(k.hosts[i], "app.log"))
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "--- immunity: starting "); ok {
			sha, _, _ := strings.Cut(rest, " ")
			out = append(out, sha)
		}
	}
	return out
}

func shorts(shas []string) []string {
	out := make([]string, len(shas))
	for i, s := range shas {
		out[i] = s[:min(7, len(s))]
	}
	return out
}

func (k *killStory) stopApps() {
	stopApps(k.dir)
	for _, base := range k.hosts {
		b, _ := os.ReadFile(filepath.Join(base, "app.pid"))
		var pid int
		fmt.Sscan(string(b), &pid)
		if pid > 0 {
			syscall.Kill(-pid, syscall.SIGKILL)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

var binary struct {
	once sync.Once
	path string
	err  error
}

// immunityBinary builds the immunity binary once for the tests of this package.
func immunityBinary(t *testing.T) string {
	t.Helper()
	binary.once.Do(func() {
		dir, err := os.MkdirTemp("", "immunity-bin")
		if err != nil {
			binary.err = err
			return
		}
		binary.path = filepath.Join(dir, "immunity")
		if out, err := exec.Command("go", "build", "-o", binary.path, ".").CombinedOutput(); err != nil {
			binary.err = fmt.Errorf("build immunity: %v\n%s", err, out)
		}
	})
	if binary.err != nil {
		t.Fatal(binary.err)
	}
	return binary.path
}

package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
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

	"github.com/immunity-app/immunity/bot/slackbot/slackfake"
	"github.com/immunity-app/immunity/deployers/ssh/sshtest"
	"github.com/immunity-app/immunity/store"
)

// The kill-point tests run the real binary through one production story, on the local
// deployer and on the ssh one (a real sshd), reported to a fake Slack: release A is
// promoted to a region of three hosts; B0 waits for promotion until B, pushed after it,
// supersedes it; B is promoted, then C, whose integration tests fail on the first host
// (an automatic rollback); a person rolls the region back to A (while an operator switched
// host2 to A by hand: the start finds it, and the rollback finds the host on another
// release than its plan said), locks and unlocks the region, freezes and unfreezes it,
// deploys B (its stage done, B0's release is pruned) and re-runs that deploy. The server
// is SIGKILLed right after each kind of transition is written (IMMUNITY_TEST_KILL_AT),
// once each, in the order the story reaches them, and started again; at every kill the
// store must agree with every host, and at the end every run is final, every host runs a
// complete release, C is live nowhere, no step that was recorded as done ran twice (app
// starts and test runs are counted on the hosts), and Slack got each run's root once,
// each of its posts once, with the root's last content saying how the run ended.

// killPoints are the transitions the engine names for Options.Persisted, in the order
// the story reaches them. Not reached by the story: "hold" (a stage held by a lock, a
// freeze or a window), "stage-failed" (a stage that fails outside production), "cancel"
// (a stage cancelled by a rollback asked for while it runs), "run-end" (a run whose stage
// ended it without moving it: its stage's end moves the run in the same write, so only a
// run an older binary left so gets there).
var killPoints = []string{
	"run", "build", "built", "waiting", "promote", "deploying", "stage-deploying", "upload", "switch", "restart", "health",
	"stage-testing", "test", "done", "passed", "succeed", // A, the first release, is not monitored: no baseline
	"supersede", "stage-monitoring", "monitor",
	"rollback-plan", "rollback-switch", "rollback-restart", "rollback-health", "rollback-host", "rollback-done",
	"manual-rollback-plan", "reconcile", "rollback-found", "manual-rollback-switch", "manual-rollback-restart", "manual-rollback-health", "manual-rollback-host", "manual-rollback-done",
	"lock", "unlock", "freeze", "unfreeze", "deploy", "prune", "rerun",
}

// manualRollbackPoints are the kill points of the manual rollback, which switches every
// host at once: a kill after one host's transition may catch another in the middle of its
// switch (recorded as under way) or cut its restart short (done again).
var manualRollbackPoints = []string{"manual-rollback-switch", "manual-rollback-restart", "manual-rollback-health",
	"manual-rollback-host", "manual-rollback-done", "rollback-found"}

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

// TestKillMidBuild kills the server while the build command of each release (A, B0, B, C)
// runs (seen as a process working in its checkout): the next server builds the release
// again from a clean checkout, and the story ends as it must, no recorded step repeated.
// That the build command dies with the server is TestBuildCommandDiesWithTheServer's
// (pipeline/release).
func TestKillMidBuild(t *testing.T) {
	t.Parallel()
	k := newKillStory(t, false)
	checkouts := filepath.Join(k.dir, "data", "checkouts", "papi")
	for i := range releases {
		srv := k.start("")
		deadline := time.Now().Add(3 * time.Minute)
		for len(k.commits) <= i || !buildingIn(checkouts) {
			if srv.exited() || time.Now().After(deadline) {
				k.t.Fatalf("release %s was never seen building; story at %s", releases[i], k.where())
			}
			k.step()
			time.Sleep(20 * time.Millisecond)
		}
		srv.kill()
		k.kills = append(k.kills, "mid-build of "+releases[i])
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
	commits []string // A, B0, B, C as made
	kills   []string
	servers []*server // every life of the server, for what reconciliation found
	counts  string    // where the test command records its runs
	slack   *slackfake.Server
	phase   int // how far the story is after the manual rollback (phaseLock...)
}

// releases names the story's commits, in order.
var releases = []string{"A", "B0", "B", "C"}

// want is how each commit's run must end.
var want = []store.RunState{store.RunSucceeded, store.RunSuperseded, store.RunSucceeded, store.RunFailed}

// The story's phases once the region is rolled back to A.
const (
	phaseLock      = iota // lock the region
	phaseUnlock           // then unlock it
	phaseFreeze           // freeze it
	phaseUnfreeze         // unfreeze it
	phaseDeploy           // deploy B
	phaseRerun            // re-run that deploy once it succeeded
	phaseRerunning        // the re-run asked for, until it succeeds
)

func newKillStory(t *testing.T, ssh bool) *killStory {
	if testing.Short() {
		t.Skip("builds papi and the immunity binary")
	}
	dir, err := os.MkdirTemp("", "imk") // short: the socket path has at most 100 bytes
	if err != nil {
		t.Fatal(err)
	}
	k := &killStory{t: t, dir: dir, bin: immunityBinary(t), ssh: ssh, counts: filepath.Join(dir, "test-runs"), slack: slackfake.New(t)}
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
slack: {bot_token: xoxb-kill, signing_secret: kill-signing-secret, api_url: %q, channel: "#deploys"}
apps:
  - name: papi
    repo: {path: papi.git, branch: main, poll: 200ms}
    keep_releases: 2
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
`, listen, k.slack.GetAPIURL(), k.counts, region, strings.TrimSuffix(hosts, ", "))
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
		if p == "reconcile" {
			k.switchByHand(1, k.commits[0])
		}
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
		k.checkStoreAgreesWithHosts(!slices.Contains(manualRollbackPoints, p))
		k.checkStates()
	}
	k.finish()
}

// switchByHand points host i's current link at release sha, as an operator would on the
// host, behind the server's back (the app it runs is left as it is).
func (k *killStory) switchByHand(i int, sha string) {
	k.t.Helper()
	link := filepath.Join(k.hosts[i], "current")
	target, err := os.Readlink(link)
	if err != nil {
		k.t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(k.hosts[i], "releases", sha, ".immunity-release")); err != nil {
		k.t.Fatalf("host%d does not keep %.7s to be switched to by hand: %v", i+1, sha, err)
	}
	tmp := link + ".by-hand"
	if err := os.Symlink(filepath.Join(filepath.Dir(target), sha), tmp); err != nil {
		k.t.Fatal(err)
	}
	if err := os.Rename(tmp, link); err != nil {
		k.t.Fatal(err)
	}
	k.t.Logf("host%d switched by hand from %.7s to %.7s", i+1, filepath.Base(target), sha)
}

// checkStates reads the store of the dead server and checks that its runs, stages and
// host steps are consistent with one another: a finished run has no stage waiting or at
// work, a run waiting for promotion has a stage awaiting it, a stage awaiting promotion
// or pending has no host done, and a succeeded stage has every host done.
func (k *killStory) checkStates() {
	k.t.Helper()
	ctx := context.Background()
	st, err := store.OpenReadOnly(ctx, filepath.Join(k.dir, "data", "immunity.db"))
	if err != nil {
		k.t.Fatal(err)
	}
	defer st.Close()
	runs, err := st.Runs(ctx, "papi", false, 100)
	if err != nil {
		k.t.Fatal(err)
	}
	after := k.kills[len(k.kills)-1]
	for _, r := range runs {
		awaiting := false
		for _, s := range r.Stages {
			if r.State.Terminal() && (s.State.Active() || s.State.Waiting()) {
				k.t.Errorf("after kill at %q: run %d is %s with its stage %s %s", after, r.ID, r.State, s.Region, s.State)
			}
			awaiting = awaiting || s.State == store.StageAwaitingApproval
			for _, h := range s.Hosts {
				if s.State.Waiting() && h.Step == store.HostDone {
					k.t.Errorf("after kill at %q: run %d's stage %s is %s with %s done", after, r.ID, s.Region, s.State, h.Host)
				}
				if s.State == store.StageSucceeded && h.Step != store.HostDone {
					k.t.Errorf("after kill at %q: run %d's stage %s succeeded with %s %s", after, r.ID, s.Region, h.Host, h.Step)
				}
			}
		}
		if r.State == store.RunWaiting && !awaiting {
			k.t.Errorf("after kill at %q: run %d waits for promotion with no stage awaiting it: %+v", after, r.ID, r.Stages)
		}
	}
}

// driveFor drives the story for d, or until the server exits.
func (k *killStory) driveFor(srv *server, d time.Duration) {
	for end := time.Now().Add(d); time.Now().Before(end) && !srv.exited(); time.Sleep(50 * time.Millisecond) {
		k.step()
	}
}

// finish starts the server without a kill point, drives the story to its end, waits for
// Slack to be told everything, and checks the invariants.
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
	k.waitSlackSent(srv)
	srv.kill()
	k.t.Logf("%d kills: %s", len(k.kills), strings.Join(k.kills, ", "))
	if found := k.reconciled(); len(found) > 0 {
		k.t.Logf("reconciliation corrected the store %d times over %d starts:\n%s", len(found), len(k.servers), strings.Join(found, "\n"))
	} else {
		k.t.Logf("reconciliation found nothing to correct over %d starts", len(k.servers))
	}
	k.checkFinal()
	k.checkSlack()
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

// allRuns lists the app's runs, newest first (nil: the server is not up).
func (k *killStory) allRuns() []store.Run {
	var runs []store.Run
	if err := k.api("GET", "/api/runs?app=papi", nil, &runs); err != nil {
		return nil
	}
	return runs
}

// runs maps each commit to its run (not the deploy's).
func (k *killStory) runs() map[string]store.Run {
	all := k.allRuns()
	if all == nil {
		return nil
	}
	out := map[string]store.Run{}
	for _, r := range all {
		if _, seen := out[r.SHA]; !seen && r.Trigger != "deploy" {
			out[r.SHA] = r
		}
	}
	return out
}

// deployRun is the run of the story's deploy of B (ok false: none yet).
func (k *killStory) deployRun() (store.Run, bool) {
	for _, r := range k.allRuns() {
		if r.Trigger == "deploy" {
			return r, true
		}
	}
	return store.Run{}, false
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
		case i == 1 && r.State == store.RunWaiting:
			if len(k.commits) == 2 {
				k.commit("release B", `var Greeting = "hello from B"`) // B0 waits until B supersedes it
			}
			return
		case r.State == store.RunWaiting:
			k.command("promote papi prod --release " + sha)
			return
		case !r.State.Terminal():
			return
		case r.State != want[i]:
			k.t.Fatalf("run of release %s ended %s (%s); want %s", releases[i], r.State, r.Message, want[i])
		}
	}
	switch len(k.commits) {
	case 1:
		k.commit("release B0", `var Greeting = "hello from B0"`)
		return
	case 3:
		k.commit("release C: breaks sorting", "var ItemsSorted = false")
		return
	}
	if !k.rolledBack() {
		k.command("rollback papi prod --to " + k.commits[0])
		return
	}
	k.stepAfterRollback()
}

// stepAfterRollback moves the story's phases on: what the store holds says whether the
// last command was carried out (the server may have died right after it wrote it).
func (k *killStory) stepAfterRollback() {
	ctx := context.Background()
	st, err := store.OpenReadOnly(ctx, filepath.Join(k.dir, "data", "immunity.db"))
	if err != nil {
		return
	}
	defer st.Close()
	_, lockErr := st.Lock(ctx, "papi", "prod")
	locked := lockErr == nil
	freezes, err := st.Freezes(ctx, "papi", time.Now())
	if err != nil || (lockErr != nil && !errors.Is(lockErr, store.ErrNotFound)) {
		return
	}
	b := k.commits[2]
	switch k.phase {
	case phaseLock:
		if locked {
			k.phase++
			return
		}
		k.command("lock papi prod the kill test holds it")
	case phaseUnlock:
		if !locked {
			k.phase++
			return
		}
		k.command("unlock papi prod")
	case phaseFreeze:
		if len(freezes) > 0 {
			k.phase++
			return
		}
		k.command("freeze papi prod until 2h the kill test freezes it")
	case phaseUnfreeze:
		if len(freezes) == 0 {
			k.phase++
			return
		}
		k.command("unfreeze papi prod")
	case phaseDeploy:
		if _, ok := k.deployRun(); ok {
			k.phase++
			return
		}
		k.command("deploy papi " + b + " to prod")
	case phaseRerun:
		d, _ := k.deployRun()
		// Its stage passed once (n, in the same write as the stage's success: read first),
		// and is at work again only when re-run.
		n := k.deploysOf(d.ID)
		r, _ := k.deployRun()
		switch {
		case n > 1 || (n == 1 && len(r.Stages) == 1 && r.Stages[0].State != store.StageSucceeded):
			k.phase++
		case r.State == store.RunSucceeded && n == 1:
			k.command(fmt.Sprintf("rerun papi prod --run %d", r.ID))
		case r.State.Terminal():
			k.t.Fatalf("the deploy of B ended %s (%s); want succeeded", r.State, r.Message)
		}
	}
}

// deploysOf counts the region's history entries of a run (one per time it went live).
func (k *killStory) deploysOf(run int64) int {
	var hist []store.HistoryEntry
	if err := k.api("GET", "/api/history?app=papi&region=prod", nil, &hist); err != nil {
		return 0
	}
	n := 0
	for _, h := range hist {
		if h.RunID == run && run != 0 {
			n++
		}
	}
	return n
}

// rolledBack reports whether the region's history shows the manual rollback to A.
func (k *killStory) rolledBack() bool {
	var hist []store.HistoryEntry
	if err := k.api("GET", "/api/history?app=papi&region=prod", nil, &hist); err != nil {
		return false
	}
	if len(k.commits) < len(releases) {
		return false
	}
	for _, h := range hist {
		if h.Action == "rollback" && h.RunID == 0 && h.SHA == k.commits[0] {
			return true
		}
	}
	return false
}

func (k *killStory) finished() bool {
	runs := k.runs()
	if runs == nil || len(k.commits) < len(releases) {
		return false
	}
	for i, sha := range k.commits {
		if r, ok := runs[sha]; !ok || r.State != want[i] {
			return false
		}
	}
	if !k.rolledBack() || k.phase != phaseRerunning {
		return false
	}
	r, ok := k.deployRun()
	return ok && r.State == store.RunSucceeded && k.deploysOf(r.ID) == 2
}

func (k *killStory) where() string {
	var parts []string
	all := k.allRuns()
	for i := len(all) - 1; i >= 0; i-- {
		r := all[i]
		part := fmt.Sprintf("run %d %.7s %s:%s", r.ID, r.SHA, r.Trigger, r.State)
		for _, s := range r.Stages {
			part += fmt.Sprintf(" %s=%s(%s)", s.Region, s.State, s.Message)
			for _, h := range s.Hosts {
				part += fmt.Sprintf(" %s:%s", h.Host, h.Step)
			}
		}
		parts = append(parts, part)
	}
	return fmt.Sprintf("phase %d; %s", k.phase, strings.Join(parts, "; "))
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
	if _, err := st.Lock(ctx, "papi", "prod"); !errors.Is(err, store.ErrNotFound) {
		k.t.Errorf("prod is still locked (%v)", err)
	}
	if fs, _ := st.Freezes(ctx, "papi", time.Now()); len(fs) > 0 {
		k.t.Errorf("prod is still frozen: %+v", fs)
	}
	a, b0, b, c := k.commits[0], k.commits[1], k.commits[2], k.commits[3]
	if rel, err := st.Release(ctx, "papi", b0); err != nil || rel.State != store.ReleasePruned {
		k.t.Errorf("B0's release is %s (%v); want pruned (superseded, it was kept by no host)", rel.State, err)
	} else if _, err := os.Stat(rel.Artifact); !os.IsNotExist(err) {
		k.t.Errorf("B0's artifact %s is still there (%v)", rel.Artifact, err)
	}
	for i := range k.hosts {
		if cur := k.current(i); cur != b {
			k.t.Errorf("host%d runs %.7s, want B %.7s", i+1, cur, b)
		}
	}
	// No completed step ran twice: the app was started once per switch (host1: A, B, C,
	// B again by the automatic rollback, A by the manual one, B by the deploy and B by its
	// re-run; the others A, B, A, B, B) and the tests ran once per host and deploy. The
	// manual rollback switches the three hosts at once, so a kill recorded on one host may
	// cut another's restart short (its completion not recorded): that restart is done
	// again, once per such kill at most.
	if k.exact() {
		manualKills := 0
		for _, p := range k.kills {
			if slices.Contains(manualRollbackPoints, p) {
				manualKills++
			}
		}
		before := [][]string{{a, b, c, b}, {a, b}, {a, b}} // then A by the manual rollback, B and B
		for i := range k.hosts {
			got := k.starts(i)
			head := before[i]
			ok := len(got) >= len(head)+3 && slices.Equal(got[:len(head)], head) && slices.Equal(got[len(got)-2:], []string{b, b})
			if ok {
				manual := got[len(head) : len(got)-2]
				ok = len(manual) <= 1+manualKills && !slices.ContainsFunc(manual, func(s string) bool { return s != a })
			}
			if !ok {
				k.t.Errorf("host%d started %v; want %v, A (the manual rollback's, at most %d more times), B, B", i+1, shorts(got), shorts(head), manualKills)
			}
		}
		runs, _ := os.ReadFile(k.counts)
		lines := strings.Split(strings.TrimSpace(string(runs)), "\n")
		sort.Strings(lines)
		wantRuns := []string{"host1 " + a, "host1 " + b, "host1 " + c, "host2 " + a, "host2 " + b, "host3 " + a, "host3 " + b}
		for i := range k.hosts {
			wantRuns = append(wantRuns, fmt.Sprintf("host%d %s", i+1, b), fmt.Sprintf("host%d %s", i+1, b)) // the deploy, its re-run
		}
		sort.Strings(wantRuns)
		if !slices.Equal(lines, wantRuns) {
			k.t.Errorf("tests ran %q; want each once: %q", lines, wantRuns)
		}
	}
	// C, whose tests failed in production, runs nowhere; the app on every host answers B.
	for i, p := range k.ports {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", p))
		if err != nil {
			k.t.Errorf("host%d does not answer: %v", i+1, err)
			continue
		}
		var body struct{ Release string }
		json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if body.Release != b {
			k.t.Errorf("host%d serves %.7s, want B %.7s (C is %.7s)", i+1, body.Release, b, c)
		}
	}
}

// waitSlackSent waits, while the server runs, until no Slack outbox row is pending.
func (k *killStory) waitSlackSent(srv *server) {
	k.t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		var pending int
		k.db(func(db *sql.DB) error {
			return db.QueryRow(`SELECT count(*) FROM outbox WHERE stream LIKE 'slack/%' AND state = 'pending'`).Scan(&pending)
		})
		if pending == 0 {
			return
		}
		if srv.exited() {
			k.t.Fatalf("the server exited with %d Slack rows pending: %s", pending, srv.logs.String())
		}
		if time.Now().After(deadline) {
			k.t.Fatalf("%d Slack outbox rows still pending", pending)
		}
	}
}

// db reads the store's database file directly (read-only).
func (k *killStory) db(read func(db *sql.DB) error) {
	k.t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(k.dir, "data", "immunity.db")+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		k.t.Fatal(err)
	}
	defer db.Close()
	if err := read(db); err != nil {
		k.t.Fatal(err)
	}
}

// checkSlack checks what the fake Slack got across every kill: every row of the Slack
// outbox sent; each run one root, each post of its outbox once in its thread (none lost
// on the way, none twice), the root's last content saying how the run ended (a run ended
// by the write the server died after is told by the next start); each region post once.
func (k *killStory) checkSlack() {
	k.t.Helper()
	type row struct {
		stream, kind, state string
		it                  struct {
			RunID int64 `json:"run_id"`
			Post  struct{ Text string }
		}
	}
	var rows []row
	roots := map[int64]string{} // run -> its root's ts
	k.db(func(db *sql.DB) error {
		rs, err := db.Query(`SELECT stream, kind, state, payload FROM outbox WHERE stream LIKE 'slack/%' ORDER BY id`)
		if err != nil {
			return err
		}
		defer rs.Close()
		for rs.Next() {
			var r row
			var payload string
			if err := rs.Scan(&r.stream, &r.kind, &r.state, &payload); err != nil {
				return err
			}
			if err := json.Unmarshal([]byte(payload), &r.it); err != nil {
				return err
			}
			rows = append(rows, r)
		}
		if err := rs.Err(); err != nil {
			return err
		}
		ts, err := db.Query(`SELECT run_id, ts FROM slack_threads`)
		if err != nil {
			return err
		}
		defer ts.Close()
		for ts.Next() {
			var id int64
			var t string
			if err := ts.Scan(&id, &t); err != nil {
				return err
			}
			roots[id] = t
		}
		return ts.Err()
	})
	want := map[string]map[string]int{} // thread ("channel" or a run's id) -> post text -> times
	for _, r := range rows {
		if r.state != store.OutboxSent {
			k.t.Errorf("Slack row %s %s is %s, not sent", r.stream, r.kind, r.state)
		}
		if r.kind != "slack.post" {
			continue
		}
		thread := "channel"
		if strings.HasPrefix(r.stream, "slack/run/") {
			thread = fmt.Sprint(r.it.RunID)
		}
		if want[thread] == nil {
			want[thread] = map[string]int{}
		}
		want[thread][r.it.Post.Text]++
	}
	calls := k.slack.Calls()
	byTS := map[string]int64{}
	for id, ts := range roots {
		byTS[ts] = id
	}
	got := map[string]map[string]int{}
	rootPosts := map[int64]int{}
	last := map[int64]string{}
	for _, c := range calls {
		switch {
		case c.Method == "chat.postMessage" && c.ThreadTS == "" && byTS[c.TS] != 0:
			rootPosts[byTS[c.TS]]++
			last[byTS[c.TS]] = c.Text
		case c.Method == "chat.update":
			if byTS[c.TS] == 0 {
				k.t.Errorf("chat.update of %s, no run's root: %q", c.TS, c.Text)
			}
			last[byTS[c.TS]] = c.Text
		case c.Method == "chat.postMessage":
			thread := "channel"
			if c.ThreadTS != "" {
				thread = fmt.Sprint(byTS[c.ThreadTS])
			}
			if got[thread] == nil {
				got[thread] = map[string]int{}
			}
			got[thread][c.Text]++
		}
	}
	for thread, posts := range want {
		if !maps.Equal(got[thread], posts) {
			k.t.Errorf("Slack posts of %s (text: times) %v; want each of its outbox once: %v", thread, got[thread], posts)
		}
	}
	for thread, posts := range got {
		if want[thread] == nil {
			k.t.Errorf("Slack posts of %s not in the outbox: %v", thread, posts)
		}
	}
	for _, r := range k.allRunsOf() {
		// What each run's thread must have been told, whatever the kills cut short.
		wantSaid := []string{"is ready for prod: waiting for promotion"}
		switch {
		case r.Trigger == "deploy":
			wantSaid = []string{"passed prod", "is deployed to prod"}
		case r.State == store.RunSucceeded:
			wantSaid = append(wantSaid, "passed prod", "is live in every region")
		case r.State == store.RunFailed:
			wantSaid = append(wantSaid, "failed in prod")
		}
		for _, said := range wantSaid {
			if !slices.ContainsFunc(slices.Collect(maps.Keys(got[fmt.Sprint(r.ID)])), func(t string) bool { return strings.Contains(t, said) }) {
				k.t.Errorf("run %d (%.7s) %s: its thread was never told %q: %v", r.ID, r.SHA, r.State, said, got[fmt.Sprint(r.ID)])
			}
		}
		if rootPosts[r.ID] != 1 {
			k.t.Errorf("run %d (%.7s) got %d roots in Slack; want one", r.ID, r.SHA, rootPosts[r.ID])
		}
		if !strings.HasSuffix(last[r.ID], ": "+r.State.Words()) {
			k.t.Errorf("run %d (%.7s) %s: its root's last content %q does not say so", r.ID, r.SHA, r.State, last[r.ID])
		}
	}
	// Not checked: that the region's own announcements (locked, unlocked, frozen,
	// unfrozen, rolled back by a person) were posted. Told after their write, as a run's
	// transitions are, they are lost when the server dies between the two, and nothing
	// tells them again (a run's state is told again by the next start).
	k.t.Logf("Slack: %d calls, %d roots, region posts %v", len(calls), len(roots), got["channel"])
}

// allRunsOf reads every run of the app from the store of the dead server.
func (k *killStory) allRunsOf() []store.Run {
	k.t.Helper()
	ctx := context.Background()
	st, err := store.OpenReadOnly(ctx, filepath.Join(k.dir, "data", "immunity.db"))
	if err != nil {
		k.t.Fatal(err)
	}
	defer st.Close()
	runs, err := st.Runs(ctx, "papi", false, 100)
	if err != nil {
		k.t.Fatal(err)
	}
	return runs
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

package local_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/immunity-app/immunity/internal/freeport"

	"github.com/immunity-app/immunity/deployers"
	"github.com/immunity-app/immunity/deployers/deployertest"
	"github.com/immunity-app/immunity/deployers/local"
)

func TestMain(m *testing.M) { deployertest.Main(m) }

const keep = 3

func newDeployer(t *testing.T, opts local.Options) *local.Deployer {
	t.Helper()
	opts.Run = deployertest.Argv
	opts.Health = deployertest.Health
	if opts.Keep == 0 {
		opts.Keep = keep
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 10 * time.Second
	}
	if err := opts.Validate(); err != nil {
		t.Fatal(err)
	}
	d := local.New(opts)
	t.Cleanup(func() {
		if err := d.StopAll(context.Background()); err != nil {
			t.Errorf("stop all: %v", err)
		}
	})
	return d
}

var hostSeq atomic.Int64

// newHost makes a fresh host folder with a free port; its app is stopped at cleanup.
func newHost(t *testing.T, d *local.Deployer) deployers.Host {
	t.Helper()
	port, err := freeport.Get()
	if err != nil {
		t.Fatal(err)
	}
	n := hostSeq.Add(1)
	h := deployers.Host{
		App:    deployertest.AppName,
		Region: "sandbox1",
		Name:   fmt.Sprintf("host%d", n),
		Base:   filepath.Join(t.TempDir(), "hosts", deployertest.AppName, "sandbox1", fmt.Sprintf("host%d", n)),
		Port:   port,
		URL:    fmt.Sprintf("http://127.0.0.1:%d", port),
	}
	t.Cleanup(func() {
		if err := d.Stop(context.Background(), h); err != nil {
			t.Errorf("stop %s: %v", h, err)
		}
	})
	return h
}

func TestContract(t *testing.T) {
	d := newDeployer(t, local.Options{})
	deployertest.Run(t, deployertest.Harness{
		Deployer: d,
		Keep:     keep,
		NewHost:  func(t *testing.T) deployers.Host { return newHost(t, d) },
	})
}

func deploy(ctx context.Context, t *testing.T, d *local.Deployer, h deployers.Host, version string) deployertest.Answer {
	t.Helper()
	rel := deployertest.NewRelease(t, version)
	if err := d.Upload(ctx, h, rel); err != nil {
		t.Fatal(err)
	}
	if err := d.Activate(ctx, h, rel.SHA); err != nil {
		t.Fatal(err)
	}
	a, err := deployertest.Ask(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	if a.Release != rel.SHA {
		t.Fatalf("%s answers %s, want %s", h, a.Release, rel.SHA)
	}
	return a
}

func TestEnsureRunningAdoptsLiveAndRestartsDead(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	first := newDeployer(t, local.Options{})
	h := newHost(t, first)
	started := deploy(ctx, t, first, h, "v1")
	if pgid, err := syscall.Getpgid(started.PID); err != nil || pgid != started.PID {
		t.Fatalf("app pid %d is in process group %d (%v), want its own group", started.PID, pgid, err)
	}

	// A new deployer is what a restarted Immunity has: it must adopt the running app.
	second := newDeployer(t, local.Options{})
	if err := second.EnsureRunning(ctx, h); err != nil {
		t.Fatalf("ensure running (live app): %v", err)
	}
	if a, err := deployertest.Ask(ctx, h); err != nil || a.PID != started.PID {
		t.Fatalf("after adopting: answer %+v, %v; want the same pid %d", a, err, started.PID)
	}

	syscall.Kill(-started.PID, syscall.SIGKILL)
	waitGone(t, started.PID)
	if err := second.EnsureRunning(ctx, h); err != nil {
		t.Fatalf("ensure running (dead app): %v", err)
	}
	a, err := deployertest.Ask(ctx, h)
	if err != nil || a.PID == started.PID || a.Version != "v1" {
		t.Fatalf("after restart: answer %+v, %v; want v1 in a new process", a, err)
	}

	// The adopted-then-restarted app is stopped by the deployer that now owns it.
	if err := second.Stop(ctx, h); err != nil {
		t.Fatal(err)
	}
	waitGone(t, a.PID)
}

// Two servers sharing the host folders hand an app over: the one taking over adopts the
// running app; the one that lets it go (Forget) leaves it running, even through StopAll;
// one that still knew of a process another server has since replaced adopts the new one
// rather than restart it.
func TestAppHandedOverBetweenServers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := newDeployer(t, local.Options{})
	h := newHost(t, a)
	first := deploy(ctx, t, a, h, "v1")

	b := newDeployer(t, local.Options{})
	if err := b.EnsureRunning(ctx, h); err != nil {
		t.Fatalf("ensure running (taking over): %v", err)
	}
	if got, err := deployertest.Ask(ctx, h); err != nil || got.PID != first.PID {
		t.Fatalf("after the handover: answer %+v, %v; want the app a started (pid %d), still running", got, err, first.PID)
	}
	if err := b.Restart(ctx, h); err != nil {
		t.Fatal(err)
	}
	restarted, err := deployertest.Ask(ctx, h)
	if err != nil || restarted.PID == first.PID {
		t.Fatalf("after b's restart: answer %+v, %v; want a new process", restarted, err)
	}
	b.Forget(h)
	if err := b.StopAll(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := deployertest.Ask(ctx, h); err != nil || got.PID != restarted.PID {
		t.Fatalf("after b let go and stopped all: answer %+v, %v; want its app %d still running", got, err, restarted.PID)
	}

	// a still knows of the process it started, long gone: it must adopt b's.
	if err := a.EnsureRunning(ctx, h); err != nil {
		t.Fatalf("ensure running (taking back): %v", err)
	}
	if got, err := deployertest.Ask(ctx, h); err != nil || got.PID != restarted.PID {
		t.Fatalf("after taking the app back: answer %+v, %v; want b's process %d adopted", got, err, restarted.PID)
	}
}

func TestEnsureRunningWithNothingLive(t *testing.T) {
	t.Parallel()
	d := newDeployer(t, local.Options{})
	h := newHost(t, d)
	if err := d.EnsureRunning(context.Background(), h); err != nil {
		t.Fatalf("ensure running on an empty host: %v", err)
	}
	if _, err := os.Stat(filepath.Join(h.Base, "app.pid")); !os.IsNotExist(err) {
		t.Fatalf("an empty host got an app.pid (%v)", err)
	}
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	for range 200 {
		if syscall.Kill(pid, 0) != nil || isZombie(pid) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("process %d still alive", pid)
}

func isZombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i >= 0 && i+2 < len(b) && b[i+2] == 'Z'
}

func TestUnhealthyAppTimesOutAndIsStopped(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := newDeployer(t, local.Options{StartTimeout: 2 * time.Second})
	h := newHost(t, d)
	rel := deployertest.NewRelease(t, "fail-unhealthy")
	if err := d.Upload(ctx, h, rel); err != nil {
		t.Fatal(err)
	}
	err := d.Activate(ctx, h, rel.SHA)
	if err == nil {
		t.Fatal("activate an app whose health check answers 503: no error")
	}
	for _, want := range []string{"not healthy", "503", "testapp fail-unhealthy starting"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if _, err := deployertest.Ask(ctx, h); err == nil {
		t.Fatal("the unhealthy app is still answering after a failed activate")
	}
	if _, err := os.Stat(filepath.Join(h.Base, "app.pid")); !os.IsNotExist(err) {
		t.Fatalf("app.pid left after the failed app was stopped (%v)", err)
	}
}

func TestEnvLogAndStopAll(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := newDeployer(t, local.Options{Env: map[string]string{"TESTAPP_EXTRA": "hello", "PORT": "1"}})
	h1, h2 := newHost(t, d), newHost(t, d)
	a1 := deploy(ctx, t, d, h1, "v1") // PORT from Options.Env must not win: the app answers on h1.Port
	a2 := deploy(ctx, t, d, h2, "v2")
	if a1.Region != h1.Region || a1.Host != h1.Name {
		t.Errorf("app sees region %q host %q, want %q %q", a1.Region, a1.Host, h1.Region, h1.Name)
	}
	if a1.Extra != "hello" {
		t.Errorf("app sees TESTAPP_EXTRA=%q, want hello", a1.Extra)
	}
	log, err := os.ReadFile(filepath.Join(h1.Base, "app.log"))
	if err != nil || !strings.Contains(string(log), "testapp v1 starting") {
		t.Errorf("app.log = %q, %v; want the app's output", log, err)
	}
	if err := d.StopAll(ctx); err != nil {
		t.Fatal(err)
	}
	waitGone(t, a1.PID)
	waitGone(t, a2.PID)
	if _, err := deployertest.Ask(ctx, h1); err == nil {
		t.Fatal("app still answers after StopAll")
	}
}

func TestUploadRefusesBadChecksum(t *testing.T) {
	t.Parallel()
	d := newDeployer(t, local.Options{})
	h := newHost(t, d)
	rel := deployertest.NewRelease(t, "v1")
	rel.Checksum = strings.Repeat("0", 64)
	err := d.Upload(context.Background(), h, rel)
	if err == nil || !strings.Contains(err.Error(), "sha256") {
		t.Fatalf("upload with a wrong checksum: err = %v, want a checksum error", err)
	}
	entries, _ := os.ReadDir(filepath.Join(h.Base, "releases"))
	if len(entries) != 0 {
		t.Fatalf("a refused upload left %d entries in releases/", len(entries))
	}
}

func TestActivateCleansCrashLeftovers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := newDeployer(t, local.Options{})
	h := newHost(t, d)
	deploy(ctx, t, d, h, "v1")
	leftovers := []string{
		filepath.Join(h.Base, "releases", deployertest.SHA("v2")+".tmp-crash"),
		filepath.Join(h.Base, "releases", deployertest.SHA("v3")),
	}
	for _, dir := range leftovers {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tmpLink, tmpPid := filepath.Join(h.Base, "current.tmp-crash"), filepath.Join(h.Base, "app.pid.tmp-crash")
	if err := os.Symlink("releases/x", tmpLink); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tmpPid, []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	deploy(ctx, t, d, h, "v2")
	for _, p := range append(leftovers, tmpLink, tmpPid) {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("crash leftover %s still there after activate (%v)", p, err)
		}
	}
}

func TestSameHostCallsAreSerialised(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := newDeployer(t, local.Options{})
	h := newHost(t, d)
	versions := []string{"v1", "v2", "v3"}
	errs := make(chan error, len(versions))
	for _, v := range versions {
		go func() {
			rel := deployertest.NewRelease(t, v)
			err := d.Upload(ctx, h, rel)
			if err == nil {
				err = d.Activate(ctx, h, rel.SHA)
			}
			errs <- err
		}()
	}
	for range versions {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	st, err := d.State(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	a, err := deployertest.Ask(ctx, h)
	if err != nil || a.Release != st.Current || st.Previous == "" || st.Previous == st.Current {
		t.Fatalf("after concurrent activates: state %+v, app answers %+v (%v)", st, a, err)
	}
}

func TestStopNeverSignalsAStrangerNamedByAppPid(t *testing.T) {
	t.Parallel()
	d := newDeployer(t, local.Options{})
	h := newHost(t, d)
	stranger := exec.Command("sleep", "30")
	stranger.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := stranger.Start(); err != nil {
		t.Fatal(err)
	}
	defer stranger.Process.Kill()
	if err := os.MkdirAll(h.Base, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(h.Base, "app.pid"), []byte(strconv.Itoa(stranger.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := d.Stop(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	pid := stranger.Process.Pid
	if syscall.Kill(pid, 0) != nil || isZombie(pid) {
		t.Fatal("Stop signalled a process outside the host's releases")
	}
}

// BenchmarkRollback measures a rollback on one host: switch current to the previous
// release, stop the old app, start the other and wait for its health check.
func BenchmarkRollback(b *testing.B) {
	ctx := context.Background()
	d := local.New(local.Options{Run: deployertest.Argv, Health: deployertest.Health, Keep: keep})
	defer d.StopAll(ctx)
	port, err := freeport.Get()
	if err != nil {
		b.Fatal(err)
	}
	h := deployers.Host{App: deployertest.AppName, Region: "bench", Name: "host1", Base: b.TempDir(),
		Port: port, URL: fmt.Sprintf("http://127.0.0.1:%d", port)}
	for _, v := range []string{"v1", "v2"} {
		rel := deployertest.NewRelease(b, v)
		if err := d.Upload(ctx, h, rel); err != nil {
			b.Fatal(err)
		}
		if err := d.Activate(ctx, h, rel.SHA); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		st, err := d.State(ctx, h)
		if err != nil {
			b.Fatal(err)
		}
		if err := d.Activate(ctx, h, st.Previous); err != nil {
			b.Fatal(err)
		}
	}
}

// A crash of Immunity between starting an app and recording its pid leaves an app that
// app.pid does not name, holding the host's port; the next restart stops it too.
func TestRestartStopsAStrayApp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	first := newDeployer(t, local.Options{})
	h := newHost(t, first)
	stray := deploy(ctx, t, first, h, "v1")
	os.WriteFile(filepath.Join(h.Base, "app.pid"), []byte("0\n"), 0o644) // the pid never recorded

	second := newDeployer(t, local.Options{}) // the restarted Immunity
	if err := second.Restart(ctx, h); err != nil {
		t.Fatalf("restart with a stray app on the port: %v", err)
	}
	waitGone(t, stray.PID)
	if a, err := deployertest.Ask(ctx, h); err != nil || a.PID == stray.PID {
		t.Fatalf("after restart: %+v, %v; want a new process", a, err)
	}
}

// TestCancelledRestartLeavesTheAppAlone: a restart by work already cancelled (a server
// that lost the app's lease while paused) stops nothing.
func TestCancelledRestartLeavesTheAppAlone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := newDeployer(t, local.Options{})
	h := newHost(t, d)
	running := deploy(ctx, t, d, h, "v1")
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := d.Restart(cancelled, h); err == nil {
		t.Fatal("a cancelled restart: no error")
	}
	if a, err := deployertest.Ask(ctx, h); err != nil || a.PID != running.PID {
		t.Fatalf("after a cancelled restart: %+v, %v; want the app %d still serving", a, err, running.PID)
	}
}

// TestCancelledStartStopsOnlyItsOwnApp: a start cancelled while it waits for its app to
// be healthy stops the process it started, and not another app of the host that appeared
// meanwhile (the app a successor server started while this one was paused).
func TestCancelledStartStopsOnlyItsOwnApp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := newDeployer(t, local.Options{StartTimeout: time.Minute})
	h := newHost(t, d)
	rel := deployertest.NewRelease(t, "fail-unhealthy") // never healthy: the start waits
	if err := d.Upload(ctx, h, rel); err != nil {
		t.Fatal(err)
	}
	if err := d.Switch(ctx, h, rel.SHA); err != nil {
		t.Fatal(err)
	}
	work, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.Restart(work, h) }()
	var own int
	for deadline := time.Now().Add(30 * time.Second); own == 0; time.Sleep(10 * time.Millisecond) {
		if b, err := os.ReadFile(filepath.Join(h.Base, "app.pid")); err == nil {
			own, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		}
		if time.Now().After(deadline) {
			t.Fatal("the start never recorded its app")
		}
	}
	other := exec.Command("sleep", "120") // another app of the host: a group leader in its releases
	other.Dir = filepath.Join(h.Base, "releases", rel.SHA)
	other.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Process.Kill(); other.Wait() })
	cancel()
	if err := <-done; err == nil {
		t.Fatal("a cancelled start: no error")
	}
	waitGone(t, own)
	if syscall.Kill(other.Process.Pid, 0) != nil || isZombie(other.Process.Pid) {
		t.Fatalf("the cancelled start stopped another app of the host (pid %d)", other.Process.Pid)
	}
}

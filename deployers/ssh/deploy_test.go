package ssh

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/immunity-app/immunity/internal/freeport"

	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/immunity-app/immunity/deployers"
	"github.com/immunity-app/immunity/deployers/ssh/sshtest"
)

func TestDeploySwitchRollback(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 4, Settings{})
	ctx := context.Background()
	r1, r2 := release(t, "1111111aaaa", 1000), release(t, "2222222bbbb", 1000)

	mustAll(t, f.deploy(ctx, f.hosts, r1))
	mustAll(t, f.deploy(ctx, f.hosts, r2))
	for _, h := range f.hosts {
		if got := liveVersion(t, h); got != r2.SHA {
			t.Errorf("%s: live %q, want %q", h, got, r2.SHA)
		}
		st, err := f.d.State(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		want := deployers.HostState{Current: r2.SHA, Previous: r1.SHA, Releases: []string{r2.SHA, r1.SHA}}
		if fmt.Sprint(st) != fmt.Sprint(want) {
			t.Errorf("%s: state %+v, want %+v", h, st, want)
		}
	}

	// Rollback: every host of the region back to the previous release, in parallel.
	mustAll(t, parallel(f.hosts, func(h deployers.Host) error { return f.d.Activate(ctx, h, r1.SHA) }))
	for _, h := range f.hosts {
		if got := liveVersion(t, h); got != r1.SHA {
			t.Errorf("%s after rollback: live %q, want %q", h, got, r1.SHA)
		}
		st, _ := f.d.State(ctx, h)
		if st.Current != r1.SHA || st.Previous != r2.SHA {
			t.Errorf("%s after rollback: state %+v", h, st)
		}
	}
	if n := len(f.dial.conns); n != 2 {
		t.Errorf("dialled %d connections for 4 hosts on 2 sshd addresses, want 2 (one per address, reused)", n)
	}
}

func TestUploadIsIdempotentAndVerified(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1, Settings{})
	ctx, h := context.Background(), f.hosts[0]
	r := release(t, "3333333cccc", 1<<20)
	if err := f.d.Upload(ctx, h, r); err != nil {
		t.Fatal(err)
	}
	before := f.dial.written.Load()
	if err := f.d.Upload(ctx, h, r); err != nil {
		t.Fatal(err)
	}
	if sent := f.dial.written.Load() - before; sent > 64<<10 {
		t.Errorf("second upload of a present release sent %d bytes, want only a check", sent)
	}

	bad := release(t, "4444444dddd", 1000)
	bad.Checksum = strings.Repeat("0", 64)
	err := f.d.Upload(ctx, h, bad)
	if err == nil || !strings.Contains(err.Error(), "checksum mismatch") {
		t.Fatalf("upload with a wrong checksum: %v, want a checksum mismatch", err)
	}
	if _, err := os.Stat(filepath.Join(h.Base, "releases", bad.SHA)); !os.IsNotExist(err) {
		t.Errorf("a release that failed its checksum is on the host: %v", err)
	}
	// An incompressible artifact travels as its plain tar: its checksum is checked first.
	big := release(t, "4444444eeee", 5<<20)
	big.Checksum = strings.Repeat("1", 64)
	if err := f.d.Upload(ctx, h, big); err == nil || !strings.Contains(err.Error(), "does not match its checksum") {
		t.Fatalf("upload of a large artifact with a wrong checksum: %v", err)
	}
	if err := f.d.Activate(ctx, h, bad.SHA); !errors.Is(err, deployers.ErrNotFound) {
		t.Errorf("activate of a release not on the host: %v, want ErrNotFound", err)
	}
}

func TestKeepPrunesOldReleasesButNeverLiveOrPrevious(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1, Settings{Keep: 2})
	ctx, h := context.Background(), f.hosts[0]
	var rels []deployers.Release
	for i := 1; i <= 4; i++ {
		r := release(t, fmt.Sprintf("%d%d%d%d%d%d%d", i, i, i, i, i, i, i), 100)
		rels = append(rels, r)
		mustAll(t, f.deploy(ctx, f.hosts, r))
	}
	st, _ := f.d.State(ctx, h)
	if want := []string{rels[3].SHA, rels[2].SHA}; !slices.Equal(st.Releases, want) {
		t.Fatalf("keep 2: releases %v, want %v", st.Releases, want)
	}
	for _, r := range rels[:2] {
		if _, err := os.Stat(filepath.Join(h.Base, "releases", r.SHA)); !os.IsNotExist(err) {
			t.Errorf("release %s beyond keep 2 was not pruned: %v", r.SHA, err)
		}
	}
}

func TestChangedOrUnknownHostKeyIsRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 2, Settings{})
	ctx := context.Background()
	r := release(t, "5555555eeee", 100)

	// A known_hosts that holds another key for the first server: a changed key.
	other, err := sshtest.NewHostKey()
	if err != nil {
		t.Fatal(err)
	}
	changed := filepath.Join(t.TempDir(), "known_hosts")
	srv := f.servers[0]
	write(t, changed, knownhosts.Line([]string{knownhosts.Normalize(fmt.Sprintf("127.0.0.1:%d", srv.Port))}, other)+"\n")
	f.settings.KnownHosts = changed
	err = f.d.Upload(ctx, f.hosts[0], r)
	if !errors.Is(err, ErrHostKey) || !strings.Contains(err.Error(), "CHANGED") {
		t.Errorf("changed host key: %v, want ErrHostKey saying it CHANGED", err)
	}
	// The same file does not know the second server at all.
	err = f.d.Upload(ctx, f.hosts[1], r)
	if !errors.Is(err, ErrHostKey) || !strings.Contains(err.Error(), "is not in") {
		t.Errorf("unknown host key: %v, want ErrHostKey saying it is not in known_hosts", err)
	}
	for _, h := range f.hosts {
		if _, err := os.Stat(h.Base); !os.IsNotExist(err) {
			t.Errorf("%s: something was written to a host whose key was refused: %v", h, err)
		}
	}
}

func TestConnectionCutMidUploadLeavesHostIntact(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1, Settings{})
	ctx, h := context.Background(), f.hosts[0]
	old, next := release(t, "6666666ffff", 1000), release(t, "7777777aaaa", 8<<20)
	mustAll(t, f.deploy(ctx, f.hosts, old))

	f.dial.budget.Store(2 << 20) // the connection dies after 2 MiB of the 8 MiB upload
	err := f.d.Upload(ctx, h, next)
	if err == nil {
		t.Fatal("upload over a connection cut mid-way succeeded")
	}
	t.Logf("cut upload: %v", err)
	f.dial.budget.Store(-1)

	if got := liveVersion(t, h); got != old.SHA {
		t.Errorf("live release after a cut upload: %q, want %q", got, old.SHA)
	}
	st, err := f.d.State(ctx, h) // also shows the pool redials
	if err != nil {
		t.Fatal(err)
	}
	if st.Current != old.SHA || slices.Contains(st.Releases, next.SHA) {
		t.Errorf("state after a cut upload: %+v", st)
	}
	if _, err := os.Stat(filepath.Join(h.Base, "releases", next.SHA)); !os.IsNotExist(err) {
		t.Errorf("a half-uploaded release looks complete: %v", err)
	}
	if err := f.d.Activate(ctx, h, next.SHA); !errors.Is(err, deployers.ErrNotFound) {
		t.Errorf("activate of a half-uploaded release: %v, want ErrNotFound", err)
	}

	mustAll(t, f.deploy(ctx, f.hosts, next)) // the retry succeeds
	if got := liveVersion(t, h); got != next.SHA {
		t.Errorf("live after retry: %q, want %q", got, next.SHA)
	}
}

func TestUnreachableHostFailsOnlyThatHost(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 2, Settings{})
	ctx := context.Background()
	dead, err := freeport.Addr() // nothing listens there
	if err != nil {
		t.Fatal(err)
	}
	hosts := append(f.hosts, deployers.Host{App: "papi", Region: "sandbox1", Name: "gone", Address: f.env.User + "@" + dead, Base: t.TempDir()})
	r := release(t, "8888888bbbb", 100)

	errs := f.deploy(ctx, hosts, r)
	for i, h := range hosts[:2] {
		if errs[i] != nil {
			t.Errorf("%s failed because another host is down: %v", h, errs[i])
		} else if got := liveVersion(t, h); got != r.SHA {
			t.Errorf("%s: live %q", h, got)
		}
	}
	msg := fmt.Sprint(errs[2])
	if errs[2] == nil || !strings.Contains(msg, "sandbox1/gone") || !strings.Contains(msg, "connect to") || !strings.Contains(msg, "refused") {
		t.Errorf("unreachable host: %v, want an error naming the host and the refused connection", errs[2])
	}
}

func TestRestartHealthAndRunQuoteEverything(t *testing.T) {
	t.Parallel()
	evil := `it's "quoted" $(touch pwned) ; touch pwned2 ` + "`touch pwned3`"
	f := newFixture(t, 1, Settings{
		Restart:       []string{"sh", "-c", `printf '%s|%s' "$IMMUNITY_RELEASE" "$1" > ../../restarted`, "restart", evil},
		HealthCommand: []string{"test", "-f", "version"},
	})
	ctx, h := context.Background(), f.hosts[0]
	r := release(t, "9999999cccc", 100)
	mustAll(t, f.deploy(ctx, f.hosts, r))
	b, err := os.ReadFile(filepath.Join(h.Base, "restarted"))
	if err != nil {
		t.Fatalf("restart command did not run: %v", err)
	}
	if want := r.SHA + "|" + evil; string(b) != want {
		t.Errorf("restart saw %q, want %q", b, want)
	}
	var out strings.Builder
	if err := f.d.Run(ctx, h, []string{"sh", "-c", `cat version; printf '%s' "$EVIL"`}, map[string]string{"EVIL": evil}, &out, nil); err != nil {
		t.Fatal(err)
	}
	if want := r.SHA + "\n" + evil; out.String() != want {
		t.Errorf("run printed %q, want %q", out.String(), want)
	}
	for _, p := range []string{"pwned", "pwned2", "pwned3"} {
		for _, dir := range []string{h.Base, filepath.Join(h.Base, "current"), os.Getenv("HOME")} {
			if _, err := os.Stat(filepath.Join(dir, p)); err == nil {
				t.Errorf("text in an argument was run as a command: %s exists", filepath.Join(dir, p))
			}
		}
	}

	// A failing health check fails Activate (the engine then rolls back).
	f.settings.HealthCommand = []string{"test", "-f", "no-such-file"}
	f.settings.Timeout = 1500e6
	r2 := release(t, "aaaaaaa1111", 100)
	err = f.deploy(ctx, f.hosts, r2)[0]
	if err == nil || !strings.Contains(err.Error(), "health command") {
		t.Errorf("failing health check: %v, want a health command error", err)
	}
}

// A command cancelled on one host closes only its own session: another host reached over
// the same connection keeps running.
func TestCancelledCommandKeepsSharedConnection(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 3, Settings{}) // host1 and host3 share the first sshd
	ctx := context.Background()
	slow, short := f.hosts[0], f.hosts[2]
	for _, h := range []deployers.Host{slow, short} {
		if err := os.MkdirAll(filepath.Join(h.Base, "current"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The shared connection is up before the two commands: a dial of its own that a
	// 200 ms deadline cuts short (a slow handshake on a loaded machine) is another matter
	// than a cancelled command dropping a connection others use.
	if err := f.d.Run(ctx, slow, []string{"true"}, nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 2)
	go func() { errs <- f.d.Run(ctx, slow, []string{"sleep", "1"}, nil, nil, nil) }()
	go func() {
		cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		if err := f.d.Run(cctx, short, []string{"sleep", "5"}, nil, nil, nil); !errors.Is(err, context.DeadlineExceeded) {
			errs <- fmt.Errorf("cancelled command: %v, want a deadline error", err)
			return
		}
		errs <- nil
	}()
	for range 2 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if n := len(f.dial.conns); n != 1 {
		t.Errorf("%d connections dialled, want 1 (the cancel must not drop the shared one)", n)
	}
}

// Many base folders behind one address may need more sessions at once than the server
// allows: the refused ones wait for a free slot instead of failing or dropping the
// connection under the others.
func TestSessionLimitWaitsForAFreeSlot(t *testing.T) {
	t.Parallel()
	env := sshtest.New(t)
	env.MaxSessions = 2
	srv, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	var hosts []deployers.Host
	for i := range 6 {
		base := filepath.Join(t.TempDir(), "current")
		os.MkdirAll(base, 0o755)
		hosts = append(hosts, deployers.Host{App: "papi", Region: "sandbox1", Name: fmt.Sprintf("host%d", i), Address: env.Address(srv), Base: filepath.Dir(base)})
	}
	d := New(Options{Settings: func(deployers.Host) Settings {
		return Settings{KeyFile: env.KeyFile, KnownHosts: env.KnownHosts, Timeout: 30 * time.Second}
	}})
	defer d.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mustAll(t, parallel(hosts, func(h deployers.Host) error {
		return d.Run(ctx, h, []string{"sleep", "0.3"}, nil, nil, nil)
	}))
}

// With agent: true the key comes from a real ssh-agent; no key file is read.
func TestAuthWithSSHAgent(t *testing.T) {
	t.Parallel()
	agentBin, err := exec.LookPath("ssh-agent")
	if err != nil {
		requireOrSkip(t, "ssh-agent not installed (Debian package openssh-client)")
	}
	f := newFixture(t, 1, Settings{})
	sock := filepath.Join(t.TempDir(), "agent.sock")
	agent := exec.Command(agentBin, "-D", "-a", sock)
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agent.Process.Kill(); agent.Wait() })
	for i := 0; ; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if i == 100 {
			t.Fatal("ssh-agent did not create its socket")
		}
		time.Sleep(20 * time.Millisecond)
	}
	add := exec.Command("ssh-add", f.env.KeyFile)
	add.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("ssh-add: %v: %s", err, out)
	}
	f.settings.KeyFile, f.settings.Agent, f.settings.AgentSocket = "", true, sock
	var out strings.Builder
	os.MkdirAll(filepath.Join(f.hosts[0].Base, "current"), 0o755)
	if err := f.d.Run(context.Background(), f.hosts[0], []string{"sh", "-c", "echo agent-ok"}, nil, &out, nil); err != nil || out.String() != "agent-ok\n" {
		t.Fatalf("run with agent auth: %q, %v", out.String(), err)
	}
}

func requireOrSkip(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("IMMUNITY_TEST_REQUIRE_ALL") == "1" {
		t.Fatalf("%s (IMMUNITY_TEST_REQUIRE_ALL=1)", why)
	}
	t.Skip(why)
}

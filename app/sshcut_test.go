package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/immunity-app/immunity/internal/freeport"

	"github.com/immunity-app/immunity/deployers"
	"github.com/immunity-app/immunity/deployers/deployertest"
	sshdeploy "github.com/immunity-app/immunity/deployers/ssh"
	"github.com/immunity-app/immunity/deployers/ssh/sshtest"
	"github.com/immunity-app/immunity/pipeline"
	"github.com/immunity-app/immunity/pipeline/config"
	"github.com/immunity-app/immunity/store"
)

func TestMain(m *testing.M) { deployertest.Main(m) }

// TestSSHConnectionCutDuringTheSwitch runs the engine on the real ssh deployer against a
// real sshd. The connection to host1 dies as its switch completes on the host: the host
// switched, the engine never heard. The stage fails; its rollback asks host1 what it runs
// (found on the new release, though the store said the old), switches it back, and the
// store ends agreeing with both hosts.
func TestSSHConnectionCutDuringTheSwitch(t *testing.T) {
	t.Parallel()
	env := sshtest.New(t)
	srv, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var hosts []config.Host
	for i := 1; i <= 2; i++ {
		port := freeTCPPort(t)
		base := filepath.Join(dir, "hosts", fmt.Sprintf("host%d", i))
		h := deployers.Host{Base: base, Port: port}
		if err := deployertest.WritePortFile(h); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { deployertest.StopRestarted(h) })
		hosts = append(hosts, config.Host{Name: fmt.Sprintf("host%d", i), Address: env.Address(srv), Path: base, URL: fmt.Sprintf("http://127.0.0.1:%d", port)})
	}
	cfg := config.Empty()
	cfg.Server.DataDir = dir
	cfg.Apps = []config.App{{Name: deployertest.AppName, KeepReleases: 3, Regions: []config.Region{
		{Name: "prod", Deployer: "ssh", Production: true, HostsAtATime: 1, Hosts: hosts},
	}}}
	cut := &cuttingDialer{}
	ssh := sshdeploy.New(sshdeploy.Options{Dial: cut.DialContext, Settings: func(deployers.Host) sshdeploy.Settings {
		return sshdeploy.Settings{KeyFile: env.KeyFile, KnownHosts: env.KnownHosts, Restart: []string{"bin/restart"},
			HealthPath: deployertest.Health, Timeout: 20 * time.Second, Keep: 3}
	}})
	t.Cleanup(func() { ssh.Close() })
	dep := &cutDuringSwitch{Deployer: ssh, cut: cut, host: "prod/host1"}
	st, err := store.Open(context.Background(), filepath.Join(dir, "immunity.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	eng, err := pipeline.New(pipeline.Options{Config: cfg, Store: st, Builder: testAppBuilder{t}, Tester: noTests{},
		Deployer: func(*config.App, *config.Region) (deployers.Deployer, error) { return dep, nil }, Tick: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := eng.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(eng.Stop)
	v1, v2 := deployertest.SHA("v1"), deployertest.SHA("v2")
	if _, err := eng.Seed(ctx, pipeline.Actor{Name: "ada", Via: "cli"}, deployertest.AppName, v1); err != nil {
		t.Fatal(err)
	}
	dep.armed.Store(true)
	run, err := eng.StartRun(ctx, deployertest.AppName, v2, pipeline.Trigger{Kind: "push"})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		r, _ := st.Run(ctx, run.ID)
		if r.State.Terminal() {
			run = r
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("run never ended: %+v", r)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !dep.wasCut() {
		t.Fatal("the connection was never cut")
	}
	s := run.Stages[0]
	if run.State != store.RunFailed || s.State != store.StageRolledBack || !strings.Contains(s.Message, "rolled back 1 host") {
		t.Fatalf("run %s, stage %s: %s", run.State, s.State, s.Message)
	}
	live, _ := st.Live(ctx, deployertest.AppName, "prod")
	for _, h := range hosts {
		target, err := os.Readlink(filepath.Join(h.Path, "current"))
		if err != nil {
			t.Fatal(err)
		}
		if filepath.Base(target) != v1 || live[h.Name] != v1 {
			t.Errorf("%s: current -> %s, store says %.7s; want both on v1 %.7s", h.Name, filepath.Base(target), live[h.Name], v1)
		}
	}
	events, _ := st.Events(ctx, run.ID, 100)
	found := false
	for _, e := range events {
		found = found || (e.Kind == string(pipeline.Reconciled) && e.Message == fmt.Sprintf("prod/host1 found on %.7s, store said %.7s", v2, v1))
	}
	if !found {
		t.Errorf("no reconciliation of host1 in the run's log: %+v", events)
	}
}

// cutDuringSwitch lets the switch of one host happen on the host, then cuts every
// connection and reports the cut instead of the switch's answer.
type cutDuringSwitch struct {
	*sshdeploy.Deployer
	cut   *cuttingDialer
	host  string
	armed atomicBool
	mu    sync.Mutex
	done  bool
}

func (d *cutDuringSwitch) Switch(ctx context.Context, h deployers.Host, sha string) error {
	if !d.armed.Load() || h.String() != d.host {
		return d.Deployer.Switch(ctx, h, sha)
	}
	d.armed.Store(false)
	if err := d.Deployer.Switch(ctx, h, sha); err != nil {
		return err
	}
	d.cut.closeAll()
	d.mu.Lock()
	d.done = true
	d.mu.Unlock()
	return errors.New("ssh: connection lost while waiting for the switch's exit status")
}

func (d *cutDuringSwitch) wasCut() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.done
}

type atomicBool struct {
	mu sync.Mutex
	v  bool
}

func (b *atomicBool) Load() bool   { b.mu.Lock(); defer b.mu.Unlock(); return b.v }
func (b *atomicBool) Store(v bool) { b.mu.Lock(); b.v = v; b.mu.Unlock() }

// cuttingDialer keeps the connections it made so a test can cut them all.
type cuttingDialer struct {
	mu    sync.Mutex
	conns []net.Conn
}

func (c *cuttingDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if err == nil {
		c.mu.Lock()
		c.conns = append(c.conns, conn)
		c.mu.Unlock()
	}
	return conn, err
}

func (c *cuttingDialer) closeAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, conn := range c.conns {
		conn.Close()
	}
	c.conns = nil
}

// testAppBuilder builds deployertest's app as the release of a version's SHA.
type testAppBuilder struct{ t *testing.T }

func (b testAppBuilder) Build(_ context.Context, a *config.App, sha string) (deployers.Release, error) {
	for _, v := range []string{"v1", "v2"} {
		if deployertest.SHA(v) == sha {
			return deployertest.NewRelease(b.t, v), nil
		}
	}
	return deployers.Release{}, fmt.Errorf("no version with sha %s", sha)
}

func (b testAppBuilder) Commit(_ context.Context, _ *config.App, sha string) (pipeline.Commit, error) {
	return pipeline.Commit{SHA: sha, Subject: "test app", Author: "ada"}, nil
}

type noTests struct{}

func (noTests) Test(context.Context, deployers.Release, deployers.Host, deployers.Tests) (string, error) {
	return "", nil
}

func freeTCPPort(t *testing.T) int {
	t.Helper()
	p, err := freeport.Get()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

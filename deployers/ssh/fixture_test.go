package ssh

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/immunity-app/immunity/deployers"
	"github.com/immunity-app/immunity/deployers/ssh/sshtest"
)

// fixture is a region of hosts (base folders) spread over two real sshd servers.
type fixture struct {
	env      *sshtest.Env
	servers  []*sshtest.Server
	hosts    []deployers.Host
	d        *Deployer
	settings Settings
	dial     *cutDialer
}

func newFixture(t *testing.T, nHosts int, s Settings) *fixture {
	t.Helper()
	env := sshtest.New(t)
	f := &fixture{env: env, dial: &cutDialer{}}
	f.dial.budget.Store(-1)
	for i := 0; i < 2; i++ {
		srv, err := env.Start()
		if err != nil {
			t.Fatal(err)
		}
		f.servers = append(f.servers, srv)
	}
	root := t.TempDir()
	for i := 0; i < nHosts; i++ {
		f.hosts = append(f.hosts, deployers.Host{
			App: "papi", Region: "sandbox1", Name: fmt.Sprintf("host%d", i+1),
			Address: env.Address(f.servers[i%2]),
			Base:    filepath.Join(root, fmt.Sprintf("host%d", i+1)),
		})
	}
	s.KeyFile, s.KnownHosts = env.KeyFile, env.KnownHosts
	if s.Timeout == 0 {
		s.Timeout = 30 * time.Second
	}
	f.settings = s
	f.d = New(Options{Settings: func(deployers.Host) Settings { return f.settings }, Dial: f.dial.DialContext})
	t.Cleanup(func() { f.d.Close() })
	return f
}

// release packs a release whose "version" file holds sha (plus size random bytes in
// "blob") and returns it.
func release(t *testing.T, sha string, size int) deployers.Release {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	os.MkdirAll(filepath.Join(src, "bin"), 0o755)
	write(t, filepath.Join(src, "version"), sha+"\n")
	write(t, filepath.Join(src, "bin", "run.sh"), "#!/bin/sh\necho running\n")
	blob := make([]byte, size)
	rand.Read(blob)
	write(t, filepath.Join(src, "blob"), string(blob))
	art := filepath.Join(dir, sha+".tar.gz")
	out, err := os.Create(art)
	if err != nil {
		t.Fatal(err)
	}
	if err := deployers.Pack(src, []string{"version", "bin", "blob"}, out); err != nil {
		t.Fatal(err)
	}
	out.Close()
	sum, err := deployers.FileChecksum(art)
	if err != nil {
		t.Fatal(err)
	}
	return deployers.Release{App: "papi", SHA: sha, Artifact: art, Checksum: sum}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// deploy uploads and activates rel on every host in parallel; it returns each host's error.
func (f *fixture) deploy(ctx context.Context, hosts []deployers.Host, rel deployers.Release) []error {
	return parallel(hosts, func(h deployers.Host) error {
		if err := f.d.Upload(ctx, h, rel); err != nil {
			return err
		}
		return f.d.Activate(ctx, h, rel.SHA)
	})
}

func parallel(hosts []deployers.Host, fn func(h deployers.Host) error) []error {
	errs := make([]error, len(hosts))
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = fn(h) }()
	}
	wg.Wait()
	return errs
}

func mustAll(t *testing.T, errs []error) {
	t.Helper()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}

// liveVersion reads BASE/current/version straight from the folder (the hosts are local).
func liveVersion(t *testing.T, h deployers.Host) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(h.Base, "current", "version"))
	if err != nil {
		t.Fatalf("%s: %v", h, err)
	}
	return strings.TrimSpace(string(b))
}

// cutDialer counts bytes written on every connection it made; when budget is >= 0 it is
// spent by writes and the connection that overspends it is closed mid-write. A dialer
// may also stall: after stall(n), a write that would take its connections more than n
// bytes further waits until resume or cut.
type cutDialer struct {
	budget  atomic.Int64
	written atomic.Int64
	mu      sync.Mutex
	conns   []net.Conn
	stallAt int64         // 0: no stall
	resumed chan struct{} // closed by resume or cut
}

func (c *cutDialer) stall(n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stallAt, c.resumed = c.written.Load()+n, make(chan struct{})
}

// resume lets stalled writes go on.
func (c *cutDialer) resume() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.resumed != nil {
		close(c.resumed)
		c.stallAt, c.resumed = 0, nil
	}
}

// cut closes every connection the dialer made, as a network failure would; stalled
// writes then fail.
func (c *cutDialer) cut() {
	c.mu.Lock()
	for _, cc := range c.conns {
		cc.Close()
	}
	c.mu.Unlock()
	c.resume()
}

// wait blocks a write of n bytes while the dialer is stalled at a point it would pass.
func (c *cutDialer) wait(n int) {
	c.mu.Lock()
	at, resumed := c.stallAt, c.resumed
	c.mu.Unlock()
	if at > 0 && c.written.Load()+int64(n) > at {
		<-resumed
	}
}

func (c *cutDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	cc := &cutConn{Conn: conn, d: c}
	c.mu.Lock()
	c.conns = append(c.conns, cc)
	c.mu.Unlock()
	return cc, nil
}

type cutConn struct {
	net.Conn
	d *cutDialer
}

func (c *cutConn) Write(p []byte) (int, error) {
	c.d.wait(len(p))
	c.d.written.Add(int64(len(p)))
	if c.d.budget.Load() >= 0 && c.d.budget.Add(-int64(len(p))) < 0 {
		c.Conn.Close()
		return 0, errors.New("connection cut by test")
	}
	return c.Conn.Write(p)
}

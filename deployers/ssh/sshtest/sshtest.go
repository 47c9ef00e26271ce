// Package sshtest starts real OpenSSH sshd servers on 127.0.0.1 for tests and benchmarks.
//
// An Env is one temporary folder holding a client key, a known_hosts file and any number
// of sshd processes, each with its own generated host key, sshd_config and free port. All
// servers accept the same client key for the user running the tests, so several "hosts"
// are simply several base folders behind one or more sshd ports. Servers are stopped by
// Close (or the test's cleanup). When /usr/sbin/sshd is missing, New skips the test, or
// fails it when IMMUNITY_TEST_REQUIRE_ALL=1.
package sshtest

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/immunity-app/immunity/internal/freeport"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// SshdPath is where Debian's openssh-server installs sshd.
const SshdPath = "/usr/sbin/sshd"

// Env is a set of sshd servers sharing one client key and one known_hosts file.
type Env struct {
	Dir        string // temporary folder of keys, configs and logs
	User       string // the user the servers let in (the one running the tests)
	KeyFile    string // client private key (OpenSSH PEM, no passphrase)
	KnownHosts string // known_hosts with every server's host key
	// MaxSessions is the sessions one connection may have open at once on servers
	// started from now on; default 200 (OpenSSH's own default is 10).
	MaxSessions int

	mu      sync.Mutex
	servers []*Server
}

// Server is one running sshd.
type Server struct {
	Port    int
	Addrs   []string      // 127.0.0.1 and any extra loopback addresses it listens on
	HostKey ssh.PublicKey // its generated host key
	Log     string        // sshd's stderr log
	cmd     *exec.Cmd
	done    chan struct{}
}

// Available reports whether sshd can be started here, and why not.
func Available() error {
	if _, err := os.Stat(SshdPath); err != nil {
		return fmt.Errorf("sshd not installed at %s (Debian package openssh-server): %w", SshdPath, err)
	}
	return nil
}

// New makes an Env in a test's temporary folder; servers are stopped at cleanup.
func New(t testing.TB) *Env {
	t.Helper()
	if err := Available(); err != nil {
		if os.Getenv("IMMUNITY_TEST_REQUIRE_ALL") == "1" {
			t.Fatalf("%v (IMMUNITY_TEST_REQUIRE_ALL=1)", err)
		}
		t.Skip(err)
	}
	e, err := NewEnv(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

// NewEnv makes an Env in dir without a testing.T (for bench programs).
func NewEnv(dir string) (*Env, error) {
	u, err := user.Current()
	if err != nil {
		return nil, fmt.Errorf("current user: %w", err)
	}
	e := &Env{Dir: dir, User: u.Username, KeyFile: filepath.Join(dir, "client_ed25519"), KnownHosts: filepath.Join(dir, "known_hosts")}
	pub, err := writeKey(e.KeyFile)
	if err != nil {
		return nil, err
	}
	auth := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(auth, ssh.MarshalAuthorizedKey(pub), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(e.KnownHosts, nil, 0o600); err != nil {
		return nil, err
	}
	return e, nil
}

// Address is "user@127.0.0.1:port" of a server, for deployers.Host.Address.
func (e *Env) Address(s *Server) string { return fmt.Sprintf("%s@127.0.0.1:%d", e.User, s.Port) }

// AddressOn is like Address for one of the server's extra loopback addresses.
func (e *Env) AddressOn(s *Server, ip string) string {
	return fmt.Sprintf("%s@%s:%d", e.User, ip, s.Port)
}

// Start starts one more sshd on 127.0.0.1 (and extraIPs, e.g. 127.0.0.2) on a free port,
// and adds its host key to the known_hosts file.
func (e *Env) Start(extraIPs ...string) (*Server, error) {
	if os.Geteuid() == 0 {
		// sshd's privilege separation folder; systemd usually makes it, containers may not.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			return nil, err
		}
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		s, err := e.start(append([]string{"127.0.0.1"}, extraIPs...))
		if err == nil {
			return s, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func (e *Env) start(ips []string) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(e.Dir, fmt.Sprintf("sshd-%d", port))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	hostKey, err := writeKey(filepath.Join(dir, "host_ed25519"))
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "sshd_config")
	maxSessions := e.MaxSessions
	if maxSessions == 0 {
		maxSessions = 200
	}
	if err := os.WriteFile(conf, []byte(sshdConfig(dir, e.Dir, port, ips, maxSessions)), 0o600); err != nil {
		return nil, err
	}
	s := &Server{Port: port, Addrs: ips, HostKey: hostKey, Log: filepath.Join(dir, "sshd.log"), done: make(chan struct{})}
	logf, err := os.Create(s.Log)
	if err != nil {
		return nil, err
	}
	s.cmd = exec.Command(SshdPath, "-D", "-e", "-f", conf)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start sshd: %w", err)
	}
	go func() { s.cmd.Wait(); logf.Close(); close(s.done) }()
	if err := s.waitReady(); err != nil {
		s.Stop()
		return nil, err
	}
	if err := e.Trust(s); err != nil {
		s.Stop()
		return nil, err
	}
	e.mu.Lock()
	e.servers = append(e.servers, s)
	e.mu.Unlock()
	return s, nil
}

// Trust appends the server's host key (for all its addresses) to the known_hosts file.
func (e *Env) Trust(s *Server) error {
	var names []string
	for _, ip := range s.Addrs {
		names = append(names, knownhosts.Normalize(fmt.Sprintf("%s:%d", ip, s.Port)))
	}
	return e.AppendKnownHost(knownhosts.Line(names, s.HostKey))
}

// AppendKnownHost appends one line to the known_hosts file.
func (e *Env) AppendKnownHost(line string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	f, err := os.OpenFile(e.KnownHosts, os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.WriteString(line + "\n")
	return err
}

func (s *Server) waitReady() error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			log, _ := os.ReadFile(s.Log)
			return fmt.Errorf("sshd exited at start: %s", strings.TrimSpace(string(log)))
		default:
		}
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", s.Port), time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("sshd did not listen within 10s")
}

// SessionCPU is the CPU time used so far by the server's sessions: sshd's per-connection
// processes and the commands they ran, finished or still running (a pooled connection stays
// open). Benchmarks take it before and after a step.
func (s *Server) SessionCPU() (time.Duration, error) {
	procs, err := readProcs()
	if err != nil {
		return 0, err
	}
	root := s.cmd.Process.Pid
	var ticks int64
	for pid, p := range procs {
		if pid == root {
			ticks += p.childTicks // sessions that ended, reaped by the listener
			continue
		}
		for a := p.ppid; a > 1; a = procs[a].ppid {
			if a == root {
				ticks += p.ownTicks + p.childTicks
				break
			}
			if _, ok := procs[a]; !ok {
				break
			}
		}
	}
	return time.Duration(ticks) * time.Second / 100, nil // USER_HZ is 100 on Linux
}

type procStat struct {
	ppid                 int
	ownTicks, childTicks int64
}

// readProcs reads parent and CPU ticks of every process from /proc.
func readProcs() (map[int]procStat, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	procs := map[int]procStat{}
	for _, e := range ents {
		var pid int
		if _, err := fmt.Sscan(e.Name(), &pid); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // exited meanwhile
		}
		// After the ")" closing the name: state ppid ... utime(12) stime(13) cutime(14) cstime(15).
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) < 15 {
			continue
		}
		var p procStat
		var ut, st, cut, cst int64
		fmt.Sscan(f[1], &p.ppid)
		fmt.Sscan(f[11], &ut)
		fmt.Sscan(f[12], &st)
		fmt.Sscan(f[13], &cut)
		fmt.Sscan(f[14], &cst)
		p.ownTicks, p.childTicks = ut+st, cut+cst
		procs[pid] = p
	}
	return procs, nil
}

// Stop kills the sshd listener (sessions already open end with their connections).
func (s *Server) Stop() {
	if s.cmd.Process != nil {
		s.cmd.Process.Kill()
	}
	<-s.done
}

// Close stops every server of the Env.
func (e *Env) Close() {
	e.mu.Lock()
	servers := e.servers
	e.servers = nil
	e.mu.Unlock()
	for _, s := range servers {
		s.Stop()
	}
}

func sshdConfig(dir, envDir string, port int, ips []string, maxSessions int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Port %d\n", port)
	for _, ip := range ips {
		fmt.Fprintf(&b, "ListenAddress %s\n", ip)
	}
	fmt.Fprintf(&b, "HostKey %s\n", filepath.Join(dir, "host_ed25519"))
	fmt.Fprintf(&b, "PidFile %s\n", filepath.Join(dir, "sshd.pid"))
	fmt.Fprintf(&b, "AuthorizedKeysFile %s\n", filepath.Join(envDir, "authorized_keys"))
	fmt.Fprintf(&b, "MaxSessions %d\n", maxSessions)
	// SHLVL=1 makes bash skip ~/.bashrc for ssh commands (bash sources it only for a
	// top-level shell): a developer's interactive set-up (pyenv, nvm) then costs nothing
	// per session, as on a server whose deploy user has a plain shell profile.
	b.WriteString(`SetEnv SHLVL=1
UsePAM no
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
MaxStartups 200:30:400
LogLevel ERROR
Subsystem sftp internal-sftp
`)
	return b.String()
}

// writeKey writes a new ed25519 private key (OpenSSH format, mode 0600) and returns its
// public half.
func writeKey(path string) (ssh.PublicKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, "immunity-test")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, err
	}
	return ssh.NewPublicKey(pub)
}

// NewHostKey returns a fresh public key, e.g. to plant a wrong known_hosts entry.
func NewHostKey() (ssh.PublicKey, error) {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return ssh.NewPublicKey(pub)
}

func freePort() (int, error) { return freeport.Get() }

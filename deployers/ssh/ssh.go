// Package ssh is the deployer for real servers, reached over SSH (golang.org/x/crypto/ssh).
//
// A host is "user@host:port" plus a base folder. On the host the layout is the one every
// deployer shares:
//
//	BASE/releases/<sha>/               one unpacked release; .immunity-release inside holds its sha256
//	BASE/releases/.<sha>.<token>.tmp/  an upload in progress, one per attempt (never looks complete)
//	BASE/releases/.<sha>.<pid>.trash/  a pruned release being deleted (renamed aside first)
//	BASE/current -> releases/<sha>
//	BASE/previous -> releases/<sha>
//
// Upload streams the artifact over the connection into a folder of its own attempt
// (a random token in its name), checks its sha256 on the host (openssl when present, else
// sha256sum), unpacks it and writes the marker; a second command renames the folder to
// releases/<sha>. A
// command whose connection was cut keeps running on the host until it notices, so attempts
// of one release may overlap there: each removes only its own folders, and a complete copy
// another attempt already put in place is kept. A release whose marker already holds the
// checksum is not sent again. An artifact gzip could not shrink is sent as the plain tar
// inside it (checked against that tar's sha256, computed here after checking the
// artifact's), so hosts do not spend CPU inflating it.
//
// Activate marks the release as the most recently used, points `previous` at the old
// release and renames a new symlink over `current` (atomic), runs the region's restart
// command in the new release, waits for the health check, then prunes releases beyond the
// keep limit, never the live or previous one: each is renamed aside, then deleted, so a
// prune cut part-way leaves no half release; a prune that fails is logged, not the
// activation's failure. Rollback is Activate of an older release;
// the engine calls it for every host of a region in parallel.
//
// Every command that changes a host (receiving an upload, putting it in place, the switch,
// the restart command, the prune) is a command of its own, started only once the
// context's fence (deployers.WithFence) lets it, checked right before it starts: a server
// paused in the middle of a call that lost the app meanwhile changes nothing more on the
// host (what the host already runs of a command finishes there).
//
// Every remote command is a fixed template of this package whose arguments are all
// single-quoted (see script); no text from a config, commit or user is ever placed in a
// command unquoted. Host keys are checked against a known_hosts file; an unknown or
// changed key fails that host and there is no way to turn the check off.
//
// One SSH connection per address (user@host:port) is kept open and reused for upload,
// switch, tests and rollback, so a rollback costs a round trip or two rather than fresh
// logins. A dial is shared by every call that needs the connection meanwhile and is
// bounded by its own time limit, not by any one call's: a call whose context ends stops
// waiting for it, and the others still get the connection. A keepalive closes a
// connection that stops answering; a dropped connection is redialled on the next call. Hosts need a POSIX sh, GNU coreutils, tar and mkfifo.
package ssh

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/immunity-app/immunity/deployers"
)

// Settings is how one region's hosts are reached and switched.
type Settings struct {
	User    string // used when the host address has no user@
	KeyFile string // private key (no passphrase); or use Agent
	Agent   bool   // authenticate with the keys of the ssh-agent at AgentSocket
	// AgentSocket is the ssh-agent's socket; default $SSH_AUTH_SOCK.
	AgentSocket string
	KnownHosts  string // known_hosts file holding every host's key (required)
	// Restart is run (argv, quoted) in BASE/current after the switch, with IMMUNITY_RELEASE,
	// IMMUNITY_BASE and IMMUNITY_HOST in its environment. Empty: nothing is run.
	Restart []string
	// HealthPath is fetched on the host's URL until it answers 2xx (when the host has a URL).
	HealthPath string
	// HealthTimeout bounds one health request; default deployers.DefaultHealthTimeout.
	HealthTimeout time.Duration
	// HealthCommand is run (argv) in BASE/current on the host until it exits 0.
	HealthCommand []string
	// Timeout bounds each step on one host (upload; switch, restart and health). Default 2m.
	Timeout time.Duration
	// Keep is how many releases a host keeps, at least 2. Default 5.
	Keep int
}

// Options configure a Deployer.
type Options struct {
	// Settings returns the settings of the host's region.
	Settings func(h deployers.Host) Settings
	// Dial opens the TCP connection to an address; default net.Dialer. Tests use it to
	// cut connections; it also fits a jump host.
	Dial   func(ctx context.Context, network, addr string) (net.Conn, error)
	Logger *slog.Logger
	// TempDir holds the plain tars sent for incompressible artifacts; default os.TempDir().
	TempDir string
}

// Deployer deploys releases to hosts over SSH. Safe for concurrent use.
type Deployer struct {
	opts  Options
	pool  *pool
	forms forms
	log   *slog.Logger
}

var _ deployers.Deployer = (*Deployer)(nil)

// New returns a Deployer; call Close to drop its connections.
func New(opts Options) *Deployer {
	if opts.Dial == nil {
		var d net.Dialer
		opts.Dial = d.DialContext
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Deployer{opts: opts, pool: newPool(opts.Dial), forms: forms{dir: opts.TempDir}, log: log}
}

// Close drops every pooled connection and deletes temporary files.
func (d *Deployer) Close() error {
	d.pool.closeAll()
	d.forms.clear()
	return nil
}

// target returns the host's settings and where its connection goes.
func (d *Deployer) target(h deployers.Host) (Settings, target, error) {
	s := d.settings(h)
	if h.Base == "" {
		return s, target{}, fmt.Errorf("host %s has no base folder", h)
	}
	t, err := parseAddress(h.Address, s)
	return s, t, err
}

func (d *Deployer) settings(h deployers.Host) Settings {
	var s Settings
	if d.opts.Settings != nil {
		s = d.opts.Settings(h)
	}
	if s.Timeout == 0 {
		s.Timeout = 2 * time.Minute
	}
	if s.Keep == 0 {
		s.Keep = 5
	}
	s.Keep = max(s.Keep, 2)
	return s
}

// Package deployers holds the contract every deployer implements: how an immutable release
// reaches a host, goes live by an atomic switch of a `current` symlink, and is rolled back.
//
// A host keeps its releases under BASE/releases/<sha>/ and a `current` symlink (and a
// `previous` one) pointing at one of them. Upload is idempotent and verified by sha256;
// Activate switches `current` by writing a temporary link and renaming it over `current`,
// then (re)starts the app and waits for its health check. Rollback is Activate of an older
// release. The engine decides which release goes where and when; a deployer only carries
// it out and reports what a host holds, so a restart of Immunity can re-check a step
// instead of repeating it. The engine switches a host in two recorded steps, Switch and
// then Restart, so that a crash between them is known to need the restart.
package deployers

import (
	"context"
	"errors"
	"os"
	"time"
)

// Release is an immutable, checksummed build of one commit.
type Release struct {
	App      string
	SHA      string // full commit SHA; the release's name on every host
	Artifact string // path of the packed artifact (tar.gz) on the Immunity machine
	Checksum string // sha256 of Artifact, hex
}

// Host is one server of a region as a deployer sees it.
type Host struct {
	App    string
	Region string
	Name   string
	// Address is deployer-specific: empty for local, "user@host:port" for ssh.
	Address string
	// Base is the folder holding releases/ and current on the host.
	Base string
	// Port is where the app listens on the host (local deployer: assigned per host).
	Port int
	// URL is the base URL the app answers on; health checks, tests and metrics use it.
	URL string
}

// String names the host in logs and errors: "prod3/host1".
func (h Host) String() string { return h.Region + "/" + h.Name }

// HostState is what a host holds right now.
type HostState struct {
	Current  string   // SHA `current` points at, "" when nothing is live
	Previous string   // SHA `previous` points at, "" when none
	Releases []string // complete releases present on the host, newest first
}

// Deployer puts releases on hosts and switches them live. Implementations are safe for
// concurrent use on different hosts.
type Deployer interface {
	// Upload places rel under releases/<sha> on the host. A release already present and
	// verified is not uploaded again. A half-written upload never looks complete.
	Upload(ctx context.Context, h Host, rel Release) error
	// Activate atomically points `current` at releases/<sha> (remembering the old one as
	// `previous`), restarts the app and waits until it is healthy; then prunes old
	// releases beyond the keep limit, never the live or previous one.
	Activate(ctx context.Context, h Host, sha string) error
	// Switch is Activate's first half: it atomically points `current` at releases/<sha>
	// (remembering the old one as `previous`) and starts nothing. Switching to the release
	// already current changes nothing. ErrNotFound: the release is not on the host.
	Switch(ctx context.Context, h Host, sha string) error
	// Restart is Activate's second half: it (re)starts the app of the host's current
	// release, waits until it is healthy, then prunes old releases. It may be repeated.
	Restart(ctx context.Context, h Host) error
	// State reports what the host holds.
	State(ctx context.Context, h Host) (HostState, error)
	// Healthy waits, within the deployer's start limit, until the app on the host passes
	// its health check (Probe, or the region's health command). It does not restart
	// anything: a restarted Immunity uses it to re-check a switch that may have finished.
	Healthy(ctx context.Context, h Host) error
	// Close stops whatever the deployer keeps open (connections; the local deployer's
	// processes are left running unless StopAll is called).
	Close() error
}

// Adopter is a deployer whose hosts' apps are processes of the server itself (the local
// deployer), looked after by the server that works the app: the one holding the app's
// lease adopts them when it takes the app over, and lets go of them when it loses it.
type Adopter interface {
	// EnsureRunning adopts the app running on the host (alive and healthy), or starts the
	// host's current release when none runs; a host with nothing live is left alone.
	EnsureRunning(ctx context.Context, h Host) error
	// Forget lets go of the host's app without stopping it: another server works it now.
	Forget(h Host)
}

// ErrNotFound is returned by Activate when the release is not on the host.
var ErrNotFound = errors.New("release not on host")

// Tests is an integration test command to run against one host: an argv, relative to the
// release folder when it names a program shipped in the release, with exactly the
// environment given (nothing of the caller's own) and a time limit.
type Tests struct {
	Command []string
	Env     map[string]string
	Timeout time.Duration
}

// baseEnv names the variables of Immunity's own environment that an app or a test
// command started on Immunity's machine sees (BaseEnv). Nothing else of it is passed on:
// not its tokens, keys or secrets.
var baseEnv = []string{"PATH", "HOME", "USER", "LOGNAME", "LANG", "TZ", "TMPDIR"}

// BaseEnv is the part of Immunity's own environment that an app or a test command run on
// this machine is given, as KEY=VALUE; what the config names and the IMMUNITY_* facts of
// the run are added to it by the caller.
func BaseEnv() []string {
	var env []string
	for _, k := range baseEnv {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

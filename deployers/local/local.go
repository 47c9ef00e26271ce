// Package local is the embedded default deployer: every host is a folder on this machine and
// the app runs as a process of this machine. It backs the demo and single-machine installs.
//
// A host's folder (Host.Base, set by the engine to <data>/hosts/<app>/<region>/<host>/) holds:
//
//	releases/<sha>/   one unpacked artifact each; complete once it holds .immunity-release
//	current           symlink -> releases/<sha>, the live release
//	previous          symlink -> releases/<sha>, the one before it (rollback target)
//	app.log           the app's stdout and stderr, appended across starts
//	app.pid           the pid of the running app (leader of its own process group)
//
// Upload verifies the artifact's sha256, unpacks it into releases/<sha>.tmp-<random>, writes
// the .immunity-release marker (holding the checksum) last and renames the folder into
// place, so a crash never leaves a release that looks complete. Activate points `previous`
// and then `current` at their releases by renaming a fresh temporary symlink over each (never
// rm + ln), stops the old process group (SIGTERM, SIGKILL after 5s), starts Options.Run in
// the release folder in a new process group (so it outlives a crash of Immunity), and waits
// for its health check. Then it prunes releases beyond Options.Keep, never the live or
// previous one (whatever they hold): each is renamed aside to releases/.<sha>.trash-<random>
// first, then deleted, so a prune cut part-way never leaves a folder that looks like a
// release but misses files; the next prune or upload deletes such leftovers. A failed health check leaves `current` on the failed release with its app
// stopped: the engine decides to roll back (Activate of the previous release).
//
// One Deployer serves one app. Calls on different hosts run concurrently; calls on the same
// host are serialised. After a restart of Immunity, or when a server takes an app over from
// another sharing the data_dir (deployers.Adopter), EnsureRunning adopts the app processes
// still running (app.pid, health check) and restarts the ones that died; Forget lets go of
// them, running, when another server works the app. Every call checks the context's fence
// (deployers.WithFence) right before each change it makes on a host, so a server paused
// in the middle of a call that lost the app meanwhile changes nothing more.
package local

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"regexp"
	"sync"
	"time"

	"github.com/immunity-app/immunity/deployers"
)

// Options configures the deployer of one app.
type Options struct {
	// Run is the app's argv; a program path with a slash is relative to the release folder
	// (e.g. [bin/papi]), a bare name is looked up in PATH.
	Run []string
	// Env is added to the app's environment (after deployers.BaseEnv: PATH, HOME, USER, LANG, TZ, TMPDIR of
	// Immunity's own environment, before PORT and IMMUNITY_*, which cannot be overridden).
	Env map[string]string
	// Health is the path that answers 2xx once the app is ready, e.g. /healthz (see
	// deployers.Probe). Empty means the app counts as started as soon as its process runs.
	Health string
	// HealthTimeout bounds one health request; default deployers.DefaultHealthTimeout.
	HealthTimeout time.Duration
	// StartTimeout bounds the wait for a healthy app; default 10s.
	StartTimeout time.Duration
	// Keep is the number of releases kept per host (live and previous included); default 5.
	Keep int
	// Log receives what the deployer does; nil discards.
	Log *slog.Logger
}

// Validate reports a configuration the deployer cannot run.
func (o Options) Validate() error {
	if len(o.Run) == 0 || o.Run[0] == "" {
		return errors.New("local deployer: Run needs the app's command, e.g. [bin/papi]")
	}
	if o.StartTimeout < 0 || o.Keep < 0 {
		return errors.New("local deployer: StartTimeout and Keep must not be negative")
	}
	return nil
}

// Deployer deploys to folders and processes of this machine.
type Deployer struct {
	opts Options
	log  *slog.Logger

	mu    sync.Mutex
	hosts map[string]*host // by cleaned Host.Base
}

// host is the deployer's view of one host folder; mu serialises calls on it.
type host struct {
	mu   sync.Mutex
	base string
	proc *process // the app this deployer started or adopted, nil if none
}

var (
	_ deployers.Deployer = (*Deployer)(nil)
	_ deployers.Adopter  = (*Deployer)(nil)
)

// New returns a deployer for one app. Call Options.Validate first to report bad options;
// New fills in defaults.
func New(opts Options) *Deployer {
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 10 * time.Second
	}
	if opts.Keep == 0 {
		opts.Keep = 5
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Deployer{opts: opts, log: log, hosts: map[string]*host{}}
}

// lock returns the host's entry, locked (the caller unlocks it), after making h.Base
// absolute.
func (d *Deployer) lock(h *deployers.Host) (*host, error) {
	if h.Base == "" {
		return nil, fmt.Errorf("host %s has no base folder", h)
	}
	abs, err := filepath.Abs(h.Base)
	if err != nil {
		return nil, fmt.Errorf("host %s: base folder: %w", h, err)
	}
	h.Base = abs
	d.mu.Lock()
	e := d.hosts[abs]
	if e == nil {
		e = &host{base: abs}
		d.hosts[abs] = e
	}
	d.mu.Unlock()
	e.mu.Lock()
	return e, nil
}

// Close releases nothing: app processes keep running (see StopAll).
func (d *Deployer) Close() error { return nil }

var shaPattern = regexp.MustCompile(`^[0-9A-Za-z_-]{1,128}$`)

func checkSHA(sha string) error {
	if !shaPattern.MatchString(sha) {
		return fmt.Errorf("release name %q: want a commit SHA", sha)
	}
	return nil
}

func short(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	return sha
}

func (d *Deployer) hostLog(h deployers.Host) *slog.Logger {
	return d.log.With("app", h.App, "region", h.Region, "host", h.Name)
}

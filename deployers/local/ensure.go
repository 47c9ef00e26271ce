package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/immunity-app/immunity/deployers"
)

// stop stops the host's app: the one this deployer runs, or else the one app.pid names if
// it is this host's app (a group leader running in one of the host's releases). Strays
// go too: apps of the host that app.pid does not name (a crash of Immunity between
// starting an app and recording its pid leaves one, holding the host's port).
//
// Work that was cancelled (a server that lost the app's lease) stops nothing, nor does
// work whose fence (deployers.WithFence) refuses before a process is signalled.
func (d *Deployer) stop(ctx context.Context, h deployers.Host, e *host) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("stop the app: %w", err)
	}
	p := e.proc
	if p == nil {
		if pid := readPid(h.Base); pid > 0 && alive(pid) && ownsPid(h.Base, pid) {
			p = &process{pid: pid}
		}
	}
	for _, pid := range strays(h.Base) {
		if p != nil && pid == p.pid {
			continue
		}
		if err := deployers.CheckFence(ctx); err != nil {
			return fmt.Errorf("stop a stray app: %w", err)
		}
		s := &process{pid: pid}
		if err := s.terminate(ctx, stopGrace); err != nil {
			return fmt.Errorf("stop a stray app: %w", err)
		}
		d.hostLog(h).WarnContext(ctx, "stray app stopped", "pid", pid)
	}
	if p == nil {
		return nil
	}
	if err := deployers.CheckFence(ctx); err != nil {
		return fmt.Errorf("stop the app: %w", err)
	}
	if err := p.terminate(ctx, stopGrace); err != nil {
		return fmt.Errorf("stop the app: %w", err)
	}
	e.proc = nil
	if readPid(h.Base) == p.pid {
		os.Remove(filepath.Join(h.Base, pidFile))
	}
	d.hostLog(h).InfoContext(ctx, "app stopped", "pid", p.pid)
	return nil
}

// strays lists the group leaders running in the host's releases (by /proc; none where
// there is no /proc).
func strays(base string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, ent := range entries {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil || pid == os.Getpid() || !alive(pid) {
			continue
		}
		if ownsPid(base, pid) {
			if _, err := os.Readlink("/proc/" + ent.Name() + "/cwd"); err == nil {
				out = append(out, pid)
			}
		}
	}
	return out
}

// ownsPid checks that pid leads its own process group and runs inside the host's releases,
// so a stale app.pid reused by an unrelated process is never signalled.
func ownsPid(base string, pid int) bool {
	if pgid, err := syscall.Getpgid(pid); err != nil || pgid != pid {
		return false
	}
	cwd, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/cwd")
	if err != nil {
		return os.IsNotExist(err) // no /proc on this system: the group check must do
	}
	releases := filepath.Join(base, releasesDir)
	if resolved, err := filepath.EvalSymlinks(releases); err == nil {
		releases = resolved
	}
	return strings.HasPrefix(cwd, releases+string(filepath.Separator))
}

// EnsureRunning makes sure the host's current release is running, after a restart of
// Immunity or when this server takes the app over from another: it adopts the process
// app.pid names when it is alive and healthy, and otherwise starts current again. A host
// with nothing live is left alone.
func (d *Deployer) EnsureRunning(ctx context.Context, h deployers.Host) error {
	e, err := d.lock(&h)
	if err != nil {
		return err
	}
	defer e.mu.Unlock()
	if err := d.ensure(ctx, h, e); err != nil {
		return fmt.Errorf("ensure %s runs on %s: %w", h.App, h, err)
	}
	return nil
}

func (d *Deployer) ensure(ctx context.Context, h deployers.Host, e *host) error {
	cur, err := linkSHA(h.Base, currentLink)
	if err != nil || cur == "" {
		return err
	}
	if e.proc != nil {
		if gone, _ := e.proc.exited(); gone && readPid(h.Base) != e.proc.pid {
			e.proc = nil // another server restarted the app meanwhile: app.pid names it
		}
	}
	if e.proc == nil {
		if pid := readPid(h.Base); pid > 0 && alive(pid) && ownsPid(h.Base, pid) {
			e.proc = &process{pid: pid}
		}
	}
	if e.proc != nil {
		if gone, _ := e.proc.exited(); !gone && d.waitHealthy(ctx, h, e.proc) == nil {
			d.hostLog(h).InfoContext(ctx, "app adopted", "sha", cur, "pid", e.proc.pid)
			return nil
		}
		if err := d.stop(ctx, h, e); err != nil {
			return err
		}
	}
	if ok, _ := complete(h.Base, cur); !ok {
		return fmt.Errorf("current points at %s: %w", short(cur), deployers.ErrNotFound)
	}
	return d.start(ctx, h, e, cur)
}

// Forget lets go of the host's app without stopping it (it keeps running and serving):
// another server works the app now and may stop, restart or adopt it. A later
// EnsureRunning adopts it again by app.pid.
func (d *Deployer) Forget(h deployers.Host) {
	e, err := d.lock(&h)
	if err != nil {
		return
	}
	defer e.mu.Unlock()
	if e.proc != nil {
		d.hostLog(h).Info("app let go: another server works it", "pid", e.proc.pid)
		e.proc = nil
	}
}

// Stop stops the host's app (started or adopted by this deployer, or named by app.pid).
func (d *Deployer) Stop(ctx context.Context, h deployers.Host) error {
	e, err := d.lock(&h)
	if err != nil {
		return err
	}
	defer e.mu.Unlock()
	if err := d.stop(ctx, h, e); err != nil {
		return fmt.Errorf("stop %s on %s: %w", h.App, h, err)
	}
	return nil
}

// StopAll stops every app process this deployer started or adopted, in parallel.
func (d *Deployer) StopAll(ctx context.Context) error {
	d.mu.Lock()
	entries := make([]*host, 0, len(d.hosts))
	for _, e := range d.hosts {
		entries = append(entries, e)
	}
	d.mu.Unlock()
	var wg sync.WaitGroup
	errs := make([]error, len(entries))
	for i, e := range entries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.mu.Lock()
			defer e.mu.Unlock()
			if p := e.proc; p != nil {
				if errs[i] = p.terminate(ctx, stopGrace); errs[i] == nil {
					e.proc = nil
					if readPid(e.base) == p.pid {
						os.Remove(filepath.Join(e.base, pidFile))
					}
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Healthy waits, up to StartTimeout, until the app on the host (started or adopted by
// this deployer, or named by app.pid) passes its health check.
func (d *Deployer) Healthy(ctx context.Context, h deployers.Host) error {
	e, err := d.lock(&h)
	if err != nil {
		return err
	}
	defer e.mu.Unlock()
	if e.proc == nil {
		if pid := readPid(h.Base); pid > 0 && alive(pid) && ownsPid(h.Base, pid) {
			e.proc = &process{pid: pid}
		}
	}
	if e.proc == nil {
		return fmt.Errorf("health of %s on %s: the app is not running", h.App, h)
	}
	if err := d.waitHealthy(ctx, h, e.proc); err != nil {
		return fmt.Errorf("health of %s on %s: %w", h.App, h, err)
	}
	return nil
}

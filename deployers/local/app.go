package local

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/immunity-app/immunity/deployers"
)

// stopGrace is how long an app gets to exit on SIGTERM before SIGKILL.
const stopGrace = 5 * time.Second

// start runs the app of the current release in its own process group and waits until it
// is healthy. On failure the process is stopped and the error carries the log's last lines.
func (d *Deployer) start(ctx context.Context, h deployers.Host, e *host, sha string) error {
	dir, err := filepath.EvalSymlinks(filepath.Join(h.Base, currentLink))
	if err != nil {
		return fmt.Errorf("resolve current: %w", err)
	}
	logPath := filepath.Join(h.Base, logFile)
	if err := deployers.CheckFence(ctx); err != nil {
		return err
	}
	rotateLog(logPath)
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	offset, _ := logf.Seek(0, io.SeekEnd)
	fmt.Fprintf(logf, "--- immunity: starting %s at %s\n", sha, time.Now().UTC().Format(time.RFC3339))
	cmd := exec.Command(d.program(dir), d.opts.Run[1:]...)
	cmd.Dir = dir
	cmd.Env = d.env(h, sha)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err = deployers.CheckFence(ctx); err == nil {
		err = cmd.Start()
	}
	logf.Close()
	if err != nil {
		return fmt.Errorf("start %s: %w", strings.Join(d.opts.Run, " "), err)
	}
	p := &process{pid: cmd.Process.Pid, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	e.proc = p
	// A server paused while it started the process may go on once another works the
	// app: app.pid then names the other's app, and stays so.
	if err := deployers.CheckFence(ctx); err != nil {
		d.stopStarted(ctx, h, e, p)
		return err
	}
	if err := writePid(h.Base, p.pid); err != nil {
		d.stopStarted(ctx, h, e, p)
		return err
	}
	if err := d.waitHealthy(ctx, h, p); err != nil {
		d.stopStarted(ctx, h, e, p)
		return fmt.Errorf("%w; last lines of %s:\n%s", err, logPath, logTail(logPath, offset))
	}
	d.hostLog(h).InfoContext(ctx, "app started", "sha", sha, "pid", p.pid)
	return nil
}

// program resolves Run[0]: relative to the release folder when it holds a slash.
func (d *Deployer) program(dir string) string {
	prog := d.opts.Run[0]
	if strings.ContainsRune(prog, '/') && !filepath.IsAbs(prog) {
		return filepath.Join(dir, prog)
	}
	return prog
}

// env is the app's environment: deployers.BaseEnv, Options.Env, then what Immunity sets.
// Immunity's secrets are not passed on.
func (d *Deployer) env(h deployers.Host, sha string) []string {
	env := deployers.BaseEnv()
	keys := make([]string, 0, len(d.opts.Env))
	for k := range d.opts.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+d.opts.Env[k])
	}
	return append(env,
		"PORT="+strconv.Itoa(h.Port),
		"IMMUNITY_APP="+h.App,
		"IMMUNITY_RELEASE="+sha,
		"IMMUNITY_REGION="+h.Region,
		"IMMUNITY_HOST="+h.Name,
	)
}

// waitHealthy polls the health check every 50ms until it answers 2xx, the process exits
// or StartTimeout passes.
func (d *Deployer) waitHealthy(ctx context.Context, h deployers.Host, p *process) error {
	if d.opts.Health == "" {
		return nil
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, d.opts.StartTimeout)
	defer cancel()
	url := healthURL(h) + d.opts.Health
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		if gone, err := p.exited(); gone {
			return fmt.Errorf("app exited before it was healthy (%v)", exitText(err))
		}
		err := deployers.Probe(ctx, url, d.opts.HealthTimeout)
		if err == nil {
			return nil
		}
		if ctx.Err() == nil || last == nil { // keep the last real answer, not the deadline
			last = err
		}
		select {
		case <-ctx.Done():
			if err := parent.Err(); err != nil {
				return fmt.Errorf("wait for the health check at %s: %w", url, err)
			}
			return fmt.Errorf("app not healthy at %s after %s: %v", url, d.opts.StartTimeout, last)
		case <-p.done:
		case <-tick.C:
		}
	}
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

func healthURL(h deployers.Host) string {
	if h.URL != "" {
		return strings.TrimSuffix(h.URL, "/")
	}
	return "http://127.0.0.1:" + strconv.Itoa(h.Port)
}

// logTail returns the last lines the app wrote since offset (at most 20 lines, 4 KiB).
func logTail(path string, offset int64) string {
	f, err := os.Open(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	defer f.Close()
	const maxBytes = 4 << 10
	if fi, err := f.Stat(); err == nil && fi.Size()-offset > maxBytes {
		offset = fi.Size() - maxBytes
	}
	f.Seek(offset, io.SeekStart)
	b, _ := io.ReadAll(f)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return strings.Join(lines, "\n")
}

// maxLog is the size past which app.log is moved to app.log.1 at the next start.
const maxLog = 10 << 20

func rotateLog(path string) {
	if fi, err := os.Stat(path); err == nil && fi.Size() > maxLog {
		os.Rename(path, path+".1")
	}
}

func writePid(base string, pid int) error {
	tmp := filepath.Join(base, pidFile+tmpInfix+randomSuffix())
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(base, pidFile))
}

func readPid(base string) int {
	b, err := os.ReadFile(filepath.Join(base, pidFile))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// stopStarted stops the process a start that failed (or was cancelled) began, and only
// it: other apps of the host found now are not this start's to stop (a server whose work
// was cancelled because it lost the app's lease must leave alone the app its successor
// started meanwhile).
func (d *Deployer) stopStarted(ctx context.Context, h deployers.Host, e *host, p *process) {
	if err := p.terminate(context.WithoutCancel(ctx), stopGrace); err != nil {
		d.hostLog(h).WarnContext(ctx, "stop the app that failed to start", "pid", p.pid, "err", err)
		return
	}
	if e.proc == p {
		e.proc = nil
	}
	if readPid(h.Base) == p.pid {
		os.Remove(filepath.Join(h.Base, pidFile))
	}
	d.hostLog(h).InfoContext(ctx, "app stopped", "pid", p.pid)
}

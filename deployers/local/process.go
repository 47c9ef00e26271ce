package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// process is an app process group this deployer started (done is closed when it exits) or
// adopted after a restart of Immunity (done is nil: liveness is polled by pid).
type process struct {
	pid  int
	done chan struct{}
	err  error // exit error, valid once done is closed
}

// exited reports whether the process is gone, and how it ended when known.
func (p *process) exited() (bool, error) {
	if p.done == nil {
		return !alive(p.pid), nil
	}
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// waitExit waits up to d (or until ctx ends) for the process to exit.
func (p *process) waitExit(ctx context.Context, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if gone, _ := p.exited(); gone {
			return true
		}
		select {
		case <-p.done: // nil for adopted processes: never ready
		case <-tick.C:
		case <-timer.C:
			gone, _ := p.exited()
			return gone
		case <-ctx.Done():
			gone, _ := p.exited()
			return gone
		}
	}
}

// terminate stops the process group: SIGTERM, then SIGKILL after grace; it also kills what
// is left of the group once the leader is gone.
func (p *process) terminate(ctx context.Context, grace time.Duration) error {
	if gone, _ := p.exited(); gone {
		return nil // its pid may belong to someone else by now
	}
	syscall.Kill(-p.pid, syscall.SIGTERM)
	if !p.waitExit(ctx, grace) {
		syscall.Kill(-p.pid, syscall.SIGKILL)
		if !p.waitExit(context.WithoutCancel(ctx), 2*time.Second) {
			return fmt.Errorf("process %d survived SIGKILL", p.pid)
		}
	}
	syscall.Kill(-p.pid, syscall.SIGKILL)
	return nil
}

// alive reports whether pid names a running (not zombie) process.
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return !os.IsNotExist(err)
	}
	// The state follows the parenthesised command name: "pid (comm) S ...".
	if i := strings.LastIndexByte(string(stat), ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] != 'Z' && stat[i+2] != 'X'
	}
	return true
}

package ssh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/immunity-app/immunity/deployers"
	"github.com/immunity-app/immunity/internal/wait"
)

// remoteError is a command that ran on the host and exited non-zero.
type remoteError struct {
	code   int
	stderr string
}

func (e *remoteError) Error() string {
	if e.stderr == "" {
		return fmt.Sprintf("remote command exited %d", e.code)
	}
	return fmt.Sprintf("remote command exited %d: %s", e.code, e.stderr)
}

// exitCode returns the remote exit code of err, or -1.
func exitCode(err error) int {
	var r *remoteError
	if errors.As(err, &r) {
		return r.code
	}
	return -1
}

// command is one remote command: a script from a template, with optional stdin/stdout.
type command struct {
	script string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer // also captured (the tail) for the error
	// change: the command changes the host, so it is started only once the context's
	// fence (deployers.CheckFence) lets it, checked right before it starts.
	change bool
}

// fenceRefusal is the answer of a fence that refused a command: nothing was started.
type fenceRefusal struct{ err error }

func (f *fenceRefusal) Error() string { return f.err.Error() }
func (f *fenceRefusal) Unwrap() error { return f.err }

// refusedByFence reports whether err is a fence's refusal of a command.
func refusedByFence(err error) bool {
	var f *fenceRefusal
	return errors.As(err, &f)
}

// run runs c on t's pooled connection. A session the server refuses (at its MaxSessions
// limit, when many base folders share one address) is retried until ctx ends; a session
// that cannot be opened on a pooled connection is retried once on a fresh one; a
// connection that fails mid-command is dropped (the command is not retried: the caller
// decides).
func (p *pool) run(ctx context.Context, t target, c command) error {
	redialled := false
	for pause := 20 * time.Millisecond; ; pause = min(2*pause, time.Second) {
		client, err := p.get(ctx, t)
		if err != nil {
			return err
		}
		sess, err := newSession(ctx, client)
		var refused *ssh.OpenChannelError
		switch {
		case err == nil:
		case errors.As(err, &refused):
			if serr := wait.Sleep(ctx, pause); serr != nil {
				return fmt.Errorf("open session on %s: %w (%w)", t.hostport, err, serr)
			}
			continue
		case ctx.Err() != nil:
			return fmt.Errorf("open session on %s: %w", t.hostport, ctx.Err())
		case !redialled:
			p.drop(t, client)
			redialled = true
			continue
		default:
			p.drop(t, client)
			return fmt.Errorf("open session on %s: %w", t.hostport, err)
		}
		if c.change {
			// Right before the command starts, after any wait for the connection or a
			// session: a server paused meanwhile may have lost the work.
			if err := deployers.CheckFence(ctx); err != nil {
				sess.Close()
				return &fenceRefusal{err}
			}
		}
		err = runSession(ctx, sess, c)
		var r *remoteError
		if err != nil && !errors.As(err, &r) && ctx.Err() == nil {
			// The connection failed under the command (a cancelled command only closes its
			// own session: other hosts may be using the same connection).
			p.drop(t, client)
		}
		return err
	}
}

// newSession opens a session, giving up when ctx ends (a connection that hangs is closed
// by its keepalive).
func newSession(ctx context.Context, c *ssh.Client) (*ssh.Session, error) {
	type opened struct {
		s   *ssh.Session
		err error
	}
	ch := make(chan opened, 1)
	go func() {
		s, err := c.NewSession()
		ch <- opened{s, err}
	}()
	select {
	case o := <-ch:
		return o.s, o.err
	case <-ctx.Done():
		go func() {
			if o := <-ch; o.s != nil {
				o.s.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

func runSession(ctx context.Context, sess *ssh.Session, c command) error {
	defer sess.Close()
	var tail tailBuffer
	sess.Stdin = c.stdin
	sess.Stdout = c.stdout
	sess.Stderr = &tail
	if c.stderr != nil {
		sess.Stderr = io.MultiWriter(&tail, c.stderr)
	}
	if err := sess.Start(c.script); err != nil {
		return fmt.Errorf("start remote command: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()
	select {
	case err := <-done:
		var exit *ssh.ExitError
		if errors.As(err, &exit) {
			return &remoteError{code: exit.ExitStatus(), stderr: tail.String()}
		}
		if err != nil {
			return fmt.Errorf("connection lost during remote command: %w", err)
		}
		return nil
	case <-ctx.Done():
		sess.Signal(ssh.SIGKILL)
		sess.Close()
		return fmt.Errorf("remote command stopped: %w", ctx.Err())
	}
}

// tailBuffer keeps the last 2 KiB written, for error messages.
type tailBuffer struct{ b bytes.Buffer }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b.Write(p)
	if t.b.Len() > 4096 {
		rest := t.b.Bytes()[t.b.Len()-2048:]
		t.b.Reset()
		t.b.Write(rest)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return strings.TrimSpace(t.b.String()) }

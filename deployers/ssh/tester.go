package ssh

import (
	"bytes"
	"context"
	"fmt"
	"sync"

	"github.com/immunity-app/immunity/deployers"
)

// RunTests runs an integration test command on the host itself, over the pooled
// connection, in BASE/releases/<sha> with exactly t.Env in its environment, and returns
// the tail of its output.
func (d *Deployer) RunTests(ctx context.Context, h deployers.Host, sha string, t deployers.Tests) (string, error) {
	if err := checkName(sha); err != nil {
		return "", err
	}
	if t.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t.Timeout)
		defer cancel()
	}
	var out lockedBuffer
	err := d.runIn(ctx, h, "releases/"+sha, t.Command, t.Env, &out, &out)
	if ctx.Err() == context.DeadlineExceeded {
		err = fmt.Errorf("timed out after %s", t.Timeout)
	}
	if err != nil {
		err = fmt.Errorf("tests of %s@%s on %s: %w", h.App, short(sha), h, err)
	}
	return out.tail(4000), err
}

// lockedBuffer collects stdout and stderr, written from two goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.b.String()
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

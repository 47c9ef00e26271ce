package ssh

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/immunity-app/immunity/deployers"
	"github.com/immunity-app/immunity/pipeline"
	"github.com/immunity-app/immunity/pipeline/config"
)

// Tester runs an app's integration tests on the host itself, over the pooled connection,
// for regions whose ssh section says tests_on_host; every other host goes to Fallback
// (the engine's tester on the Immunity machine). Tests run in BASE/releases/<sha> with
// IMMUNITY_BASE_URL, IMMUNITY_APP, IMMUNITY_REGION, IMMUNITY_HOST and IMMUNITY_RELEASE set.
type Tester struct {
	Deployer *Deployer
	Fallback pipeline.Tester
}

var _ pipeline.Tester = Tester{}

// Test runs the tests and returns the tail of their output.
func (t Tester) Test(ctx context.Context, a *config.App, rel deployers.Release, h deployers.Host) (string, error) {
	r, _, ok := a.Region(h.Region)
	if !ok || r.Deployer != "ssh" || r.SSH == nil || !r.SSH.TestsOnHost {
		return t.Fallback.Test(ctx, a, rel, h)
	}
	if err := checkName(rel.SHA); err != nil {
		return "", err
	}
	timeout := a.Tests.Timeout.Or(2 * time.Minute)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	env := map[string]string{}
	for k, v := range a.Tests.Env {
		env[k] = v
	}
	for k, v := range map[string]string{"IMMUNITY_BASE_URL": h.URL, "IMMUNITY_APP": a.Name, "IMMUNITY_REGION": h.Region, "IMMUNITY_HOST": h.Name, "IMMUNITY_RELEASE": rel.SHA} {
		env[k] = v
	}
	var out lockedBuffer
	err := t.Deployer.runIn(ctx, h, "releases/"+rel.SHA, a.Tests.Command, env, &out, &out)
	if ctx.Err() == context.DeadlineExceeded {
		err = fmt.Errorf("timed out after %s", timeout)
	}
	if err != nil {
		err = fmt.Errorf("tests of %s@%s on %s: %w", a.Name, short(rel.SHA), h, err)
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

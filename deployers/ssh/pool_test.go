package ssh

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/immunity-app/immunity/deployers"
	"github.com/immunity-app/immunity/deployers/ssh/sshtest"
)

// heldDialer counts dials and holds each one, as a slow network would, until released;
// a dial whose context ends meanwhile fails as net.Dialer's does.
type heldDialer struct {
	dials   atomic.Int64
	started chan struct{} // receives once per dial
	release chan struct{} // closed to let dials go on
}

func (h *heldDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	h.dials.Add(1)
	h.started <- struct{}{}
	select {
	case <-h.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

// TestAShortDeadlineDoesNotCutASharedDial: a caller with a short deadline and one with a
// long one need the same connection at once. The first gives up when its deadline ends;
// the dial it began goes on, and the second gets the connection from it: one dial.
func TestAShortDeadlineDoesNotCutASharedDial(t *testing.T) {
	t.Parallel()
	env := sshtest.New(t)
	srv, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	dial := &heldDialer{started: make(chan struct{}, 8), release: make(chan struct{})}
	d := New(Options{
		Settings: func(deployers.Host) Settings {
			return Settings{KeyFile: env.KeyFile, KnownHosts: env.KnownHosts, Timeout: time.Minute}
		},
		Dial: dial.DialContext,
	})
	t.Cleanup(func() { d.Close() })
	base := t.TempDir()
	if err := os.MkdirAll(filepath.Join(base, "current"), 0o755); err != nil {
		t.Fatal(err)
	}
	h := deployers.Host{App: "papi", Region: "sandbox1", Name: "host1", Address: env.Address(srv), Base: base}
	ctx := context.Background()

	short, cancel := context.WithTimeout(ctx, time.Millisecond)
	defer cancel()
	shortDone := make(chan error, 1)
	go func() { shortDone <- d.Run(short, h, []string{"true"}, nil, nil, nil) }()
	select { // the short caller's dial is under way
	case <-dial.started:
	case <-time.After(time.Minute):
		t.Fatal("no dial began for the first caller")
	}
	long, cancelLong := context.WithTimeout(ctx, 2*time.Minute)
	defer cancelLong()
	longDone := make(chan error, 1)
	go func() { longDone <- d.Run(long, h, []string{"true"}, nil, nil, nil) }()

	if err := <-shortDone; !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("the caller with the short deadline: %v, want its deadline's error", err)
	}
	close(dial.release) // the network answers only after the short deadline ended
	if err := <-longDone; err != nil {
		t.Fatalf("the caller with the long deadline: %v, want the shared connection", err)
	}
	if n := dial.dials.Load(); n != 1 {
		t.Errorf("%d dials, want 1: the short deadline must not cut the dial the other waits for", n)
	}
}

package github

import (
	"bytes"
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/immunity-app/immunity/bot"
)

// blockingCommands holds every command until released or cancelled.
type blockingCommands struct {
	entered chan struct{}
	release chan struct{}
	done    atomic.Bool
}

func (b *blockingCommands) Exec(ctx context.Context, r bot.Request) bot.Reply {
	close(b.entered)
	select {
	case <-b.release:
		b.done.Store(true)
		return bot.Reply{Text: "ok", OK: true}
	case <-ctx.Done():
		return bot.Reply{Text: "cancelled"}
	}
}

// startSlow posts a command and returns once the command is running; the webhook has
// answered 202 by then.
func startSlow(t *testing.T) (*harness, *blockingCommands) {
	h := newHarness(t)
	h.fake.SetPermission("Codertocat", "write")
	cmds := &blockingCommands{entered: make(chan struct{}), release: make(chan struct{})}
	h.app.cmd = cmds
	body := h.prComment(t, "/promote prod3")
	req, _ := http.NewRequest("POST", h.http.URL+"/webhooks/github", bytes.NewReader(body))
	req.Header.Set("X-GitHub-Event", "issue_comment")
	req.Header.Set("X-GitHub-Delivery", "slow")
	req.Header.Set("X-Hub-Signature-256", sign(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 202 {
		t.Fatalf("answered %d, want 202", resp.StatusCode)
	}
	<-cmds.entered
	return h, cmds
}

// TestCloseDrains: the webhook answers while the command still runs, and Close waits for it.
func TestCloseDrains(t *testing.T) {
	t.Parallel()
	h, cmds := startSlow(t)
	closed := make(chan error, 1)
	go func() { closed <- h.app.Close(context.Background()) }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a delivery was still being handled", err)
	default:
	}
	close(cmds.release)
	if err := <-closed; err != nil {
		t.Errorf("Close: %v", err)
	}
	if !cmds.done.Load() {
		t.Error("the command did not finish")
	}
	if got := h.deliveries(t)["slow"]; got != "done" {
		t.Errorf("delivery state %q, want done", got)
	}
}

// TestCloseCancels: when Close's context ends first, the work is cancelled and Close says so.
func TestCloseCancels(t *testing.T) {
	t.Parallel()
	h, cmds := startSlow(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := h.app.Close(ctx); err == nil {
		t.Error("Close with an expired context reported a clean drain")
	}
	if cmds.done.Load() {
		t.Error("the command was not cancelled")
	}
}

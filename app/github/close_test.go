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

// blockingCommands holds every command until released.
type blockingCommands struct {
	release chan struct{}
	done    atomic.Bool
}

func (b *blockingCommands) Exec(ctx context.Context, r bot.Request) bot.Reply {
	<-b.release
	b.done.Store(true)
	return bot.Reply{Text: "ok", OK: true}
}

// TestAnswersBeforeWorkAndDrains: the webhook answers while the command is still running,
// and Close waits for it; a Close whose context ends first cancels and says so.
func TestAnswersBeforeWorkAndDrains(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.fake.SetPermission("Codertocat", "write")
	cmds := &blockingCommands{release: make(chan struct{})}
	h.app.cmd = cmds
	body := fixture(t, "issue_comment.created.json", map[string]any{"comment.body": "/promote prod3", "installation.id": 42})
	req, _ := http.NewRequest("POST", h.http.URL+"/webhooks/github", bytes.NewReader(body))
	req.Header.Set("X-GitHub-Event", "issue_comment")
	req.Header.Set("X-GitHub-Delivery", "slow")
	req.Header.Set("X-Hub-Signature-256", sign(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 202 || cmds.done.Load() {
		t.Fatalf("answered %d with the command done=%v; want 202 before the command ends", resp.StatusCode, cmds.done.Load())
	}
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	closed := make(chan error, 1)
	go func() { closed <- h.app.Close(short) }()
	time.Sleep(100 * time.Millisecond) // Close's context has ended; it waits for the work to see the cancel
	close(cmds.release)
	if err := <-closed; err == nil {
		t.Error("Close with an expired context reported a clean drain")
	}
	if !cmds.done.Load() {
		t.Error("Close returned before the delivery's work ended")
	}
	if got := h.deliveries(t)["slow"]; got != "done" {
		t.Errorf("delivery state %q, want done", got)
	}
}

package pipeline

import (
	"context"
	"time"

	"github.com/immunity-app/immunity/pipeline/config"
	"github.com/immunity-app/immunity/store"
)

// poll watches the branch heads of apps with repo.poll set and starts a run when one moves
// to a commit that has no run yet (the original Immunity's way of noticing new commits).
func (e *Engine) poll(ctx context.Context, a *config.App) {
	defer e.wg.Done()
	t := time.NewTicker(a.Repo.Poll.Duration)
	defer t.Stop()
	for {
		e.pollOnce(ctx, a)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (e *Engine) pollOnce(ctx context.Context, a *config.App) {
	l, held := e.lease(a.Name)
	if !held {
		return // the server holding the app's lease polls
	}
	ctx = store.WithLease(ctx, l)
	c, err := e.builder.Commit(ctx, a, "")
	if err != nil {
		e.log.Warn("poll", "app", a.Name, "err", err)
		return
	}
	runs, err := e.st.Runs(ctx, a.Name, false, 1)
	if err != nil || (len(runs) > 0 && runs[0].SHA == c.SHA) {
		return
	}
	if _, err := e.st.Release(ctx, a.Name, c.SHA); err == nil {
		return // already built (seeded, or run before)
	}
	if _, err := e.StartRun(ctx, a.Name, c.SHA, Trigger{Kind: "poll", Actor: Actor{Name: c.Author, Via: "poll"}}); err != nil {
		e.log.Error("poll: start run", "app", a.Name, "sha", c.SHA, "err", err)
	}
}

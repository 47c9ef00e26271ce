package slackbot

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/slack-go/slack"

	"github.com/immunity-app/immunity/bot"
	"github.com/immunity-app/immunity/canary/chart"
	"github.com/immunity-app/immunity/pipeline"
	"github.com/immunity-app/immunity/store"
)

// thread is one run's Slack thread. Its fields are guarded by Bot.mu: jobs on the
// channel's queue read them when they run, so a reply queued before the root message was
// posted still lands in the thread.
type thread struct {
	runID   int64
	channel string
	ts      string   // the root message's ts, "" until posted
	root    bot.Root // the newest content of the root message
	shown   string   // the content last sent to Slack
	queued  bool     // a root sync is on the queue
	posted  map[string]bool
}

// Notify queues the event for the bot's own goroutine and returns.
func (b *Bot) Notify(ctx context.Context, ev pipeline.Event) { b.events.push(ev) }

// handle turns one event into Slack calls on the channel's queue.
func (b *Bot) handle(ev pipeline.Event) {
	if ev.Kind == pipeline.Logged {
		b.logs.Add(ev)
		return
	}
	app, ok := b.cfg.App(ev.App)
	if !ok {
		return
	}
	channel := app.Slack.Channel
	if channel == "" {
		channel = b.cfg.Slack.Channel
	}
	if channel == "" {
		return
	}
	var th *thread
	if ev.Run.ID != 0 {
		th = b.thread(ev.Run.ID, channel)
		b.syncRoot(th, bot.RootOf(ev.Run))
	}
	for _, p := range bot.PostsFor(app, ev, func(region string) []string { return b.logs.Lines(ev.Run.ID, region) }) {
		if th != nil && p.Key != "" && !b.claim(th, p.Key) {
			continue
		}
		b.post(th, channel, p)
	}
	if ev.Kind == pipeline.RunChanged && ev.Run.State.Terminal() {
		b.logs.Forget(ev.Run.ID)
	}
}

// thread returns a run's thread, from memory, the store (after a restart), or new.
func (b *Bot) thread(runID int64, channel string) *thread {
	b.mu.Lock()
	defer b.mu.Unlock()
	if th, ok := b.threads[runID]; ok {
		return th
	}
	th := &thread{runID: runID, channel: channel, posted: map[string]bool{}}
	saved, found, err := b.st.SlackThread(b.ctx, runID)
	if err != nil {
		b.log.Warn("load slack thread", "run", runID, "err", err)
	}
	if found {
		th.channel, th.ts = saved.Channel, saved.TS
	}
	b.threads[runID] = th
	return th
}

// syncRoot records the root's newest content and queues one call that brings Slack up to
// date (posting the root if it is not there yet); a burst of changes makes one update.
func (b *Bot) syncRoot(th *thread, root bot.Root) {
	b.mu.Lock()
	defer b.mu.Unlock()
	th.root = root
	if th.queued {
		return
	}
	th.queued = true
	b.out.enqueue(th.channel, "root", func(ctx context.Context) error { return b.sendRoot(ctx, th) })
}

func (b *Bot) sendRoot(ctx context.Context, th *thread) error {
	b.mu.Lock()
	th.queued = false
	root, ts, shown := th.root, th.ts, th.shown
	b.mu.Unlock()
	blocks := rootBlocks(root, b.runURL(root.RunID))
	content, _ := json.Marshal(blocks)
	if string(content) == shown {
		return nil
	}
	opts := []slack.MsgOption{slack.MsgOptionBlocks(blocks...), slack.MsgOptionText(rootText(root), false)}
	if ts != "" {
		if _, _, _, err := b.api.UpdateMessageContext(ctx, th.channel, ts, opts...); err != nil {
			return fmt.Errorf("update the root of run %d: %w", th.runID, err)
		}
	} else {
		_, newTS, err := b.api.PostMessageContext(ctx, th.channel, opts...)
		if err != nil {
			return fmt.Errorf("post the root of run %d: %w", th.runID, err)
		}
		if err := b.st.SaveSlackThread(ctx, store.SlackThread{RunID: th.runID, Channel: th.channel, TS: newTS}); err != nil {
			b.log.Warn("remember slack thread", "run", th.runID, "err", err)
		}
		b.mu.Lock()
		th.ts = newTS
		b.mu.Unlock()
	}
	b.mu.Lock()
	th.shown = string(content)
	b.mu.Unlock()
	return nil
}

// claim records that a run's post is being made; false if it was made before (by this
// process, or by one before a restart).
func (b *Bot) claim(th *thread, key string) bool {
	b.mu.Lock()
	seen := th.posted[key]
	th.posted[key] = true
	b.mu.Unlock()
	if seen {
		return false
	}
	fresh, err := b.st.ClaimSlackPost(b.ctx, th.runID, key)
	if err != nil {
		b.log.Warn("remember slack post", "run", th.runID, "key", key, "err", err)
		return true
	}
	return fresh
}

// post queues a post: a reply in the run's thread, or a channel message when th is nil.
func (b *Bot) post(th *thread, channel string, p bot.Post) {
	b.out.enqueue(channel, "post "+p.Key, func(ctx context.Context) error {
		opts := []slack.MsgOption{slack.MsgOptionBlocks(postBlocks(p)...), slack.MsgOptionText(p.Text, false)}
		tts := b.threadTS(th)
		if tts != "" {
			opts = append(opts, slack.MsgOptionTS(tts))
			if p.Broadcast {
				opts = append(opts, slack.MsgOptionBroadcast())
			}
		}
		_, ts, err := b.api.PostMessageContext(ctx, channel, opts...)
		if err != nil {
			return fmt.Errorf("post %q: %w", p.Text, err)
		}
		if th != nil && p.Key != "" {
			if err := b.st.SetSlackPostTS(ctx, th.runID, p.Key, ts); err != nil {
				b.log.Warn("remember slack post", "run", th.runID, "key", p.Key, "err", err)
			}
		}
		return nil
	})
	if p.Verdict != nil && b.charts && th != nil {
		b.out.enqueue(channel, "chart "+p.Key, func(ctx context.Context) error { return b.uploadChart(ctx, th, channel, p) })
	}
}

func (b *Bot) threadTS(th *thread) string {
	if th == nil {
		return ""
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return th.ts
}

// uploadChart draws the verdict's canary vs baseline chart and shares it in the thread.
func (b *Bot) uploadChart(ctx context.Context, th *thread, channel string, p bot.Post) error {
	png, err := chart.PNG(*p.Verdict, fmt.Sprintf("%s %s: canary vs baseline", p.App, p.Region))
	if err != nil {
		return fmt.Errorf("draw chart for run %d %s: %w", p.RunID, p.Region, err)
	}
	name := fmt.Sprintf("%s-%s-run%d.png", p.App, p.Region, p.RunID)
	_, err = b.api.UploadFileContext(ctx, slack.UploadFileParameters{
		Reader: bytes.NewReader(png), FileSize: len(png), Filename: name, Title: "canary vs baseline: " + p.Region,
		Channel: channel, ThreadTimestamp: b.threadTS(th), AltTxt: "canary vs baseline metrics for " + p.Region,
	})
	if err != nil {
		return fmt.Errorf("upload chart %s: %w", name, err)
	}
	return nil
}

// runURL links a run on the dashboard when the server's URL is configured.
func (b *Bot) runURL(id int64) string {
	if b.cfg.Server.URL == "" {
		return ""
	}
	return fmt.Sprintf("%s/runs/%d", strings.TrimRight(b.cfg.Server.URL, "/"), id)
}

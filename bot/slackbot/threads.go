package slackbot

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/immunity-app/immunity/bot"
	"github.com/immunity-app/immunity/canary/chart"
	"github.com/immunity-app/immunity/pipeline"
	"github.com/immunity-app/immunity/store"
)

// Every Slack effect of a run is a row of the store's outbox before it is sent (see
// outbox.go): the root message and the thread's posts on the stream "slack/run/ID", in
// order, so replies wait for their root; the root's later contents on "slack/edit/ID",
// coalesced, so only the newest is sent; region events outside a run on
// "slack/channel/APP". A post is added once ever (its key), so a restarted server, or an
// event told twice, repeats nothing.

// outboxItem is what a Slack outbox row carries.
type outboxItem struct {
	RunID   int64     `json:"run_id,omitempty"`
	Channel string    `json:"channel"` // the configured channel (name or ID); a thread's own ID wins
	Root    *bot.Root `json:"root,omitempty"`
	Post    *bot.Post `json:"post,omitempty"`
}

// Outbox row kinds.
const (
	kindRoot  = "slack.root"
	kindEdit  = "slack.edit"
	kindPost  = "slack.post"
	kindChart = "slack.chart"
)

// Notify records what the event changes in Slack as outbox rows and wakes the worker; it
// never waits for Slack.
func (b *Bot) Notify(ctx context.Context, ev pipeline.Event) {
	if err := b.handle(ctx, ev); err != nil {
		b.log.Error("slack: event not recorded for delivery", "kind", ev.Kind, "app", ev.App, "run", ev.Run.ID, "region", ev.Region, "sha", ev.Run.SHA, "err", err)
	}
	b.wakeUp()
}

// handle turns one event into outbox rows.
func (b *Bot) handle(ctx context.Context, ev pipeline.Event) error {
	if ev.Kind == pipeline.Logged {
		b.logs.Add(ev)
		return nil
	}
	app, ok := b.cfg.App(ev.App)
	if !ok {
		return nil
	}
	channel := app.Slack.Channel
	if channel == "" {
		channel = b.cfg.Slack.Channel
	}
	if channel == "" {
		return nil
	}
	ctx = context.WithoutCancel(ctx)
	var errs []error
	if ev.Run.ID != 0 {
		errs = append(errs, b.queueRoot(ctx, ev.Run.ID, channel, bot.RootOf(ev.Run)))
	}
	for _, p := range bot.PostsFor(app, ev, func(region string) []string { return b.logs.Lines(ev.Run.ID, region) }) {
		it := outboxItem{RunID: ev.Run.ID, Channel: channel, Post: &p}
		stream, dedupe := "slack/channel/"+app.Name, ""
		if ev.Run.ID != 0 {
			stream = fmt.Sprintf("slack/run/%d", ev.Run.ID)
			if p.Key != "" {
				dedupe = stream + "/" + p.Key
			}
		}
		added, err := b.enqueue(ctx, stream, kindPost, "", dedupe, it)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if added && p.Verdict != nil && b.charts && dedupe != "" {
			_, err := b.enqueue(ctx, stream, kindChart, "", dedupe+"/chart", it)
			errs = append(errs, err)
		}
	}
	if ev.Kind == pipeline.RunChanged && ev.Run.State.Terminal() {
		b.logs.Forget(ev.Run.ID)
	}
	return errors.Join(errs...)
}

// queueRoot records a run's root message: posted once (the first time), then edited to
// its newest content when that changes.
func (b *Bot) queueRoot(ctx context.Context, runID int64, channel string, root bot.Root) error {
	content, err := json.Marshal(root)
	if err != nil {
		return err
	}
	b.mu.Lock()
	same := b.queued[runID] == string(content)
	b.queued[runID] = string(content)
	b.mu.Unlock()
	if same {
		return nil
	}
	it := outboxItem{RunID: runID, Channel: channel, Root: &root}
	added, err := b.enqueue(ctx, fmt.Sprintf("slack/run/%d", runID), kindRoot, "", fmt.Sprintf("slack/run/%d/root", runID), it)
	if err != nil || added {
		return err
	}
	edit := fmt.Sprintf("slack/edit/%d", runID)
	_, err = b.enqueue(ctx, edit, kindEdit, edit, "", it)
	return err
}

func (b *Bot) enqueue(ctx context.Context, stream, kind, coalesce, dedupe string, it outboxItem) (bool, error) {
	payload, err := json.Marshal(it)
	if err != nil {
		return false, err
	}
	return b.st.Enqueue(ctx, store.OutboxItem{Stream: stream, Kind: kind, Coalesce: coalesce, Dedupe: dedupe, Payload: string(payload)})
}

// deliver makes the Slack call an outbox row asks for. errWait: not yet possible (an
// edit whose root is not posted yet); the row is tried again soon, not counted as failed.
// mark (nil: nothing) records that a reply or chart is about to be sent, before it is.
func (b *Bot) deliver(ctx context.Context, row store.OutboxItem, mark func() error) error {
	var it outboxItem
	if err := json.Unmarshal([]byte(row.Payload), &it); err != nil {
		return fmt.Errorf("%w: %v", errPermanent, err)
	}
	if row.Kind == kindRoot {
		return b.postRoot(ctx, it)
	}
	th, found, err := b.st.SlackThread(ctx, it.RunID)
	if err != nil {
		return err
	}
	switch row.Kind {
	case kindEdit:
		if !found {
			return errWait
		}
		blocks := rootBlocks(*it.Root, b.runURL(it.RunID))
		if _, _, _, err := b.api.UpdateMessageContext(ctx, th.Channel, th.TS, slack.MsgOptionBlocks(blocks...), slack.MsgOptionText(rootText(*it.Root), false)); err != nil {
			return fmt.Errorf("update the root of run %d: %w", it.RunID, err)
		}
		return nil
	case kindPost:
		p := *it.Post
		channel := it.Channel
		opts := []slack.MsgOption{slack.MsgOptionBlocks(postBlocks(p)...), slack.MsgOptionText(postText(p), false)}
		if it.RunID != 0 {
			if !found {
				return errWait // its root did not make it (yet)
			}
			channel = th.Channel
			opts = append(opts, slack.MsgOptionTS(th.TS))
			if p.Broadcast {
				opts = append(opts, slack.MsgOptionBroadcast())
			}
		}
		if it.RunID != 0 {
			// A reply carries its outbox row in its metadata: a try after one whose answer
			// was lost finds it in the thread instead of posting it twice.
			key := strconv.FormatInt(row.ID, 10)
			opts = append(opts, slack.MsgOptionMetadata(slack.SlackMetadata{EventType: postEvent, EventPayload: map[string]any{"outbox": key}}))
			done, err := b.once(ctx, row, th, mark, func(m slack.Message) bool {
				return m.Metadata.EventType == postEvent && m.Metadata.EventPayload["outbox"] == key
			})
			if done || err != nil {
				return err
			}
		}
		if _, _, err := b.api.PostMessageContext(ctx, channel, opts...); err != nil {
			return fmt.Errorf("post %q: %w", p.Text, err)
		}
		return nil
	case kindChart:
		if !found {
			return errWait
		}
		name := chartName(*it.Post)
		done, err := b.once(ctx, row, th, mark, func(m slack.Message) bool {
			for _, f := range m.Files {
				if f.Name == name {
					return true
				}
			}
			return false
		})
		if done || err != nil {
			return err
		}
		return b.uploadChart(ctx, th, *it.Post)
	}
	return fmt.Errorf("%w: unknown kind %q", errPermanent, row.Kind)
}

// postRoot posts a run's root message once across replicas: the store's claim on the
// run's thread decides who posts it; a replica finding it claimed by another waits
// (errWait) until the thread is recorded, then posts nothing. A root carries its run in
// its message metadata: a claim tried before (its answer lost, its replica killed after
// the call) looks for it in the channel first and threads under the one it finds.
func (b *Bot) postRoot(ctx context.Context, it outboxItem) error {
	claim, found, err := b.st.ClaimSlackRoot(ctx, it.RunID)
	if errors.Is(err, store.ErrRootClaimed) {
		return errWait
	}
	if err != nil || found {
		return err // found: posted before (a restart, or another replica)
	}
	run := strconv.FormatInt(it.RunID, 10)
	if claim.Tried {
		th, found, err := b.rootInChannel(ctx, it, run)
		if err != nil {
			return err
		}
		if found {
			b.log.Info("slack: an earlier try had posted the root; not posting again", "run", it.RunID, "channel", th.Channel, "ts", th.TS)
			return b.st.SaveSlackThread(ctx, th)
		}
	}
	blocks := rootBlocks(*it.Root, b.runURL(it.RunID))
	channel, ts, err := b.api.PostMessageContext(ctx, it.Channel, slack.MsgOptionBlocks(blocks...), slack.MsgOptionText(rootText(*it.Root), false),
		slack.MsgOptionMetadata(slack.SlackMetadata{EventType: rootEvent, EventPayload: map[string]any{"run": run}}))
	if err != nil {
		return fmt.Errorf("post the root of run %d: %w", it.RunID, err)
	}
	// Slack's answer names the channel by ID: later calls on the thread use it.
	return b.st.SaveSlackThread(ctx, store.SlackThread{RunID: it.RunID, Channel: channel, TS: ts})
}

// missingScope reports whether Slack refused a call for a scope the token lacks.
func missingScope(err error) bool {
	return err != nil && strings.Contains(err.Error(), "missing_scope")
}

// rootEvent is the metadata event type of a run's root message.
const rootEvent = "immunity_root"

// rootInChannel looks for a run's root in its channel's history since the run was
// created (conversations.history, which takes the channel's ID: a channel configured by
// name is found by conversations.list first). Without the scopes to read them it warns and
// answers not found: the root is posted again.
func (b *Bot) rootInChannel(ctx context.Context, it outboxItem, run string) (store.SlackThread, bool, error) {
	none := store.SlackThread{}
	scopes := func(err error) bool {
		if missingScope(err) {
			b.log.Warn("slack: cannot read the channel to check an earlier try of a root (add the channels:read, groups:read, channels:history and groups:history scopes); posting again", "run", it.RunID, "err", err)
			return true
		}
		return false
	}
	id, err := b.channelID(ctx, it.Channel)
	if scopes(err) {
		return none, false, nil
	}
	if err != nil {
		return none, false, fmt.Errorf("find channel %s to look for the root of run %d: %w", it.Channel, it.RunID, err)
	}
	if id == "" {
		return none, false, nil // not a channel this bot can see: nothing it could have posted
	}
	oldest := "0"
	if r, err := b.st.Run(ctx, it.RunID); err == nil && !r.Created.IsZero() {
		// A margin for the clocks of Slack and this machine.
		oldest = strconv.FormatInt(r.Created.Add(-10*time.Minute).Unix(), 10)
	}
	p := &slack.GetConversationHistoryParameters{ChannelID: id, Oldest: oldest, Limit: 200, IncludeAllMetadata: true}
	for {
		h, err := b.api.GetConversationHistoryContext(ctx, p)
		if scopes(err) {
			return none, false, nil
		}
		if err != nil {
			return none, false, fmt.Errorf("look for the root of run %d in %s: %w", it.RunID, it.Channel, err)
		}
		for _, m := range h.Messages {
			if m.Metadata.EventType == rootEvent && m.Metadata.EventPayload["run"] == run {
				return store.SlackThread{RunID: it.RunID, Channel: id, TS: m.Timestamp}, true, nil
			}
		}
		if !h.HasMore || h.ResponseMetaData.NextCursor == "" {
			return none, false, nil
		}
		p.Cursor = h.ResponseMetaData.NextCursor
	}
}

// channelID is the ID of a channel named by its ID or by its name (with or without #);
// "" when no channel the bot can see has that name.
func (b *Bot) channelID(ctx context.Context, ch string) (string, error) {
	if slackID.MatchString(ch) {
		return ch, nil
	}
	name := strings.TrimPrefix(ch, "#")
	p := &slack.GetConversationsParameters{Types: []string{"public_channel", "private_channel"}, ExcludeArchived: true, Limit: 1000}
	for {
		chans, next, err := b.api.GetConversationsContext(ctx, p)
		if err != nil {
			return "", err
		}
		for _, c := range chans {
			if c.Name == name {
				return c.ID, nil
			}
		}
		if next == "" {
			return "", nil
		}
		p.Cursor = next
	}
}

// slackID is the form of a conversation's ID (a channel, private channel or DM).
var slackID = regexp.MustCompile(`^[CGD][A-Z0-9]{6,}$`)

// uploadChart draws the verdict's canary vs baseline chart and shares it in the thread
// (by the channel's ID, as files uploads require).
func (b *Bot) uploadChart(ctx context.Context, th store.SlackThread, p bot.Post) error {
	png, err := chart.PNG(*p.Verdict, fmt.Sprintf("%s %s: canary vs baseline", p.App, p.Region))
	if err != nil {
		return fmt.Errorf("draw chart for run %d %s: %w", p.RunID, p.Region, err)
	}
	name := chartName(p)
	_, err = b.api.UploadFileContext(ctx, slack.UploadFileParameters{
		Reader: bytes.NewReader(png), FileSize: len(png), Filename: name, Title: "canary vs baseline: " + p.Region,
		Channel: th.Channel, ThreadTimestamp: th.TS, AltTxt: "canary vs baseline metrics for " + p.Region,
	})
	if err != nil {
		return fmt.Errorf("upload chart %s: %w", name, err)
	}
	return nil
}

func chartName(p bot.Post) string { return fmt.Sprintf("%s-%s-run%d.png", p.App, p.Region, p.RunID) }

// postEvent is the metadata event type of a run's thread replies.
const postEvent = "immunity_post"

// once is asked before a reply or a chart is sent into a run's thread. Slack has no
// idempotency key, so an earlier try whose answer was lost (a cut connection, a server
// killed after the call) may have posted it already: a row tried before is looked for
// in the thread (conversations.replies, which needs the history scopes), and done is
// true when it is there. Otherwise the try is recorded (mark) before the call is made.
// Without the history scopes the reply is sent again, as before, with a warning.
func (b *Bot) once(ctx context.Context, row store.OutboxItem, th store.SlackThread, mark func() error, is func(slack.Message) bool) (done bool, err error) {
	if row.Tried {
		found, err := b.inThread(ctx, th, is)
		switch {
		case missingScope(err):
			b.log.Warn("slack: cannot read the thread to check an earlier try (add the channels:history and groups:history scopes); sending again", "stream", row.Stream, "err", err)
		case err != nil:
			return false, fmt.Errorf("look for an earlier try in the thread of run: %w", err)
		case found:
			b.log.Info("slack: an earlier try had posted it; not sending again", "call", row.Kind, "stream", row.Stream)
			return true, nil
		}
	}
	if mark != nil {
		return false, mark()
	}
	return false, nil
}

// inThread reports whether a message of a run's thread is one is looks for.
func (b *Bot) inThread(ctx context.Context, th store.SlackThread, is func(slack.Message) bool) (bool, error) {
	p := &slack.GetConversationRepliesParameters{ChannelID: th.Channel, Timestamp: th.TS, Limit: 200, IncludeAllMetadata: true, Inclusive: true}
	for {
		msgs, more, next, err := b.api.GetConversationRepliesContext(ctx, p)
		if err != nil {
			return false, err
		}
		for _, m := range msgs {
			if is(m) {
				return true, nil
			}
		}
		if !more || next == "" {
			return false, nil
		}
		p.Cursor = next
	}
}

// runURL links a run on the dashboard when the server's URL is configured.
func (b *Bot) runURL(id int64) string {
	if b.cfg.Server.URL == "" {
		return ""
	}
	return fmt.Sprintf("%s/runs/%d", strings.TrimRight(b.cfg.Server.URL, "/"), id)
}

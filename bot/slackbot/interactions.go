package slackbot

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/slack-go/slack"

	"github.com/immunity-app/immunity/bot"
	"github.com/immunity-app/immunity/pipeline"
)

// actionsBlockID names the block holding a post's buttons; actionPrefix its action ids.
const (
	actionsBlockID = "immunity_actions"
	actionPrefix   = "immunity_"
)

// interaction answers button presses (block_actions): it acknowledges at once, runs the
// button's command as the person who pressed it, and then rewrites the message to show
// who did (or tells only that person why not).
func (b *Bot) interaction(c *gin.Context) {
	body, ok := b.verified(c)
	if !ok {
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		c.String(http.StatusBadRequest, "parse form: %v", err)
		return
	}
	var cb slack.InteractionCallback
	if err := json.Unmarshal([]byte(form.Get("payload")), &cb); err != nil {
		c.String(http.StatusBadRequest, "parse payload: %v", err)
		return
	}
	c.Status(http.StatusOK)
	if cb.Type != slack.InteractionTypeBlockActions {
		return
	}
	for _, a := range cb.ActionCallback.BlockActions {
		if a == nil || !strings.HasPrefix(a.ActionID, actionPrefix) || a.Value == "" {
			continue
		}
		act := *a
		b.goWork(func(ctx context.Context) { b.press(ctx, cb, act) })
	}
}

// press runs one button's command and answers through the response_url.
func (b *Bot) press(ctx context.Context, cb slack.InteractionCallback, a slack.BlockAction) {
	name := cb.User.Name
	if name == "" {
		name = cb.User.Username
	}
	actor := slackActor(cb.Team.ID, cb.User.ID, name, "button")
	reply := bot.Reply{}
	if stale := b.notLive(ctx, a); stale != "" {
		reply.Text = stale
	} else {
		reply = b.cmds.Exec(ctx, bot.Request{Actor: actor, Text: a.Value})
	}
	if cb.ResponseURL == "" {
		return
	}
	var msg *slack.WebhookMessage
	if reply.OK {
		msg = pressedMessage(cb.Message, actor, a, reply)
	} else {
		msg = &slack.WebhookMessage{ResponseType: slack.ResponseTypeEphemeral, ReplaceOriginal: false,
			Text: fmt.Sprintf(":no_entry: %s: %s", buttonLabel(a), esc(reply.Text))}
	}
	if err := b.postResponse(ctx, cb.ResponseURL, msg); err != nil {
		b.log.Warn("answer a Slack button", "err", err)
	}
}

// ifLiveSep separates a button's action from the release it acts on only while live.
const ifLiveSep = ":if-live:"

// notLive explains why a button bound to a release (Roll back on a post about it) must
// not act now that another release is live there; "" when it may.
func (b *Bot) notLive(ctx context.Context, a slack.BlockAction) string {
	_, sha, ok := strings.Cut(a.ActionID, ifLiveSep)
	if !ok || sha == "" {
		return ""
	}
	p, err := bot.Parse(a.Value, "")
	if err != nil || p.App == "" || p.Region == "" {
		return ""
	}
	live, err := b.st.Live(ctx, p.App, p.Region)
	if err != nil {
		return "cannot tell what is live in " + p.Region + ": " + err.Error()
	}
	var now []string
	for _, s := range live {
		if s == sha {
			return ""
		}
		now = append(now, shortSHA(s))
	}
	return fmt.Sprintf("%s is no longer live in %s (it runs %s now), so nothing was rolled back; use `/immunity rollback %s %s` to roll back what runs there now",
		shortSHA(sha), p.Region, strings.Join(now, ", "), p.App, p.Region)
}

func shortSHA(s string) string {
	if len(s) > 7 {
		return s[:7]
	}
	return s
}

// pressedMessage is the original message with its buttons replaced by who pressed which.
func pressedMessage(orig slack.Message, actor pipeline.Actor, a slack.BlockAction, reply bot.Reply) *slack.WebhookMessage {
	var blocks []slack.Block
	for _, bl := range orig.Blocks.BlockSet {
		if ab, ok := bl.(*slack.ActionBlock); ok && ab.BlockID == actionsBlockID {
			continue
		}
		blocks = append(blocks, bl)
	}
	blocks = append(blocks, pressedBlock(actor, buttonLabel(a), reply.Text))
	return &slack.WebhookMessage{ReplaceOriginal: true, Text: orig.Text, Blocks: &slack.Blocks{BlockSet: blocks}}
}

func pressedBlock(actor pipeline.Actor, label, result string) slack.Block {
	text := fmt.Sprintf(":point_right: <@%s> pressed *%s*: %s", actor.SlackUserID, fit(label, 200), fit(result, sectionMax-300))
	return slack.NewContextBlock("immunity_pressed", slack.NewTextBlockObject(slack.MarkdownType, text, false, false))
}

func buttonLabel(a slack.BlockAction) string {
	if a.Text.Text != "" {
		return a.Text.Text
	}
	return strings.TrimPrefix(a.ActionID, actionPrefix)
}

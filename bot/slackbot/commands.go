package slackbot

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/slack-go/slack"

	"github.com/immunity-app/immunity/bot"
	"github.com/immunity-app/immunity/pipeline"
)

// maxBody bounds what is read of a Slack request.
const maxBody = 1 << 20

// verified reads the raw body and checks Slack's signature over it before anything is
// parsed; on failure it answers 401 and returns false.
func (b *Bot) verified(c *gin.Context) ([]byte, bool) {
	body, err := io.ReadAll(io.LimitReader(c.Request.Body, maxBody))
	if err != nil {
		c.String(http.StatusBadRequest, "read body: %v", err)
		return nil, false
	}
	sv, err := slack.NewSecretsVerifier(c.Request.Header, b.secret)
	if err == nil {
		sv.Write(body)
		err = sv.Ensure()
	}
	if err != nil {
		b.log.Warn("refused a Slack request", "path", c.Request.URL.Path, "remote", c.ClientIP(), "err", err)
		c.String(http.StatusUnauthorized, "invalid Slack signature: %v", err)
		return nil, false
	}
	// The signature is recorded in the store, so a captured request replayed while its
	// timestamp is still accepted is refused by every replica, and after a restart.
	first, err := b.st.FirstSlackSignature(c.Request.Context(), c.GetHeader("X-Slack-Signature"), time.Now().Add(signatureMemory))
	if err != nil {
		b.log.Warn("refused a Slack request", "path", c.Request.URL.Path, "err", err)
		c.String(http.StatusServiceUnavailable, "could not record the request (%v); nothing was done, try again", err)
		return nil, false
	}
	if !first {
		b.log.Warn("refused a Slack request", "path", c.Request.URL.Path, "remote", c.ClientIP(), "err", "replayed request: this signature was already used")
		c.String(http.StatusUnauthorized, "invalid Slack signature: replayed request: this signature was already used")
		return nil, false
	}
	return body, true
}

// signatureMemory is how long a verified request's signature is remembered: past the
// five minutes its timestamp is accepted on either side of now.
const signatureMemory = 11 * time.Minute

// slashCommand answers `/immunity …`: an ephemeral "working on it" now, the answer later.
func (b *Bot) slashCommand(c *gin.Context) {
	body, ok := b.verified(c)
	if !ok {
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		c.String(http.StatusBadRequest, "parse form: %v", err)
		return
	}
	text := strings.TrimSpace(form.Get("text"))
	if text == "" {
		text = "help"
	}
	// user_id (with team_id) is who asked, as Slack signed it; user_name is only a name
	// to show, and people can change theirs.
	actor := slackActor(form.Get("team_id"), form.Get("user_id"), form.Get("user_name"), "slack")
	req := bot.Request{Actor: actor, Text: text}
	if p, err := bot.Parse(text, ""); err != nil || p.Name == "help" {
		// Help and mistakes need no engine: answer them at once, to the person only.
		reply := b.cmds.Exec(c.Request.Context(), req)
		c.JSON(http.StatusOK, slack.Msg{ResponseType: slack.ResponseTypeEphemeral, Text: replyText(reply)})
		return
	}
	respURL := form.Get("response_url")
	b.goWork(func(ctx context.Context) {
		b.respond(ctx, respURL, actor, b.cmds.Exec(ctx, req))
	})
	c.JSON(http.StatusOK, slack.Msg{ResponseType: slack.ResponseTypeEphemeral,
		Text: fmt.Sprintf("working on it: `%s %s`", commandName(form.Get("command")), esc(clip(text, 200)))})
}

// slackActor is the identity of a Slack user: team and user id, their name for display.
func slackActor(team, user, name, via string) pipeline.Actor {
	a := pipeline.Actor{Name: name, Via: via, SlackUserID: user}
	if user != "" {
		a.ID = "slack:" + team + "/" + user
	}
	if a.Name == "" {
		a.Name = user
	}
	return a
}

func commandName(c string) string {
	if c == "" {
		return "/immunity"
	}
	return c
}

// goWork runs fn on a tracked goroutine that Close waits for.
func (b *Bot) goWork(fn func(ctx context.Context)) {
	b.work.Add(1)
	go func() {
		defer b.work.Done()
		fn(b.ctx)
	}()
}

// respond answers a command through its response_url: in the channel when it changed a
// region, else only to the person who asked.
func (b *Bot) respond(ctx context.Context, respURL string, actor pipeline.Actor, r bot.Reply) {
	if respURL == "" {
		return
	}
	msg := &slack.WebhookMessage{ResponseType: slack.ResponseTypeEphemeral, Text: replyText(r)}
	if r.Changed && r.OK {
		msg.ResponseType = slack.ResponseTypeInChannel
		msg.Text = fmt.Sprintf("<@%s>: %s", actor.SlackUserID, msg.Text)
	}
	if err := b.postResponse(ctx, respURL, msg); err != nil {
		b.log.Warn("answer a Slack command", "err", err)
	}
}

// replyText renders a command's answer as mrkdwn: tables in a code block.
func replyText(r bot.Reply) string {
	text := esc(r.Text)
	if (r.Command == "status" || r.Command == "history") && r.OK {
		return "```\n" + text + "\n```"
	}
	if !r.OK {
		return ":no_entry: " + text
	}
	return text
}

// esc escapes the three characters Slack's mrkdwn reserves.
func esc(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

func clip(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

// Package slackbot is Immunity's Slack side (slack-go): the `/immunity` slash command,
// the buttons in run threads, and one thread per run.
//
// Requests from Slack are verified before anything is parsed: the v0 HMAC-SHA256 signature
// over `v0:timestamp:body` of the raw body, with timestamps over 5 minutes old refused
// (slack.NewSecretsVerifier, constant-time compare). A slash command is answered at once
// with an ephemeral "working on it"; the command runs on a tracked goroutine through
// bot.Commands (the same grammar and access checks as GitHub comments and the CLI) and
// is answered through the response_url (followed only when it is Slack's: https on
// hooks.slack.com, or the configured API URL's host), in the channel when it changed a region. A
// button press runs the command in the button's value the same way, as the person who
// pressed it, and rewrites the message to show who did.
//
// Bot is also a pipeline.Listener: each run gets one thread in its app's channel. The
// root message (commit, author, a live line per region) is posted on the run's first
// event and kept current with chat.update; stage results, the metric comparison (a table
// and a chart image), failures with their first useful log lines and "waiting for
// promotion" are replies, the last two also broadcast to the channel. Every Slack effect
// is first a row of the store's outbox (threads.go, outbox.go), delivered in order per
// thread by one worker that retries until Slack accepts it, honouring Retry-After however
// long and across restarts; edits of the root are coalesced (the newest content, at most
// one a second). The thread's channel ID (from chat.postMessage's answer) and ts are
// stored, so a restarted server keeps posting into the same thread and never repeats a
// post; chat.update and file uploads use that ID, as Slack requires. Notify records and
// returns: it never waits for Slack.
package slackbot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/slack-go/slack"

	"github.com/immunity-app/immunity/bot"
	"github.com/immunity-app/immunity/pipeline/config"
	"github.com/immunity-app/immunity/store"
)

// executor runs a command (bot.Commands).
type executor interface {
	Exec(ctx context.Context, req bot.Request) bot.Reply
}

// slackAPI is what the bot asks of Slack's Web API (*slack.Client).
type slackAPI interface {
	PostMessageContext(ctx context.Context, channel string, opts ...slack.MsgOption) (string, string, error)
	UpdateMessageContext(ctx context.Context, channel, ts string, opts ...slack.MsgOption) (string, string, string, error)
	UploadFileContext(ctx context.Context, p slack.UploadFileParameters) (*slack.FileSummary, error)
	GetConversationRepliesContext(ctx context.Context, p *slack.GetConversationRepliesParameters) ([]slack.Message, bool, string, error)
	GetConversationHistoryContext(ctx context.Context, p *slack.GetConversationHistoryParameters) (*slack.GetConversationHistoryResponse, error)
	GetConversationsContext(ctx context.Context, p *slack.GetConversationsParameters) ([]slack.Channel, string, error)
}

// Options are what a Bot is made of.
type Options struct {
	Config   *config.Config // Slack settings (after FromEnv), apps' channels, server URL
	Client   *slack.Client  // from NewClient
	Commands executor       // *bot.Commands
	Store    *store.Store   // threads and posts are remembered here
	Logger   *slog.Logger
	// NoCharts leaves out the chart image of a verdict.
	NoCharts bool
	// OnRateLimit, when set, is told of every wait for Slack's rate limit (metrics).
	OnRateLimit func(time.Duration)
	// OnRetry, when set, is told of every call that failed and will be tried again
	// (rate limits included; metrics).
	OnRetry func()
	// Clock is the outbox worker's time; nil is the real clock (tests run one faster).
	Clock Clock
}

// Bot answers Slack and reports runs to Slack threads.
type Bot struct {
	cfg    *config.Config
	api    slackAPI
	cmds   executor
	st     *store.Store
	log    *slog.Logger
	secret string
	charts bool

	ctx     context.Context // the bot's lifetime: background work stops with Close
	stop    context.CancelFunc
	work    sync.WaitGroup // command goroutines
	logs    *bot.LogBook
	clock   Clock
	waited  func(time.Duration) // told of each rate-limit wait; may be nil
	retried func()              // told of each call to be tried again; may be nil

	// The outbox worker's state (outbox.go).
	wake        chan struct{}
	worked      chan struct{}  // closed when the worker has stopped
	lease       *store.Holding // of the Slack outbox: one replica delivers it
	pausedUntil time.Time      // Slack's rate limit: no call before then
	lastEdit    map[string]time.Time

	mu     sync.Mutex
	queued map[int64]string // each run's root content last recorded, to record only changes
	busy   bool             // the worker is delivering
}

// NewClient makes the Slack Web API client from the config: the bot token (or its file)
// and api_url (IMMUNITY_SLACK_API_URL, a fake in tests).
func NewClient(c config.SlackConfig, opts ...slack.Option) (*slack.Client, error) {
	tok, err := c.Token()
	if err != nil {
		return nil, fmt.Errorf("slack client: %w", err)
	}
	return slack.New(tok, append([]slack.Option{slack.OptionAPIURL(c.BaseURL())}, opts...)...), nil
}

// New makes the bot; call Close to drain its work on shutdown.
func New(o Options) (*Bot, error) {
	if o.Config == nil || o.Client == nil || o.Commands == nil || o.Store == nil {
		return nil, errors.New("slackbot.New: Config, Client, Commands and Store are required")
	}
	secret, err := o.Config.Slack.Secret()
	if err != nil {
		return nil, fmt.Errorf("slackbot: %w", err)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Clock == nil {
		o.Clock = realClock{}
	}
	ctx, stop := context.WithCancel(context.Background())
	b := &Bot{cfg: o.Config, api: o.Client, cmds: o.Commands, st: o.Store, log: o.Logger.With("part", "slack"),
		secret: secret, charts: !o.NoCharts, ctx: ctx, stop: stop, logs: bot.NewLogBook(50), clock: o.Clock, waited: o.OnRateLimit, retried: o.OnRetry,
		wake: make(chan struct{}, 1), worked: make(chan struct{}), lastEdit: map[string]time.Time{}, queued: map[int64]string{}}
	b.lease = o.Store.Hold(ctx, outboxLease, o.Store.LeaseTTL())
	go b.deliverLoop(ctx)
	return b, nil
}

// Routes registers POST /slack/commands and POST /slack/interactions.
func (b *Bot) Routes(r gin.IRouter) {
	r.POST("/slack/commands", b.slashCommand)
	r.POST("/slack/interactions", b.interaction)
}

// Close waits for commands in flight and delivers what the outbox holds (until ctx ends),
// then stops; what is left is delivered by the next start.
func (b *Bot) Close(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		b.work.Wait()
		b.Flush(ctx)
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
	b.stop()
	<-b.worked
	<-b.lease.Done()
	return ctx.Err()
}

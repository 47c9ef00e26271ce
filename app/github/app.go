package github

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/immunity-app/immunity/bot"
	"github.com/immunity-app/immunity/pipeline"
	"github.com/immunity-app/immunity/pipeline/config"
	"github.com/immunity-app/immunity/store"
)

// engine is the part of pipeline.Engine the App drives.
type engine interface {
	Config() *config.Config
	Store() *store.Store
	StartRun(ctx context.Context, app, sha string, t pipeline.Trigger) (store.Run, error)
	Status(ctx context.Context, app string) ([]pipeline.AppStatus, error)
	Audit(ctx context.Context, a pipeline.Actor, action, app, region, sha, args, outcome, detail string)
	Answer(ctx context.Context, runID int64, region, msg string) error
}

// commander runs one command line of the shared grammar (bot.Commands).
type commander interface {
	Exec(ctx context.Context, req bot.Request) bot.Reply
}

// App is the GitHub App: its webhook endpoint and the work deliveries start.
type App struct {
	secret  []byte
	eng     engine
	cmd     commander
	clients *Clients
	st      *store.Store
	log     *slog.Logger
	maxBody int64
	ingest  *store.DeliveryLog // records deliveries by group commit
	known   installationCache  // installations already remembered
	obs     observer           // metrics; noObserver when none
	// gateWake has a recorded gate request decided (WithGateWake); nil: none is
	gateWake func()

	ctx    context.Context // parent of every delivery's work; cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New makes the App from its config (after FromEnv). It fails when the App is not fully
// configured: no key, no app id, or, above all, no webhook secret.
func New(cfg config.GitHubConfig, eng engine, cmd commander, logger *slog.Logger, opts ...Option) (*App, error) {
	if logger == nil {
		logger = slog.Default()
	}
	if !cfg.Configured() {
		return nil, errors.New("github app: not configured (set IMMUNITY_GITHUB_APP_ID and IMMUNITY_GITHUB_PRIVATE_KEY_FILE)")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("github app: %w", err)
	}
	if cmd == nil {
		return nil, errors.New("github app: a command runner (bot.Commands) is required")
	}
	secret, err := cfg.Secret()
	if err != nil {
		return nil, fmt.Errorf("github app: %w", err)
	}
	st := eng.Store()
	o := optionsOf(opts)
	clients, err := NewClients(cfg, st, logger, opts...)
	if err != nil {
		return nil, err
	}
	if err := st.PruneDeliveries(context.Background(), time.Now().Add(-deliveryRetention)); err != nil {
		logger.Warn("github app", "err", err)
	}
	ingest, err := st.OpenDeliveryLog(context.Background())
	if err != nil {
		return nil, fmt.Errorf("github app: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &App{secret: secret, eng: eng, cmd: cmd, clients: clients, st: st, log: logger.With("part", "github"),
		maxBody: MaxBody, ingest: ingest, obs: o.obs, gateWake: o.gateWake, ctx: ctx, cancel: cancel}, nil
}

// Clients is the App's installation client factory (the checks reporter uses it).
func (a *App) Clients() *Clients { return a.clients }

// Close waits for deliveries in progress to finish, or cancels them when ctx ends.
func (a *App) Close(ctx context.Context) error {
	done := make(chan struct{})
	go func() { a.wg.Wait(); close(done) }()
	defer a.ingest.Close()
	select {
	case <-done:
		a.cancel()
		return nil
	case <-ctx.Done():
		a.cancel()
		<-done
		return fmt.Errorf("github app: deliveries still running at shutdown were cancelled: %w", ctx.Err())
	}
}

// dispatch handles a recorded delivery on a tracked goroutine.
func (a *App) dispatch(d store.Delivery, payload any) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		a.work(a.ctx, d, payload)
	}()
}

func (a *App) work(ctx context.Context, d store.Delivery, payload any) {
	state, detail := "done", ""
	defer func() {
		if r := recover(); r != nil {
			state, detail = "failed", fmt.Sprintf("panic: %v", r)
			a.logDelivery(ctx, slog.LevelError, "github delivery panicked", d, "panic", r)
		}
		if err := a.ingest.Finish(context.WithoutCancel(ctx), d.ID, state, detail); err != nil {
			a.logDelivery(ctx, slog.LevelWarn, "github delivery", d, "err", err)
		}
	}()
	var err error
	started := &startedRuns{}
	detail, err = a.handle(context.WithValue(ctx, startedKey{}, started), d.Event, payload)
	if err != nil {
		state, detail = "failed", err.Error()
		a.logDelivery(ctx, slog.LevelError, "github delivery failed", d, "err", err)
		return
	}
	// A delivery that started runs says so in a line per run, with the run's facts.
	for _, r := range started.runs {
		a.logDelivery(ctx, slog.LevelInfo, "github delivery handled", d, "detail", fmt.Sprintf("started %s run %d", r.App, r.ID),
			"app", r.App, "run", r.ID, "sha", r.SHA)
	}
	if len(started.runs) > 0 {
		return
	}
	// A delivery that changed nothing (most of them: pushes of other branches, events
	// no app needs) is a debug line; the store's delivery log and the metrics keep it.
	level := slog.LevelInfo
	if strings.HasPrefix(detail, "ignored") {
		level = slog.LevelDebug
	}
	a.logDelivery(ctx, level, "github delivery handled", d, "detail", detail)
}

// startedRuns collects the runs a delivery's work started (onPush adds them), so the
// delivery's log lines can name each run.
type startedRuns struct{ runs []store.Run }

type startedKey struct{}

// noteStarted tells the delivery being handled that it started r.
func noteStarted(ctx context.Context, r store.Run) {
	if s, ok := ctx.Value(startedKey{}).(*startedRuns); ok {
		s.runs = append(s.runs, r)
	}
}

// logDelivery logs a line about a delivery with its identity, building nothing when the
// level is off.
func (a *App) logDelivery(ctx context.Context, level slog.Level, msg string, d store.Delivery, args ...any) {
	if !a.log.Enabled(ctx, level) {
		return
	}
	a.log.Log(ctx, level, msg, append([]any{"delivery", d.ID, "event", d.Event, "action", d.Action, "repo", d.Repo}, args...)...)
}

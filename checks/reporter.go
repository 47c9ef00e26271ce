package checks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	gh "github.com/google/go-github/v60/github"

	"github.com/immunity-app/immunity/internal/logctx"
	"github.com/immunity-app/immunity/pipeline"
	"github.com/immunity-app/immunity/pipeline/config"
	"github.com/immunity-app/immunity/store"
)

// clientSource hands out a GitHub client for a repo (app/github.Clients).
type clientSource interface {
	ForRepo(ctx context.Context, repo string) (*gh.Client, error)
}

// Reporter is the pipeline.Listener that shows runs on GitHub. Every report is first a
// row of the store's outbox: a run's newest snapshot on the stream "github/run/ID"
// (coalesced: only the newest is sent), a rollback or deploy outside a run on
// "github/region/APP/REGION". One worker sends them in order per stream and retries a
// failed one with backoff (honouring a secondary rate limit's Retry-After) until GitHub
// accepts it, across restarts.
type Reporter struct {
	cfg     *config.Config
	st      *store.Store
	clients clientSource
	log     *slog.Logger
	backoff time.Duration // first retry delay of a failed report

	mu        sync.Mutex
	working   bool
	wake      chan struct{}
	stop      chan struct{}
	closeOnce sync.Once
	done      chan struct{}
	lease     *store.Holding // of the GitHub outbox: one replica delivers it

	retried func()              // told of each report to be tried again; may be nil
	waited  func(time.Duration) // told of each wait for a rate limit's Retry-After; may be nil
}

// Option tunes NewReporter.
type Option func(*Reporter)

// WithRetries tells retry of every report that failed and will be tried again, and wait
// of how long a report waits for a rate limit's Retry-After (metrics).
func WithRetries(retry func(), wait func(time.Duration)) Option {
	return func(r *Reporter) { r.retried, r.waited = retry, wait }
}

// outboxLease names the lease of the GitHub outbox's delivery: replicas sharing a
// database report once, by the holder, each row's outcome a write fenced by the lease.
const outboxLease = "outbox/github"

// Outbox row kinds.
const (
	kindRun    = "github.run"
	kindRegion = "github.region"
	kindGate   = "github.gate" // a deployment protection rule's status report or review (gate.go)
)

// NewReporter starts a reporter; stop it with Close.
func NewReporter(cfg *config.Config, st *store.Store, clients clientSource, logger *slog.Logger, opts ...Option) *Reporter {
	if logger == nil {
		logger = slog.Default()
	}
	r := &Reporter{cfg: cfg, st: st, clients: clients, log: logger.With("part", "checks"), backoff: 5 * time.Second,
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	for _, o := range opts {
		o(r)
	}
	go r.loop()
	return r
}

// Notify records an event's report in the outbox and returns at once.
func (r *Reporter) Notify(ctx context.Context, ev pipeline.Event) {
	var it store.OutboxItem
	switch ev.Kind {
	case pipeline.RunCreated, pipeline.RunChanged, pipeline.StageChanged, pipeline.HostChanged, pipeline.Looked, pipeline.Reconciled, pipeline.Answered:
		if ev.Run.ID == 0 {
			return
		}
		stream := fmt.Sprintf("github/run/%d", ev.Run.ID)
		it = store.OutboxItem{Stream: stream, Kind: kindRun, Coalesce: stream}
	case pipeline.RolledBack, pipeline.Deployed:
		if ev.SHA == "" || ev.Region == "" {
			return
		}
		it = store.OutboxItem{Stream: "github/region/" + appOf(ev) + "/" + ev.Region, Kind: kindRegion}
	default:
		return
	}
	if app, ok := r.cfg.App(appOf(ev)); !ok || app.Repo.GitHub == "" {
		return // not a GitHub app: the dashboard and console report it
	}
	ev.Stage = nil // the snapshot's stages say it all
	b, err := json.Marshal(ev)
	if err == nil {
		it.Payload = string(b)
		_, err = r.st.Enqueue(context.WithoutCancel(ctx), it)
	}
	if err != nil {
		r.log.Error("github report not recorded for delivery", "kind", ev.Kind, "app", appOf(ev), "run", ev.Run.ID, "sha", ev.Run.SHA, "err", err)
		return
	}
	r.kick()
}

// kick has the worker look at the outbox now.
func (r *Reporter) kick() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Close reports what is recorded (or gives up when ctx ends; the rest goes out after the
// next start), then stops.
func (r *Reporter) Close(ctx context.Context) error {
	err := r.Flush(ctx)
	r.closeOnce.Do(func() { close(r.stop) })
	<-r.done
	return err
}

// Flush waits until every recorded report was sent.
func (r *Reporter) Flush(ctx context.Context) error {
	for {
		heads, err := r.st.OutboxHeads(ctx, "github/", 1)
		r.mu.Lock()
		busy := r.working
		r.mu.Unlock()
		if err == nil && len(heads) == 0 && !busy {
			return nil
		}
		select {
		case r.wake <- struct{}{}:
		default:
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("github reports: %d streams still waiting: %w", len(heads), ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (r *Reporter) loop() {
	defer close(r.done)
	ctx, cancel := context.WithCancel(context.Background())
	r.lease = r.st.Hold(ctx, outboxLease, r.st.LeaseTTL())
	defer func() { cancel(); <-r.lease.Done() }()
	go func() { <-r.stop; cancel() }()
	for {
		wait := r.deliverDue(ctx)
		t := time.NewTimer(wait)
		select {
		case <-r.wake:
		case <-t.C:
		case <-r.stop:
			t.Stop()
			return
		}
		t.Stop()
	}
}

// deliverDue sends every report that is due and says how long until the next one is.
func (r *Reporter) deliverDue(ctx context.Context) time.Duration {
	r.mu.Lock()
	r.working = true
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.working = false
		r.mu.Unlock()
	}()
	wait := 5 * time.Second
	if _, held := r.lease.Lease(); !held {
		return time.Second // another replica reports, or the store is out of reach
	}
	heads, err := r.st.OutboxHeads(ctx, "github/", 200)
	if err != nil {
		r.log.Error("github outbox", "err", err)
		return time.Second
	}
	for _, row := range heads {
		now := time.Now()
		if d := row.NotBefore.Sub(now); d > 0 {
			wait = min(wait, d)
			continue
		}
		l, held := r.lease.Lease()
		if !held {
			return time.Second
		}
		var err error
		rctx := ctx // carries what the row is about, for the lines logged while it is sent
		if row.Kind == kindGate {
			err = r.sendGate(ctx, row.Payload)
		} else {
			var ev pipeline.Event
			err = json.Unmarshal([]byte(row.Payload), &ev)
			if err == nil {
				rctx = eventLog(ctx, ev)
				err = r.process(rctx, ev)
			}
		}
		if ctx.Err() != nil {
			return wait
		}
		if errors.Is(err, errGateRefused) {
			r.log.ErrorContext(rctx, "github gate review refused by GitHub; dropped", "stream", row.Stream, "err", err)
			if err := r.st.OutboxDone(ctx, l, row.ID, store.OutboxDropped, err.Error()); err != nil {
				r.log.Error("github outbox", "err", err)
			}
			wait = 0
			continue
		}
		if err == nil {
			if _, err := r.st.OutboxDelivered(ctx, l, row); err != nil {
				r.log.Error("github outbox", "err", err)
			}
			wait = 0
			continue
		}
		delay := min(r.backoff<<min(row.Attempts, 10), 5*time.Minute)
		var abuse *gh.AbuseRateLimitError
		limited := errors.As(err, &abuse) && abuse.RetryAfter != nil
		if limited {
			delay = max(delay, *abuse.RetryAfter)
		}
		r.log.WarnContext(rctx, "github report failed; will retry", "stream", row.Stream, "try", row.Attempts+1, "in", delay, "err", err)
		if err := r.st.OutboxRetry(ctx, l, row.ID, now.Add(delay), err.Error()); err != nil {
			r.log.Error("github outbox", "err", err)
		}
		// Told after the retry is recorded, so what is counted is what the outbox holds.
		if limited && r.waited != nil {
			r.waited(delay)
		}
		if r.retried != nil {
			r.retried()
		}
		wait = min(wait, delay)
	}
	return wait
}

// eventLog is ctx carrying what an event's report is about (internal/logctx): a run's
// snapshot, with its app and release, or a region's event, with its app, region and release.
func eventLog(ctx context.Context, ev pipeline.Event) context.Context {
	if ev.Run.ID != 0 {
		return logctx.With(ctx, slog.String("app", appOf(ev)), slog.Int64("run", ev.Run.ID), slog.String("sha", ev.Run.SHA))
	}
	return logctx.With(ctx, slog.String("app", appOf(ev)), slog.String("region", ev.Region), slog.String("sha", ev.SHA))
}

func appOf(ev pipeline.Event) string {
	if ev.App != "" {
		return ev.App
	}
	return ev.Run.App
}

// process reports one event: a run's stages, or a rollback.
func (r *Reporter) process(ctx context.Context, ev pipeline.Event) error {
	app, ok := r.cfg.App(appOf(ev))
	if !ok || app.Repo.GitHub == "" {
		return nil // not a GitHub app: the dashboard and console report it
	}
	if ev.Run.ID != 0 && ev.Run.SHA == "" {
		return nil // the commit is not known yet
	}
	cl, err := r.clients.ForRepo(ctx, app.Repo.GitHub)
	if err != nil {
		return err
	}
	if ev.Run.ID == 0 {
		return r.reportRelease(ctx, cl, app, ev)
	}
	var errs []error
	for i := range ev.Run.Stages {
		st := &ev.Run.Stages[i]
		if err := r.syncCheck(ctx, cl, app, ev.Run, st); err != nil {
			errs = append(errs, err)
		}
		if d, ok := stageDeployment(r.cfg, app, ev.Run, st); ok {
			if err := r.syncDeployment(ctx, cl, d); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// reportRelease records a rollback (or a deploy outside a run) as a deployment of that
// release, already successful.
func (r *Reporter) reportRelease(ctx context.Context, cl *gh.Client, app *config.App, ev pipeline.Event) error {
	region, _, ok := app.Region(ev.Region)
	if !ok {
		return nil
	}
	task, verb := "deploy", "deployed"
	if ev.Kind == pipeline.RolledBack {
		task, verb = "deploy:rollback", "rolled back"
	}
	desc := fmt.Sprintf("%s %s %s to %s", app.Name, region.Name, verb, shortSHA(ev.SHA))
	if ev.Actor.Name != "" {
		desc += " by " + ev.Actor.String()
	}
	logURL := ""
	if r.cfg.Server.URL != "" {
		logURL = strings.TrimRight(r.cfg.Server.URL, "/") + "/"
	}
	d := deployment{key: fmt.Sprintf("%s/%s/%s/%s/%d", task, app.Name, region.Name, ev.SHA, ev.Time.UnixNano()),
		app: app, region: region, repo: app.Repo.GitHub, sha: ev.SHA, task: task, desc: desc,
		state: "success", logURL: logURL, statusDesc: desc}
	return r.syncDeployment(ctx, cl, d)
}

// syncCheck creates or updates a stage's check run when what it shows changed. A stage
// that starts again after its check run completed (a promotion, a re-run) gets a new one.
func (r *Reporter) syncCheck(ctx context.Context, cl *gh.Client, app *config.App, run store.Run, st *store.Stage) error {
	live, previous, err := r.rollbackable(ctx, app, run, st)
	if err != nil {
		return err
	}
	v := view(r.cfg, app, run, st, live, previous)
	notes, err := r.notes(ctx, run.ID, st.Region)
	if err != nil {
		return err
	}
	v.Summary = withNotes(v.Summary, "Answers to buttons", notes[pipeline.Answered])
	v.Summary = withNotes(v.Summary, "Reconciled with the hosts", notes[pipeline.Reconciled])
	dg := v.digest()
	row, found, err := r.st.CheckRun(ctx, run.ID, st.Region)
	if err != nil || (found && row.Digest == dg) {
		return err
	}
	owner, name, _ := strings.Cut(app.Repo.GitHub, "/")
	details := RunURL(r.cfg, run.ID)
	create, attempt := !found || (row.Status == "completed" && v.Status != "completed"), 1
	if found {
		attempt = row.Attempt + 1
	}
	if found && row.Status == store.CheckRunCreating {
		// A create was sent and its answer never recorded (lost on the way, or the server
		// stopped): GitHub may hold it, so it is looked up by its external id first.
		id, ok, err := findCheckRun(ctx, cl, owner, name, run.SHA, CheckName(st.Region), externalID(run.ID, st.Region, row.Attempt))
		if err != nil {
			return err
		}
		create, attempt = !ok, row.Attempt // never made: made now, as the same attempt
		if ok {
			row.ID = id // found: brought up to date below
		}
	}
	if create {
		// The intent first: a create whose answer is lost is then looked up, not repeated.
		intent := store.CheckRun{RunID: run.ID, Region: st.Region, Repo: app.Repo.GitHub, ID: row.ID, Status: store.CheckRunCreating, Attempt: attempt}
		if err := r.st.SaveCheckRun(ctx, intent); err != nil {
			return err
		}
		cr, _, err := cl.Checks.CreateCheckRun(ctx, owner, name, createOptions(v, run, st, details, attempt))
		if err != nil {
			return fmt.Errorf("create check run %s for %s@%s: %w", CheckName(st.Region), app.Name, shortSHA(run.SHA), err)
		}
		row = store.CheckRun{RunID: run.ID, Region: st.Region, Repo: app.Repo.GitHub, ID: cr.GetID(), Attempt: attempt}
	} else {
		req, err := cl.NewRequest("PATCH", fmt.Sprintf("repos/%s/%s/check-runs/%d", owner, name, row.ID), updateBody(v, run, st, details, row.Attempt))
		if err == nil {
			_, err = cl.Do(ctx, req, nil)
		}
		if err != nil {
			return fmt.Errorf("update check run %d (%s) for %s@%s: %w", row.ID, CheckName(st.Region), app.Name, shortSHA(run.SHA), err)
		}
	}
	row.Status, row.Digest = v.Status, dg
	return r.st.SaveCheckRun(ctx, row)
}

// findCheckRun looks for the check run with an external id among a commit's check runs
// of one name (every attempt, newest first).
func findCheckRun(ctx context.Context, cl *gh.Client, owner, repo, sha, name, external string) (int64, bool, error) {
	opts := &gh.ListCheckRunsOptions{CheckName: gh.String(name), Filter: gh.String("all"), ListOptions: gh.ListOptions{PerPage: 100}}
	for {
		res, resp, err := cl.Checks.ListCheckRunsForRef(ctx, owner, repo, sha, opts)
		if err != nil {
			return 0, false, fmt.Errorf("look for check run %s (%s) of %s: %w", name, external, shortSHA(sha), err)
		}
		for _, c := range res.CheckRuns {
			if c.GetExternalID() == external {
				return c.GetID(), true, nil
			}
		}
		if resp.NextPage == 0 {
			return 0, false, nil
		}
		opts.Page = resp.NextPage
	}
}

// rollbackable says whether a succeeded stage's release is live in its region now, and
// whether another release was live there before it (what a rollback would put back, as
// the engine picks it: the region's history, a release still ready to go).
func (r *Reporter) rollbackable(ctx context.Context, app *config.App, run store.Run, st *store.Stage) (live, previous bool, err error) {
	if st.State != store.StageSucceeded {
		return false, false, nil
	}
	hosts, err := r.st.Live(ctx, app.Name, st.Region)
	if err != nil {
		return false, false, fmt.Errorf("live release of %s %s: %w", app.Name, st.Region, err)
	}
	for _, sha := range hosts {
		live = live || sha == run.SHA
	}
	if !live {
		return false, false, nil
	}
	hist, err := r.st.History(ctx, app.Name, st.Region, 100)
	if err != nil {
		return false, false, fmt.Errorf("history of %s %s: %w", app.Name, st.Region, err)
	}
	for _, h := range hist {
		if h.SHA == run.SHA {
			continue
		}
		rel, err := r.st.Release(ctx, app.Name, h.SHA)
		if errors.Is(err, store.ErrNotFound) {
			return true, false, nil
		}
		if err != nil {
			return false, false, fmt.Errorf("release %s of %s: %w", shortSHA(h.SHA), app.Name, err)
		}
		return true, rel.State == store.ReleaseReady, nil
	}
	return true, false, nil
}

// notes lists, by kind, what the run's log says about the stage's region beyond its
// states: what the engine found on its hosts that the store did not know ("prod3/host2
// found on X, store said Y"), and what people who pressed its buttons were answered.
func (r *Reporter) notes(ctx context.Context, runID int64, region string) (map[pipeline.EventKind][]string, error) {
	events, err := r.st.Events(ctx, runID, 1000)
	if err != nil {
		return nil, fmt.Errorf("log of run %d: %w", runID, err)
	}
	out := map[pipeline.EventKind][]string{}
	for _, e := range events {
		if k := pipeline.EventKind(e.Kind); (k == pipeline.Reconciled || k == pipeline.Answered) && e.Region == region {
			out[k] = append(out[k], e.Message)
		}
	}
	return out, nil
}

// withNotes adds a section of notes to a summary (the last 10, within GitHub's limit).
func withNotes(summary, heading string, notes []string) string {
	if len(notes) == 0 {
		return summary
	}
	if len(notes) > 10 {
		notes = notes[len(notes)-10:]
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n### %s\n\n", heading)
	for _, n := range notes {
		fmt.Fprintf(&b, "- %s\n", inline(n))
	}
	if len(summary)+b.Len() > MaxSummary {
		return summary
	}
	return summary + b.String()
}

package checks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	gh "github.com/google/go-github/v60/github"

	"github.com/immunity-app/immunity/pipeline"
	"github.com/immunity-app/immunity/pipeline/config"
	"github.com/immunity-app/immunity/store"
)

// clientSource hands out a GitHub client for a repo (app/github.Clients).
type clientSource interface {
	ForRepo(ctx context.Context, repo string) (*gh.Client, error)
}

// Reporter is the pipeline.Listener that shows runs on GitHub.
type Reporter struct {
	cfg      *config.Config
	st       *store.Store
	clients  clientSource
	log      *slog.Logger
	backoff  time.Duration // first retry delay of a failed report
	maxTries int

	mu        sync.Mutex
	runs      map[int64]job // the newest snapshot of each run to report
	others    []job         // rollbacks and deploys outside runs
	working   bool
	wake      chan struct{}
	stop      chan struct{}
	closeOnce sync.Once
	done      chan struct{}
}

type job struct {
	ev        pipeline.Event
	tries     int
	notBefore time.Time
}

// NewReporter starts a reporter; stop it with Close.
func NewReporter(cfg *config.Config, st *store.Store, clients clientSource, logger *slog.Logger) *Reporter {
	if logger == nil {
		logger = slog.Default()
	}
	r := &Reporter{cfg: cfg, st: st, clients: clients, log: logger.With("part", "checks"),
		backoff: 5 * time.Second, maxTries: 10, runs: map[int64]job{},
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go r.loop()
	return r
}

// Notify queues an event's report and returns at once.
func (r *Reporter) Notify(_ context.Context, ev pipeline.Event) {
	switch ev.Kind {
	case pipeline.RunCreated, pipeline.RunChanged, pipeline.StageChanged, pipeline.HostChanged, pipeline.Looked:
		if ev.Run.ID == 0 {
			return
		}
		r.mu.Lock()
		r.runs[ev.Run.ID] = job{ev: ev}
		r.mu.Unlock()
	case pipeline.RolledBack, pipeline.Deployed:
		if ev.SHA == "" || ev.Region == "" {
			return
		}
		r.mu.Lock()
		r.others = append(r.others, job{ev: ev})
		r.mu.Unlock()
	default:
		return
	}
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Close reports what is queued and ready (or gives up when ctx ends), then stops.
func (r *Reporter) Close(ctx context.Context) error {
	err := r.Flush(ctx)
	r.closeOnce.Do(func() { close(r.stop) })
	<-r.done
	return err
}

// Flush waits until every queued report was sent or dropped.
func (r *Reporter) Flush(ctx context.Context) error {
	for {
		r.mu.Lock()
		n := len(r.runs) + len(r.others)
		busy := r.working
		r.mu.Unlock()
		if n == 0 && !busy {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("github reports: %d still queued: %w", n, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (r *Reporter) loop() {
	defer close(r.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { <-r.stop; cancel() }()
	for {
		j, wait, ok := r.next()
		if !ok {
			t := time.NewTimer(wait)
			select {
			case <-r.wake:
			case <-t.C:
			case <-r.stop:
				t.Stop()
				return
			}
			t.Stop()
			continue
		}
		err := r.process(ctx, j.ev)
		r.finish(j, err)
	}
}

// next takes the first job that is due, or says how long until one is.
func (r *Reporter) next() (job, time.Duration, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now, wait := time.Now(), time.Minute
	for id, j := range r.runs {
		if !j.notBefore.After(now) {
			delete(r.runs, id)
			r.working = true
			return j, 0, true
		}
		wait = min(wait, j.notBefore.Sub(now))
	}
	for i, j := range r.others {
		if !j.notBefore.After(now) {
			r.others = append(r.others[:i], r.others[i+1:]...)
			r.working = true
			return j, 0, true
		}
		wait = min(wait, j.notBefore.Sub(now))
	}
	return job{}, wait, false
}

// finish requeues a failed job with backoff, unless a newer snapshot replaced it.
func (r *Reporter) finish(j job, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.working = false
	if err == nil {
		return
	}
	j.tries++
	if j.tries >= r.maxTries {
		r.log.Error("github report dropped after retries", "kind", j.ev.Kind, "app", appOf(j.ev), "run", j.ev.Run.ID, "tries", j.tries, "err", err)
		return
	}
	r.log.Warn("github report failed; will retry", "kind", j.ev.Kind, "app", appOf(j.ev), "run", j.ev.Run.ID, "try", j.tries, "err", err)
	j.notBefore = time.Now().Add(min(r.backoff<<(j.tries-1), 5*time.Minute))
	if j.ev.Run.ID != 0 {
		if _, newer := r.runs[j.ev.Run.ID]; !newer {
			r.runs[j.ev.Run.ID] = j
		}
		return
	}
	r.others = append(r.others, j)
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
	live := false
	if st.State == store.StageSucceeded {
		hosts, err := r.st.Live(ctx, app.Name, st.Region)
		if err != nil {
			return fmt.Errorf("live release of %s %s: %w", app.Name, st.Region, err)
		}
		for _, sha := range hosts {
			live = live || sha == run.SHA
		}
	}
	v := view(r.cfg, app, run, st, live)
	notes, err := r.reconciled(ctx, run.ID, st.Region)
	if err != nil {
		return err
	}
	v.Summary = withNotes(v.Summary, notes)
	dg := v.digest()
	row, found, err := r.st.CheckRun(ctx, run.ID, st.Region)
	if err != nil || (found && row.Digest == dg) {
		return err
	}
	owner, name, _ := strings.Cut(app.Repo.GitHub, "/")
	details := RunURL(r.cfg, run.ID)
	if !found || (row.Status == "completed" && v.Status != "completed") {
		cr, _, err := cl.Checks.CreateCheckRun(ctx, owner, name, createOptions(v, run, st, details))
		if err != nil {
			return fmt.Errorf("create check run %s for %s@%s: %w", CheckName(st.Region), app.Name, shortSHA(run.SHA), err)
		}
		row = store.CheckRun{RunID: run.ID, Region: st.Region, Repo: app.Repo.GitHub, ID: cr.GetID()}
	} else {
		req, err := cl.NewRequest("PATCH", fmt.Sprintf("repos/%s/%s/check-runs/%d", owner, name, row.ID), updateBody(v, run, st, details))
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

// reconciled lists what the engine found on the stage's hosts that the store did not
// know ("prod3/host2 found on X, store said Y"), from the run's log.
func (r *Reporter) reconciled(ctx context.Context, runID int64, region string) ([]string, error) {
	events, err := r.st.Events(ctx, runID, 1000)
	if err != nil {
		return nil, fmt.Errorf("log of run %d: %w", runID, err)
	}
	var out []string
	for _, e := range events {
		if e.Kind == string(pipeline.Reconciled) && e.Region == region {
			out = append(out, e.Message)
		}
	}
	return out, nil
}

// withNotes adds the reconciliation notes to a summary (the last 10, within GitHub's limit).
func withNotes(summary string, notes []string) string {
	if len(notes) == 0 {
		return summary
	}
	if len(notes) > 10 {
		notes = notes[len(notes)-10:]
	}
	var b strings.Builder
	b.WriteString("\n### Reconciled with the hosts\n\n")
	for _, n := range notes {
		fmt.Fprintf(&b, "- %s\n", inline(n))
	}
	if len(summary)+b.Len() > MaxSummary {
		return summary
	}
	return summary + b.String()
}

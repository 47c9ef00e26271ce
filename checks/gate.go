package checks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	gh "github.com/google/go-github/v60/github"

	"github.com/immunity-app/immunity/pipeline"
	"github.com/immunity-app/immunity/pipeline/config"
	"github.com/immunity-app/immunity/store"
)

// gateEngine is the engine's answer to a gated deploy (pipeline.Engine.GatedDeploy).
type gateEngine interface {
	GatedDeploy(ctx context.Context, app, sha string, g config.GitHubGate) (pipeline.GateAnswer, error)
}

// Gate decides the deployment protection rule requests GitHub Actions sent (recorded by
// app/github): it asks the engine about every waiting request when one arrives, when the
// engine tells of a change (a stage, a look, a lock, a freeze) and every GateEvery (a
// window opening, a freeze expiring), and writes what it found to the store, with the
// GitHub review in the outbox in the same transaction: a status report while the request waits (when what it waits for changed, at most
// store.MaxGateReports), then approved or rejected once. The Reporter sends them.
type Gate struct {
	cfg   *config.Config
	st    *store.Store
	eng   gateEngine
	rep   *Reporter
	log   *slog.Logger
	every time.Duration

	wake      chan struct{}
	stop      chan struct{}
	closeOnce sync.Once
	done      chan struct{}
	lease     *store.Holding // replicas sharing a database: one decides (decisions are once anyway)
}

// gateLease names the lease of deciding gate requests.
const gateLease = "github/gate"

// GateEvery is how often waiting requests are asked about when nothing is told.
const GateEvery = 30 * time.Second

// NewGate starts the gate's decider; stop it with Close.
func NewGate(cfg *config.Config, st *store.Store, eng gateEngine, rep *Reporter, logger *slog.Logger) *Gate {
	if logger == nil {
		logger = slog.Default()
	}
	g := &Gate{cfg: cfg, st: st, eng: eng, rep: rep, log: logger.With("part", "github-gate"), every: GateEvery,
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go g.loop()
	return g
}

// Wake has the waiting requests asked about now.
func (g *Gate) Wake() {
	select {
	case g.wake <- struct{}{}:
	default:
	}
}

// Notify wakes the gate on what may change an answer.
func (g *Gate) Notify(_ context.Context, ev pipeline.Event) {
	switch ev.Kind {
	case pipeline.StageChanged, pipeline.RunChanged, pipeline.Looked, pipeline.Locked, pipeline.Unlocked, pipeline.Frozen, pipeline.Unfrozen,
		pipeline.RolledBack, pipeline.Deployed:
		g.Wake()
	}
}

// Close stops the decider (a decision under way is finished first).
func (g *Gate) Close(context.Context) error {
	g.closeOnce.Do(func() { close(g.stop) })
	<-g.done
	return nil
}

func (g *Gate) loop() {
	defer close(g.done)
	ctx, cancel := context.WithCancel(context.Background())
	g.lease = g.st.Hold(ctx, gateLease, g.st.LeaseTTL())
	defer func() { cancel(); <-g.lease.Done() }()
	go func() { <-g.stop; cancel() }()
	for {
		every := g.every
		if _, held := g.lease.Lease(); held {
			g.decideAll(ctx)
		} else {
			every = time.Second // another replica decides, or the store is out of reach
		}
		t := time.NewTimer(every)
		select {
		case <-g.wake:
		case <-t.C:
		case <-g.stop:
			t.Stop()
			return
		}
		t.Stop()
	}
}

// decideAll asks about every waiting request.
func (g *Gate) decideAll(ctx context.Context) {
	reqs, err := g.st.GateRequests(ctx, store.GateWaiting)
	if err != nil {
		g.log.Error("github gate: list waiting requests", "err", err)
		return
	}
	wrote := false
	for _, r := range reqs {
		w, err := g.decide(ctx, r)
		if err != nil && ctx.Err() == nil {
			g.log.Error("github gate", "gate", r.ID, "repo", r.Repo, "environment", r.Environment, "err", err)
		}
		wrote = wrote || w
	}
	if wrote && g.rep != nil {
		g.rep.kick()
	}
}

// decide asks about one request and records the answer; wrote says whether a review was
// added to the outbox.
func (g *Gate) decide(ctx context.Context, r store.GateRequest) (wrote bool, err error) {
	gate, app, ok := g.gateOf(r)
	if !ok {
		why := fmt.Sprintf("Immunity gates no environment %q of %s (github_gate in its config)", r.Environment, r.Repo)
		return true, g.record(ctx, r, pipeline.GateAnswer{Decided: true, Reason: why})
	}
	ans, err := g.eng.GatedDeploy(ctx, app, r.SHA, gate)
	if err != nil {
		return false, err
	}
	if !ans.Decided && (ans.Settling || !g.worthReporting(r, ans.Reason)) {
		return false, nil
	}
	return true, g.record(ctx, r, ans)
}

// gateOf finds the gate that decides a request now (the config may have changed since
// it was recorded).
func (g *Gate) gateOf(r store.GateRequest) (config.GitHubGate, string, bool) {
	for i := range g.cfg.Apps {
		a := &g.cfg.Apps[i]
		if !strings.EqualFold(a.Repo.GitHub, r.Repo) {
			continue
		}
		if gate, ok := a.Gate(r.Environment); ok {
			return gate, a.Name, true
		}
	}
	return config.GitHubGate{}, "", false
}

var lookRE = regexp.MustCompile(`look (\d+) of (\d+)`)

// worthReporting says whether a waiting request's new status is worth one of the few
// status reports GitHub takes: it says something new, beyond a canary's next look (those
// are reported every quarter of the window).
func (g *Gate) worthReporting(r store.GateRequest, text string) bool {
	if text == r.LastReport || r.Reports >= store.MaxGateReports {
		return false
	}
	if lookRE.ReplaceAllString(text, "look") != lookRE.ReplaceAllString(r.LastReport, "look") {
		return true
	}
	now, last := lookRE.FindStringSubmatch(text), lookRE.FindStringSubmatch(r.LastReport)
	if now == nil || last == nil {
		return true
	}
	n, _ := strconv.Atoi(now[1])
	l, _ := strconv.Atoi(last[1])
	looks, _ := strconv.Atoi(now[2])
	return n-l >= max(1, looks/4)
}

// record writes an answer and its review.
func (g *Gate) record(ctx context.Context, r store.GateRequest, ans pipeline.GateAnswer) error {
	review := gateReview{Repo: r.Repo, RunID: r.ActionsRunID, Environment: r.Environment}
	stream := fmt.Sprintf("github/gate/%d", r.ID)
	if !ans.Decided {
		review.Comment = g.comment(ans.Reason, ans.RunID)
		b, _ := json.Marshal(review)
		it := store.OutboxItem{Stream: stream, Kind: kindGate, Dedupe: stream + "/report", Payload: string(b)}
		err := g.st.ReportGate(ctx, r.ID, ans.Reason, it)
		if errors.Is(err, store.ErrDecided) || errors.Is(err, store.ErrReportsUsed) {
			return nil
		}
		return err
	}
	state, verb := store.GateRejected, "Rejected"
	if ans.Approved {
		state, verb = store.GateApproved, "Approved"
	}
	review.State = string(state)
	review.Comment = g.comment(verb+" by Immunity: "+ans.Reason, ans.RunID)
	b, _ := json.Marshal(review)
	it := store.OutboxItem{Stream: stream, Kind: kindGate, Dedupe: stream + "/review", Payload: string(b)}
	err := g.st.DecideGate(ctx, r.ID, state, ans.Reason, it)
	if errors.Is(err, store.ErrDecided) {
		return nil
	}
	if err == nil {
		g.log.Info("github gate decided", "gate", r.ID, "repo", r.Repo, "environment", r.Environment, "sha", r.SHA, "state", state, "reason", ans.Reason)
	}
	return err
}

// MaxGateComment is the longest comment GitHub takes on a deployment protection rule review.
const MaxGateComment = 1024

// comment is a review's Markdown: what was found, and a link to the run in Immunity,
// within MaxGateComment characters.
func (g *Gate) comment(text string, runID int64) string {
	link := ""
	if u := RunURL(g.cfg, runID); u != "" {
		link = fmt.Sprintf(" ([run %d](%s))", runID, u)
	} else if runID != 0 {
		link = fmt.Sprintf(" (run %d)", runID)
	}
	room := MaxGateComment - utf8.RuneCountInString(link)
	if utf8.RuneCountInString(text) > room {
		r := []rune(text)
		text = string(r[:room-1]) + "…"
	}
	return text + link
}

// gateReview is an outbox row of kind github.gate: a status report (no State) or the
// review of a workflow run's deployment protection rule.
type gateReview struct {
	Repo        string `json:"repo"`
	RunID       int64  `json:"run_id"`
	Environment string `json:"environment"`
	State       string `json:"state,omitempty"` // approved, rejected; "" for a status report
	Comment     string `json:"comment"`
}

// errGateRefused is a review GitHub will not take however often it is sent (a 4xx).
var errGateRefused = errors.New("GitHub refused the review")

// sendGate posts a review to POST /repos/{owner}/{repo}/actions/runs/{run_id}/deployment_protection_rule.
func (r *Reporter) sendGate(ctx context.Context, payload string) error {
	var rv gateReview
	if err := json.Unmarshal([]byte(payload), &rv); err != nil {
		return fmt.Errorf("%w: bad outbox row: %w", errGateRefused, err)
	}
	cl, err := r.clients.ForRepo(ctx, rv.Repo)
	if err != nil {
		return err
	}
	body := map[string]string{"environment_name": rv.Environment, "comment": rv.Comment}
	if rv.State != "" {
		body["state"] = rv.State
	}
	req, err := cl.NewRequest("POST", fmt.Sprintf("repos/%s/actions/runs/%d/deployment_protection_rule", rv.Repo, rv.RunID), body)
	if err == nil {
		_, err = cl.Do(ctx, req, nil)
	}
	if err != nil {
		what := "status report"
		if rv.State != "" {
			what = rv.State + " review"
		}
		err = fmt.Errorf("%s of %s workflow run %d for %s: %w", what, rv.Repo, rv.RunID, rv.Environment, err)
		var ghErr *gh.ErrorResponse
		if errors.As(err, &ghErr) && ghErr.Response != nil && ghErr.Response.StatusCode >= 400 && ghErr.Response.StatusCode < 500 &&
			ghErr.Response.StatusCode != http.StatusForbidden && ghErr.Response.StatusCode != http.StatusTooManyRequests {
			return fmt.Errorf("%w: %w", errGateRefused, err)
		}
		return err
	}
	return nil
}

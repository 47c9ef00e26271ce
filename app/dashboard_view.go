package app

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/immunity-app/immunity/bot"
	"github.com/immunity-app/immunity/pipeline"
	"github.com/immunity-app/immunity/pipeline/config"
	"github.com/immunity-app/immunity/pipeline/judge"
	"github.com/immunity-app/immunity/store"
)

// What the dashboard's templates read: plain structs built from the engine's status and
// the store, so the templates hold no logic beyond loops and conditions.

// recentRuns is how many finished runs the home page lists.
const recentRuns = 15

// cardHistory is how many history entries an app's card shows; the region pages page
// through all of them.
const cardHistory = 8

// appView is one app's card on the home page.
type appView struct {
	Name    string
	Regions []regionView
	History []store.HistoryEntry
	// MoreHistory says there is older history than History shows (on the region pages).
	MoreHistory bool
	// Reconciled is what the engine last found on the app's hosts that the store did not
	// know ("prod3/host2 found on X, store said Y"), newest first.
	Reconciled []store.Event
	Me         viewer // who is looking: their buttons
}

// regionView is one region's row.
type regionView struct {
	pipeline.RegionStatus
	Hosts      []hostLive      // live release per host, by host name
	ActiveHost *store.HostStep // the host the active stage is working on
	Verdict    *judge.Verdict  // the active stage's latest comparison
	Promote    []string        // the commands that promote what waits here
	Failed     []failedHere    // releases running here whose stage here failed
}

type hostLive struct{ Host, SHA string }

// runsView is the home page's run lists.
type runsView struct {
	InFlight, Recent []store.Run
	// More says there are older finished runs than Recent shows (GET /api/runs lists them).
	More bool
}

// homeView is the whole home page.
type homeView struct {
	Title string
	Apps  []appView
	Runs  runsView
	Audit []store.Audit
	// AuditHidden: the viewer may not see who did what (anonymous, beyond loopback).
	AuditHidden bool
	Me          viewer // who is looking
}

// runView is the run page.
type runView struct {
	Title  string
	Run    store.Run
	Stages []stageView
	Thread threadView
	Events []store.Event
	Me     viewer // who is looking
}

type stageView struct {
	store.Stage
	Verdict *judge.Verdict
	Table   string // the verdict as Slack's code block shows it
}

// threadView is the run's Slack thread: root message, then posts.
type threadView struct {
	Root  bot.Root
	Posts []bot.Post
}

func (s *Server) appViews(ctx context.Context, only string) ([]appView, error) {
	sts, err := s.eng.Status(ctx, only)
	if err != nil {
		return nil, err
	}
	inflight, err := s.eng.Runs(ctx, only, true, 0)
	if err != nil {
		return nil, err
	}
	var out []appView
	for _, st := range sts {
		av := appView{Name: st.App}
		for _, r := range st.Regions {
			rv := regionOf(st.App, r, inflight)
			if rv.Failed, err = s.failedReleases(ctx, st.App, r.Name, r.Live); err != nil {
				return nil, err
			}
			av.Regions = append(av.Regions, rv)
		}
		if av.History, err = s.eng.Store().History(ctx, st.App, "", cardHistory+1); err != nil {
			return nil, err
		}
		if len(av.History) > cardHistory {
			av.History, av.MoreHistory = av.History[:cardHistory], true
		}
		out = append(out, av)
	}
	events, err := s.eng.Store().Events(ctx, 0, 500)
	if err != nil {
		return nil, err
	}
	for _, e := range events { // newest first
		for i := range out {
			if e.Kind == string(pipeline.Reconciled) && e.App == out[i].Name && len(out[i].Reconciled) < 5 {
				out[i].Reconciled = append(out[i].Reconciled, e)
			}
		}
	}
	return out, nil
}

func regionOf(app string, r pipeline.RegionStatus, inflight []store.Run) regionView {
	v := regionView{RegionStatus: r}
	for h, sha := range r.Live {
		v.Hosts = append(v.Hosts, hostLive{h, sha})
	}
	sort.Slice(v.Hosts, func(i, j int) bool { return v.Hosts[i].Host < v.Hosts[j].Host })
	if r.Waiting != nil {
		v.Promote = []string{
			fmt.Sprintf("immunity promote %s %s", app, r.Name),
			fmt.Sprintf("/immunity promote %s %s", app, r.Name),
		}
	}
	if r.Active == nil {
		return v
	}
	if st := stageOf(inflight, r.Active.RunID, r.Name); st != nil {
		v.ActiveHost = busyHost(st.Hosts)
		v.Verdict = verdictOf(st.Verdict)
	}
	return v
}

func stageOf(runs []store.Run, id int64, region string) *store.Stage {
	for i := range runs {
		if runs[i].ID != id {
			continue
		}
		for j := range runs[i].Stages {
			if runs[i].Stages[j].Region == region {
				return &runs[i].Stages[j]
			}
		}
	}
	return nil
}

// busyHost is the host a stage is working on: the first neither pending nor done.
func busyHost(hs []store.HostStep) *store.HostStep {
	for i := range hs {
		if hs[i].Step != store.HostPending && hs[i].Step != store.HostDone {
			return &hs[i]
		}
	}
	return nil
}

func verdictOf(s string) *judge.Verdict {
	if s == "" {
		return nil
	}
	var v judge.Verdict
	if json.Unmarshal([]byte(s), &v) != nil {
		return nil
	}
	return &v
}

func (s *Server) runsView(ctx context.Context) runsView {
	var v runsView
	v.InFlight, _ = s.eng.Runs(ctx, "", true, 50)
	all, _ := s.eng.Runs(ctx, "", false, 40)
	for _, r := range all {
		switch {
		case !r.State.Terminal():
		case len(v.Recent) < recentRuns:
			v.Recent = append(v.Recent, r)
		default:
			v.More = true
		}
	}
	return v
}

func (s *Server) runViewOf(ctx context.Context, r store.Run) runView {
	v := runView{Title: fmt.Sprintf("run %d", r.ID), Run: r}
	v.Events, _ = s.eng.Store().Events(ctx, r.ID, 1000)
	for _, st := range r.Stages {
		sv := stageView{Stage: st, Verdict: verdictOf(st.Verdict)}
		if sv.Verdict != nil {
			sv.Table = bot.VerdictTable(*sv.Verdict)
		}
		v.Stages = append(v.Stages, sv)
	}
	v.Thread = s.threadOf(r, v.Events)
	return v
}

// configured is an engine that tells production regions apart (for the thread's buttons).
type configured interface{ Config() *config.Config }

// threadOf is the thread Slack shows for the run's current snapshot, with failures'
// log lines taken from the run's event log.
func (s *Server) threadOf(r store.Run, events []store.Event) threadView {
	var app *config.App
	if c, ok := s.eng.(configured); ok {
		app, _ = c.Config().App(r.App)
	}
	logs := func(region string) []string {
		var out []string
		for _, e := range events {
			if e.Region == region && e.Kind == string(pipeline.Logged) {
				line := e.Message
				if e.Host != "" {
					line = e.Host + ": " + line
				}
				out = append(out, line)
			}
		}
		if len(out) > 50 {
			out = out[len(out)-50:]
		}
		return out
	}
	ev := pipeline.Event{Kind: pipeline.RunChanged, App: r.App, Run: r}
	return threadView{Root: bot.RootOf(r), Posts: bot.PostsFor(app, ev, logs)}
}

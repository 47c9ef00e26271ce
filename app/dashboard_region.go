package app

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/immunity-app/immunity/pipeline"
	"github.com/immunity-app/immunity/store"
)

// failedHere is a release running in a region whose last stage there failed: the region
// is not idle, it runs something that did not pass (a non-production region keeps a
// failed release until the next one; a production host a rollback could not move back).
type failedHere struct {
	SHA     string
	RunID   int64
	State   store.StageState
	Message string
	Hosts   []string
}

// failedReleases lists the releases live in a region whose newest stage there that
// started ended failed.
func (s *Server) failedReleases(ctx context.Context, app, region string, live map[string]string) ([]failedHere, error) {
	hosts := map[string][]string{}
	for h, sha := range live {
		hosts[sha] = append(hosts[sha], h)
	}
	var out []failedHere
	for sha, hs := range hosts {
		runs, err := s.eng.Store().RunsOf(ctx, app, sha)
		if err != nil {
			return nil, err
		}
		if st, run := lastStageIn(runs, region); st != nil && failedState(st.State) {
			sort.Strings(hs)
			out = append(out, failedHere{SHA: sha, RunID: run, State: st.State, Message: st.Message, Hosts: hs})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].SHA < out[j].SHA })
	return out, nil
}

// lastStageIn is the newest stage in a region that did something there, of runs listed
// newest first.
func lastStageIn(runs []store.Run, region string) (*store.Stage, int64) {
	for _, r := range runs {
		for i := range r.Stages {
			if st := &r.Stages[i]; st.Region == region && ran(st) {
				return st, r.ID
			}
		}
	}
	return nil, 0
}

func failedState(s store.StageState) bool {
	return s == store.StageFailed || s == store.StageRolledBack || s == store.StageRollingBack
}

// ran reports whether a stage did something in its region (not one that waited and was
// skipped or cancelled before it started).
func ran(st *store.Stage) bool {
	switch {
	case st.State.Waiting(), st.State == store.StageSkipped:
		return false
	case st.State == store.StageCancelled:
		return !st.Started.IsZero()
	}
	return true
}

// historyPageSize is how many history entries a region page shows at a time.
const historyPageSize = 25

// regionPage is a region's own page: its hosts and what runs on each, whether the hosts
// agreed with the store when last asked, what is in flight or waiting, and its history
// (deploys, promotions, rollbacks: who, how, when), paged.
type regionPage struct {
	Title  string
	App    string
	Region regionView
	Hosts  []regionHost
	// History is one page of the region's history, newest first; Older is the id to page
	// back from (0: this is the oldest page).
	History []store.HistoryEntry
	Older   int64
	Before  int64 // the page shown (0: the newest)
	Audit   []store.Audit
}

// regionHost is one host of a region: its live release and what reconciliation last
// corrected on it (nil: the host agreed with the store every time it was asked).
type regionHost struct {
	Name, SHA  string
	Subject    string
	Correction *store.Event
}

func (s *Server) regionPageOf(ctx context.Context, app, region string, before int64) (regionPage, error) {
	sts, err := s.eng.Status(ctx, app)
	if err != nil {
		return regionPage{}, err
	}
	var rs *pipeline.RegionStatus
	for _, st := range sts {
		for i := range st.Regions {
			if st.App == app && st.Regions[i].Name == region {
				rs = &st.Regions[i]
			}
		}
	}
	if rs == nil {
		return regionPage{}, fmt.Errorf("app %s has no region %q", app, region)
	}
	inflight, err := s.eng.Runs(ctx, app, true, 0)
	if err != nil {
		return regionPage{}, err
	}
	p := regionPage{Title: app + " " + region, App: app, Region: regionOf(app, *rs, inflight), Before: before}
	if p.Region.Failed, err = s.failedReleases(ctx, app, region, rs.Live); err != nil {
		return regionPage{}, err
	}
	if p.Hosts, err = s.regionHosts(ctx, app, region, rs.Live); err != nil {
		return regionPage{}, err
	}
	h, err := s.eng.Store().HistoryPage(ctx, store.HistoryFilter{App: app, Region: region, Before: before, Limit: historyPageSize + 1})
	if err != nil {
		return regionPage{}, err
	}
	if len(h) > historyPageSize {
		h = h[:historyPageSize]
		p.Older = h[len(h)-1].ID
	}
	p.History = h
	p.Audit, err = s.eng.Store().AuditPage(ctx, store.AuditFilter{App: app, Region: region, Limit: 10})
	return p, err
}

// regionHosts lists a region's hosts as configured (or as the store knows them), each with
// its live release and its last correction by reconciliation.
func (s *Server) regionHosts(ctx context.Context, app, region string, live map[string]string) ([]regionHost, error) {
	names := map[string]bool{}
	if c, ok := s.eng.(configured); ok {
		if a, ok := c.Config().App(app); ok {
			if r, _, ok := a.Region(region); ok {
				for _, h := range r.Hosts {
					names[h.Name] = true
				}
			}
		}
	}
	for h := range live {
		names[h] = true
	}
	events, err := s.eng.Store().Events(ctx, 0, 1000)
	if err != nil {
		return nil, err
	}
	var out []regionHost
	for name := range names {
		rh := regionHost{Name: name, SHA: live[name]}
		if rel, err := s.eng.Store().Release(ctx, app, rh.SHA); err == nil {
			rh.Subject = rel.Subject
		}
		for i := range events { // newest first
			if e := events[i]; e.Kind == string(pipeline.Reconciled) && e.App == app && e.Region == region && e.Host == name {
				rh.Correction = &events[i]
				break
			}
		}
		out = append(out, rh)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (s *Server) regionHandler(c *gin.Context, tmpl string) {
	before, err := pageBefore(c)
	if err != nil {
		c.String(http.StatusBadRequest, err.Error())
		return
	}
	p, err := s.regionPageOf(c.Request.Context(), c.Param("app"), c.Param("region"), before)
	if err != nil {
		c.String(http.StatusNotFound, err.Error())
		return
	}
	render(c, tmpl, p)
}

func (s *Server) regionPageHandler(c *gin.Context)     { s.regionHandler(c, "region") }
func (s *Server) regionFragmentHandler(c *gin.Context) { s.regionHandler(c, "regionbody") }

// pageBefore reads a page's ?before=ID: an entry id to page back from (0: the newest).
func pageBefore(c *gin.Context) (int64, error) {
	v := c.Query("before")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("before=%q: expected the id of an entry (a positive number)", v)
	}
	return n, nil
}

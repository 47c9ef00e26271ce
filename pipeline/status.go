package pipeline

import (
	"context"

	"github.com/immunity-app/immunity/store"
)

// AppStatus is an app's pipeline at a glance.
type AppStatus struct {
	App     string         `json:"app"`
	Regions []RegionStatus `json:"regions"`
}

// RegionStatus is one region at a glance.
type RegionStatus struct {
	Name           string            `json:"name"`
	Production     bool              `json:"production"`
	ManualApproval bool              `json:"manual_approval"`
	Live           map[string]string `json:"live"`     // host -> SHA
	LiveSHA        string            `json:"live_sha"` // when every host runs the same
	Lock           *store.Lock       `json:"lock,omitempty"`
	Freezes        []store.Freeze    `json:"freezes,omitempty"` // holding now, the region's and org-wide
	// Gate is why the region takes no deploy or promotion now (nil when it does).
	Gate    *Gate     `json:"gate,omitempty"`
	Active  *StageRef `json:"active,omitempty"`
	Waiting *StageRef `json:"waiting,omitempty"`
}

// StageRef points at a run's stage in a region.
type StageRef struct {
	RunID   int64            `json:"run_id"`
	SHA     string           `json:"sha"`
	Subject string           `json:"subject"`
	State   store.StageState `json:"state"`
	Message string           `json:"message"`
}

// Status reports each region's live release, the runs in flight, waiting approvals and
// locks; app "" means every app.
func (e *Engine) Status(ctx context.Context, app string) ([]AppStatus, error) {
	var out []AppStatus
	for i := range e.cfg.Apps {
		a := &e.cfg.Apps[i]
		if app != "" && a.Name != app {
			continue
		}
		runs, err := e.st.Runs(ctx, a.Name, true, 0)
		if err != nil {
			return nil, err
		}
		as := AppStatus{App: a.Name}
		for _, r := range a.Regions {
			rs := RegionStatus{Name: r.Name, Production: r.Production, ManualApproval: r.ManualApproval}
			if rs.Live, err = e.st.Live(ctx, a.Name, r.Name); err != nil {
				return nil, err
			}
			rs.LiveSHA = majority(rs.Live)
			for _, sha := range rs.Live {
				if sha != rs.LiveSHA {
					rs.LiveSHA = ""
				}
			}
			if l, locked, err := e.locked(ctx, a.Name, r.Name); err != nil {
				return nil, err
			} else if locked {
				rs.Lock = &l
			}
			now := e.now()
			freezes, err := e.st.Freezes(ctx, a.Name, now)
			if err != nil {
				return nil, err
			}
			for _, f := range freezes {
				if f.Covers(a.Name, r.Name) {
					rs.Freezes = append(rs.Freezes, f)
				}
			}
			if g, err := e.DeployAllowed(ctx, a.Name, r.Name, now); err != nil {
				return nil, err
			} else if !g.Allowed {
				rs.Gate = &g
			}
			for _, run := range runs {
				for _, s := range run.Stages {
					if s.Region != r.Name {
						continue
					}
					ref := &StageRef{RunID: run.ID, SHA: run.SHA, Subject: run.Subject, State: s.State, Message: s.Message}
					if s.State.Active() && rs.Active == nil {
						rs.Active = ref
					}
					if s.State == store.StageAwaitingApproval && rs.Waiting == nil {
						rs.Waiting = ref
					}
				}
			}
			as.Regions = append(as.Regions, rs)
		}
		out = append(out, as)
	}
	if app != "" && len(out) == 0 {
		_, err := e.app(app)
		return nil, err
	}
	return out, nil
}

// History lists what went live in an app's regions, newest first.
func (e *Engine) History(ctx context.Context, app, region string, limit int) ([]store.HistoryEntry, error) {
	a, err := e.app(app)
	if err != nil {
		return nil, err
	}
	if region != "" {
		if _, _, err := e.region(a, region); err != nil {
			return nil, err
		}
	}
	return e.st.History(ctx, app, region, limit)
}

// Runs lists runs, newest first.
func (e *Engine) Runs(ctx context.Context, app string, activeOnly bool, limit int) ([]store.Run, error) {
	return e.st.Runs(ctx, app, activeOnly, limit)
}

// Run returns one run.
func (e *Engine) Run(ctx context.Context, id int64) (store.Run, error) { return e.st.Run(ctx, id) }

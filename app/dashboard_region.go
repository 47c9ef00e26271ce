package app

import (
	"context"
	"sort"

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

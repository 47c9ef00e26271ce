package store

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

// Delivery metrics (DORA) from the store's own record of an app's production stages.
//
// The unit of change failure is the production stage: one run's deploy into one
// production region. A release is deployed to production when every production stage of
// its run has succeeded (it is then live on every production host); a failure is a
// production stage that failed or was rolled back, automatically (its rollback plan) or
// by a person (a manual rollback of the region undoes the stage that last went live
// there). A failure is restored when its region runs a healthy release again: its
// rollback plan is done, or a later production stage in the region succeeded. A canary
// stop is a run failed in a region before production while its canary verdict was
// recorded (the monitoring step failed it), whose run never started a production stage.

// ReportQuery asks for an app's delivery figures over [Since, Until).
type ReportQuery struct {
	App        string
	Production []string // the app's production regions, from its config
	Since      time.Time
	Until      time.Time
	// CommitTime gives a commit's time (its committer time); false when unknown, and the
	// release's lead time is then not counted (Report.LeadTimeUnknown).
	CommitTime func(sha string) (time.Time, bool)
}

// Durations are figures of a set of durations, in seconds: how many, their median and
// 90th percentile (nil when there are none).
type Durations struct {
	Count  int      `json:"count"`
	Median *float64 `json:"median_seconds"`
	P90    *float64 `json:"p90_seconds"`
}

// ReportWeek is one calendar week (Monday 00:00 UTC) of the period, clipped to it.
type ReportWeek struct {
	Start       time.Time `json:"start"`
	Deploys     int       `json:"deploys"`
	Failures    int       `json:"failures"`
	CanaryStops int       `json:"canary_stops"`
}

// ReportFailure is one failed or rolled-back production stage.
type ReportFailure struct {
	RunID    int64      `json:"run"`
	SHA      string     `json:"sha"`
	Region   string     `json:"region"`
	How      string     `json:"how"` // failed, rolled_back (by its rollback plan), rolled_back_by_person
	Started  time.Time  `json:"started"`
	Restored *time.Time `json:"restored"` // nil: not restored yet
}

// ReportStop is one regression the canary stopped before production.
type ReportStop struct {
	RunID  int64     `json:"run"`
	SHA    string    `json:"sha"`
	Region string    `json:"region"`
	At     time.Time `json:"at"`
}

// Report is an app's delivery figures over a period.
type Report struct {
	App        string    `json:"app"`
	Since      time.Time `json:"since"`
	Until      time.Time `json:"until"`
	Production []string  `json:"production_regions"`
	// Deploys: releases live on every production host, by the end of their last
	// production stage within the period.
	Deploys        int     `json:"deploys"`
	DeploysPerDay  float64 `json:"deploys_per_day"`
	DeploysPerWeek float64 `json:"deploys_per_week"`
	// LeadTime: commit time to live on every production host, over Deploys whose commit
	// time is known.
	LeadTime        Durations `json:"lead_time"`
	LeadTimeUnknown int       `json:"lead_time_unknown"`
	// ProductionStages finished within the period (succeeded, failed or rolled back), and
	// the Failures among them; ChangeFailureRate is their ratio, nil without any.
	ProductionStages  int      `json:"production_stages"`
	Failures          int      `json:"failures"`
	ChangeFailureRate *float64 `json:"change_failure_rate"`
	// TimeToRestore: over the period's failures that are restored; RestoresOpen are not.
	TimeToRestore Durations `json:"time_to_restore"`
	RestoresOpen  int       `json:"restores_open"`
	// InFlight: production stages still working at the end of the period.
	InFlight    int             `json:"in_flight"`
	CanaryStops int             `json:"canary_stops"`
	Weeks       []ReportWeek    `json:"weeks"`
	FailureList []ReportFailure `json:"failure_list"`
	StopList    []ReportStop    `json:"canary_stop_list"`
}

type prodStage struct {
	id, run            int64
	sha, region        string
	state              StageState
	started, finished  int64
	rollback           RollbackState // the stage's own plan, "" without one
	rollbackDone       int64
	manualRollbackAt   int64 // a person's rollback undid this stage (0: none)
	manualRollbackDone int64
}

// Report computes an app's delivery figures over a period from its runs, stages and
// rollbacks.
func (s *Store) Report(ctx context.Context, q ReportQuery) (Report, error) {
	if q.App == "" {
		return Report{}, fmt.Errorf("report: no app given")
	}
	if !q.Since.Before(q.Until) {
		return Report{}, fmt.Errorf("report of %s: the period ends (%s) before it starts (%s)", q.App, q.Until.UTC().Format(time.RFC3339), q.Since.UTC().Format(time.RFC3339))
	}
	d := Report{App: q.App, Since: q.Since.UTC(), Until: q.Until.UTC(), Production: append([]string{}, q.Production...)}
	since, until := q.Since.UnixNano(), q.Until.UnixNano()
	for w := weekStart(d.Since); w.Before(d.Until); w = w.AddDate(0, 0, 7) {
		start := w
		if start.Before(d.Since) {
			start = d.Since
		}
		d.Weeks = append(d.Weeks, ReportWeek{Start: start})
	}
	week := func(ns int64) *ReportWeek {
		for i := len(d.Weeks) - 1; i >= 0; i-- {
			if ns >= d.Weeks[i].Start.UnixNano() {
				return &d.Weeks[i]
			}
		}
		return &d.Weeks[0]
	}
	if len(q.Production) == 0 {
		return d, nil
	}
	stages, err := s.productionStages(ctx, q.App, q.Production, until)
	if err != nil {
		return Report{}, fmt.Errorf("report of %s: %w", q.App, err)
	}
	in := func(ns int64) bool { return ns >= since && ns < until }

	// Releases live on every production host: runs whose production stages all succeeded.
	byRun := map[int64][]*prodStage{}
	var runs []int64
	for _, st := range stages {
		if byRun[st.run] == nil {
			runs = append(runs, st.run)
		}
		byRun[st.run] = append(byRun[st.run], st)
	}
	var leads []float64
	for _, run := range runs {
		var last int64
		live := true
		for _, st := range byRun[run] {
			if st.state != StageSucceeded {
				live = false
				break
			}
			last = max(last, st.finished)
		}
		if !live || !in(last) {
			continue
		}
		d.Deploys++
		week(last).Deploys++
		sha := byRun[run][0].sha
		if t, ok := commitTime(q, sha); ok {
			leads = append(leads, math.Max(0, time.Unix(0, last).Sub(t).Seconds()))
		} else {
			d.LeadTimeUnknown++
		}
	}
	days := q.Until.Sub(q.Since).Hours() / 24
	d.DeploysPerDay = round2(float64(d.Deploys) / days)
	d.DeploysPerWeek = round2(float64(d.Deploys) / days * 7)
	d.LeadTime = durations(leads)

	// Failures and their restores.
	var restores []float64
	for _, st := range stages {
		how, at := "", st.finished
		switch {
		case st.state == StageRollingBack: // failed, its rollback under way
			how, at = string(StageRolledBack), st.started
		case st.state.Active():
			d.InFlight++
			continue
		case st.state == StageFailed || st.state == StageRolledBack:
			how = string(st.state)
		case st.state == StageSucceeded && st.manualRollbackAt > 0:
			how = "rolled_back_by_person"
		case st.state != StageSucceeded: // cancelled, skipped: never deployed
			continue
		}
		if !in(at) {
			continue
		}
		d.ProductionStages++
		if how == "" {
			continue
		}
		d.Failures++
		week(at).Failures++
		f := ReportFailure{RunID: st.run, SHA: st.sha, Region: st.region, How: how, Started: time.Unix(0, st.started).UTC()}
		if back := restoredAt(st, stages, until); back > 0 {
			t := time.Unix(0, back).UTC()
			f.Restored = &t
			restores = append(restores, math.Max(0, float64(back-st.started)/1e9))
		} else {
			d.RestoresOpen++
		}
		d.FailureList = append(d.FailureList, f)
	}
	if d.ProductionStages > 0 {
		r := round2(float64(d.Failures) / float64(d.ProductionStages))
		d.ChangeFailureRate = &r
	}
	d.TimeToRestore = durations(restores)

	stops, err := s.canaryStops(ctx, q.App, q.Production, since, until)
	if err != nil {
		return Report{}, fmt.Errorf("report of %s: %w", q.App, err)
	}
	for _, c := range stops {
		d.CanaryStops++
		week(c.At.UnixNano()).CanaryStops++
	}
	d.StopList = stops
	return d, nil
}

func commitTime(q ReportQuery, sha string) (time.Time, bool) {
	if q.CommitTime == nil {
		return time.Time{}, false
	}
	return q.CommitTime(sha)
}

// restoredAt is when a failed production stage's region ran a healthy release again: its
// rollback plan (or a person's) done, or a later stage in the region succeeded; 0 when
// neither happened before until.
func restoredAt(st *prodStage, stages []*prodStage, until int64) int64 {
	var best int64
	take := func(ns int64) {
		if ns > 0 && ns < until && (best == 0 || ns < best) {
			best = ns
		}
	}
	if st.state == StageSucceeded {
		take(st.manualRollbackDone)
	} else if st.rollback == RollbackDone {
		take(st.rollbackDone)
	}
	for _, o := range stages {
		if o.region == st.region && o.state == StageSucceeded && o.started > st.started && o.id != st.id {
			take(o.finished)
		}
	}
	return best
}

// productionStages lists an app's production stages started before until, oldest first,
// with their rollback plans and the manual rollbacks that undid them.
func (s *Store) productionStages(ctx context.Context, app string, regions []string, until int64) ([]*prodStage, error) {
	marks := "?" + strings.Repeat(", ?", len(regions)-1)
	args := []any{app}
	for _, r := range regions {
		args = append(args, r)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT s.id, s.run_id, r.sha, s.region, s.state, s.started_at, s.finished_at,
		COALESCE(b.state, ''), COALESCE(b.finished_at, 0)
		FROM stages s JOIN runs r ON r.id = s.run_id
		LEFT JOIN rollbacks b ON b.stage_id = s.id
		WHERE r.app = ? AND s.region IN (`+marks+`) AND s.started_at > 0 AND s.started_at < ?
		ORDER BY s.started_at, s.id`, append(args, until)...)
	if err != nil {
		return nil, fmt.Errorf("production stages: %w", err)
	}
	defer rows.Close()
	var out []*prodStage
	for rows.Next() {
		st := &prodStage{}
		if err := rows.Scan(&st.id, &st.run, &st.sha, &st.region, &st.state, &st.started, &st.finished, &st.rollback, &st.rollbackDone); err != nil {
			return nil, fmt.Errorf("production stages: %w", err)
		}
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("production stages: %w", err)
	}
	// A person's rollback of a production region undoes the stage that last went live
	// there before it was asked for.
	rows, err = s.db.QueryContext(ctx, `SELECT region, state, created_at, finished_at FROM rollbacks
		WHERE app = ? AND stage_id = 0 AND region IN (`+marks+`) AND created_at < ? ORDER BY created_at, id`, append(args, until)...)
	if err != nil {
		return nil, fmt.Errorf("manual rollbacks: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var region string
		var state RollbackState
		var created, finished int64
		if err := rows.Scan(&region, &state, &created, &finished); err != nil {
			return nil, fmt.Errorf("manual rollbacks: %w", err)
		}
		var undone *prodStage
		for _, st := range out {
			if st.region == region && st.state == StageSucceeded && st.finished > 0 && st.finished <= created {
				if undone == nil || st.finished > undone.finished {
					undone = st
				}
			}
		}
		if undone == nil || undone.manualRollbackAt > 0 {
			continue
		}
		undone.manualRollbackAt = created
		if state == RollbackDone {
			undone.manualRollbackDone = finished
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("manual rollbacks: %w", err)
	}
	return out, nil
}

// canaryStops lists the runs failed before production while their canary verdict was
// recorded, whose run never started a production stage, finished within [since, until).
func (s *Store) canaryStops(ctx context.Context, app string, regions []string, since, until int64) ([]ReportStop, error) {
	marks := "?" + strings.Repeat(", ?", len(regions)-1)
	args := []any{app}
	for _, r := range regions {
		args = append(args, r)
	}
	args = append(args, StageFailed, since, until)
	for _, r := range regions {
		args = append(args, r)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT s.run_id, r.sha, s.region, s.finished_at
		FROM stages s JOIN runs r ON r.id = s.run_id
		WHERE r.app = ? AND s.region NOT IN (`+marks+`) AND s.state = ? AND s.verdict <> ''
		AND s.finished_at >= ? AND s.finished_at < ?
		AND NOT EXISTS (SELECT 1 FROM stages p WHERE p.run_id = s.run_id AND p.region IN (`+marks+`) AND p.started_at > 0)
		ORDER BY s.finished_at, s.id`, args...)
	if err != nil {
		return nil, fmt.Errorf("canary stops: %w", err)
	}
	defer rows.Close()
	var out []ReportStop
	for rows.Next() {
		var c ReportStop
		var at int64
		if err := rows.Scan(&c.RunID, &c.SHA, &c.Region, &at); err != nil {
			return nil, fmt.Errorf("canary stops: %w", err)
		}
		c.At = time.Unix(0, at).UTC()
		out = append(out, c)
	}
	return out, rows.Err()
}

// weekStart is the Monday 00:00 UTC of t's week.
func weekStart(t time.Time) time.Time {
	t = t.UTC()
	day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	return day.AddDate(0, 0, -((int(day.Weekday()) + 6) % 7))
}

// durations gives the count, median (the middle value, or the mean of the two middle
// ones) and 90th percentile (nearest rank: the smallest value at or above 90% of them).
func durations(secs []float64) Durations {
	out := Durations{Count: len(secs)}
	if len(secs) == 0 {
		return out
	}
	sort.Float64s(secs)
	n := len(secs)
	med := secs[n/2]
	if n%2 == 0 {
		med = (secs[n/2-1] + secs[n/2]) / 2
	}
	p90 := secs[int(math.Ceil(0.9*float64(n)))-1]
	med, p90 = math.Round(med), math.Round(p90)
	out.Median, out.P90 = &med, &p90
	return out
}

func round2(f float64) float64 { return math.Round(f*100) / 100 }

package store

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// at is a time of November 2026 in UTC: at("02 09:00") is Monday 2 November, 09:00.
func at(t *testing.T, day string) time.Time {
	t.Helper()
	v, err := time.Parse("2006-01-02 15:04", "2026-11-"+day)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// history writes an app's runs through the store's own methods, on a clock the test sets.
type history struct {
	t   *testing.T
	s   *Store
	now time.Time
}

func newHistory(t *testing.T, s *Store) *history {
	h := &history{t: t, s: s}
	s.SetClock(func() time.Time { return h.now })
	return h
}

// regions of the app: sandbox1 (a canary), then production prod3 and prod4.
var reportRegions = []string{"sandbox1", "prod3", "prod4"}

const (
	sandbox = 0
	prod3   = 1
	prod4   = 2
)

func (h *history) check(err error) {
	h.t.Helper()
	if err != nil {
		h.t.Fatal(err)
	}
}

func (h *history) run(sha, when string) Run {
	h.t.Helper()
	h.now = at(h.t, when)
	r, err := h.s.CreateRun(context.Background(), Run{App: "papi", SHA: sha, State: RunRunning}, reportRegions,
		map[string][]string{"sandbox1": {"host1"}, "prod3": {"host1", "host2"}, "prod4": {"host1", "host2"}})
	h.check(err)
	return r
}

func (h *history) start(r Run, stage int, when string) {
	h.t.Helper()
	h.now = at(h.t, when)
	h.check(h.s.UpdateStage(context.Background(), r.Stages[stage].ID, StageUpdate{State: StageDeploying, Start: true}))
}

// deploy starts a stage and ends it succeeded.
func (h *history) deploy(r Run, stage int, from, to string) {
	h.t.Helper()
	h.start(r, stage, from)
	h.now = at(h.t, to)
	st := r.Stages[stage]
	h.check(h.s.SucceedStage(context.Background(), st.ID, "live", HistoryEntry{App: "papi", Region: st.Region, SHA: r.SHA, Action: "promote", RunID: r.ID}))
}

// fail starts a stage and fails it; with a verdict, as the canary's monitoring step does.
func (h *history) fail(r Run, stage int, from, to, verdict string) {
	h.t.Helper()
	h.start(r, stage, from)
	ctx := context.Background()
	if verdict != "" {
		h.check(h.s.UpdateStage(ctx, r.Stages[stage].ID, StageUpdate{State: StageMonitoring, Verdict: verdict}))
	}
	h.now = at(h.t, to)
	h.check(h.s.FailStage(ctx, r.ID, r.Stages[stage].ID, StageFailed, RunFailed, "failed"))
}

// rollBack plans the automatic rollback of a failed production stage at planned and, when
// done is given, finishes it then.
func (h *history) rollBack(r Run, stage int, planned, done string) {
	h.t.Helper()
	ctx := context.Background()
	h.now = at(h.t, planned)
	rb, err := h.s.PlanRollback(ctx, Rollback{App: "papi", Region: r.Stages[stage].Region, RunID: r.ID, StageID: r.Stages[stage].ID,
		Reason: "canary failed", Hosts: []RollbackHost{{Host: "host1", From: r.SHA, To: "a1"}}})
	h.check(err)
	if done != "" {
		h.now = at(h.t, done)
		h.check(h.s.FinishRollback(ctx, rb, RollbackDone, 1, "rolled back"))
	}
}

// manualRollback is a person's rollback of a region, planned and done.
func (h *history) manualRollback(region, planned, done string) {
	h.t.Helper()
	ctx := context.Background()
	h.now = at(h.t, planned)
	rb, err := h.s.PlanRollback(ctx, Rollback{App: "papi", Region: region, Actor: "ada", ActorID: "github:1", Via: "slack",
		Hosts: []RollbackHost{{Host: "host1", From: "a4", To: "a1"}, {Host: "host2", From: "a4", To: "a1"}}})
	h.check(err)
	h.now = at(h.t, done)
	h.check(h.s.FinishRollback(ctx, rb, RollbackDone, 2, "rolled back"))
}

const failVerdict = `{"outcome":"fail","verdict":"Fail","final":true}`

// knownHistory fills the store with three weeks of an app's deliveries (2 to 22 November
// 2026, Mondays 2, 9 and 16) and a little before and after, and gives commit times.
func knownHistory(t *testing.T, s *Store) map[string]time.Time {
	h := newHistory(t, s)
	commits := map[string]time.Time{}
	commit := func(sha, when string) { commits[sha] = at(t, when) }

	// Before the period: live everywhere on 1 November, not counted.
	r := h.run("a0", "01 08:00")
	commit("a0", "01 07:00")
	h.deploy(r, sandbox, "01 08:00", "01 08:30")
	h.deploy(r, prod3, "01 09:00", "01 09:30")
	h.deploy(r, prod4, "01 10:00", "01 23:00")

	// Week of 2 November.
	// a1: committed 09:00, live on every production host at 12:00: lead time 3 h.
	r = h.run("a1", "02 09:05")
	commit("a1", "02 09:00")
	h.deploy(r, sandbox, "02 09:10", "02 10:00")
	h.deploy(r, prod3, "02 10:00", "02 10:30")
	h.deploy(r, prod4, "02 11:00", "02 12:00")
	// a2: the canary in sandbox1 fails it: a regression stopped before production.
	r = h.run("a2", "03 09:05")
	commit("a2", "03 09:00")
	h.fail(r, sandbox, "03 09:10", "03 10:00", failVerdict)
	// a3: passes sandbox1, prod3's canary fails it; rolled back 10:20-10:30: a failure,
	// restored 30 min after its stage started (10:00).
	r = h.run("a3", "04 08:05")
	commit("a3", "04 08:00")
	h.deploy(r, sandbox, "04 08:10", "04 09:00")
	h.start(r, prod3, "04 10:00")
	h.rollBack(r, prod3, "04 10:20", "04 10:30")

	// Week of 9 November.
	// a4: committed Monday 10:00, live everywhere Tuesday 11:00: lead time 25 h. A person
	// rolls prod4 back at 13:00 (done 13:10): its prod4 stage (started 10:00) is a failure,
	// restored after 3 h 10 min.
	r = h.run("a4", "09 10:05")
	commit("a4", "09 10:00")
	h.deploy(r, sandbox, "09 10:10", "09 11:00")
	h.deploy(r, prod3, "10 09:00", "10 09:30")
	h.deploy(r, prod4, "10 10:00", "10 11:00")
	h.manualRollback("prod4", "10 13:00", "10 13:10")
	// a5: fails in prod3 (no rollback plan), 12 Nov 09:00-09:15; restored when a6 goes
	// live in prod3 at 14:30: 5 h 30 min.
	r = h.run("a5", "11 08:05")
	commit("a5", "11 08:00")
	h.deploy(r, sandbox, "11 08:10", "11 09:00")
	h.fail(r, prod3, "12 09:00", "12 09:15", "")
	// a6: committed 12:00, live everywhere at 16:00: lead time 4 h.
	r = h.run("a6", "12 12:05")
	commit("a6", "12 12:00")
	h.deploy(r, sandbox, "12 12:10", "12 13:00")
	h.deploy(r, prod3, "12 14:00", "12 14:30")
	h.deploy(r, prod4, "12 15:00", "12 16:00")
	// a7: the canary stops it (second stop); a8: its tests fail in sandbox1 (no verdict:
	// not the canary's doing).
	r = h.run("a7", "13 09:05")
	h.fail(r, sandbox, "13 09:10", "13 10:00", failVerdict)
	r = h.run("a8", "13 11:05")
	h.fail(r, sandbox, "13 11:10", "13 11:20", "")

	// Week of 16 November.
	// a9: live everywhere on the 16th at 11:00; its commit time is unknown.
	r = h.run("a9", "16 08:05")
	h.deploy(r, sandbox, "16 08:10", "16 08:30")
	h.deploy(r, prod3, "16 09:00", "16 09:30")
	h.deploy(r, prod4, "16 10:00", "16 11:00")
	// b1: fails in prod3 on the 18th (stage started 09:00); its rollback is planned at
	// 09:20 and never done: a failure whose restore is open.
	r = h.run("b1", "17 08:05")
	commit("b1", "17 08:00")
	h.deploy(r, sandbox, "17 08:10", "17 08:30")
	h.start(r, prod3, "18 09:00")
	h.rollBack(r, prod3, "18 09:20", "")
	// b2: still deploying into prod3 when the period ends: in flight.
	r = h.run("b2", "21 08:05")
	commit("b2", "21 08:00")
	h.deploy(r, sandbox, "21 08:10", "21 08:30")
	h.start(r, prod3, "21 09:00")

	// After the period (23 November 00:00): prod3 takes b3; not counted, and it does not
	// restore b1 within the period.
	r = h.run("b3", "23 00:05")
	h.deploy(r, sandbox, "23 00:10", "23 00:20")
	h.deploy(r, prod3, "23 00:30", "23 01:00")
	return commits
}

func TestReportOfAKnownHistory(t *testing.T) {
	engines(t, func(t *testing.T, db string) {
		ctx := context.Background()
		s := open(t, db)
		commits := knownHistory(t, s)
		q := ReportQuery{App: "papi", Production: []string{"prod3", "prod4"}, Since: at(t, "02 00:00"), Until: at(t, "23 00:00"),
			CommitTime: func(sha string) (time.Time, bool) { c, ok := commits[sha]; return c, ok }}
		got, err := s.Report(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		// Worked out by hand from knownHistory, over 21 days:
		//   deploys: a1, a4, a6, a9 = 4; 4/21 = 0.19 a day, 4/3 = 1.33 a week.
		//   lead times known: a1 3 h, a4 25 h, a6 4 h = 10800, 90000, 14400 s (a9 unknown):
		//     median 14400; p90 by nearest rank: ceil(0.9*3) = 3rd = 90000.
		//   production stages finished in the period: a1 ×2, a3 prod3, a4 ×2, a5 prod3,
		//     a6 ×2, a9 ×2, b1 prod3 (rolling back) = 11; b2 is in flight.
		//   failures: a3 prod3 (rolled back), a4 prod4 (by a person), a5 prod3, b1 prod3 = 4;
		//     4/11 = 0.36.
		//   restores: a3 30 min = 1800, a4 3 h 10 min = 11400, a5 5 h 30 min = 19800 s;
		//     median 11400, p90 19800; b1 open.
		//   canary stops: a2, a7 = 2 (a8 failed its tests, not the canary).
		//   weeks: 2 Nov: 1 deploy, 1 failure, 1 stop; 9 Nov: 2, 2, 1; 16 Nov: 1, 1, 0.
		want := map[string]any{
			"deploys": 4, "deploys_per_day": 0.19, "deploys_per_week": 1.33,
			"lead_time":         map[string]any{"count": 3, "median_seconds": 14400, "p90_seconds": 90000},
			"lead_time_unknown": 1,
			"production_stages": 11, "failures": 4, "change_failure_rate": 0.36,
			"time_to_restore": map[string]any{"count": 3, "median_seconds": 11400, "p90_seconds": 19800},
			"restores_open":   1, "in_flight": 1, "canary_stops": 2,
		}
		gotJSON := asMap(t, got)
		for k, v := range want {
			if g, w := jsonOf(t, gotJSON[k]), jsonOf(t, v); g != w {
				t.Errorf("%s = %s, want %s", k, g, w)
			}
		}
		var weeks []string
		for _, w := range got.Weeks {
			weeks = append(weeks, w.Start.Format("01-02")+":"+itoa(w.Deploys)+"/"+itoa(w.Failures)+"/"+itoa(w.CanaryStops))
		}
		if g := strings.Join(weeks, " "); g != "11-02:1/1/1 11-09:2/2/1 11-16:1/1/0" {
			t.Errorf("weeks (deploys/failures/stops) = %s", g)
		}
		var fails []string
		for _, f := range got.FailureList {
			restored := "open"
			if f.Restored != nil {
				restored = f.Restored.Format("01-02 15:04")
			}
			fails = append(fails, f.SHA+" "+f.Region+" "+f.How+" "+restored)
		}
		wantFails := "a3 prod3 rolled_back 11-04 10:30, a4 prod4 rolled_back_by_person 11-10 13:10, a5 prod3 failed 11-12 14:30, b1 prod3 rolled_back open"
		if g := strings.Join(fails, ", "); g != wantFails {
			t.Errorf("failures:\n got %s\nwant %s", g, wantFails)
		}
		if len(got.StopList) != 2 || got.StopList[0].SHA != "a2" || got.StopList[1].SHA != "a7" || got.StopList[1].Region != "sandbox1" {
			t.Errorf("canary stops: %+v", got.StopList)
		}
	})
}

func TestReportOfAPeriodWithoutDeploys(t *testing.T) {
	engines(t, func(t *testing.T, db string) {
		ctx := context.Background()
		s := open(t, db)
		knownHistory(t, s)
		got, err := s.Report(ctx, ReportQuery{App: "papi", Production: []string{"prod3", "prod4"}, Since: at(t, "24 00:00"), Until: at(t, "30 00:00")})
		if err != nil {
			t.Fatal(err)
		}
		m := asMap(t, got)
		// Nothing finished: counts are 0 and the figures that need one are null, never NaN.
		for k, w := range map[string]string{"deploys": "0", "deploys_per_day": "0", "change_failure_rate": "null",
			"lead_time":       `{"count":0,"median_seconds":null,"p90_seconds":null}`,
			"time_to_restore": `{"count":0,"median_seconds":null,"p90_seconds":null}`, "in_flight": "1"} {
			if g := jsonOf(t, m[k]); g != w {
				t.Errorf("%s = %s, want %s", k, g, w)
			}
		}
		// 24 (Tuesday) to 30 November (a Monday, not included): one week, clipped to the 24th.
		if len(got.Weeks) != 1 || !got.Weeks[0].Start.Equal(at(t, "24 00:00")) {
			t.Errorf("weeks: %+v", got.Weeks)
		}
		// Another app has nothing at all.
		other, err := s.Report(ctx, ReportQuery{App: "other", Production: []string{"prod3"}, Since: at(t, "02 00:00"), Until: at(t, "23 00:00")})
		if err != nil || other.Deploys != 0 || other.ProductionStages != 0 || other.CanaryStops != 0 || len(other.Weeks) != 3 {
			t.Errorf("other app: %+v %v", other, err)
		}
	})
}

func TestReportRefusesABadPeriod(t *testing.T) {
	s := open(t, t.TempDir()+"/immunity.db")
	ctx := context.Background()
	if _, err := s.Report(ctx, ReportQuery{App: "papi", Since: at(t, "05 00:00"), Until: at(t, "05 00:00")}); err == nil || !strings.Contains(err.Error(), "before it starts") {
		t.Errorf("empty period: %v", err)
	}
	if _, err := s.Report(ctx, ReportQuery{Since: at(t, "01 00:00"), Until: at(t, "05 00:00")}); err == nil {
		t.Error("a report without an app was made")
	}
}

func asMap(t *testing.T, v any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var norm any
	json.Unmarshal(b, &norm)
	b, _ = json.Marshal(norm)
	return string(b)
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

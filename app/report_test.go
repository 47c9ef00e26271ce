package app

import (
	"context"
	"encoding/json"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/immunity-app/immunity/store"
)

// commitAt makes a commit in the work tree dir with the committer time when; its SHA.
func commitAt(t *testing.T, dir, msg string, when time.Time) string {
	t.Helper()
	git := func(args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=ada", "GIT_AUTHOR_EMAIL=ada@example.com", "GIT_COMMITTER_NAME=ada",
			"GIT_COMMITTER_EMAIL=ada@example.com", "GIT_AUTHOR_DATE=2026-10-01T00:00:00Z", "GIT_COMMITTER_DATE="+when.Format(time.RFC3339))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("commit", "-q", "--allow-empty", "-m", msg)
	return git("rev-parse", "HEAD")
}

// fillDeliveries fills the store with a week of papi's deliveries (prod3 its only
// production region) on commits of a real repository in papi's repo path, the days
// counted from origin (day 1 at origin, day 2 a day later):
//
//   - a, committed day 2 08:00, live in prod3 at 11:00: lead time 3 h;
//   - b, the canary stops it in sandbox2 on day 3;
//   - c fails in prod3 (started day 4 09:00); d, committed 09:40, is live there at 10:20:
//     restored after 1 h 20 m, and d's lead time is 40 m.
func fillDeliveries(t *testing.T, in *Instance, origin time.Time) {
	t.Helper()
	repo := in.Config.Apps[0].Repo.Path
	if out, err := exec.Command("git", "init", "-q", "-b", "main", repo).CombinedOutput(); err != nil {
		t.Fatalf("git init: %v\n%s", err, out)
	}
	day := func(s string) time.Time {
		v, err := time.Parse("02 15:04", s)
		if err != nil {
			t.Fatal(err)
		}
		return origin.AddDate(0, 0, v.Day()-1).Add(time.Duration(v.Hour())*time.Hour + time.Duration(v.Minute())*time.Minute)
	}
	a := commitAt(t, repo, "a", day("02 08:00"))
	b := commitAt(t, repo, "b", day("03 09:00"))
	c := commitAt(t, repo, "c", day("04 07:00"))
	d := commitAt(t, repo, "d", day("04 09:40"))

	ctx := context.Background()
	st := in.Store
	var now time.Time
	st.SetClock(func() time.Time { return now })
	defer st.SetClock(time.Now)
	check := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	run := func(sha string) store.Run {
		r, err := st.CreateRun(ctx, store.Run{App: "papi", SHA: sha, State: store.RunRunning}, []string{"sandbox2", "prod3"},
			map[string][]string{"sandbox2": {"host1"}, "prod3": {"host1"}})
		check(err)
		return r
	}
	start := func(r store.Run, i int, when string) {
		now = day(when)
		check(st.UpdateStage(ctx, r.Stages[i].ID, store.StageUpdate{State: store.StageDeploying, Start: true}))
	}
	deploy := func(r store.Run, i int, from, to string) {
		start(r, i, from)
		now = day(to)
		check(st.SucceedStage(ctx, r.Stages[i].ID, "live", store.HistoryEntry{App: "papi", Region: r.Stages[i].Region, SHA: r.SHA, Action: "promote", RunID: r.ID}))
	}
	fail := func(r store.Run, i int, from, to, verdict string) {
		start(r, i, from)
		if verdict != "" {
			check(st.UpdateStage(ctx, r.Stages[i].ID, store.StageUpdate{State: store.StageMonitoring, Verdict: verdict}))
		}
		now = day(to)
		check(st.FailStage(ctx, r.ID, r.Stages[i].ID, store.StageFailed, store.RunFailed, "failed"))
	}
	// a: live in prod3 on day 2 at 11:00, committed 08:00: lead time 3 h.
	r := run(a)
	deploy(r, 0, "02 09:00", "02 09:30")
	deploy(r, 1, "02 10:00", "02 11:00")
	// b: the canary stops it in sandbox2 on day 3.
	r = run(b)
	fail(r, 0, "03 10:00", "03 10:30", `{"outcome":"fail","final":true}`)
	// c: fails in prod3 (started day 4 09:00); d, committed 09:40, is live there at
	// 10:20: restored after 1 h 20 m, and d's lead time is 40 m.
	r = run(c)
	deploy(r, 0, "04 08:00", "04 08:30")
	fail(r, 1, "04 09:00", "04 09:30", "")
	r = run(d)
	deploy(r, 0, "04 09:45", "04 09:50")
	deploy(r, 1, "04 10:00", "04 10:20")

}

// TestReportAPIOnAKnownHistory checks /api/report on fillDeliveries's week against
// figures worked out by hand.
func TestReportAPIOnAKnownHistory(t *testing.T) {
	t.Parallel()
	in := openTest(t)
	fillDeliveries(t, in, time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC))
	check := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(in.Server.Handler())
	defer srv.Close()
	get := func(q string) (int, []byte) {
		resp, err := srv.Client().Get(srv.URL + "/api/report?" + q)
		check(err)
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, body
	}
	code, body := get("app=papi&since=2026-11-01&until=2026-11-08")
	if code != 200 {
		t.Fatalf("report: %d %s", code, body)
	}
	var rep store.Report
	check(json.Unmarshal(body, &rep))
	f := func(p *float64) float64 {
		if p == nil {
			return -1
		}
		return *p
	}
	// Two deploys in 7 days; lead times 3 h and 40 m: median their mean (6600 s), p90 the
	// larger; 3 production stages, 1 failed; restored after 4800 s; one canary stop.
	if rep.Deploys != 2 || rep.DeploysPerWeek != 2 || rep.LeadTime.Count != 2 || rep.LeadTimeUnknown != 0 ||
		f(rep.LeadTime.Median) != 6600 || f(rep.LeadTime.P90) != 10800 ||
		rep.ProductionStages != 3 || rep.Failures != 1 || f(rep.ChangeFailureRate) != 0.33 ||
		rep.TimeToRestore.Count != 1 || f(rep.TimeToRestore.Median) != 4800 || rep.RestoresOpen != 0 || rep.CanaryStops != 1 {
		t.Fatalf("report:\n%s", body)
	}
	if len(rep.Weeks) != 2 || rep.Weeks[1].Deploys != 2 || rep.Weeks[1].Failures != 1 || rep.Weeks[1].CanaryStops != 1 {
		t.Fatalf("weeks: %+v", rep.Weeks)
	}
	// A period from 3 November holds only d: a and the canary's stop are before it.
	code, body = get("app=papi&since=2026-11-04&until=2026-11-05")
	check(json.Unmarshal(body, &rep))
	if code != 200 || rep.Deploys != 1 || f(rep.LeadTime.Median) != 2400 || rep.CanaryStops != 0 || rep.Failures != 1 {
		t.Fatalf("4 November: %d %s", code, body)
	}
	for q, want := range map[string]int{
		"app=nope&since=30d":                         404,
		"app=papi&since=yesterday":                   400,
		"app=papi&since=2026-11-08&until=2026-11-01": 400,
		"since=30d": 400,
	} {
		if code, body := get(q); code != want || !strings.Contains(string(body), `"error"`) {
			t.Errorf("%s: %d %s, want %d", q, code, body, want)
		}
	}
}

// The delivery page of fillDeliveries's week: the figures worked out by hand, the weekly
// chart's bars scaled to the largest week, the overview's link to it, and the refusals.
func TestReportPageOnAKnownHistory(t *testing.T) {
	t.Parallel()
	in := openTest(t)
	fillDeliveries(t, in, time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC))
	code, page := get(t, in, "/report/papi?since=2026-11-01&until=2026-11-08")
	if code != 200 {
		t.Fatalf("report page: %d %s", code, page)
	}
	for _, want := range []string{
		"<dt>deploys to production</dt><dd><b>2</b> <span class=\"muted\">2 a week, 0.29 a day</span>",
		"<dt>lead time</dt><dd><b>1h 50m (p90 3h)</b>",
		"<dt>change failure rate</dt><dd><b>33%</b> <span class=\"muted\">1 of 3 production stages failed or were rolled back</span>",
		"<dt>time to restore</dt><dd><b>1h 20m (p90 1h 20m)</b> <span class=\"muted\">1 restored</span>",
		"<dt>canary stops</dt><dd><b>1</b>",
		// The week of 2 November holds both deploys, the tallest bar (120 units high).
		`<rect class="deploys" x="88" y="16" width="12" height="120"><title>week of 2 Nov: 2 deploys to production</title></rect>`,
		`<rect class="failures" x="102" y="76" width="12" height="60"><title>week of 2 Nov: 1 production failures</title></rect>`,
		`<rect class="stops" x="116" y="76" width="12" height="60"><title>week of 2 Nov: 1 canary stops</title></rect>`,
		// The week of 26 October, clipped to its one day in the period, has none.
		`<rect class="deploys" x="34" y="136" width="12" height="0"><title>week of 1 Nov: 0 deploys to production</title></rect>`,
		`<td>2026-11-02</td><td class="num">2<small class="phone"> deploys</small></td><td class="num">1<small class="phone"> failures</small></td>`,
		`after 1h 20m`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the report page lacks %s", want)
		}
	}
	golden(t, "report-papi.html", page)
	if _, home := get(t, in, "/"); !strings.Contains(home, `<a href="/report/papi">delivery report</a>`) {
		t.Error("the overview does not link papi's delivery report")
	}
	for path, want := range map[string]string{
		"/report/nope":                                   "unknown app",
		"/report/papi?since=yesterday":                   "yesterday",
		"/report/papi?since=2026-11-08&until=2026-11-01": "before",
	} {
		code, body := get(t, in, path)
		if wantCode := map[bool]int{true: 404, false: 400}[path == "/report/nope"]; code != wantCode || !strings.Contains(body, want) {
			t.Errorf("%s: %d %q, want %d saying %q", path, code, body, wantCode, want)
		}
	}
}

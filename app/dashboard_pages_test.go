package app

import (
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/immunity-app/immunity/pipeline"
	"github.com/immunity-app/immunity/store"
)

// get fetches a page from the server's handler.
func get(t *testing.T, in *Instance, path string) (int, string) {
	t.Helper()
	w := httptest.NewRecorder()
	in.Server.Handler().ServeHTTP(w, httptest.NewRequest("GET", path, nil))
	b, _ := io.ReadAll(w.Result().Body)
	return w.Code, string(b)
}

// A region running a release that failed there is marked as such, not "idle".
func TestOverviewMarksARegionRunningAFailedRelease(t *testing.T) {
	t.Parallel()
	in := openTest(t)
	fillDashboard(t, in)
	code, home := get(t, in, "/")
	if code != 200 {
		t.Fatalf("home: %d", code)
	}
	row := regexp.MustCompile(`(?s)<tr id="region-papi-sandbox2">.*?</tr>`).FindString(home)
	for _, want := range []string{`class="failed-here"`, "failed</span> runs", "2222222", "which failed here in", `href="/runs/1"`, "canary analysis failed in sandbox2"} {
		if !strings.Contains(row, want) {
			t.Errorf("sandbox2's row lacks %q:\n%s", want, row)
		}
	}
	if strings.Contains(row, ">idle<") {
		t.Errorf("sandbox2 runs a failed release and is shown idle:\n%s", row)
	}
	// prod3 runs a release that never failed there: not marked.
	if prod := regexp.MustCompile(`(?s)<tr id="region-papi-prod3">.*?</tr>`).FindString(home); strings.Contains(prod, "failed-here") {
		t.Errorf("prod3 is marked failed:\n%s", prod)
	}
	// Once a newer release passes there, the region is no longer marked.
	ctx := context.Background()
	r, err := in.Store.CreateRun(ctx, store.Run{App: "papi", SHA: "4444444dddd", State: store.RunRunning}, []string{"sandbox2"}, map[string][]string{"sandbox2": {"host1"}})
	if err != nil {
		t.Fatal(err)
	}
	in.Store.UpdateStage(ctx, r.Stages[0].ID, store.StageUpdate{State: store.StageSucceeded, Start: true, Finish: true})
	in.Store.SetLive(ctx, "papi", "sandbox2", "host1", "4444444dddd")
	if _, home := get(t, in, "/"); strings.Contains(home, "failed-here") {
		t.Errorf("sandbox2 still marked failed after a release passed there")
	}
}

// storedWords are the states whose stored word is not what people read.
var storedWords = regexp.MustCompile(`awaiting_approval|rolling_back|rolled_back`)

// No page shows a state as the store keeps it.
func TestPagesSayStatesInWords(t *testing.T) {
	t.Parallel()
	in := openTest(t)
	fillDashboard(t, in)
	ctx := context.Background()
	r, err := in.Store.CreateRun(ctx, store.Run{App: "papi", SHA: "5555555eeee", State: store.RunFailed}, []string{"sandbox2", "prod3"},
		map[string][]string{"sandbox2": {"host1"}, "prod3": {"host1"}})
	if err != nil {
		t.Fatal(err)
	}
	in.Store.UpdateStage(ctx, r.Stages[0].ID, store.StageUpdate{State: store.StageRolledBack, Start: true})
	in.Store.UpdateStage(ctx, r.Stages[1].ID, store.StageUpdate{State: store.StageRollingBack, Start: true})
	in.Store.SetHostStep(ctx, r.Stages[0].ID, "host1", store.HostRolledBack, "1111111aaaa", "")
	in.Store.SetHostStep(ctx, r.Stages[1].ID, "host1", store.HostRollingBack, "1111111aaaa", "")
	for _, path := range []string{"/", "/runs/1", "/runs/2", "/runs/3", "/ui/runs", "/ui/apps/papi", "/ui/audit",
		"/regions/papi/sandbox2", "/regions/papi/prod3", "/audit"} {
		code, body := get(t, in, path)
		if code != 200 {
			t.Errorf("%s: %d", path, code)
		}
		if m := storedWords.FindAllString(body, -1); m != nil {
			t.Errorf("%s shows stored state words %q", path, m)
		}
	}
	_, run := get(t, in, "/runs/3")
	for _, want := range []string{"failed and rolled back", "failed, rolling back", "rolled back", "rolling back"} {
		if !strings.Contains(run, want) {
			t.Errorf("run 3 lacks %q", want)
		}
	}
	if _, home := get(t, in, "/"); !strings.Contains(home, "waiting for promotion") {
		t.Errorf("home does not say the run waits for promotion")
	}
}

// Every time shown has its date and zone.
func TestTimesHaveDateAndZone(t *testing.T) {
	t.Parallel()
	in := openTest(t)
	fillDashboard(t, in)
	stamp := regexp.MustCompile(`<time datetime="(\d{4}-\d\d-\d\dT[^"]+)"[^>]*>(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [A-Z+\-0-9]+)</time>`)
	for _, path := range []string{"/", "/runs/1"} {
		_, body := get(t, in, path)
		if n := len(stamp.FindAllString(body, -1)); n < 3 {
			t.Errorf("%s shows %d dated times", path, n)
		}
		if bare := regexp.MustCompile(`>\d\d:\d\d:\d\d<`).FindAllString(body, -1); bare != nil {
			t.Errorf("%s shows times without a date: %q", path, bare)
		}
		if ago := regexp.MustCompile(`>[^<]*\d+[smh] ago<`).FindAllString(body, -1); ago != nil {
			t.Errorf("%s shows times only as 'ago': %q", path, ago)
		}
	}
}

// A region's page: hosts and their live release, what reconciliation corrected, the
// history with who, how and when, paged through to the oldest entry.
func TestRegionPage(t *testing.T) {
	t.Parallel()
	in := openTest(t)
	fillDashboard(t, in)
	ctx := context.Background()
	for i := range 30 {
		in.Store.AddHistory(ctx, store.HistoryEntry{App: "papi", Region: "sandbox2", SHA: fmt.Sprintf("%07d", i), Action: "deploy",
			Actor: "Lin <Wu>", ActorID: "slack:T1/U42", Via: "slack", RunID: int64(100 + i)})
	}
	msg := "prod3/host1 found on 2222222, store said 1111111"
	in.Store.AddEvent(ctx, store.Event{App: "papi", Region: "prod3", Host: "host1", Kind: string(pipeline.Reconciled), Message: msg})

	code, page := get(t, in, "/regions/papi/sandbox2")
	if code != 200 {
		t.Fatalf("region page: %d\n%s", code, page)
	}
	for _, want := range []string{"<h1>", "sandbox2", "host1", "2222222", `class="failed-here"`, "which failed here in",
		"agreed with the store each time it was asked", "Lin &lt;Wu&gt;", "slack:T1/U42", "<td>slack</td>", `href="/runs/129"`} {
		if !strings.Contains(page, want) {
			t.Errorf("region page lacks %q", want)
		}
	}
	shas := func(page string) []string {
		var out []string
		for _, m := range regexp.MustCompile(`<td>deployed</td><td><code class="sha">(\d+)</code>`).FindAllStringSubmatch(page, -1) {
			out = append(out, m[1])
		}
		return out
	}
	seen := shas(page)
	if len(seen) != historyPageSize || seen[0] != "0000029" {
		t.Fatalf("first page shows %v", seen)
	}
	for range 5 {
		older := regexp.MustCompile(`<a rel="next" href="([^"]+)"`).FindStringSubmatch(page)
		if older == nil {
			break
		}
		code, page = get(t, in, strings.ReplaceAll(older[1], "&amp;", "&"))
		if code != 200 {
			t.Fatalf("%s: %d", older[1], code)
		}
		if !strings.Contains(page, `>newest</a>`) {
			t.Errorf("an older page has no link to the newest")
		}
		seen = append(seen, shas(page)...)
	}
	if len(seen) != 30 || seen[29] != "0000000" {
		t.Errorf("paging through the history showed %d entries: %v", len(seen), seen)
	}

	_, prod := get(t, in, "/regions/papi/prod3")
	for _, want := range []string{"corrected", msg, "1111111", "locked by ada: incident 42", "waiting for promotion", "3333333", "seed"} {
		if !strings.Contains(prod, want) {
			t.Errorf("prod3's page lacks %q", want)
		}
	}
	if strings.Contains(prod, "failed-here") {
		t.Errorf("prod3 is marked as running a failed release")
	}
	for path, want := range map[string]int{"/regions/papi/nope": 404, "/regions/nope/prod3": 404, "/regions/papi/prod3?before=x": 400,
		"/regions/papi/prod3?before=-1": 400} {
		if code, _ := get(t, in, path); code != want {
			t.Errorf("%s: %d, want %d", path, code, want)
		}
	}
	if code, frag := get(t, in, "/ui/regions/papi/prod3"); code != 200 || !strings.HasPrefix(frag, `<div id="region-page"`) {
		t.Errorf("region fragment: %d %.80s", code, frag)
	}
}

// The audit page shows the whole log a page at a time, filtered by app, region and person,
// with ISO 8601 times and their zone.
func TestAuditPage(t *testing.T) {
	t.Parallel()
	in := openTest(t)
	ctx := context.Background()
	people := []struct{ name, id string }{{"ada", "github:1"}, {"bob", "slack:T1/U2"}, {"ci", "token:ci"}}
	for i := range 130 {
		p := people[i%3]
		region := []string{"sandbox2", "prod3"}[i%2]
		if err := in.Store.AddAudit(ctx, store.Audit{Actor: p.name, ActorID: p.id, Via: "cli", Action: "lock", App: "papi", Region: region,
			Args: fmt.Sprint(i), Outcome: "ok", Detail: fmt.Sprintf("entry-%03d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	all := func(path string) []string {
		var out []string
		for range 10 {
			code, page := get(t, in, path)
			if code != 200 {
				t.Fatalf("%s: %d", path, code)
			}
			if iso := regexp.MustCompile(`<time datetime="[^"]+">(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d))</time>`).FindAllString(page, -1); len(iso) == 0 && strings.Contains(page, "entry-") {
				t.Errorf("%s shows no ISO 8601 times with a zone", path)
			}
			out = append(out, regexp.MustCompile(`entry-\d{3}`).FindAllString(page, -1)...)
			next := regexp.MustCompile(`<a rel="next" href="([^"]+)"`).FindStringSubmatch(page)
			if next == nil {
				return out
			}
			path = strings.ReplaceAll(next[1], "&amp;", "&")
		}
		t.Fatal("more than 10 pages")
		return nil
	}
	if got := all("/audit"); len(got) != 130 || got[0] != "entry-129" || got[129] != "entry-000" {
		t.Errorf("the audit log pages through %d entries (%v…)", len(got), got[:min(3, len(got))])
	}
	if _, first := get(t, in, "/audit"); len(regexp.MustCompile(`entry-\d{3}`).FindAllString(first, -1)) != auditPageSize {
		t.Errorf("first page is not %d entries", auditPageSize)
	}
	bob := all("/audit?person=slack:T1/U2")
	if len(bob) != 43 {
		t.Errorf("bob's entries: %d, want 43", len(bob))
	}
	if byName := all("/audit?person=bob&region=prod3"); len(byName) != 22 {
		t.Errorf("bob's prod3 entries by name: %d, want 22", len(byName))
	}
	if none := all("/audit?app=other"); len(none) != 0 {
		t.Errorf("another app's audit shows %d entries", len(none))
	}
	for _, bad := range []string{"/audit?person=%07x", "/audit?before=abc", "/audit?app=" + strings.Repeat("a", 201)} {
		if code, body := get(t, in, bad); code != 400 {
			t.Errorf("%s: %d %s", bad, code, body)
		}
	}
}

// Lists that show only the newest say so and point to the rest.
func TestCappedListsSaySo(t *testing.T) {
	t.Parallel()
	in := openTest(t)
	fillDashboard(t, in)
	ctx := context.Background()
	for i := range 20 {
		if _, err := in.Store.CreateRun(ctx, store.Run{App: "papi", SHA: fmt.Sprintf("%07dfeed", i), State: store.RunSucceeded}, []string{"sandbox2"},
			map[string][]string{"sandbox2": {"host1"}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, home := get(t, in, "/"); !strings.Contains(home, "The 15 newest finished runs") {
		t.Errorf("the home page lists the newest runs without saying so")
	}
}

package app

import (
	"context"
	"io"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

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
	for _, path := range []string{"/", "/runs/1", "/runs/2", "/runs/3", "/ui/runs", "/ui/apps/papi", "/ui/audit"} {
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

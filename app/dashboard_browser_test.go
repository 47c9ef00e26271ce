package app

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/immunity-app/immunity/pipeline"
	"github.com/immunity-app/immunity/pipeline/judge"
	"github.com/immunity-app/immunity/store"
)

// browserPage is what a page looked like in Chromium at one width.
type browserPage struct {
	HTML        string
	ScrollWidth int64
	Console     []string // console errors, uncaught exceptions, failed loads
	Screenshot  []byte
}

// browser starts headless Chromium (the Debian package .ci/test installs), driven over
// the DevTools protocol by chromedp, and returns a function that loads a page at a width.
func browser(t *testing.T) func(url string, width int64) browserPage {
	t.Helper()
	bctx := chrome(t)
	return func(url string, width int64) browserPage {
		t.Helper()
		var mu sync.Mutex
		var p browserPage
		ctx, cancel := chromedp.NewContext(bctx, chromedp.WithListener(func(ev any) {
			mu.Lock()
			defer mu.Unlock()
			switch ev := ev.(type) {
			case *runtime.EventConsoleAPICalled:
				if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
					var args []string
					for _, a := range ev.Args {
						args = append(args, string(a.Value)+a.Description)
					}
					p.Console = append(p.Console, "console.error: "+strings.Join(args, " "))
				}
			case *runtime.EventExceptionThrown:
				p.Console = append(p.Console, "exception: "+ev.ExceptionDetails.Text)
			case *log.EventEntryAdded:
				if ev.Entry.Level == "error" {
					p.Console = append(p.Console, "log: "+ev.Entry.Text+" "+ev.Entry.URL)
				}
			}
		}))
		defer cancel()
		ctx, cancelT := context.WithTimeout(ctx, 60*time.Second)
		defer cancelT()
		height := int64(900)
		vp := chromedp.EmulateViewport(width, height)
		if width < 600 {
			vp = chromedp.EmulateViewport(width, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile)
		}
		err := chromedp.Do(ctx, vp, chromedp.Navigate(url), chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			var err error
			// Wait for the images (the charts) to have loaded or failed.
			if _, err = chromedp.Run(ctx, chromedp.Evaluate[bool](`Promise.all(Array.from(document.images).map(i => i.complete ? 1 : new Promise(r => { i.onload = i.onerror = r; }))).then(() => true)`, chromedp.EvalAwaitPromise)); err != nil {
				return err
			}
			if p.ScrollWidth, err = chromedp.Run(ctx, chromedp.Evaluate[int64](`Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)`)); err != nil {
				return err
			}
			if p.HTML, err = chromedp.Run(ctx, chromedp.Evaluate[string](`document.documentElement.outerHTML`)); err != nil {
				return err
			}
			p.Screenshot, err = chromedp.Run(ctx, chromedp.FullScreenshot(100))
			return err
		}))
		if err != nil {
			t.Fatalf("chromium %s at %d px: %v", url, width, err)
		}
		mu.Lock()
		defer mu.Unlock()
		return p
	}
}

// screenshotDir is where the dashboard's screenshots go: $IMMUNITY_SCREENSHOTS, or a
// folder of the test's.
func screenshotDir(t *testing.T) string {
	dir := os.Getenv("IMMUNITY_SCREENSHOTS")
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Every page of the dashboard in real Chromium, on a desktop and at a phone's 390 px:
// no console error, nothing wider than the screen, the failed region marked, no stored
// state word; a screenshot of each saved.
func TestDashboardPagesInChromium(t *testing.T) {
	t.Parallel()
	in := openTest(t)
	fillDashboard(t, in)
	ctx := context.Background()
	for i := range 12 {
		in.Store.AddHistory(ctx, store.HistoryEntry{App: "papi", Region: "sandbox2", SHA: fmt.Sprintf("%07dabc", i), Action: "deploy",
			Actor: "Lin Wu", ActorID: "slack:T0001/U0042LINWU", Via: "slack", RunID: int64(i + 1)})
	}
	run, _ := in.Store.Run(ctx, 1)
	for look := 1; look <= 8; look++ { // looks over time, then the final verdict again
		v, _ := json.Marshal(judge.Verdict{Outcome: judge.Pass, Look: look, Metrics: []judge.MetricResult{
			{Name: "latency", Unit: "s", Outcome: judge.Pass, Baseline: 0.012, Canary: 0.011 + 0.0015*float64(look), NBaseline: 40 * look, NCanary: 40 * look},
			{Name: "error_rate", Kind: judge.Rate, Outcome: judge.Pass, Baseline: 0.010, Canary: 0.009 + 0.0005*float64(look), NBaseline: 900 * look, NCanary: 880 * look}}})
		in.Store.UpdateStage(ctx, run.Stages[0].ID, store.StageUpdate{Verdict: string(v)})
	}
	in.Store.UpdateStage(ctx, run.Stages[0].ID, store.StageUpdate{Verdict: run.Stages[0].Verdict})
	in.Store.AddEvent(ctx, store.Event{App: "papi", Region: "prod3", Host: "host1", Kind: string(pipeline.Reconciled),
		Message: "prod3/host1 found on 2222222, store said 1111111"})
	srv := httptest.NewServer(in.Server.Handler())
	defer srv.Close()
	// The delivery page, of another instance whose store holds a week of deliveries.
	deliveries := openTest(t)
	fillDeliveries(t, deliveries, time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -20))
	report := httptest.NewServer(deliveries.Server.Handler())
	defer report.Close()
	load := browser(t)
	dir := screenshotDir(t)
	pages := map[string]string{"overview": "/", "region": "/regions/papi/sandbox2", "run": "/runs/1", "audit": "/audit", "report": "/report/papi?since=5w"}
	for _, name := range []string{"overview", "region", "run", "audit", "report"} {
		for _, width := range []int64{1280, 390} {
			base := srv.URL
			if name == "report" {
				base = report.URL
			}
			p := load(base+pages[name], width)
			where := fmt.Sprintf("%s (%s) at %d px", name, pages[name], width)
			if len(p.Console) > 0 {
				t.Errorf("%s: console errors: %q", where, p.Console)
			}
			if p.ScrollWidth > width {
				t.Errorf("%s: the page is %d px wide: it scrolls sideways", where, p.ScrollWidth)
			}
			if m := storedWords.FindAllString(p.HTML, -1); m != nil {
				t.Errorf("%s shows stored state words %q", where, m)
			}
			if (name == "overview" || name == "region") && !strings.Contains(p.HTML, `class="failed-here"`) {
				t.Errorf("%s does not mark sandbox2 as running a release that failed there", where)
			}
			if name == "report" && (!strings.Contains(p.HTML, `<svg class="weekchart"`) || !strings.Contains(p.HTML, "<b>2</b>")) {
				t.Errorf("%s has no weekly chart or not the week's 2 deploys", where)
			}
			file := filepath.Join(dir, fmt.Sprintf("%s-%d.png", name, width))
			if err := os.WriteFile(file, p.Screenshot, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Logf("screenshots in %s", dir)
}

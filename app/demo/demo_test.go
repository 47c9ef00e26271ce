package demo

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestDemoOnceShowsEveryOutcome runs the whole demo: a good commit promoted through
// production, a broken test stopped in sandbox1, two regressions stopped by the canary
// analysis in sandbox2 and a rollback of production.
func TestDemoOnceShowsEveryOutcome(t *testing.T) {
	if testing.Short() {
		t.Skip("the demo takes about a minute")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var out bytes.Buffer
	err := Run(ctx, Options{Once: true, Listen: "127.0.0.1:0", Dir: t.TempDir(), Out: &out})
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	summary := out.String()[strings.Index(out.String(), "== summary"):]
	for _, want := range []string{
		`(?m)^[0-9a-f]{7} passed sandbox1 and sandbox2, promoted by ada, rolled out to prod3 then prod4$`,
		`(?m)^[0-9a-f]{7} stopped at sandbox1: integration tests failed on sandbox1/host1: FAIL items_list_sorted`,
		`(?m)^[0-9a-f]{7} passed its tests, stopped by the canary analysis in sandbox2`,
		`(?m)^[0-9a-f]{7} rolled back: prod3 and prod4 run [0-9a-f]{7} again$`,
		`(?m)^live in prod3 +[0-9a-f]{7}$`,
	} {
		if !regexp.MustCompile(want).MatchString(summary) {
			t.Errorf("summary lacks %s:\n%s", want, summary)
		}
	}
	if strings.Contains(summary, "NOT AS EXPECTED") {
		t.Errorf("summary has a failed outcome:\n%s", summary)
	}
}

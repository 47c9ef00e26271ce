package checks

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/immunity-app/immunity/pipeline/config"
	"github.com/immunity-app/immunity/store"
)

// TestGateCommentFitsGitHubsLimit: however long the reason, a review's comment is at most
// 1,024 characters and keeps its link to the run.
func TestGateCommentFitsGitHubsLimit(t *testing.T) {
	g := &Gate{cfg: &config.Config{Server: config.ServerConfig{URL: "https://immunity.example.com/"}}}
	for _, reason := range []string{"waiting: canary in sandbox2", strings.Repeat("é", 2000)} {
		c := g.comment(reason, 12)
		if n := utf8.RuneCountInString(c); n > MaxGateComment {
			t.Errorf("comment of %d characters", n)
		}
		if !strings.HasSuffix(c, " ([run 12](https://immunity.example.com/runs/12))") {
			t.Errorf("comment %q has no link to the run", c[len(c)-60:])
		}
	}
}

// TestGateReportsWhatIsNewWithinTen: a status report is worth sending when what the
// request waits for changed, or a canary moved on by a quarter of its looks; never the
// same text twice and never an eleventh.
func TestGateReportsWhatIsNewWithinTen(t *testing.T) {
	g := &Gate{}
	look := "waiting: canary in sandbox2, look 4 of 30, all metrics within range"
	for _, c := range []struct {
		last, now string
		reports   int
		want      bool
	}{
		{"", look, 0, true},
		{look, look, 1, false},
		{look, strings.Replace(look, "look 4", "look 10", 1), 1, false},
		{look, strings.Replace(look, "look 4", "look 11", 1), 1, true},
		{look, "waiting: prod3 is locked by ada", 1, true},
		{look, "waiting: prod3 is locked by ada", store.MaxGateReports, false},
	} {
		if got := g.worthReporting(store.GateRequest{LastReport: c.last, Reports: c.reports}, c.now); got != c.want {
			t.Errorf("after %q (%d reports), %q: %v, want %v", c.last, c.reports, c.now, got, c.want)
		}
	}
}

package bot

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/immunity-app/immunity/pipeline"
	"github.com/immunity-app/immunity/pipeline/config"
	"github.com/immunity-app/immunity/store"
)

// fakeEngine records what it was asked, as one line per call.
type fakeEngine struct {
	cfg    *config.Config
	status []pipeline.AppStatus
	hist   []store.HistoryEntry
	runs   []store.Run
	err    error // returned by every region-changing call when set

	mu     sync.Mutex
	calls  []string
	audits []string
}

func (f *fakeEngine) record(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
}

func (f *fakeEngine) Config() *config.Config { return f.cfg }

func (f *fakeEngine) Promote(ctx context.Context, a pipeline.Actor, app, region, sha string) (string, error) {
	f.record("promote %s %s %s by %s", app, region, sha, a)
	return "promoted " + app + " to " + region, f.err
}

func (f *fakeEngine) ForcePromote(ctx context.Context, a pipeline.Actor, app, region, sha string) (string, error) {
	f.record("promote %s %s %s force by %s", app, region, sha, a)
	return "force-promoted " + app + " to " + region, f.err
}

func (f *fakeEngine) Freeze(ctx context.Context, a pipeline.Actor, app string, regions []string, until time.Time, reason string) (string, error) {
	f.record("freeze %q %v until %s %q by %s", app, regions, until.UTC().Format(time.RFC3339), reason, a)
	return "froze " + app, f.err
}

func (f *fakeEngine) Unfreeze(ctx context.Context, a pipeline.Actor, app string, regions []string) (string, error) {
	f.record("unfreeze %q %v by %s", app, regions, a)
	return "unfroze " + app, f.err
}

// Now is the fake engine's clock: a fixed Thursday morning.
func (f *fakeEngine) Now() time.Time { return time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC) }

func (f *fakeEngine) Rollback(ctx context.Context, a pipeline.Actor, app, region, to string) (string, error) {
	f.record("rollback %s %s %s by %s", app, region, to, a)
	return "rolled back " + app + " in " + region, f.err
}

func (f *fakeEngine) Deploy(ctx context.Context, a pipeline.Actor, app, sha, region string, force bool) (string, error) {
	f.record("deploy %s %s %s force=%v by %s", app, sha, region, force, a)
	return "deploying " + sha + " to " + region, f.err
}

func (f *fakeEngine) Lock(ctx context.Context, a pipeline.Actor, app, region, reason string) (string, error) {
	f.record("lock %s %s %q by %s", app, region, reason, a)
	return "locked " + app + "/" + region, f.err
}

func (f *fakeEngine) Unlock(ctx context.Context, a pipeline.Actor, app, region string, force bool) (string, error) {
	f.record("unlock %s %s force=%v by %s", app, region, force, a)
	return "unlocked " + app + "/" + region, f.err
}

func (f *fakeEngine) Rerun(ctx context.Context, a pipeline.Actor, runID int64, region string) (string, error) {
	f.record("rerun %d %s by %s", runID, region, a)
	return fmt.Sprintf("re-running %s of run %d", region, runID), f.err
}

func (f *fakeEngine) Runs(ctx context.Context, app string, active bool, limit int) ([]store.Run, error) {
	f.record("runs %s", app)
	return f.runs, nil
}

func (f *fakeEngine) Run(ctx context.Context, id int64) (store.Run, error) {
	for _, r := range f.runs {
		if r.ID == id {
			return r, nil
		}
	}
	return store.Run{}, store.ErrNotFound
}

func (f *fakeEngine) Status(ctx context.Context, app string) ([]pipeline.AppStatus, error) {
	f.record("status %s", app)
	var out []pipeline.AppStatus
	for _, s := range f.status {
		if app == "" || s.App == app {
			out = append(out, s)
		}
	}
	return out, nil
}

func (f *fakeEngine) History(ctx context.Context, app, region string, limit int) ([]store.HistoryEntry, error) {
	f.record("history %s %s %d", app, region, limit)
	return f.hist, nil
}

func (f *fakeEngine) Audit(ctx context.Context, a pipeline.Actor, action, app, region, sha, args, outcome, detail string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.audits = append(f.audits, strings.Join([]string{a.String(), action, app, region, sha, args, outcome}, "|"))
}

// testConfig is papi with two sandboxes and two production regions, plus a second app.
func testConfig() *config.Config {
	regions := []config.Region{
		{Name: "sandbox1"}, {Name: "sandbox2"},
		{Name: "prod3", Production: true, ManualApproval: true}, {Name: "prod4", Production: true},
	}
	return &config.Config{
		Slack: config.SlackConfig{Users: map[string]string{"U0LINKED": "carol"}},
		Apps: []config.App{
			{Name: "papi", Regions: regions},
			{Name: "web", Regions: []config.Region{{Name: "staging"}, {Name: "prod", Production: true}}},
		},
	}
}

// fakeMembers answers group questions from fixed lists ("group:member").
type fakeMembers map[string]bool

func (m fakeMembers) InSlackGroup(ctx context.Context, group, user string) (bool, error) {
	return m[group+":"+user], nil
}

func (m fakeMembers) InGitHubTeam(ctx context.Context, team, login string) (bool, error) {
	if team == "acme/broken" {
		return false, fmt.Errorf("GitHub answered 502")
	}
	return m[team+":"+login], nil
}

package bot

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/immunity-app/immunity/pipeline"
	"github.com/immunity-app/immunity/pipeline/config"
	"github.com/immunity-app/immunity/store"
)

// PostsFor says what an event adds to a thread (or, for region events outside a run, to
// the app's channel). A run event's snapshot is read whole, every stage of it, so a state
// that came and went between two snapshots is still reported; each post has a Key, and
// callers post a run's key once. app may be nil; it tells production regions (which get a
// "Roll back" button) from the others. logs returns the run's recent log lines for a
// region ("" = the run's own), from which a failure's first useful lines are picked.
func PostsFor(app *config.App, ev pipeline.Event, logs func(region string) []string) []Post {
	if logs == nil {
		logs = func(string) []string { return nil }
	}
	if ev.Kind == pipeline.Reconciled {
		// A host found running something else than the store said: said in the thread
		// of the run deploying there, or in the app's channel.
		return []Post{{Key: fmt.Sprintf("reconciled/%s/%s/%d", ev.Region, ev.Host, ev.Time.UnixNano()), RunID: ev.Run.ID, App: ev.App,
			Region: ev.Region, Icon: IconWarning, Text: ev.Message}}
	}
	if ev.Run.ID != 0 {
		var out []Post
		for _, s := range ev.Run.Stages {
			out = append(out, stagePosts(app, ev.Run, s, logs(s.Region))...)
		}
		if p, ok := runPost(ev.Run, logs("")); ok {
			out = append(out, p)
		}
		return out
	}
	switch ev.Kind {
	case pipeline.RolledBack:
		if ev.Actor.Via == "engine" {
			return nil // an automatic rollback: the failed stage's post says so
		}
		return []Post{{App: ev.App, Region: ev.Region, Icon: IconBack, Broadcast: true,
			Text: fmt.Sprintf("%s rolled back %s %s to %s", actorName(ev.Actor), ev.App, ev.Region, short(ev.SHA))}}
	case pipeline.Locked:
		return []Post{{App: ev.App, Region: ev.Region, Icon: IconLock, Text: ev.Message}}
	case pipeline.Unlocked:
		return []Post{{App: ev.App, Region: ev.Region, Icon: IconUnlock, Text: ev.Message}}
	case pipeline.Frozen:
		return []Post{{App: ev.App, Region: ev.Region, Icon: IconLock, Broadcast: true, Text: ev.Message}}
	case pipeline.Unfrozen:
		return []Post{{App: ev.App, Region: ev.Region, Icon: IconUnlock, Broadcast: true, Text: ev.Message}}
	}
	return nil
}

// stagePosts are what a stage's state has to say: who promoted it, that it waits, how it ended.
func stagePosts(app *config.App, run store.Run, s store.Stage, logs []string) []Post {
	var out []Post
	rel := fmt.Sprintf("%s %s", run.App, short(run.SHA))
	base := Post{RunID: run.ID, App: run.App, Region: s.Region}
	if s.ApprovedBy != "" && !waitingState(s.State) {
		p := base
		p.Key, p.Icon, p.Text = "stage/"+s.Region+"/approved", IconGo, fmt.Sprintf("%s %s %s to %s", s.ApprovedBy, approvedVerb(run), rel, s.Region)
		if s.Forced {
			p.Broadcast = true
			p.Text += " with --force (break-glass: past freezes, deploy windows and soak)"
		}
		out = append(out, p)
	}
	if s.State.Waiting() && pipeline.GateHold(s.Message) {
		p := base
		p.Key, p.Icon, p.Text = "stage/"+s.Region+"/held/"+s.Message, IconWaiting, fmt.Sprintf("%s for %s: %s", rel, s.Region, s.Message)
		out = append(out, p)
	}
	p := base
	p.Key = "stage/" + s.Region + "/" + string(s.State)
	switch s.State {
	case store.StageAwaitingApproval:
		p.Icon, p.Broadcast = IconWaiting, true
		p.Text = fmt.Sprintf("%s is ready for %s: waiting for promotion", rel, s.Region)
		p.Actions = []Action{{ID: "promote", Label: "Promote to " + s.Region, Style: "primary",
			Command: fmt.Sprintf("promote %s %s --release %s", run.App, s.Region, run.SHA)}}
	case store.StageSucceeded:
		p.Icon, p.Text = IconOK, fmt.Sprintf("%s passed %s%s", rel, s.Region, took(s))
		p.Verdict = verdictOf(s)
		if isProduction(app, s.Region) {
			p.Actions = []Action{{ID: "rollback", Label: "Roll back " + s.Region, Style: "danger",
				Command: fmt.Sprintf("rollback %s %s", run.App, s.Region), IfLive: run.SHA}}
		}
	case store.StageFailed, store.StageRolledBack:
		p.Icon, p.Broadcast = IconFailed, true
		p.Text = fmt.Sprintf("%s failed in %s: %s", rel, s.Region, firstLine(s.Message))
		p.Verdict = verdictOf(s)
		p.Detail = UsefulLines(append(strings.Split(s.Tests, "\n"), logs...), 12)
	default:
		return out
	}
	return append(out, p)
}

// waitingState: the stage has not been approved into action (or never will be).
func waitingState(state store.StageState) bool {
	switch state {
	case store.StagePending, store.StageAwaitingApproval, store.StageSkipped, store.StageCancelled:
		return true
	}
	return false
}

func runPost(run store.Run, logs []string) (Post, bool) {
	p := Post{Key: "run/" + string(run.State), RunID: run.ID, App: run.App}
	rel := fmt.Sprintf("%s %s", run.App, short(run.SHA))
	switch run.State {
	case store.RunSucceeded:
		// The engine says what is true: "is live in every region" only when every host
		// of every region runs it, "is deployed to prod3" for a deploy.
		what := run.Message
		if what == "" {
			what = "passed every region"
		}
		p.Icon, p.Text = IconOK, rel+" "+what
	case store.RunFailed:
		for _, s := range run.Stages {
			if s.State == store.StageFailed || s.State == store.StageRolledBack {
				return p, false // the stage's post told it
			}
		}
		p.Icon, p.Broadcast = IconFailed, true
		p.Text = fmt.Sprintf("%s failed: %s", rel, firstLine(run.Message))
		p.Detail = UsefulLines(append(strings.Split(run.Message, "\n"), logs...), 12)
	default:
		return p, false
	}
	return p, true
}

// approvedVerb is what the person who let a run's release into a region did: promoted
// it (a waiting release of the pipeline), or deployed it (`deploy`, outside the order).
func approvedVerb(run store.Run) string {
	if run.Trigger == "deploy" {
		return "deployed"
	}
	return "promoted"
}

func isProduction(app *config.App, region string) bool {
	if app == nil {
		return false
	}
	r, _, ok := app.Region(region)
	return ok && r.Production
}

func actorName(a pipeline.Actor) string {
	if a.Name == "" {
		return "someone"
	}
	return a.Name
}

var usefulRE = regexp.MustCompile(`(?i)(error|fail|panic|fatal|exception|refused|denied|timed? ?out|unexpected|cannot|can't|not found|exit (status|code))`)

// UsefulLines picks the first lines that say what went wrong (errors, failures, panics),
// each with the line before it for context, at most max lines; without any such line, the
// last max lines. Blank lines are dropped.
func UsefulLines(lines []string, max int) []string {
	var kept []string
	for _, l := range lines {
		if l = strings.TrimRight(l, " \t\r"); strings.TrimSpace(l) != "" {
			kept = append(kept, l)
		}
	}
	var out []string
	taken := map[int]bool{}
	for i, l := range kept {
		if !usefulRE.MatchString(l) {
			continue
		}
		for _, j := range []int{i - 1, i} {
			if j >= 0 && !taken[j] && len(out) < max {
				taken[j] = true
				out = append(out, clipLine(kept[j]))
			}
		}
		if len(out) >= max {
			break
		}
	}
	if len(out) > 0 {
		return out
	}
	if len(kept) > max {
		kept = kept[len(kept)-max:]
	}
	for i := range kept {
		kept[i] = clipLine(kept[i])
	}
	return kept
}

func clipLine(s string) string {
	if r := []rune(s); len(r) > 200 {
		return string(r[:200]) + "…"
	}
	return s
}

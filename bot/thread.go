package bot

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/immunity-app/immunity/pipeline/judge"
	"github.com/immunity-app/immunity/store"
)

// A run's thread, independent of where it is shown: Slack renders it as Block Kit
// (bot/slackbot), the console as text lines (ConsoleThread). The root message shows the
// commit and one live line per region; posts in the thread report stage results, the
// metric comparison, failures with their first useful log lines, and what is waiting.

// Icons are named here and drawn by each renderer.
const (
	IconPending = "pending"
	IconRunning = "running"
	IconWaiting = "waiting"
	IconOK      = "ok"
	IconFailed  = "failed"
	IconSkipped = "skipped"
	IconBack    = "back"
	IconWarning = "warning"
	IconLock    = "lock"
	IconUnlock  = "unlock"
	IconGo      = "go"
)

// Root is a run thread's root message.
type Root struct {
	App     string
	RunID   int64
	SHA     string
	Subject string
	Author  string
	Trigger string
	Actor   string
	State   store.RunState // the run's state
	Message string         // the run's last message
	Regions []RegionLine
}

// RegionLine is one region's live status line in the root message.
type RegionLine struct {
	Region string
	State  store.StageState // the stage's state
	Icon   string
	Text   string
}

// Post is one message of a run's thread (RunID 0: a message in the app's channel).
type Post struct {
	Key       string // what it reports ("stage/prod3/succeeded"), so it is posted once
	RunID     int64
	App       string
	Region    string
	Icon      string
	Text      string   // one line
	Detail    []string // log or test output lines, shown preformatted
	Verdict   *judge.Verdict
	Broadcast bool // also shown in the channel (failures, waiting for promotion)
	Actions   []Action
}

// Action is a button under a post; pressing it runs Command as the person who pressed.
type Action struct {
	ID      string // promote, rollback
	Label   string
	Command string
	Style   string // primary, danger
	// IfLive, when set, makes the button act only while that release is still live in
	// the region (a "Roll back" pressed on an old post must not roll back a newer release).
	IfLive string
}

// RootOf renders a run's root message from a snapshot of the run.
func RootOf(run store.Run) Root {
	r := Root{App: run.App, RunID: run.ID, SHA: run.SHA, Subject: run.Subject, Author: run.Author,
		Trigger: run.Trigger, Actor: run.Actor, State: run.State, Message: run.Message}
	for _, s := range run.Stages {
		r.Regions = append(r.Regions, regionLine(run, s))
	}
	return r
}

func regionLine(run store.Run, s store.Stage) RegionLine {
	l := RegionLine{Region: s.Region, State: s.State}
	switch s.State {
	case store.StagePending:
		l.Icon, l.Text = IconPending, "pending"
	case store.StageAwaitingApproval:
		l.Icon, l.Text = IconWaiting, "waiting for promotion"
	case store.StageApproved:
		l.Icon, l.Text = IconGo, approvedVerb(run)+" by "+s.ApprovedBy
	case store.StageDeploying, store.StageTesting, store.StageMonitoring:
		l.Icon, l.Text = IconRunning, string(s.State)+hostProgress(s)+lookText(s)
	case store.StageSucceeded:
		l.Icon, l.Text = IconOK, "passed"+took(s)
	case store.StageFailed:
		l.Icon, l.Text = IconFailed, "failed: "+firstLine(s.Message)
	case store.StageRollingBack:
		l.Icon, l.Text = IconBack, "failed, rolling back: "+firstLine(s.Message)
	case store.StageRolledBack:
		l.Icon, l.Text = IconBack, "failed and rolled back: "+firstLine(s.Message)
	case store.StageCancelled:
		l.Icon, l.Text = IconSkipped, "superseded"
	default:
		l.Icon, l.Text = IconSkipped, string(s.State)
	}
	return l
}

// hostProgress is " (2/4 hosts)" while a multi-host stage rolls out.
func hostProgress(s store.Stage) string {
	if len(s.Hosts) < 2 {
		return ""
	}
	done := 0
	for _, h := range s.Hosts {
		if h.Step == store.HostDone {
			done++
		}
	}
	return fmt.Sprintf(" (%d/%d hosts)", done, len(s.Hosts))
}

// lookText is the interim verdict of a monitoring stage: " · look 3 of 10: pass".
func lookText(s store.Stage) string {
	v := verdictOf(s)
	if s.State != store.StageMonitoring || v == nil {
		return ""
	}
	t := fmt.Sprintf(" · look %d", v.Look)
	if v.Looks > 0 {
		t += fmt.Sprintf(" of %d", v.Looks)
	}
	if v.Outcome == judge.Marginal {
		return t + ": marginal (worse so far, not flagged yet)"
	}
	return t + ": " + string(v.Outcome)
}

func took(s store.Stage) string {
	if s.Started.IsZero() || s.Finished.Before(s.Started) {
		return ""
	}
	return " in " + s.Finished.Sub(s.Started).Round(time.Second).String()
}

func verdictOf(s store.Stage) *judge.Verdict {
	if s.Verdict == "" {
		return nil
	}
	var v judge.Verdict
	if err := json.Unmarshal([]byte(s.Verdict), &v); err != nil {
		return nil
	}
	return &v
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if r := []rune(s); len(r) > 160 {
		return string(r[:160]) + "…"
	}
	return s
}

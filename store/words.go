package store

import "strings"

// The words people read for each state. Every surface that shows a state to a person (the
// dashboard, Slack, GitHub) says it with these, so a state reads the same everywhere and no
// stored word such as "awaiting_approval" reaches a page.

var runWords = map[RunState]string{
	RunBuilding: "building", RunRunning: "running", RunWaiting: "waiting for promotion",
	RunSucceeded: "succeeded", RunFailed: "failed", RunSuperseded: "superseded", RunCancelled: "cancelled",
}

var stageWords = map[StageState]string{
	StagePending: "pending", StageAwaitingApproval: "waiting for promotion", StageApproved: "promoted",
	StageDeploying: "deploying", StageTesting: "testing", StageMonitoring: "canary monitoring",
	StageRollingBack: "failed, rolling back", StageSucceeded: "succeeded", StageFailed: "failed",
	StageSkipped: "skipped", StageCancelled: "cancelled", StageRolledBack: "failed and rolled back",
}

var stepWords = map[StepState]string{
	HostPending: "pending", HostUploading: "uploading", HostSwitching: "switching", HostRestarting: "restarting",
	HostChecking: "checking health", HostTesting: "testing", HostMonitoring: "canary monitoring", HostDone: "done",
	HostFailed: "failed", HostRollingBack: "rolling back", HostRolledBack: "rolled back",
}

var releaseWords = map[ReleaseState]string{
	ReleaseBuilding: "building", ReleaseReady: "ready", ReleaseFailed: "build failed", ReleasePruned: "pruned",
}

// Words is the run state as people read it.
func (s RunState) Words() string { return wordsOf(runWords, s) }

// Words is the stage state as people read it.
func (s StageState) Words() string { return wordsOf(stageWords, s) }

// Words is the host step as people read it.
func (s StepState) Words() string { return wordsOf(stepWords, s) }

// Words is the release state as people read it.
func (s ReleaseState) Words() string { return wordsOf(releaseWords, s) }

// wordsOf looks a state up; a state without words (one a newer version wrote) is shown
// with spaces for its underscores rather than not at all.
func wordsOf[S ~string](words map[S]string, s S) string {
	if w, ok := words[s]; ok {
		return w
	}
	return strings.ReplaceAll(string(s), "_", " ")
}

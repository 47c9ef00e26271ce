package store

// The states a run, its stages, its host steps and a release move through. They are
// stored as these words; the engine (pipeline) decides the transitions, the store keeps
// them, and every reporter reads them from here.

// RunState is where a run stands.
type RunState string

// Run states. Succeeded, Failed, Superseded and Cancelled are final.
const (
	RunBuilding   RunState = "building"
	RunRunning    RunState = "running"
	RunWaiting    RunState = "waiting" // for a person to promote it
	RunSucceeded  RunState = "succeeded"
	RunFailed     RunState = "failed"
	RunSuperseded RunState = "superseded" // a newer run took its place while it waited
	RunCancelled  RunState = "cancelled"
)

// TerminalRunStates are the final run states.
var TerminalRunStates = []RunState{RunSucceeded, RunFailed, RunSuperseded, RunCancelled}

// Terminal reports whether a run in this state is finished.
func (s RunState) Terminal() bool {
	for _, t := range TerminalRunStates {
		if s == t {
			return true
		}
	}
	return false
}

// StageState is where one region's stage of a run stands.
type StageState string

// Stage states: Pending, AwaitingApproval and Approved wait for the region; Deploying,
// Testing, Monitoring and RollingBack are active in it; the rest are final. RollingBack is
// a failed production stage whose rollback plan (store.Rollback) is being carried out: it
// never deploys again, and a restart completes the rollback.
const (
	StagePending          StageState = "pending"
	StageAwaitingApproval StageState = "awaiting_approval"
	StageApproved         StageState = "approved"
	StageDeploying        StageState = "deploying"
	StageTesting          StageState = "testing"
	StageMonitoring       StageState = "monitoring"
	StageRollingBack      StageState = "rolling_back"
	StageSucceeded        StageState = "succeeded"
	StageFailed           StageState = "failed"
	StageSkipped          StageState = "skipped"
	StageCancelled        StageState = "cancelled"
	StageRolledBack       StageState = "rolled_back"
)

// ActiveStageStates are the states of a stage doing work in its region.
var ActiveStageStates = []StageState{StageDeploying, StageTesting, StageMonitoring, StageRollingBack}

// Active reports whether a stage is doing work in its region.
func (s StageState) Active() bool {
	return s == StageDeploying || s == StageTesting || s == StageMonitoring || s == StageRollingBack
}

// Waiting reports whether a stage waits for its turn in its region.
func (s StageState) Waiting() bool {
	return s == StagePending || s == StageAwaitingApproval || s == StageApproved
}

// Terminal reports whether a stage is finished, one way or another.
func (s StageState) Terminal() bool { return !s.Active() && !s.Waiting() }

// StepState is where one host stands within a stage.
type StepState string

// Host step states, in the order a host goes through them. Each is written before the
// effect it names starts: uploading (the artifact), switching (the current link),
// restarting (the app; the store's live release is the new one from here on), checking
// (its health), testing, monitoring, done. RollingBack and RolledBack are a host's part in
// its stage's rollback plan.
const (
	HostPending     StepState = "pending"
	HostUploading   StepState = "uploading"
	HostSwitching   StepState = "switching"
	HostRestarting  StepState = "restarting"
	HostChecking    StepState = "checking"
	HostTesting     StepState = "testing"
	HostMonitoring  StepState = "monitoring"
	HostDone        StepState = "done"
	HostFailed      StepState = "failed"
	HostRollingBack StepState = "rolling_back"
	HostRolledBack  StepState = "rolled_back"
)

// ReleaseState is where a release's build stands.
type ReleaseState string

// Release states.
const (
	ReleaseBuilding ReleaseState = "building"
	ReleaseReady    ReleaseState = "ready"
	ReleaseFailed   ReleaseState = "failed"
	// ReleasePruned: built once, its artifact deleted since (no host keeps it any more).
	ReleasePruned ReleaseState = "pruned"
)

// RollbackState is where a rollback plan stands.
type RollbackState string

// Rollback states: Planned plans are carried out (again, after a restart) until Done or
// Failed.
const (
	RollbackPlanned RollbackState = "planned"
	RollbackDone    RollbackState = "done"
	RollbackFailed  RollbackState = "failed"
)

// Switched reports whether a host at this step may run the stage's release: its switch
// was asked for, so it has to be rolled back if the stage fails.
func (s StepState) Switched() bool {
	switch s {
	case HostSwitching, HostRestarting, HostChecking, HostTesting, HostMonitoring, HostDone:
		return true
	}
	return false
}

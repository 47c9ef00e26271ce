package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// The transitions that move a run together with several of its stages (or its release)
// are one transaction each, guarded like UpdateStage's OnlyIf: a writer that read a state
// which has changed since changes nothing (ErrStateChanged), and a write cut short leaves
// the store as it was. MoveStageAndRun, FailStage, PlanRollback and FinishRollback are the
// others.

// WaitingStageStates are the states of a stage waiting for its region.
var WaitingStageStates = []StageState{StagePending, StageAwaitingApproval, StageApproved}

// RunEnd ends a run before its stage StageID got into its region: that stage (while in
// one of OnlyIf; default pending or awaiting_approval, never approved) and every later
// stage still waiting move to Stage with Message, and the run (while not finished) to
// Run with Message. A newer push superseding a run: cancelled, superseded.
type RunEnd struct {
	RunID, StageID int64
	OnlyIf         []StageState
	Stage          StageState
	Run            RunState
	Message        string
}

// EndRun applies end in one transaction; ErrStateChanged when the stage or the run is
// no longer in a state it may be ended from, and then nothing changed.
func (s *Store) EndRun(ctx context.Context, end RunEnd) error {
	only := end.OnlyIf
	if len(only) == 0 {
		only = []StageState{StagePending, StageAwaitingApproval}
	}
	now := s.nowNS()
	err := s.tx(ctx, func(tx tx) error {
		var pos int
		err := tx.QueryRowContext(ctx, `UPDATE stages SET state = ?, message = ?, updated_at = ? WHERE id = ? AND run_id = ? AND state IN `+marks(len(only))+` RETURNING position`,
			append([]any{end.Stage, end.Message, now, end.StageID, end.RunID}, states(only)...)...).Scan(&pos)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrStateChanged
		}
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE stages SET state = ?, message = ?, updated_at = ? WHERE run_id = ? AND position > ? AND state IN `+marks(len(WaitingStageStates)),
			append([]any{end.Stage, end.Message, now, end.RunID, pos}, states(WaitingStageStates)...)...); err != nil {
			return err
		}
		return moveRun(ctx, tx, end.RunID, end.Run, end.Message, now, nil)
	})
	if err != nil {
		return fmt.Errorf("end run %d (%s) from stage %d: %w", end.RunID, end.Run, end.StageID, err)
	}
	return nil
}

// FinishBuild records the end of a run's build in one transaction: the release (rel, ready
// or failed) and the run, which leaves building with msg: to running when the release is
// ready; to failed when it failed, with every stage skipped. ErrStateChanged: the run was
// no longer building, and nothing changed (not even the release).
func (s *Store) FinishBuild(ctx context.Context, runID int64, rel Release, msg string) error {
	var state RunState
	switch rel.State {
	case ReleaseReady:
		state = RunRunning
	case ReleaseFailed:
		state = RunFailed
	default:
		return fmt.Errorf("finish the build of run %d: a build ends ready or failed, not %q", runID, rel.State)
	}
	if rel.Created.IsZero() {
		rel.Created = s.now()
	}
	now := s.nowNS()
	err := s.tx(ctx, func(tx tx) error {
		if state == RunFailed {
			if _, err := tx.ExecContext(ctx, `UPDATE stages SET state = ?, message = ?, updated_at = ? WHERE run_id = ? AND state IN `+marks(len(WaitingStageStates)),
				append([]any{StageSkipped, BuildFailedStage, now, runID}, states(WaitingStageStates)...)...); err != nil {
				return err
			}
		}
		if err := putRelease(ctx, tx, rel); err != nil {
			return err
		}
		return moveRun(ctx, tx, runID, state, msg, now, []RunState{RunBuilding})
	})
	if err != nil {
		return fmt.Errorf("finish the build of run %d (%s@%s %s): %w", runID, rel.App, short(rel.SHA), rel.State, err)
	}
	return nil
}

// BuildFailedStage is the message of the stages a failed build skipped.
const BuildFailedStage = "build failed"

// RerunStage puts a stage (while in state from) back to pending with msg, its hosts'
// steps to pending, every later stage that was skipped or cancelled back to pending with
// its hosts, and the run to running with runMsg, in one transaction. ErrStateChanged: the
// stage was no longer in from, and nothing changed.
func (s *Store) RerunStage(ctx context.Context, runID, stageID int64, from StageState, msg, runMsg string) error {
	now := s.nowNS()
	err := s.tx(ctx, func(tx tx) error {
		var pos int
		err := tx.QueryRowContext(ctx, `UPDATE stages SET state = ?, message = ?, forced = 0, updated_at = ? WHERE id = ? AND run_id = ? AND state = ? RETURNING position`,
			StagePending, msg, now, stageID, runID, from).Scan(&pos)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrStateChanged
		}
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE host_steps SET step = ?, message = '', prev_sha = '', updated_at = ?
			WHERE stage_id = ? OR stage_id IN (SELECT id FROM stages WHERE run_id = ? AND position > ? AND state IN (?, ?))`,
			HostPending, now, stageID, runID, pos, StageSkipped, StageCancelled); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE stages SET state = ?, message = ' ', forced = 0, updated_at = ? WHERE run_id = ? AND position > ? AND state IN (?, ?)`,
			StagePending, now, runID, pos, StageSkipped, StageCancelled); err != nil {
			return err
		}
		// The run runs again whatever its state: finished, as often, or not.
		res, err := tx.ExecContext(ctx, `UPDATE runs SET state = ?, message = ?, updated_at = ? WHERE id = ?`, RunRunning, runMsg, now, runID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("no run %d", runID)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("re-run stage %d of run %d: %w", stageID, runID, err)
	}
	return nil
}

// SucceedRun moves a run that is not finished to succeeded with msg, while none of its
// stages waits for its region or is active in it (a re-run asked for meanwhile):
// ErrStateChanged otherwise, and nothing changed.
func (s *Store) SucceedRun(ctx context.Context, runID int64, msg string) error {
	open := append(append([]StageState{}, WaitingStageStates...), ActiveStageStates...)
	args := []any{RunSucceeded, msg, s.nowNS(), runID}
	for _, st := range TerminalRunStates {
		args = append(args, st)
	}
	args = append(append(args, runID), states(open)...)
	res, err := s.db.ExecContext(ctx, `UPDATE runs SET state = ?, message = ?, updated_at = ? WHERE id = ? AND state NOT IN `+marks(len(TerminalRunStates))+`
		AND NOT EXISTS (SELECT 1 FROM stages WHERE run_id = ? AND state IN `+marks(len(open))+`)`, args...)
	if err == nil {
		var n int64
		if n, err = res.RowsAffected(); err == nil && n == 0 {
			err = ErrStateChanged
		}
	}
	if err != nil {
		return fmt.Errorf("run %d -> %s: %w", runID, RunSucceeded, err)
	}
	return nil
}

// moveRun moves a run to state with msg: while in one of from, or (none given) while not
// finished; ErrStateChanged otherwise.
func moveRun(ctx context.Context, tx tx, runID int64, state RunState, msg string, now int64, from []RunState) error {
	q := `UPDATE runs SET state = ?, message = ?, updated_at = ? WHERE id = ? AND state `
	guard := from
	if len(from) == 0 {
		q += `NOT `
		guard = TerminalRunStates
	}
	args := []any{state, msg, now, runID}
	for _, st := range guard {
		args = append(args, st)
	}
	res, err := tx.ExecContext(ctx, q+`IN `+marks(len(guard)), args...)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return fmt.Errorf("run %d: %w", runID, ErrStateChanged)
	}
	return nil
}

// EndedRunsWaiting lists an app's finished runs that still have a stage waiting for its
// region, newest first: none, but where a write of an older binary was cut short.
func (s *Store) EndedRunsWaiting(ctx context.Context, app string) ([]Run, error) {
	args := []any{app}
	for _, st := range TerminalRunStates {
		args = append(args, st)
	}
	args = append(args, states(WaitingStageStates)...)
	rows, err := s.db.QueryContext(ctx, `SELECT `+runCols+` FROM runs WHERE app = ? AND state IN `+marks(len(TerminalRunStates))+`
		AND EXISTS (SELECT 1 FROM stages WHERE stages.run_id = runs.id AND stages.state IN `+marks(len(WaitingStageStates))+`) ORDER BY id DESC`, args...)
	if err != nil {
		return nil, fmt.Errorf("finished runs of %s with a stage waiting: %w", app, err)
	}
	return s.scanRuns(ctx, rows)
}

// marks is "(?, ?, ...)" with n placeholders.
func marks(n int) string { return "(?" + strings.Repeat(", ?", n-1) + ")" }

func states(ss []StageState) []any {
	out := make([]any, len(ss))
	for i, st := range ss {
		out[i] = st
	}
	return out
}

package store

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Rollback is a plan to put hosts of a region back on earlier releases, recorded before
// the first host is touched. StageID is the failed production stage an automatic rollback
// belongs to; 0 is a rollback a person asked for.
type Rollback struct {
	ID                int64
	App, Region       string
	RunID, StageID    int64
	Actor, Reason     string
	ActorID, Via      string // who asked (verified identity, door); the engine for an automatic one
	State             RollbackState
	Message           string
	Created, Finished time.Time
	Hosts             []RollbackHost
}

// RollbackHost is one host's part of a rollback: from the release it ran (or may have
// run) when the plan was made, to the release it goes back to.
type RollbackHost struct {
	Host     string
	Position int
	From, To string
	Step     StepState // pending, uploading, switching, restarting, checking, done, failed
	Message  string
	Updated  time.Time
}

// PlanRollback records a rollback plan, its hosts pending. With a StageID the stage moves
// to rolling_back in the same transaction (only from an active state: ErrStateChanged
// otherwise) and its planned hosts' steps to rolling_back, so a restart never deploys that
// stage again.
func (s *Store) PlanRollback(ctx context.Context, rb Rollback) (Rollback, error) {
	now := s.nowNS()
	err := s.tx(ctx, func(tx tx) error {
		if rb.StageID != 0 {
			res, err := tx.ExecContext(ctx, `UPDATE stages SET state = ?, message = ?, updated_at = ? WHERE id = ? AND state IN (?, ?, ?)`,
				StageRollingBack, rb.Reason, now, rb.StageID, StageDeploying, StageTesting, StageMonitoring)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 0 {
				return ErrStateChanged
			}
		}
		err := tx.QueryRowContext(ctx, `INSERT INTO rollbacks (app, region, run_id, stage_id, actor, actor_id, via, reason, state, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`, rb.App, rb.Region, rb.RunID, rb.StageID, rb.Actor, rb.ActorID, rb.Via, rb.Reason, RollbackPlanned, now).Scan(&rb.ID)
		if err != nil {
			return err
		}
		for i, h := range rb.Hosts {
			if _, err := tx.ExecContext(ctx, `INSERT INTO rollback_hosts (rollback_id, host, position, from_sha, to_sha, step, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
				rb.ID, h.Host, i, h.From, h.To, HostPending, now); err != nil {
				return err
			}
			if rb.StageID != 0 {
				if _, err := tx.ExecContext(ctx, `UPDATE host_steps SET step = ?, message = ?, updated_at = ? WHERE stage_id = ? AND host = ?`,
					HostRollingBack, "rolling back to "+short(h.To), now, rb.StageID, h.Host); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return Rollback{}, fmt.Errorf("plan rollback of %s/%s: %w", rb.App, rb.Region, err)
	}
	return s.Rollback(ctx, rb.ID)
}

const rollbackCols = `id, app, region, run_id, stage_id, actor, actor_id, via, reason, state, message, created_at, finished_at`

// Rollback returns one rollback plan with its hosts.
func (s *Store) Rollback(ctx context.Context, id int64) (Rollback, error) {
	rbs, err := s.rollbacks(ctx, `SELECT `+rollbackCols+` FROM rollbacks WHERE id = ?`, id)
	if err != nil {
		return Rollback{}, err
	}
	if len(rbs) == 0 {
		return Rollback{}, fmt.Errorf("rollback %d: %w", id, ErrNotFound)
	}
	return rbs[0], nil
}

// OpenRollbacks lists the rollback plans not yet carried out, oldest first.
func (s *Store) OpenRollbacks(ctx context.Context) ([]Rollback, error) {
	return s.rollbacks(ctx, `SELECT `+rollbackCols+` FROM rollbacks WHERE state = ? ORDER BY id`, RollbackPlanned)
}

// StageRollback returns the rollback plan of a stage, found false when it has none.
func (s *Store) StageRollback(ctx context.Context, stageID int64) (Rollback, bool, error) {
	rbs, err := s.rollbacks(ctx, `SELECT `+rollbackCols+` FROM rollbacks WHERE stage_id = ? ORDER BY id DESC LIMIT 1`, stageID)
	if err != nil || len(rbs) == 0 {
		return Rollback{}, false, err
	}
	return rbs[0], true, nil
}

func (s *Store) rollbacks(ctx context.Context, q string, args ...any) ([]Rollback, error) {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("rollbacks: %w", err)
	}
	var out []Rollback
	for rows.Next() {
		var rb Rollback
		var c, f int64
		if err := rows.Scan(&rb.ID, &rb.App, &rb.Region, &rb.RunID, &rb.StageID, &rb.Actor, &rb.ActorID, &rb.Via, &rb.Reason, &rb.State, &rb.Message, &c, &f); err != nil {
			rows.Close()
			return nil, fmt.Errorf("rollbacks: %w", err)
		}
		rb.Created, rb.Finished = fromNS(c), fromNS(f)
		out = append(out, rb)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("rollbacks: %w", err)
	}
	for i := range out {
		hs, err := s.db.QueryContext(ctx, `SELECT host, position, from_sha, to_sha, step, message, updated_at FROM rollback_hosts WHERE rollback_id = ? ORDER BY position`, out[i].ID)
		if err != nil {
			return nil, fmt.Errorf("hosts of rollback %d: %w", out[i].ID, err)
		}
		for hs.Next() {
			var h RollbackHost
			var u int64
			if err := hs.Scan(&h.Host, &h.Position, &h.From, &h.To, &h.Step, &h.Message, &u); err != nil {
				hs.Close()
				return nil, fmt.Errorf("hosts of rollback %d: %w", out[i].ID, err)
			}
			h.Updated = fromNS(u)
			out[i].Hosts = append(out[i].Hosts, h)
		}
		hs.Close()
		if err := hs.Err(); err != nil {
			return nil, fmt.Errorf("hosts of rollback %d: %w", out[i].ID, err)
		}
	}
	return out, nil
}

// SetRollbackStep records a host's step in a rollback. At restarting (the host's current
// link is back on To) the host's live release becomes To in the same transaction; at done
// the host's step in the rollback's stage becomes rolled_back.
func (s *Store) SetRollbackStep(ctx context.Context, rb Rollback, host string, step StepState, msg string) error {
	var to string
	for _, h := range rb.Hosts {
		if h.Host == host {
			to = h.To
		}
	}
	now := s.nowNS()
	err := s.tx(ctx, func(tx tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE rollback_hosts SET step = ?, message = ?, updated_at = ? WHERE rollback_id = ? AND host = ?`, step, msg, now, rb.ID, host)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%s is not in the plan: %w", host, ErrNotFound)
		}
		if step == HostRestarting {
			if err := setLive(ctx, tx, rb.App, rb.Region, host, to, now); err != nil {
				return err
			}
		}
		if step == HostDone && rb.StageID != 0 {
			_, err := tx.ExecContext(ctx, `UPDATE host_steps SET step = ?, message = ?, updated_at = ? WHERE stage_id = ? AND host = ?`,
				HostRolledBack, "rolled back to "+short(to), now, rb.StageID, host)
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("rollback %d: %s -> %s: %w", rb.ID, host, step, err)
	}
	return nil
}

// FinishRollback ends a rollback plan (done or failed) and records the release it put
// back in the region's history. An automatic rollback also ends its stage (rolled_back,
// or failed when no host went back), skips the run's later stages and fails the run with
// msg, in the same transaction.
func (s *Store) FinishRollback(ctx context.Context, rb Rollback, state RollbackState, rolledBack int, msg string) error {
	now := s.nowNS()
	err := s.tx(ctx, func(tx tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE rollbacks SET state = ?, message = ?, finished_at = ? WHERE id = ?`, state, msg, now, rb.ID); err != nil {
			return err
		}
		if rolledBack > 0 && len(rb.Hosts) > 0 {
			if _, err := tx.ExecContext(ctx, `INSERT INTO region_history (app, region, sha, action, actor, actor_id, via, run_id, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				rb.App, rb.Region, rb.Hosts[0].To, "rollback", rb.Actor, rb.ActorID, rb.Via, rb.RunID, now); err != nil {
				return err
			}
		}
		if rb.StageID == 0 {
			return nil
		}
		stage := StageRolledBack
		if rolledBack == 0 {
			stage = StageFailed
		}
		return failStage(ctx, tx, rb.RunID, rb.StageID, stage, RunFailed, msg, now)
	})
	if err != nil {
		return fmt.Errorf("finish rollback %d: %w", rb.ID, err)
	}
	return nil
}

// FailStage ends an active stage (failed, rolled_back or cancelled) in one transaction:
// its host steps left in the middle of something become failed, the run's later stages
// are skipped and the run moves to runState with msg. ErrStateChanged: the stage was no
// longer active.
func (s *Store) FailStage(ctx context.Context, runID, stageID int64, state StageState, runState RunState, msg string) error {
	err := s.tx(ctx, func(tx tx) error { return failStage(ctx, tx, runID, stageID, state, runState, msg, s.nowNS()) })
	if err != nil {
		return fmt.Errorf("stage %d -> %s: %w", stageID, state, err)
	}
	return nil
}

// SucceedStage ends an active stage as succeeded and records the release going live in
// the region's history, in one transaction. ErrStateChanged: the stage was no longer
// active (a rollback cancelled it).
func (s *Store) SucceedStage(ctx context.Context, stageID int64, msg string, h HistoryEntry) error {
	now := s.nowNS()
	err := s.tx(ctx, func(tx tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE stages SET state = ?, message = ?, finished_at = ?, updated_at = ? WHERE id = ? AND state IN (?, ?, ?)`,
			StageSucceeded, msg, now, now, stageID, StageDeploying, StageTesting, StageMonitoring)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrStateChanged
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO region_history (app, region, sha, action, actor, actor_id, via, run_id, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			h.App, h.Region, h.SHA, h.Action, h.Actor, h.ActorID, h.Via, h.RunID, now)
		return err
	})
	if err != nil {
		return fmt.Errorf("stage %d -> %s: %w", stageID, StageSucceeded, err)
	}
	return nil
}

func failStage(ctx context.Context, tx tx, runID, stageID int64, state StageState, runState RunState, msg string, now int64) error {
	active := activeArgs()
	res, err := tx.ExecContext(ctx, `UPDATE stages SET state = ?, message = ?, finished_at = ?, updated_at = ? WHERE id = ? AND state IN (?`+strings.Repeat(", ?", len(active)-1)+`)`,
		append([]any{state, msg, now, now, stageID}, active...)...)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrStateChanged
	}
	if _, err := tx.ExecContext(ctx, `UPDATE host_steps SET step = ?, message = ?, updated_at = ? WHERE stage_id = ? AND step IN (?, ?, ?, ?, ?, ?, ?)`,
		HostFailed, "stopped: the stage failed", now, stageID, HostUploading, HostSwitching, HostRestarting, HostChecking, HostTesting, HostMonitoring, HostRollingBack); err != nil {
		return err
	}
	var region string
	var pos int
	if err := tx.QueryRowContext(ctx, `SELECT region, position FROM stages WHERE id = ?`, stageID).Scan(&region, &pos); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE stages SET state = ?, message = ?, updated_at = ? WHERE run_id = ? AND position > ? AND state IN (?, ?, ?)`,
		StageSkipped, "skipped: "+region+" failed", now, runID, pos, StagePending, StageAwaitingApproval, StageApproved); err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `UPDATE runs SET state = ?, message = ?, updated_at = ? WHERE id = ?`, runState, msg, now, runID)
	return err
}

// SetHostLive records the release now live on a host (the switch of its current link
// has happened) together with its step; a stage that ended meanwhile keeps its hosts'
// steps (ErrStateChanged), but the host's live release is recorded all the same.
func (s *Store) SetHostLive(ctx context.Context, stageID int64, host string, step StepState, msg, app, region, sha string) error {
	now := s.nowNS()
	var moved int64
	err := s.tx(ctx, func(tx tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE host_steps SET step = ?, message = ?, updated_at = ? WHERE stage_id = ? AND host = ? AND `+stageActive,
			append([]any{step, msg, now, stageID, host, stageID}, activeArgs()...)...)
		if err != nil {
			return err
		}
		if moved, err = res.RowsAffected(); err != nil {
			return err
		}
		return setLive(ctx, tx, app, region, host, sha, now)
	})
	if err == nil && moved == 0 {
		err = ErrStateChanged
	}
	if err != nil {
		return fmt.Errorf("host step %s -> %s (live %s): %w", host, step, short(sha), err)
	}
	return nil
}

func setLive(ctx context.Context, tx tx, app, region, host, sha string, now int64) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO live (app, region, host, sha, updated_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (app, region, host) DO UPDATE SET sha = excluded.sha, updated_at = excluded.updated_at`, app, region, host, sha, now)
	return err
}

// RollbackHostFound records what a host of an open plan was found running, once it has
// been asked (a switch cut off may have happened after all): its live release and the
// plan's From for it, in one transaction. ErrStateChanged: the plan is no longer open,
// and nothing changed.
func (s *Store) RollbackHostFound(ctx context.Context, rb Rollback, host, found string) error {
	now := s.nowNS()
	err := s.tx(ctx, func(tx tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE rollback_hosts SET from_sha = ?, updated_at = ? WHERE rollback_id = ? AND host = ?
			AND EXISTS (SELECT 1 FROM rollbacks WHERE id = ? AND state = ?)`, found, now, rb.ID, host, rb.ID, RollbackPlanned)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return ErrStateChanged
		}
		return setLive(ctx, tx, rb.App, rb.Region, host, found, now)
	})
	if err != nil {
		return fmt.Errorf("rollback %d: %s found on %s: %w", rb.ID, host, short(found), err)
	}
	return nil
}

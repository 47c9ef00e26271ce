package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Release is a build of one commit.
type Release struct {
	App, SHA, Subject, Author string
	Artifact, Checksum        string
	State                     ReleaseState
	Message                   string
	Created                   time.Time
}

// Run is one release travelling through an app's regions.
type Run struct {
	ID               int64
	App, SHA, Branch string
	Subject, Author  string
	Trigger, Actor   string
	State            RunState
	Message          string
	Created, Updated time.Time
	Stages           []Stage
}

// Stage is one region's part of a run.
type Stage struct {
	ID, RunID         int64
	Region            string
	Position          int
	State             StageState
	Message           string
	ApprovedBy        string // who promoted (or deployed) the release into the region: a name
	ApprovedByID      string // and their verified identity
	ApprovedVia       string
	Tests             string
	Verdict           string // judge.Verdict JSON
	Started, Finished time.Time
	Updated           time.Time
	Hosts             []HostStep
	// Forced: approved with --force by someone granted it, past a freeze and outside the
	// deploy windows (a stage going back to pending forgets it).
	Forced bool `json:",omitempty"`
}

// HostStep is one host's progress within a stage.
type HostStep struct {
	StageID  int64
	Host     string
	Position int
	Step     StepState
	PrevSHA  string
	Message  string
	Updated  time.Time
}

// PutRelease inserts or replaces a release row.
func (s *Store) PutRelease(ctx context.Context, r Release) error {
	if r.Created.IsZero() {
		r.Created = s.now()
	}
	if err := putRelease(ctx, s.db, r); err != nil {
		return fmt.Errorf("put release %s@%s: %w", r.App, short(r.SHA), err)
	}
	return nil
}

// execer runs a statement: the store's pool or one of its transactions.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func putRelease(ctx context.Context, ex execer, r Release) error {
	_, err := ex.ExecContext(ctx, `INSERT INTO releases (app, sha, subject, author, artifact, checksum, state, message, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (app, sha) DO UPDATE SET subject=excluded.subject, author=excluded.author, artifact=excluded.artifact,
		checksum=excluded.checksum, state=excluded.state, message=excluded.message`,
		r.App, r.SHA, r.Subject, r.Author, r.Artifact, r.Checksum, r.State, r.Message, r.Created.UnixNano())
	return err
}

// Release returns one release; sha may be a unique prefix.
func (s *Store) Release(ctx context.Context, app, sha string) (Release, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT app, sha, subject, author, artifact, checksum, state, message, created_at
		FROM releases WHERE app = ? AND sha LIKE ? ESCAPE '\' ORDER BY created_at DESC LIMIT 2`, app, likePrefix(sha))
	if err != nil {
		return Release{}, err
	}
	defer rows.Close()
	var out []Release
	for rows.Next() {
		var r Release
		var created int64
		if err := rows.Scan(&r.App, &r.SHA, &r.Subject, &r.Author, &r.Artifact, &r.Checksum, &r.State, &r.Message, &created); err != nil {
			return Release{}, err
		}
		r.Created = fromNS(created)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return Release{}, err
	}
	switch {
	case len(out) == 0 || sha == "":
		return Release{}, fmt.Errorf("release %s@%s: %w", app, sha, ErrNotFound)
	case len(out) > 1 && out[0].SHA != sha:
		return Release{}, fmt.Errorf("release %s@%s: ambiguous, give more of the SHA", app, sha)
	}
	return out[0], nil
}

// CreateRun records a new run with its stages (all pending) in one transaction.
func (s *Store) CreateRun(ctx context.Context, r Run, regions []string, hosts map[string][]string) (Run, error) {
	now := s.nowNS()
	err := s.tx(ctx, func(tx tx) error {
		_, err := createRun(ctx, tx, &r, regions, hosts, now)
		return err
	})
	if err != nil {
		return Run{}, fmt.Errorf("create run %s@%s: %w", r.App, short(r.SHA), err)
	}
	return s.Run(ctx, r.ID)
}

// CreateApprovedRun records a new run of one region whose stage is already changed by u
// (a deploy: approved by whoever asked for it), in one transaction: no reader sees the
// run with its stage not yet approved.
func (s *Store) CreateApprovedRun(ctx context.Context, r Run, region string, hosts []string, u StageUpdate) (Run, error) {
	now := s.nowNS()
	err := s.tx(ctx, func(tx tx) error {
		stages, err := createRun(ctx, tx, &r, []string{region}, map[string][]string{region: hosts}, now)
		if err != nil {
			return err
		}
		return updateStage(ctx, tx, stages[0], u, now)
	})
	if err != nil {
		return Run{}, fmt.Errorf("create run %s@%s: %w", r.App, short(r.SHA), err)
	}
	return s.Run(ctx, r.ID)
}

// createRun inserts a run (its ID set in r), its stages and their host steps; it returns
// the stages' IDs in the order of regions.
func createRun(ctx context.Context, tx tx, r *Run, regions []string, hosts map[string][]string, now int64) ([]int64, error) {
	err := tx.QueryRowContext(ctx, `INSERT INTO runs (app, sha, branch, subject, author, trigger, actor, state, message, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`, r.App, r.SHA, r.Branch, r.Subject, r.Author, r.Trigger, r.Actor, r.State, r.Message, now, now).Scan(&r.ID)
	if err != nil {
		return nil, err
	}
	var ids []int64
	for i, region := range regions {
		var sid int64
		if err := tx.QueryRowContext(ctx, `INSERT INTO stages (run_id, region, position, state, updated_at) VALUES (?, ?, ?, ?, ?) RETURNING id`,
			r.ID, region, i, StagePending, now).Scan(&sid); err != nil {
			return nil, err
		}
		ids = append(ids, sid)
		for j, h := range hosts[region] {
			if _, err := tx.ExecContext(ctx, `INSERT INTO host_steps (stage_id, host, position, step, updated_at) VALUES (?, ?, ?, ?, ?)`, sid, h, j, HostPending, now); err != nil {
				return nil, err
			}
		}
	}
	return ids, nil
}

// SetRunState moves a run to state with a message.
func (s *Store) SetRunState(ctx context.Context, id int64, state RunState, msg string) error {
	_, err := s.db.ExecContext(ctx, `UPDATE runs SET state = ?, message = ?, updated_at = ? WHERE id = ?`, state, msg, s.nowNS(), id)
	if err != nil {
		return fmt.Errorf("run %d -> %s: %w", id, state, err)
	}
	return nil
}

// SetRunSHA records the commit of a run (when a run was started before its build).
func (s *Store) SetRunSHA(ctx context.Context, id int64, sha, subject, author string) error {
	_, err := s.db.ExecContext(ctx, `UPDATE runs SET sha = ?, subject = ?, author = ?, updated_at = ? WHERE id = ?`, sha, subject, author, s.nowNS(), id)
	return err
}

// StageUpdate changes a stage. Empty fields are left as they are; Started/Finished are set
// when the flags say so. With OnlyIf, the stage changes only while in one of those states.
type StageUpdate struct {
	State                               StageState
	Message, ApprovedBy, Tests, Verdict string
	ApprovedByID, ApprovedVia           string
	Start, Finish                       bool
	Forced                              bool // set Stage.Forced
	OnlyIf                              []StageState
}

// ErrStateChanged is returned by UpdateStage and MoveStageAndRun when OnlyIf did not match.
var ErrStateChanged = errors.New("stage state changed meanwhile")

// UpdateStage applies u to a stage.
func (s *Store) UpdateStage(ctx context.Context, id int64, u StageUpdate) error {
	now := s.nowNS()
	err := s.tx(ctx, func(tx tx) error { return updateStage(ctx, tx, id, u, now) })
	if err != nil {
		return fmt.Errorf("stage %d -> %s: %w", id, u.State, err)
	}
	return nil
}

// MoveStageAndRun applies u to a stage and moves its run to state with msg, in one
// transaction: a reader sees both changes or neither. When u.OnlyIf does not match,
// nothing changes (ErrStateChanged), not even the run.
func (s *Store) MoveStageAndRun(ctx context.Context, stageID int64, u StageUpdate, runID int64, state RunState, msg string) error {
	now := s.nowNS()
	err := s.tx(ctx, func(tx tx) error {
		if err := updateStage(ctx, tx, stageID, u, now); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE runs SET state = ?, message = ?, updated_at = ? WHERE id = ?`, state, msg, now, runID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("no run %d", runID)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("stage %d -> %s, run %d -> %s: %w", stageID, u.State, runID, state, err)
	}
	return nil
}

func updateStage(ctx context.Context, tx tx, id int64, u StageUpdate, now int64) error {
	q := `UPDATE stages SET updated_at = ?`
	args := []any{now}
	set := func(col, v string) {
		if v != "" {
			q += ", " + col + " = ?"
			args = append(args, v)
		}
	}
	set("state", string(u.State))
	set("message", u.Message)
	set("approved_by", u.ApprovedBy)
	set("approved_by_id", u.ApprovedByID)
	set("approved_via", u.ApprovedVia)
	set("tests", u.Tests)
	set("verdict", u.Verdict)
	switch {
	case u.Forced:
		q += ", forced = 1"
	case u.State == StagePending:
		q += ", forced = 0"
	}
	if u.Start {
		q += ", started_at = ?, finished_at = 0"
		args = append(args, now)
	}
	if u.Finish {
		q += ", finished_at = ?"
		args = append(args, now)
	}
	q += " WHERE id = ?"
	args = append(args, id)
	if len(u.OnlyIf) > 0 {
		q += " AND state IN (?" + strings.Repeat(", ?", len(u.OnlyIf)-1) + ")"
		for _, st := range u.OnlyIf {
			args = append(args, st)
		}
	}
	res, err := tx.ExecContext(ctx, q, args...)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		if len(u.OnlyIf) > 0 {
			return ErrStateChanged
		}
		return nil
	}
	if u.Verdict != "" { // every look is kept, for the metrics over time
		_, err = tx.ExecContext(ctx, `INSERT INTO stage_verdicts (stage_id, verdict, at) VALUES (?, ?, ?)`, id, u.Verdict, now)
	}
	return err
}

// StageVerdict is one look of a stage's canary comparison.
type StageVerdict struct {
	Verdict string // judge.Verdict JSON
	At      time.Time
}

// StageVerdicts lists every verdict a stage recorded, oldest first: its interim looks
// and its final verdict.
func (s *Store) StageVerdicts(ctx context.Context, stageID int64) ([]StageVerdict, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT verdict, at FROM stage_verdicts WHERE stage_id = ? ORDER BY id`, stageID)
	if err != nil {
		return nil, fmt.Errorf("verdicts of stage %d: %w", stageID, err)
	}
	defer rows.Close()
	var out []StageVerdict
	for rows.Next() {
		var v StageVerdict
		var at int64
		if err := rows.Scan(&v.Verdict, &at); err != nil {
			return nil, err
		}
		v.At = fromNS(at)
		out = append(out, v)
	}
	return out, rows.Err()
}

// SetHostStep records a host's step within a stage, while the stage is active:
// ErrStateChanged when it ended meanwhile (cancelled, failed), and the step stays as the
// stage's end left it.
func (s *Store) SetHostStep(ctx context.Context, stageID int64, host string, step StepState, prevSHA, msg string) error {
	q := `UPDATE host_steps SET step = ?, message = ?, updated_at = ?`
	args := []any{step, msg, s.nowNS()}
	if prevSHA != "" {
		q += `, prev_sha = ?`
		args = append(args, prevSHA)
	}
	q += ` WHERE stage_id = ? AND host = ? AND ` + stageActive
	args = append(append(args, stageID, host, stageID), activeArgs()...)
	res, err := s.db.ExecContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("host step %s -> %s: %w", host, step, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("host step %s -> %s: %w", host, step, err)
	} else if n == 0 {
		return fmt.Errorf("host step %s -> %s: %w", host, step, ErrStateChanged)
	}
	return nil
}

// stageActive is the condition "stage ? is active", with activeArgs after the stage's id.
var stageActive = `EXISTS (SELECT 1 FROM stages WHERE id = ? AND state IN (?` + strings.Repeat(", ?", len(ActiveStageStates)-1) + `))`

func activeArgs() []any {
	out := make([]any, 0, len(ActiveStageStates))
	for _, st := range ActiveStageStates {
		out = append(out, st)
	}
	return out
}

// ResetHostSteps puts every host of a stage back to pending (a re-run of the stage).
func (s *Store) ResetHostSteps(ctx context.Context, stageID int64) error {
	_, err := s.db.ExecContext(ctx, `UPDATE host_steps SET step = ?, message = '', prev_sha = '', updated_at = ? WHERE stage_id = ?`, HostPending, s.nowNS(), stageID)
	return err
}

const runCols = `id, app, sha, branch, subject, author, trigger, actor, state, message, created_at, updated_at`

func scanRun(sc interface{ Scan(...any) error }) (Run, error) {
	var r Run
	var c, u int64
	err := sc.Scan(&r.ID, &r.App, &r.SHA, &r.Branch, &r.Subject, &r.Author, &r.Trigger, &r.Actor, &r.State, &r.Message, &c, &u)
	r.Created, r.Updated = fromNS(c), fromNS(u)
	return r, err
}

// Run returns a run with its stages and host steps.
func (s *Store) Run(ctx context.Context, id int64) (Run, error) {
	r, err := scanRun(s.db.QueryRowContext(ctx, `SELECT `+runCols+` FROM runs WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Run{}, fmt.Errorf("run %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Run{}, fmt.Errorf("run %d: %w", id, err)
	}
	if r.Stages, err = s.stages(ctx, id); err != nil {
		return Run{}, err
	}
	return r, nil
}

// RunsOf lists the runs of one release of an app, newest first.
func (s *Store) RunsOf(ctx context.Context, app, sha string) ([]Run, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+runCols+` FROM runs WHERE app = ? AND sha = ? ORDER BY id DESC`, app, sha)
	if err != nil {
		return nil, fmt.Errorf("runs of %s@%s: %w", app, sha, err)
	}
	return s.scanRuns(ctx, rows)
}

// Runs lists runs, newest first. app "" means every app; active limits to runs not yet finished.
func (s *Store) Runs(ctx context.Context, app string, active bool, limit int) ([]Run, error) {
	q := `SELECT ` + runCols + ` FROM runs WHERE (? = '' OR app = ?)`
	args := []any{app, app}
	if active {
		q += ` AND state NOT IN (?` + strings.Repeat(", ?", len(TerminalRunStates)-1) + `)`
		for _, st := range TerminalRunStates {
			args = append(args, st)
		}
	}
	q += ` ORDER BY id DESC LIMIT ?`
	if limit <= 0 {
		limit = 1 << 30
	}
	rows, err := s.db.QueryContext(ctx, q, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	return s.scanRuns(ctx, rows)
}

// scanRuns reads runs and their stages.
func (s *Store) scanRuns(ctx context.Context, rows *sql.Rows) ([]Run, error) {
	var out []Run
	var err error
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, r)
	}
	rows.Close()
	for i := range out {
		if out[i].Stages, err = s.stages(ctx, out[i].ID); err != nil {
			return nil, err
		}
	}
	return out, rows.Err()
}

func (s *Store) stages(ctx context.Context, runID int64) ([]Stage, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, run_id, region, position, state, message, approved_by, approved_by_id, approved_via, tests, verdict, started_at, finished_at, updated_at, forced
		FROM stages WHERE run_id = ? ORDER BY position`, runID)
	if err != nil {
		return nil, fmt.Errorf("stages of run %d: %w", runID, err)
	}
	var out []Stage
	for rows.Next() {
		var st Stage
		var a, b, c int64
		if err := rows.Scan(&st.ID, &st.RunID, &st.Region, &st.Position, &st.State, &st.Message, &st.ApprovedBy, &st.ApprovedByID, &st.ApprovedVia, &st.Tests, &st.Verdict, &a, &b, &c, &st.Forced); err != nil {
			rows.Close()
			return nil, err
		}
		st.Started, st.Finished, st.Updated = fromNS(a), fromNS(b), fromNS(c)
		out = append(out, st)
	}
	rows.Close()
	for i := range out {
		hs, err := s.db.QueryContext(ctx, `SELECT stage_id, host, position, step, prev_sha, message, updated_at FROM host_steps WHERE stage_id = ? ORDER BY position`, out[i].ID)
		if err != nil {
			return nil, err
		}
		for hs.Next() {
			var h HostStep
			var u int64
			if err := hs.Scan(&h.StageID, &h.Host, &h.Position, &h.Step, &h.PrevSHA, &h.Message, &u); err != nil {
				hs.Close()
				return nil, err
			}
			h.Updated = fromNS(u)
			out[i].Hosts = append(out[i].Hosts, h)
		}
		hs.Close()
	}
	return out, nil
}

func short(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	return sha
}

// Releases lists an app's releases, newest first.
func (s *Store) Releases(ctx context.Context, app string) ([]Release, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT app, sha, subject, author, artifact, checksum, state, message, created_at
		FROM releases WHERE app = ? ORDER BY created_at DESC`, app)
	if err != nil {
		return nil, fmt.Errorf("releases of %s: %w", app, err)
	}
	defer rows.Close()
	var out []Release
	for rows.Next() {
		var r Release
		var created int64
		if err := rows.Scan(&r.App, &r.SHA, &r.Subject, &r.Author, &r.Artifact, &r.Checksum, &r.State, &r.Message, &created); err != nil {
			return nil, fmt.Errorf("releases of %s: %w", app, err)
		}
		r.Created = fromNS(created)
		out = append(out, r)
	}
	return out, rows.Err()
}

// PruneRelease records that a ready release's artifact is gone (its file deleted): its
// stored copy (for replicas) is deleted and the release moves to pruned with msg, in one
// transaction. A release no longer ready is left as it is (ErrStateChanged).
func (s *Store) PruneRelease(ctx context.Context, app, sha, msg string) error {
	err := s.tx(ctx, func(tx tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE releases SET state = ?, message = ? WHERE app = ? AND sha = ? AND state = ?`, ReleasePruned, msg, app, sha, ReleaseReady)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return ErrStateChanged
		}
		return deleteArtifact(ctx, tx, app, sha)
	})
	if err != nil {
		return fmt.Errorf("prune release %s@%s: %w", app, short(sha), err)
	}
	return nil
}

package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// GateRequest is GitHub asking Immunity, a custom deployment protection rule, whether a
// GitHub Actions job may deploy a commit to an environment of a repo.
type GateRequest struct {
	ID           int64
	Repo         string // owner/name, lower case
	Installation int64
	Environment  string
	DeploymentID int64 // 0 when the job made no deployment
	SHA, Ref     string
	CallbackURL  string
	ActionsRunID int64  // the workflow run to review
	App          string // the Immunity app whose github_gate decides it; "" when none does
	State        GateState
	Reason       string // why it was approved or rejected
	Reports      int    // status reports sent while it waited
	LastReport   string
	Received     time.Time
	Decided      time.Time
}

// GateState is where a gate request stands; it leaves GateWaiting once.
type GateState string

// Gate request states.
const (
	GateWaiting  GateState = "waiting"
	GateApproved GateState = "approved"
	GateRejected GateState = "rejected"
)

// MaxGateReports is how many status reports GitHub takes for one request.
const MaxGateReports = 10

// ErrDecided is returned when a gate request was decided already.
var ErrDecided = errors.New("gate request already decided")

// ErrReportsUsed is returned when a gate request has had every status report GitHub takes.
var ErrReportsUsed = errors.New("gate request has had every status report GitHub takes")

// AddGateRequest records a request as received (waiting), unless the same request (repo,
// workflow run, environment, deployment) is recorded already; it returns the request as
// stored and whether it was new.
func (s *Store) AddGateRequest(ctx context.Context, g GateRequest) (GateRequest, bool, error) {
	g.Repo = strings.ToLower(g.Repo)
	res, err := s.db.ExecContext(ctx, `INSERT INTO github_gate_requests (repo, installation, environment, deployment_id, sha, ref, callback_url, actions_run_id, app, received_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (repo, actions_run_id, environment, deployment_id) DO NOTHING`,
		g.Repo, g.Installation, g.Environment, g.DeploymentID, g.SHA, g.Ref, g.CallbackURL, g.ActionsRunID, g.App, s.nowNS())
	if err != nil {
		return GateRequest{}, false, fmt.Errorf("record gate request of %s run %d %s: %w", g.Repo, g.ActionsRunID, g.Environment, err)
	}
	n, _ := res.RowsAffected()
	row := s.db.QueryRowContext(ctx, `SELECT `+gateCols+` FROM github_gate_requests WHERE repo = ? AND actions_run_id = ? AND environment = ? AND deployment_id = ?`,
		g.Repo, g.ActionsRunID, g.Environment, g.DeploymentID)
	stored, err := scanGate(row)
	if err != nil {
		return GateRequest{}, false, fmt.Errorf("read gate request of %s run %d %s: %w", g.Repo, g.ActionsRunID, g.Environment, err)
	}
	return stored, n == 1, nil
}

const gateCols = `id, repo, installation, environment, deployment_id, sha, ref, callback_url, actions_run_id, app, state, reason, reports, last_report, received_at, decided_at`

func scanGate(sc interface{ Scan(...any) error }) (GateRequest, error) {
	var g GateRequest
	var rec, dec int64
	err := sc.Scan(&g.ID, &g.Repo, &g.Installation, &g.Environment, &g.DeploymentID, &g.SHA, &g.Ref, &g.CallbackURL, &g.ActionsRunID, &g.App,
		&g.State, &g.Reason, &g.Reports, &g.LastReport, &rec, &dec)
	g.Received, g.Decided = fromNS(rec), fromNS(dec)
	return g, err
}

// GateRequest returns one request, or ErrNotFound.
func (s *Store) GateRequest(ctx context.Context, id int64) (GateRequest, error) {
	g, err := scanGate(s.db.QueryRowContext(ctx, `SELECT `+gateCols+` FROM github_gate_requests WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return GateRequest{}, fmt.Errorf("gate request %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return GateRequest{}, fmt.Errorf("gate request %d: %w", id, err)
	}
	return g, nil
}

// GateRequests lists requests in a state ("" for all), oldest first.
func (s *Store) GateRequests(ctx context.Context, state GateState) ([]GateRequest, error) {
	q, args := `SELECT `+gateCols+` FROM github_gate_requests ORDER BY id`, []any(nil)
	if state != "" {
		q, args = `SELECT `+gateCols+` FROM github_gate_requests WHERE state = ? ORDER BY id`, []any{string(state)}
	}
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list gate requests: %w", err)
	}
	defer rows.Close()
	var out []GateRequest
	for rows.Next() {
		g, err := scanGate(rows)
		if err != nil {
			return nil, fmt.Errorf("list gate requests: %w", err)
		}
		out = append(out, g)
	}
	return out, rows.Err()
}

// DecideGate moves a waiting request to approved or rejected and, in the same
// transaction, adds its review to the outbox (it.Dedupe set: the review is added once
// ever). A request decided before is left alone: ErrDecided.
func (s *Store) DecideGate(ctx context.Context, id int64, state GateState, reason string, it OutboxItem) error {
	if state != GateApproved && state != GateRejected {
		return fmt.Errorf("decide gate request %d: %q is not a decision", id, state)
	}
	if it.Dedupe == "" {
		return fmt.Errorf("decide gate request %d: the review needs a dedupe key", id)
	}
	return s.tx(ctx, func(tx tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE github_gate_requests SET state = ?, reason = ?, decided_at = ? WHERE id = ? AND state = ?`,
			state, reason, s.nowNS(), id, GateWaiting)
		if err != nil {
			return fmt.Errorf("decide gate request %d: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return fmt.Errorf("decide gate request %d: %w", id, ErrDecided)
		}
		if err := enqueueTx(ctx, tx, it, s.nowNS()); err != nil {
			return fmt.Errorf("decide gate request %d: %w", id, err)
		}
		return nil
	})
}

// ReportGate records a status report of a waiting request and, in the same transaction,
// adds it to the outbox, its Dedupe key ended by the report's number ("KEY/3": a report
// is added once however many servers send it). It fails with ErrDecided once the request is decided and with
// ErrReportsUsed after MaxGateReports.
func (s *Store) ReportGate(ctx context.Context, id int64, text string, it OutboxItem) error {
	return s.tx(ctx, func(tx tx) error {
		var state GateState
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT state, reports FROM github_gate_requests WHERE id = ?`, id).Scan(&state, &n); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				err = ErrNotFound
			}
			return fmt.Errorf("report on gate request %d: %w", id, err)
		}
		switch {
		case state != GateWaiting:
			return fmt.Errorf("report on gate request %d: %w", id, ErrDecided)
		case n >= MaxGateReports:
			return fmt.Errorf("report on gate request %d: %w", id, ErrReportsUsed)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE github_gate_requests SET reports = reports + 1, last_report = ? WHERE id = ?`, text, id); err != nil {
			return fmt.Errorf("report on gate request %d: %w", id, err)
		}
		it.Dedupe = fmt.Sprintf("%s/%d", it.Dedupe, n+1)
		if err := enqueueTx(ctx, tx, it, s.nowNS()); err != nil {
			return fmt.Errorf("report on gate request %d: %w", id, err)
		}
		return nil
	})
}

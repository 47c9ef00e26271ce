package checks

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// checkRow is what was last sent for a stage's check run.
type checkRow struct {
	ID     int64
	Status string
	Digest string
}

func loadCheckRun(ctx context.Context, db *sql.DB, runID int64, region string) (checkRow, bool, error) {
	var r checkRow
	err := db.QueryRowContext(ctx, `SELECT check_run_id, status, digest FROM github_check_runs WHERE run_id = ? AND region = ?`, runID, region).Scan(&r.ID, &r.Status, &r.Digest)
	if errors.Is(err, sql.ErrNoRows) {
		return checkRow{}, false, nil
	}
	if err != nil {
		return checkRow{}, false, fmt.Errorf("check run of run %d %s: %w", runID, region, err)
	}
	return r, true, nil
}

func saveCheckRun(ctx context.Context, db *sql.DB, runID int64, region, repo string, r checkRow) error {
	_, err := db.ExecContext(ctx, `INSERT INTO github_check_runs (run_id, region, repo, check_run_id, status, digest, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (run_id, region) DO UPDATE SET check_run_id = excluded.check_run_id, status = excluded.status, digest = excluded.digest, updated_at = excluded.updated_at`,
		runID, region, repo, r.ID, r.Status, r.Digest, time.Now().UnixNano())
	if err != nil {
		return fmt.Errorf("save check run %d of run %d %s: %w", r.ID, runID, region, err)
	}
	return nil
}

// deployRow is a GitHub Deployment we created and its last status.
type deployRow struct {
	Key          string
	App, Region  string
	SHA          string
	RunID        int64
	Repo         string
	DeploymentID int64
	Production   bool
	State        string
}

func loadDeployment(ctx context.Context, db *sql.DB, key string) (deployRow, bool, error) {
	r := deployRow{Key: key}
	err := db.QueryRowContext(ctx, `SELECT app, region, sha, run_id, repo, deployment_id, production, state FROM github_deployments WHERE key = ?`, key).
		Scan(&r.App, &r.Region, &r.SHA, &r.RunID, &r.Repo, &r.DeploymentID, &r.Production, &r.State)
	if errors.Is(err, sql.ErrNoRows) {
		return deployRow{}, false, nil
	}
	if err != nil {
		return deployRow{}, false, fmt.Errorf("deployment %s: %w", key, err)
	}
	return r, true, nil
}

func saveDeployment(ctx context.Context, db *sql.DB, r deployRow) error {
	_, err := db.ExecContext(ctx, `INSERT INTO github_deployments (key, app, region, sha, run_id, repo, deployment_id, production, state, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (key) DO UPDATE SET deployment_id = excluded.deployment_id, state = excluded.state, updated_at = excluded.updated_at`,
		r.Key, r.App, r.Region, r.SHA, r.RunID, r.Repo, r.DeploymentID, r.Production, r.State, time.Now().UnixNano())
	if err != nil {
		return fmt.Errorf("save deployment %s (%d): %w", r.Key, r.DeploymentID, err)
	}
	return nil
}

// activeDeployments lists our other successful deployments of a repo's environment.
func activeDeployments(ctx context.Context, db *sql.DB, repo, region, exceptKey string) ([]deployRow, error) {
	rows, err := db.QueryContext(ctx, `SELECT key, app, region, sha, run_id, repo, deployment_id, production, state FROM github_deployments
		WHERE repo = ? AND region = ? AND state = 'success' AND key <> ? ORDER BY updated_at`, repo, region, exceptKey)
	if err != nil {
		return nil, fmt.Errorf("deployments of %s %s: %w", repo, region, err)
	}
	defer rows.Close()
	var out []deployRow
	for rows.Next() {
		var r deployRow
		if err := rows.Scan(&r.Key, &r.App, &r.Region, &r.SHA, &r.RunID, &r.Repo, &r.DeploymentID, &r.Production, &r.State); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

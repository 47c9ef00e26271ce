package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Delivery is one GitHub webhook delivery as recorded before it is acted on.
type Delivery struct {
	ID, Event, Action, Repo string
	// DedupeKey names the event itself (a comment id, a push's head sha) so the same event
	// under a second delivery id is not acted on twice; "" when it has no natural identity.
	DedupeKey string
	State     string // received, done, failed, duplicate
	Detail    string
}

// Deliveries lists recorded deliveries, oldest first.
func (s *Store) Deliveries(ctx context.Context) ([]Delivery, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, event, action, repo, coalesce(dedupe_key, ''), state, detail FROM github_deliveries ORDER BY received_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list deliveries: %w", err)
	}
	defer rows.Close()
	var out []Delivery
	for rows.Next() {
		var d Delivery
		if err := rows.Scan(&d.ID, &d.Event, &d.Action, &d.Repo, &d.DedupeKey, &d.State, &d.Detail); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// PruneDeliveries forgets deliveries received before a time.
func (s *Store) PruneDeliveries(ctx context.Context, before time.Time) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM github_deliveries WHERE received_at < ?`, before.UnixNano()); err != nil {
		return fmt.Errorf("prune github deliveries: %w", err)
	}
	return nil
}

// Installation is a GitHub App installation serving a repo.
type Installation struct {
	Repo    string // owner/name, lower case
	ID      int64
	Account string
}

// InstallationFor returns the installation remembered for repo, or 0.
func (s *Store) InstallationFor(ctx context.Context, repo string) (int64, error) {
	var id int64
	err := s.db.QueryRowContext(ctx, `SELECT installation_id FROM github_installations WHERE repo = ?`, strings.ToLower(repo)).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("installation of %s: %w", repo, err)
	}
	return id, nil
}

// Installations lists every remembered repo and its installation, by repo.
func (s *Store) Installations(ctx context.Context) ([]Installation, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT repo, installation_id, account FROM github_installations ORDER BY repo`)
	if err != nil {
		return nil, fmt.Errorf("list installations: %w", err)
	}
	defer rows.Close()
	var out []Installation
	for rows.Next() {
		var in Installation
		if err := rows.Scan(&in.Repo, &in.ID, &in.Account); err != nil {
			return nil, err
		}
		out = append(out, in)
	}
	return out, rows.Err()
}

// RememberInstallation records that installation id serves repo (account "" keeps the
// one known).
func (s *Store) RememberInstallation(ctx context.Context, repo string, id int64, account string) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO github_installations (repo, installation_id, account, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (repo) DO UPDATE SET installation_id = excluded.installation_id,
		account = CASE WHEN excluded.account = '' THEN github_installations.account ELSE excluded.account END,
		updated_at = excluded.updated_at`,
		strings.ToLower(repo), id, account, s.nowNS())
	if err != nil {
		return fmt.Errorf("remember installation %d for %s: %w", id, repo, err)
	}
	return nil
}

// ForgetRepos removes repos from an installation (uninstalled, or repos removed from it);
// repos nil forgets every repo of the installation.
func (s *Store) ForgetRepos(ctx context.Context, id int64, repos []string) error {
	if repos == nil {
		if _, err := s.db.ExecContext(ctx, `DELETE FROM github_installations WHERE installation_id = ?`, id); err != nil {
			return fmt.Errorf("forget installation %d: %w", id, err)
		}
		return nil
	}
	for _, r := range repos {
		if _, err := s.db.ExecContext(ctx, `DELETE FROM github_installations WHERE installation_id = ? AND repo = ?`, id, strings.ToLower(r)); err != nil {
			return fmt.Errorf("forget %s of installation %d: %w", r, id, err)
		}
	}
	return nil
}

// CheckRun is what was last sent for a stage's GitHub Check Run.
type CheckRun struct {
	RunID  int64
	Region string
	Repo   string
	ID     int64  // GitHub's check run id (of the attempt before, or 0, while creating)
	Status string // queued, in_progress, completed; CheckRunCreating while a create's outcome is unknown
	Digest string // hash of what was sent, so a restart updates or leaves alone
	// Attempt counts the stage's check runs: a stage that starts again after its check run
	// completed gets a new one (1 for the first).
	Attempt int
}

// CheckRunCreating is the status of a check run's row written before it is created at
// GitHub: until GitHub's answer is recorded, whether it exists there is not known.
const CheckRunCreating = "creating"

// CheckRun returns the check run of a run's stage; found is false when none was made.
func (s *Store) CheckRun(ctx context.Context, runID int64, region string) (c CheckRun, found bool, err error) {
	c = CheckRun{RunID: runID, Region: region}
	err = s.db.QueryRowContext(ctx, `SELECT repo, check_run_id, status, digest, attempt FROM github_check_runs WHERE run_id = ? AND region = ?`, runID, region).
		Scan(&c.Repo, &c.ID, &c.Status, &c.Digest, &c.Attempt)
	if errors.Is(err, sql.ErrNoRows) {
		return CheckRun{}, false, nil
	}
	if err != nil {
		return CheckRun{}, false, fmt.Errorf("check run of run %d %s: %w", runID, region, err)
	}
	return c, true, nil
}

// CheckRunByID finds the run and region of one of our check runs by GitHub's id.
func (s *Store) CheckRunByID(ctx context.Context, id int64) (runID int64, region string, err error) {
	err = s.db.QueryRowContext(ctx, `SELECT run_id, region FROM github_check_runs WHERE check_run_id = ?`, id).Scan(&runID, &region)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, "", fmt.Errorf("check run %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return 0, "", fmt.Errorf("check run %d: %w", id, err)
	}
	return runID, region, nil
}

// SaveCheckRun records what was sent for a stage's check run.
func (s *Store) SaveCheckRun(ctx context.Context, c CheckRun) error {
	if c.Attempt < 1 {
		c.Attempt = 1
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO github_check_runs (run_id, region, repo, check_run_id, status, digest, attempt, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (run_id, region) DO UPDATE SET check_run_id = excluded.check_run_id, status = excluded.status, digest = excluded.digest, attempt = excluded.attempt, updated_at = excluded.updated_at`,
		c.RunID, c.Region, c.Repo, c.ID, c.Status, c.Digest, c.Attempt, s.nowNS())
	if err != nil {
		return fmt.Errorf("save check run %d of run %d %s: %w", c.ID, c.RunID, c.Region, err)
	}
	return nil
}

// Deployment is a GitHub Deployment we created and its last status.
type Deployment struct {
	// Key is run/RUN/REGION for a run's stage, rollback/APP/REGION/SHA/NS for a rollback
	// or a deploy outside a run.
	Key          string
	App, Region  string
	SHA          string
	RunID        int64
	Repo         string
	DeploymentID int64 // 0 while creating: the row is written before the request
	Production   bool
	State        string // queued, in_progress, success, failure, error, inactive; "" while creating
}

// Deployment returns a deployment by key; found is false when there is none.
func (s *Store) Deployment(ctx context.Context, key string) (d Deployment, found bool, err error) {
	d = Deployment{Key: key}
	err = s.db.QueryRowContext(ctx, `SELECT app, region, sha, run_id, repo, deployment_id, production, state FROM github_deployments WHERE key = ?`, key).
		Scan(&d.App, &d.Region, &d.SHA, &d.RunID, &d.Repo, &d.DeploymentID, &d.Production, &d.State)
	if errors.Is(err, sql.ErrNoRows) {
		return Deployment{}, false, nil
	}
	if err != nil {
		return Deployment{}, false, fmt.Errorf("deployment %s: %w", key, err)
	}
	return d, true, nil
}

// SaveDeployment records a deployment and its last status.
func (s *Store) SaveDeployment(ctx context.Context, d Deployment) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO github_deployments (key, app, region, sha, run_id, repo, deployment_id, production, state, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (key) DO UPDATE SET deployment_id = excluded.deployment_id, state = excluded.state, updated_at = excluded.updated_at`,
		d.Key, d.App, d.Region, d.SHA, d.RunID, d.Repo, d.DeploymentID, boolInt(d.Production), d.State, s.nowNS())
	if err != nil {
		return fmt.Errorf("save deployment %s (%d): %w", d.Key, d.DeploymentID, err)
	}
	return nil
}

// ActiveDeployments lists our successful deployments of a repo's environment other than
// exceptKey, oldest first.
func (s *Store) ActiveDeployments(ctx context.Context, repo, region, exceptKey string) ([]Deployment, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT key, app, region, sha, run_id, repo, deployment_id, production, state FROM github_deployments
		WHERE repo = ? AND region = ? AND state = 'success' AND key <> ? ORDER BY updated_at`, repo, region, exceptKey)
	if err != nil {
		return nil, fmt.Errorf("deployments of %s %s: %w", repo, region, err)
	}
	defer rows.Close()
	var out []Deployment
	for rows.Next() {
		var d Deployment
		if err := rows.Scan(&d.Key, &d.App, &d.Region, &d.SHA, &d.RunID, &d.Repo, &d.DeploymentID, &d.Production, &d.State); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

package github

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// installationFor returns the installation remembered for repo, or 0.
func installationFor(ctx context.Context, db *sql.DB, repo string) (int64, error) {
	var id int64
	err := db.QueryRowContext(ctx, `SELECT installation_id FROM github_installations WHERE repo = ?`, strings.ToLower(repo)).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("installation of %s: %w", repo, err)
	}
	return id, nil
}

// rememberInstallation records that installation id serves repo.
func rememberInstallation(ctx context.Context, db *sql.DB, repo string, id int64, account string) error {
	_, err := db.ExecContext(ctx, `INSERT INTO github_installations (repo, installation_id, account, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (repo) DO UPDATE SET installation_id = excluded.installation_id,
		account = CASE WHEN excluded.account = '' THEN github_installations.account ELSE excluded.account END,
		updated_at = excluded.updated_at`,
		strings.ToLower(repo), id, account, time.Now().UnixNano())
	if err != nil {
		return fmt.Errorf("remember installation %d for %s: %w", id, repo, err)
	}
	return nil
}

// forgetRepos removes repos from an installation (uninstalled, or repos removed from it);
// repos nil forgets every repo of the installation.
func forgetRepos(ctx context.Context, db *sql.DB, id int64, repos []string) error {
	if repos == nil {
		_, err := db.ExecContext(ctx, `DELETE FROM github_installations WHERE installation_id = ?`, id)
		return err
	}
	for _, r := range repos {
		if _, err := db.ExecContext(ctx, `DELETE FROM github_installations WHERE installation_id = ? AND repo = ?`, id, strings.ToLower(r)); err != nil {
			return fmt.Errorf("forget %s of installation %d: %w", r, id, err)
		}
	}
	return nil
}

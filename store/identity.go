package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Token is a personal API token as kept: its name, role and a SHA-256 of its value (the
// value itself is shown once, when it is made, and never stored).
type Token struct {
	Hash      string
	Name      string
	Role      string // admin, member
	CreatedBy string
	Created   time.Time
	Revoked   time.Time // zero while the token works
	LastUsed  time.Time
}

// ErrExists is returned when a name is already taken.
var ErrExists = errors.New("already exists")

// CreateToken records a new token; it fails with ErrExists when a token of that name is
// still in force.
func (s *Store) CreateToken(ctx context.Context, t Token) error {
	return s.tx(ctx, func(tx tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM api_tokens WHERE name = ? AND revoked_at = 0`, t.Name).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("token %s: %w (revoke it first)", t.Name, ErrExists)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO api_tokens (hash, name, role, created_by, created_at) VALUES (?, ?, ?, ?, ?)`,
			t.Hash, t.Name, t.Role, t.CreatedBy, s.nowNS())
		return err
	})
}

// TokenByHash finds a token in force by the hash of its value and notes its use; a
// revoked or unknown token is ErrNotFound.
func (s *Store) TokenByHash(ctx context.Context, hash string) (Token, error) {
	var t Token
	var created, used int64
	err := s.db.QueryRowContext(ctx, `SELECT hash, name, role, created_by, created_at, last_used_at FROM api_tokens WHERE hash = ? AND revoked_at = 0`, hash).
		Scan(&t.Hash, &t.Name, &t.Role, &t.CreatedBy, &created, &used)
	if errors.Is(err, sql.ErrNoRows) {
		return Token{}, ErrNotFound
	}
	if err != nil {
		return Token{}, err
	}
	t.Created, t.LastUsed = fromNS(created), fromNS(used)
	// Noted at most once a minute, so that reading with a token is not a write each time.
	if now := s.nowNS(); now-used > int64(time.Minute) {
		s.db.ExecContext(ctx, `UPDATE api_tokens SET last_used_at = ? WHERE hash = ?`, now, hash)
	}
	return t, nil
}

// RevokeToken revokes the token in force of that name, or answers ErrNotFound.
func (s *Store) RevokeToken(ctx context.Context, name string) error {
	err := s.tx(ctx, func(tx tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE api_tokens SET revoked_at = ? WHERE name = ? AND revoked_at = 0`, s.nowNS(), name)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		// Sessions signed in with the token end with it (SessionByHash also refuses any
		// left: they need their token in force).
		_, err = tx.ExecContext(ctx, `DELETE FROM sessions WHERE token = ?`, name)
		return err
	})
	if err != nil {
		return fmt.Errorf("revoke token %s: %w", name, err)
	}
	return nil
}

// Tokens lists every token, those in force first, by name.
func (s *Store) Tokens(ctx context.Context) ([]Token, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT hash, name, role, created_by, created_at, revoked_at, last_used_at FROM api_tokens
		ORDER BY CASE WHEN revoked_at = 0 THEN 0 ELSE 1 END, name, created_at`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Token
	for rows.Next() {
		var t Token
		var c, r, u int64
		if err := rows.Scan(&t.Hash, &t.Name, &t.Role, &t.CreatedBy, &c, &r, &u); err != nil {
			return nil, err
		}
		t.Created, t.Revoked, t.LastUsed = fromNS(c), fromNS(r), fromNS(u)
		out = append(out, t)
	}
	return out, rows.Err()
}

// Session is a signed-in dashboard session: the hash of its cookie, who it is (JSON the
// server reads back), the token it was signed in with, if any, and the CSRF token its
// forms carry.
type Session struct {
	Hash    string
	Actor   string
	Token   string
	CSRF    string
	Expires time.Time
}

// PutSession records a new session and prunes expired ones, so every sign-in keeps
// the table to the sessions still alive.
func (s *Store) PutSession(ctx context.Context, se Session) error {
	return s.tx(ctx, func(tx tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE expires_at <= ?`, s.nowNS()); err != nil {
			return fmt.Errorf("prune expired sessions: %w", err)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO sessions (hash, actor, token, csrf, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)`,
			se.Hash, se.Actor, se.Token, se.CSRF, s.nowNS(), se.Expires.UnixNano())
		return err
	})
}

// SessionByHash returns a session that has not expired, or ErrNotFound. A session signed
// in with a token lives only while that token is in force: one whose token was revoked is
// nobody, even if it was written after the revocation deleted the token's sessions (a
// sign-in that read the token just before), and a token made again under the same name
// does not bring older sessions back.
func (s *Store) SessionByHash(ctx context.Context, hash string) (Session, error) {
	var se Session
	var exp int64
	err := s.db.QueryRowContext(ctx, `SELECT hash, actor, token, csrf, expires_at FROM sessions WHERE hash = ? AND expires_at > ?
		AND (token = '' OR EXISTS (SELECT 1 FROM api_tokens t WHERE t.name = sessions.token AND t.revoked_at = 0 AND t.created_at <= sessions.created_at))`, hash, s.nowNS()).
		Scan(&se.Hash, &se.Actor, &se.Token, &se.CSRF, &exp)
	if errors.Is(err, sql.ErrNoRows) {
		return Session{}, ErrNotFound
	}
	se.Expires = fromNS(exp)
	return se, err
}

// DeleteSession ends a session (and drops expired ones).
func (s *Store) DeleteSession(ctx context.Context, hash string) error {
	return s.tx(ctx, func(tx tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE hash = ? OR expires_at <= ?`, hash, s.nowNS())
		return err
	})
}

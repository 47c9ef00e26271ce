// Package store keeps Immunity's state in a database: releases, runs, their stages and
// per-host steps, what is live on each host, region history, locks, the event log and the
// audit log. The engine writes every transition here before acting on it, so a restarted
// server resumes where it stopped.
//
// Two engines serve it with the same statements and migrations: SQLite (modernc.org/sqlite,
// pure Go, WAL mode; the default, one process) and PostgreSQL (jackc/pgx; several
// replicas on one database). What differs between them is kept in dialect.go.
//
// Schema changes are SQL files in migrations/, applied in name order and recorded in
// schema_migrations; each part of the product numbers its own (001-009 core, 010-019
// GitHub, 020-029 Slack, 030-039 canary). They are written in SQLite's words, within what
// both engines understand.
package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite" // the database/sql driver "sqlite"
)

//go:embed migrations/*.sql
var migrations embed.FS

// ErrNotFound is returned when a row asked for does not exist.
var ErrNotFound = errors.New("not found")

// Store is the database.
type Store struct {
	db       *db
	now      func() time.Time
	replica  string // this process, as a lease holder
	leaseTTL time.Duration
	// leaseNow is the clock of leases and fences: real time even when a test fakes the
	// times the store records (SetClock).
	leaseNow func() time.Time
	live     liveHub // live messages' subscriptions (live.go)
}

// Open opens the database and applies pending migrations. database is either the path of
// a SQLite file (created if needed) or a PostgreSQL URL (postgres://user@host/db?...),
// whose database must exist.
func Open(ctx context.Context, database string) (*Store, error) {
	d, err := openDB(database)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", Redact(database), err)
	}
	s := &Store{db: d, now: time.Now, leaseNow: time.Now, replica: replicaName(), leaseTTL: DefaultLeaseTTL}
	d.nowNS = s.leaseNS
	if err := s.migrate(ctx); err != nil {
		d.pool.Close()
		return nil, fmt.Errorf("open store %s: %w", Redact(database), err)
	}
	return s, nil
}

// OpenReadOnly opens an existing database file that this process must not write: every
// write fails ("attempt to write a readonly database"), as on a read-only file system.
// Migrations are not applied. It serves inspection and the tests of a failing store.
func OpenReadOnly(ctx context.Context, path string) (*Store, error) {
	pool, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		return nil, fmt.Errorf("open store %s read-only: %w", path, err)
	}
	pool.SetMaxOpenConns(4)
	if err := pool.PingContext(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open store %s read-only: %w", path, err)
	}
	s := &Store{db: &db{pool: pool, engine: sqliteEngine}, now: time.Now, leaseNow: time.Now, replica: replicaName(), leaseTTL: DefaultLeaseTTL}
	s.db.nowNS = s.leaseNS
	return s, nil
}

func openDB(database string) (*db, error) {
	if isPostgresURL(database) {
		cfg, err := pgx.ParseConfig(database)
		if err != nil {
			return nil, err
		}
		d := &db{engine: postgresEngine, url: database}
		d.idleInTx.Store(int64(DefaultLeaseTTL))
		d.pool = stdlib.OpenDB(*cfg, stdlib.OptionAfterConnect(d.session))
		d.pool.SetMaxOpenConns(pgMaxConns)
		d.pool.SetMaxIdleConns(pgMaxConns)
		d.pool.SetConnMaxIdleTime(5 * time.Minute)
		return d, nil
	}
	dsn := "file:" + database + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_txlock=immediate"
	pool, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	pool.SetMaxOpenConns(4)
	return &db{pool: pool, engine: sqliteEngine}, nil
}

// Redact is a database setting fit for logs and errors: a URL's password is hidden.
func Redact(database string) string {
	if !isPostgresURL(database) {
		return database
	}
	u, err := url.Parse(database)
	if err != nil {
		return "postgres://(unparsable URL)"
	}
	return u.Redacted()
}

// Replica names this process among the replicas sharing the database: host, pid and a
// random part, so a restarted process is a new holder of leases.
func (s *Store) Replica() string { return s.replica }

// SetReplica names this process (the server's configured replica name) before any lease
// is held.
func (s *Store) SetReplica(name string) { s.replica = name }

func replicaName() string {
	host, _ := os.Hostname()
	var b [4]byte
	rand.Read(b[:])
	return fmt.Sprintf("%s/%d/%x", host, os.Getpid(), b)
}

// Engine names the database engine: "sqlite" or "postgres".
func (s *Store) Engine() string { return s.db.engine.String() }

// Close closes the database.
func (s *Store) Close() error {
	s.closeLive()
	return s.db.pool.Close()
}

// Now is the store's clock, in unix nanoseconds.
func (s *Store) nowNS() int64 { return s.now().UnixNano() }

// leaseNS is the clock of leases, in unix nanoseconds.
func (s *Store) leaseNS() int64 { return s.leaseNow().UnixNano() }

// migrate applies pending migrations in one transaction. On PostgreSQL replicas starting
// together take turns: the first applies them, the others then find them applied.
func (s *Store) migrate(ctx context.Context) error {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	return s.tx(ctx, func(tx tx) error {
		if s.db.engine == postgresEngine {
			if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(7368034)`); err != nil {
				return fmt.Errorf("migrations lock: %w", err)
			}
		}
		if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at BIGINT NOT NULL)`); err != nil {
			return fmt.Errorf("migrations table: %w", err)
		}
		for _, name := range names {
			base := strings.TrimPrefix(name, "migrations/")
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE name = ?`, base).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				continue
			}
			body, err := migrations.ReadFile(name)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, s.db.engine.migration(string(body))); err != nil {
				return fmt.Errorf("migration %s: %w", base, err)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)`, base, s.nowNS()); err != nil {
				return fmt.Errorf("migration %s: %w", base, err)
			}
		}
		return nil
	})
}

// tx runs fn in a transaction, committing if it returns nil (fenced under a lease). A
// context carrying an audit entry still to write (AuditNote.With) has it written in the
// same transaction, after fn: the change and its entry commit together.
func (s *Store) tx(ctx context.Context, fn func(tx) error) error {
	n := pendingAudit(ctx)
	if n == nil {
		return s.db.tx(ctx, fn)
	}
	err := s.db.tx(ctx, func(t tx) error {
		if err := fn(t); err != nil {
			return err
		}
		if err := s.addAudit(ctx, t, n.entry); err != nil {
			return fmt.Errorf("audit log: %w", err)
		}
		return nil
	})
	if err == nil {
		n.written.Store(true)
	}
	return err
}

func fromNS(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

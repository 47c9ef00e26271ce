package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// The store speaks to two engines with one set of statements and migrations. Statements
// are written with ? placeholders and use only what both engines understand (ON CONFLICT
// upserts, RETURNING instead of LastInsertId, integers for times and flags); the few
// differences live here:
//
//   - placeholders: ? becomes $1, $2, ... on PostgreSQL (rewritten once per statement);
//   - migrations: written in SQLite's words, their column types are translated for
//     PostgreSQL (INTEGER is 64-bit BIGINT, an INTEGER PRIMARY KEY an identity column,
//     BLOB is BYTEA);
//   - errors: a unique-constraint violation is recognised from either driver;
//   - row locks: FOR UPDATE SKIP LOCKED and FOR SHARE on PostgreSQL (leases), nothing on
//     SQLite, whose write transactions take the one write lock;
//   - sessions: on PostgreSQL a session idle inside a transaction for the lease's time is
//     ended by the server (db.session), so a paused replica's locks do not outlast its
//     lease; SQLite serves one process.

// engine names the database behind a Store.
type engine int

const (
	sqliteEngine engine = iota
	postgresEngine
)

func (e engine) String() string {
	if e == postgresEngine {
		return "postgres"
	}
	return "sqlite"
}

// isPostgresURL reports whether a database setting names a PostgreSQL server rather
// than a SQLite file.
func isPostgresURL(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// db is a database/sql pool that speaks the store's one dialect.
type db struct {
	pool   *sql.DB
	engine engine
	binds  sync.Map     // statement with ? -> statement with $n (PostgreSQL)
	nowNS  func() int64 // the store's clock, for fences
	url    string       // PostgreSQL: the database's URL, for connections of their own (live.go)
	// idleInTx is how long (a time.Duration) a PostgreSQL session may sit idle inside a
	// transaction: the lease's ttl (session).
	idleInTx atomic.Int64
}

// pgMaxConns is how many connections a store keeps to PostgreSQL at most.
const pgMaxConns = 16

// session sets up each new PostgreSQL connection: the server ends the session when it sits
// idle inside a transaction for longer than a lease lasts (idle_in_transaction_session_timeout,
// the lease's ttl), rolling the transaction back and freeing its locks. A replica paused in
// the middle of a transaction (SIGSTOP, a long GC, a frozen VM) holds the row locks it
// took: the lease's row, share-locked by every fenced transaction, which the heir's claim
// skips as taken (FOR UPDATE SKIP LOCKED), and the rows it wrote, which the heir's writes
// would wait for. Without the timeout the heir waits for the pause to end, however long
// after the lease's expiry; with it, for the lease's time at most. When the paused replica
// goes on, its transaction is gone: its next statement or its commit fails, and tx answers
// ErrLeaseLost once the lease is no longer its own. The store's transactions do nothing
// but SQL between their statements (no network call, nothing that waits for another
// process), so none of them is legitimately idle that long; a long statement is not idle
// and is not cut.
func (d *db) session(ctx context.Context, c *pgx.Conn) error {
	ms := max(time.Duration(d.idleInTx.Load()).Milliseconds(), 1)
	if _, err := c.Exec(ctx, "SET idle_in_transaction_session_timeout = "+strconv.FormatInt(ms, 10)); err != nil {
		return fmt.Errorf("set idle_in_transaction_session_timeout: %w", err)
	}
	return nil
}

// setIdleInTransaction makes ttl how long a PostgreSQL session may sit idle inside a
// transaction (session). The connections already open and idle are closed, so every
// connection taken from now on has it.
func (d *db) setIdleInTransaction(ttl time.Duration) {
	if d.engine != postgresEngine || d.idleInTx.Swap(int64(ttl)) == int64(ttl) {
		return
	}
	d.pool.SetMaxIdleConns(0)
	d.pool.SetMaxIdleConns(pgMaxConns)
}

// q rewrites a statement for the engine.
func (d *db) q(query string) string {
	if d.engine != postgresEngine {
		return query
	}
	if v, ok := d.binds.Load(query); ok {
		return v.(string)
	}
	out := rebind(query)
	d.binds.Store(query, out)
	return out
}

// ExecContext runs a statement; under a lease (WithLease) it is fenced: done in a
// transaction that first checks the lease.
func (d *db) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if _, ok := leaseOf(ctx); ok {
		var res sql.Result
		err := d.tx(ctx, func(t tx) error {
			var err error
			res, err = t.ExecContext(ctx, query, args...)
			return err
		})
		return res, err
	}
	return d.pool.ExecContext(ctx, d.q(query), args...)
}

// tx runs fn in a transaction, committed when fn returns nil. Under a lease (WithLease)
// the transaction first checks that the lease is still held, share-locking its row on
// PostgreSQL until the commit (SQLite's write transactions hold the one write lock), and
// changes nothing (ErrLeaseLost) when it is not. A transaction under a lease that fails
// once the lease is no longer held (the server ended the session of a replica paused in
// it past its lease: session) answers ErrLeaseLost too, with the failure.
func (d *db) tx(ctx context.Context, fn func(tx) error) error {
	t, err := d.pool.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	l, leased := leaseOf(ctx)
	if leased {
		var one int
		err := t.QueryRowContext(ctx, d.q(`SELECT 1 FROM leases WHERE name = ? AND token = ? AND expires_at > ?`+d.engine.forShare()), l.Name, l.Token, d.nowNS()).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			err = fmt.Errorf("lease %s (token %d): %w", l.Name, l.Token, ErrLeaseLost)
		}
		if err != nil {
			t.Rollback()
			return err
		}
	}
	err = fn(tx{t: t, d: d})
	if err != nil {
		t.Rollback()
	} else {
		err = t.Commit()
	}
	if err != nil && leased && !errors.Is(err, ErrLeaseLost) {
		err = d.lostWith(ctx, l, err)
	}
	return err
}

// lostWith is the failure err of a transaction under lease l: wrapped with ErrLeaseLost
// when the lease is no longer held (checked on another connection), else err itself.
func (d *db) lostWith(ctx context.Context, l Lease, err error) error {
	var held int
	if d.pool.QueryRowContext(ctx, d.q(`SELECT count(*) FROM leases WHERE name = ? AND token = ? AND expires_at > ?`), l.Name, l.Token, d.nowNS()).Scan(&held) != nil || held > 0 {
		return err
	}
	return fmt.Errorf("lease %s (token %d): %w: %w", l.Name, l.Token, ErrLeaseLost, err)
}

func (d *db) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return d.pool.QueryContext(ctx, d.q(query), args...)
}

func (d *db) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return d.pool.QueryRowContext(ctx, d.q(query), args...)
}

// tx is a transaction that speaks the store's dialect.
type tx struct {
	t *sql.Tx
	d *db
}

func (t tx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return t.t.ExecContext(ctx, t.d.q(query), args...)
}

func (t tx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return t.t.QueryContext(ctx, t.d.q(query), args...)
}

func (t tx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return t.t.QueryRowContext(ctx, t.d.q(query), args...)
}

// rebind turns ? placeholders into $1, $2, ..., leaving quoted text alone.
func rebind(query string) string {
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	var quote byte
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

var (
	identityColumn = regexp.MustCompile(`(?i)\bINTEGER\s+PRIMARY\s+KEY(\s+AUTOINCREMENT)?\b`)
	integerType    = regexp.MustCompile(`(?i)\bINTEGER\b`)
	blobType       = regexp.MustCompile(`(?i)\bBLOB\b`)
)

// migration turns a migration written in SQLite's words into the engine's.
func (e engine) migration(body string) string {
	if e != postgresEngine {
		return body
	}
	body = identityColumn.ReplaceAllString(body, "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY")
	body = integerType.ReplaceAllString(body, "BIGINT")
	return blobType.ReplaceAllString(body, "BYTEA")
}

// skipLocked ends a SELECT that claims a row: on PostgreSQL a row another transaction has
// locked is skipped rather than waited for; SQLite has one writer at a time (write
// transactions begin IMMEDIATE) and needs no clause.
func (e engine) skipLocked() string {
	if e == postgresEngine {
		return ` FOR UPDATE SKIP LOCKED`
	}
	return ""
}

// forShare ends a SELECT whose rows must not change until the transaction ends.
func (e engine) forShare() string {
	if e == postgresEngine {
		return ` FOR SHARE`
	}
	return ""
}

// isUniqueViolation reports whether err is a unique or primary-key constraint failing.
func isUniqueViolation(err error) bool {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pg.Code == "23505"
	}
	var lite *sqlite.Error
	if errors.As(err, &lite) {
		return lite.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || lite.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	return false
}

// boolInt stores a flag as 0 or 1, the same on both engines.
func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// likePrefix is a LIKE pattern matching text that starts with prefix.
func likePrefix(prefix string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(prefix) + "%"
}

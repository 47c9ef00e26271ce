// Package pgtest starts real, throwaway PostgreSQL servers for tests and benchmarks:
// Debian's postgresql package (initdb, pg_ctl), a cluster in a temporary folder, listening
// on 127.0.0.1 and a free port only, with trust authentication for its one superuser.
//
// PostgreSQL refuses to run as root, so when the tests run as root (CI does) the cluster
// belongs to the unprivileged user nobody and its programs are started through setpriv.
//
// A test binary shares one lazily started server: Database gives each test a database of
// its own on it, dropped at the test's end, and Main stops the server when the tests are
// done. When PostgreSQL is not installed, Database skips the test, or fails it when
// IMMUNITY_TEST_REQUIRE_ALL=1.
package pgtest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/immunity-app/immunity/internal/freeport"

	_ "github.com/jackc/pgx/v5/stdlib" // the database/sql driver "pgx"
)

// Options shape a server.
type Options struct {
	// Durable keeps PostgreSQL's own durability settings (fsync, synchronous commit), for
	// benchmarks; tests run without them, as nothing of theirs must outlive a crash of
	// the machine.
	Durable bool
}

// Server is one running PostgreSQL cluster.
type Server struct {
	Dir  string // the cluster's folder: data/, the socket and server.log
	Port int

	bin   string
	runAs *user.User // nil: the current user
	admin *sql.DB
	mu    sync.Mutex
	n     int
}

// Available reports whether PostgreSQL's server programs are installed, and where.
func Available() (string, error) {
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			dir := filepath.Dir(real)
			if _, err := os.Stat(filepath.Join(dir, "initdb")); err == nil {
				return dir, nil
			}
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "pg_ctl")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("PostgreSQL is not installed (Debian package postgresql: initdb and pg_ctl)")
}

func version(bin string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(bin)))
	return n
}

// Start creates and starts a cluster in a new temporary folder.
func Start(o Options) (*Server, error) {
	bin, err := Available()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "immunity-pg-")
	if err != nil {
		return nil, err
	}
	s := &Server{Dir: dir, bin: bin}
	if os.Geteuid() == 0 {
		if s.runAs, err = user.Lookup("nobody"); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("postgres must not run as root, and there is no user nobody: %w", err)
		}
		if err := s.chown(dir); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	if err := s.start(o); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "server.log"))
		s.Stop()
		return nil, fmt.Errorf("start postgres: %w\n%s", err, log)
	}
	return s, nil
}

func (s *Server) start(o Options) error {
	data := filepath.Join(s.Dir, "data")
	if out, err := s.run("initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-instructions"); err != nil {
		return fmt.Errorf("initdb: %w\n%s", err, out)
	}
	settings := []string{
		"listen_addresses = '127.0.0.1'",
		"unix_socket_directories = '" + s.Dir + "'",
		"max_connections = 200",
		"shared_buffers = 32MB",
		"log_min_messages = warning",
	}
	if !o.Durable {
		settings = append(settings, "fsync = off", "synchronous_commit = off", "full_page_writes = off")
	}
	var last error
	for range 3 { // a free port can be taken between finding it and binding it
		port, err := freePort()
		if err != nil {
			return err
		}
		conf := strings.Join(append(settings, fmt.Sprintf("port = %d", port)), "\n") + "\n"
		if err := os.WriteFile(filepath.Join(data, "postgresql.auto.conf"), []byte(conf), 0o600); err != nil {
			return err
		}
		if err := s.chown(filepath.Join(data, "postgresql.auto.conf")); err != nil {
			return err
		}
		out, err := s.run("pg_ctl", "start", "-w", "-t", "60", "-D", data, "-l", filepath.Join(s.Dir, "server.log"))
		if err == nil {
			s.Port = port
			s.admin, err = sql.Open("pgx", s.URL("postgres"))
			return err
		}
		last = fmt.Errorf("pg_ctl start: %w\n%s", err, out)
	}
	return last
}

// URL is the connection URL of one of the server's databases.
func (s *Server) URL(database string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.Port, database)
}

// CreateDatabase makes a new, empty database and returns its URL.
func (s *Server) CreateDatabase(ctx context.Context) (name, url string, err error) {
	s.mu.Lock()
	s.n++
	name = fmt.Sprintf("immunity_%d", s.n)
	s.mu.Unlock()
	if _, err := s.admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		return "", "", fmt.Errorf("create database %s: %w", name, err)
	}
	return name, s.URL(name), nil
}

// DropDatabase removes a database, ending its sessions.
func (s *Server) DropDatabase(ctx context.Context, name string) error {
	_, err := s.admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	return err
}

// Down stops the server at once, keeping its data, as a database that became unreachable;
// Up starts it again on the same port.
func (s *Server) Down() error {
	if out, err := s.run("pg_ctl", "stop", "-w", "-m", "immediate", "-D", filepath.Join(s.Dir, "data")); err != nil {
		return fmt.Errorf("pg_ctl stop: %w\n%s", err, out)
	}
	return nil
}

// Up starts a server that Down stopped.
func (s *Server) Up() error {
	data := filepath.Join(s.Dir, "data")
	if out, err := s.run("pg_ctl", "start", "-w", "-t", "60", "-D", data, "-l", filepath.Join(s.Dir, "server.log")); err != nil {
		return fmt.Errorf("pg_ctl start: %w\n%s", err, out)
	}
	return nil
}

// Own starts a server of the test's own (one it may take down), durable, stopped when the
// test ends, and returns it with the URL of a database on it.
func Own(t testing.TB) (*Server, string) {
	t.Helper()
	if _, err := Available(); err != nil {
		if os.Getenv("IMMUNITY_TEST_REQUIRE_ALL") == "1" {
			t.Fatalf("%v (IMMUNITY_TEST_REQUIRE_ALL=1)", err)
		}
		t.Skip(err)
	}
	srv, err := Start(Options{Durable: true}) // what it committed survives Down
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	_, url, err := srv.CreateDatabase(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return srv, url
}

// Stop stops the server at once and removes its folder.
func (s *Server) Stop() {
	if s.admin != nil {
		s.admin.Close()
	}
	if _, err := os.Stat(filepath.Join(s.Dir, "data", "postmaster.pid")); err == nil {
		s.run("pg_ctl", "stop", "-w", "-m", "immediate", "-D", filepath.Join(s.Dir, "data"))
	}
	os.RemoveAll(s.Dir)
}

// run runs one of PostgreSQL's programs as the cluster's owner.
func (s *Server) run(prog string, args ...string) ([]byte, error) {
	path := filepath.Join(s.bin, prog)
	var cmd *exec.Cmd
	if s.runAs != nil {
		cmd = exec.Command("setpriv", append([]string{"--reuid=" + s.runAs.Uid, "--regid=" + s.runAs.Gid, "--clear-groups", "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	cmd.Dir = s.Dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	return cmd.CombinedOutput()
}

func (s *Server) chown(path string) error {
	if s.runAs == nil {
		return nil
	}
	uid, _ := strconv.Atoi(s.runAs.Uid)
	gid, _ := strconv.Atoi(s.runAs.Gid)
	if err := os.Chown(path, uid, gid); err != nil {
		return fmt.Errorf("give %s to %s: %w", path, s.runAs.Username, err)
	}
	return nil
}

func freePort() (int, error) { return freeport.Get() }

// shared is the one server of a test binary, started by the first test that asks.
var shared struct {
	once sync.Once
	srv  *Server
	err  error
}

// Shared returns the test binary's server, starting it on first use.
func Shared(t testing.TB) *Server {
	t.Helper()
	if _, err := Available(); err != nil {
		if os.Getenv("IMMUNITY_TEST_REQUIRE_ALL") == "1" {
			t.Fatalf("%v (IMMUNITY_TEST_REQUIRE_ALL=1)", err)
		}
		t.Skip(err)
	}
	shared.once.Do(func() { shared.srv, shared.err = Start(Options{}) })
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.srv
}

// Database gives a test a fresh database on the shared server and returns its URL; it is
// dropped when the test ends.
func Database(t testing.TB) string {
	t.Helper()
	srv := Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name, url, err := srv.CreateDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := srv.DropDatabase(ctx, name); err != nil {
			t.Errorf("drop test database: %v", err)
		}
	})
	return url
}

// Main runs a test binary's tests and then stops the shared server, if one was started:
// func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }.
func Main(m *testing.M) int {
	code := m.Run()
	if shared.srv != nil {
		shared.srv.Stop()
	}
	return code
}

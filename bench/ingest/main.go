// Command ingest measures how fast `immunity serve` takes GitHub webhook deliveries,
// beside a bare net/http server that only checks the HMAC and answers 202, in one run: on
// SQLite, and on PostgreSQL with 1 and with 3 replicas (-postgres=false leaves those out).
//
// It builds the immunity binary (or takes -immunity), starts it as its own process with a
// GitHub App configured (a fresh key and webhook secret, SQLite in a temporary folder, or
// a database on a PostgreSQL server it starts with its durability settings on), starts
// the bare server as another process, and then is the load generator itself, over
// loopback with -c keep-alive connections (shared round-robin among the replicas). Every delivery is a real push payload
// (fixtures/github/push.json) for a repository no app is configured for, made unique
// (its own delivery id and head commit, so none is a duplicate) and signed. Two phases
// per server, each -d long:
//
//   - max: every connection sends its next delivery as soon as the last was answered;
//   - fixed rate (-rate, default 1,000/s): deliveries are due at a steady pace whatever
//     the answers do, and a delivery's latency counts from when it was due, so a server
//     that falls behind shows it (no coordinated omission).
//
// Each phase also gives the server processes' CPU time per delivery (from /proc): on a
// shared machine throughput and latency move with what else runs, the CPU a delivery
// costs much less.
//
// After each setup it stops its servers (SIGINT: they drain their work) and checks the
// store: every acknowledged delivery recorded exactly once and handled, none lost, none
// doubled.
//
//	go run ./bench/ingest [-d 30s] [-c 16] [-rate 1000]
package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/immunity-app/immunity/internal/pgtest"
)

func main() {
	role := flag.String("role", "", "internal: bare")
	listen := flag.String("listen", "", "internal")
	dur := flag.Duration("d", 30*time.Second, "length of each phase")
	conns := flag.Int("c", 16, "keep-alive connections")
	rate := flag.Int("rate", 1000, "deliveries a second in the fixed-rate phase")
	bin := flag.String("immunity", "", "immunity binary to measure (default: go build the module)")
	withPG := flag.Bool("postgres", true, "also measure PostgreSQL (Debian's postgresql, started here) with 1 and 3 replicas")
	flag.StringVar(&payload, "payload", "fixtures/github/push.json", "the push payload every delivery is made from")
	flag.Parse()
	log.SetFlags(0)
	if *role == "bare" {
		log.Fatal(serveBare(*listen, []byte(os.Getenv("BENCH_SECRET"))))
	}
	if err := orchestrate(*bin, *dur, *conns, *rate, *withPG); err != nil {
		log.Fatal(err)
	}
}

// serveBare is the baseline: read the body, check X-Hub-Signature-256, answer 202.
func serveBare(addr string, secret []byte) error {
	return http.ListenAndServe(addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 25<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		got, _ := hex.DecodeString(strings.TrimPrefix(r.Header.Get("X-Hub-Signature-256"), "sha256="))
		m := hmac.New(sha256.New, secret)
		m.Write(body)
		if !hmac.Equal(got, m.Sum(nil)) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, `{"status":"accepted"}`)
	}))
}

var payload string

// target is one way of running immunity serve: its database and how many replicas.
type target struct {
	name     string
	database string // "": SQLite in the server's data_dir
	replicas int
}

func orchestrate(bin string, dur time.Duration, conns, rate int, withPG bool) error {
	dir, err := os.MkdirTemp("", "bench-ingest")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	secret := make([]byte, 20)
	rand.Read(secret)
	hexSecret := hex.EncodeToString(secret)
	if bin == "" {
		bin = filepath.Join(dir, "immunity")
		if out, err := exec.Command("go", "build", "-trimpath", "-o", bin, "github.com/immunity-app/immunity").CombinedOutput(); err != nil {
			return fmt.Errorf("go build: %w: %s", err, out)
		}
	}
	keyFile := filepath.Join(dir, "app.pem")
	if err := writeKey(keyFile); err != nil {
		return err
	}
	targets := []target{{name: "immunity serve (SQLite)", replicas: 1}}
	if withPG {
		pg, err := pgtest.Start(pgtest.Options{Durable: true})
		if err != nil {
			return fmt.Errorf("postgres (or -postgres=false): %w", err)
		}
		defer pg.Stop()
		for _, n := range []int{1, 3} {
			_, url, err := pg.CreateDatabase(context.Background())
			if err != nil {
				return err
			}
			targets = append(targets, target{name: fmt.Sprintf("immunity serve (PostgreSQL, %d %s)", n, map[bool]string{true: "replica", false: "replicas"}[n == 1]), database: url, replicas: n})
		}
	}
	bare := freePort()
	self, _ := os.Executable()
	b := exec.Command(self, "-role", "bare", "-listen", bare)
	b.Env = append(os.Environ(), "BENCH_SECRET="+hexSecret)
	b.Stderr = os.Stderr
	if err := b.Start(); err != nil {
		return err
	}
	defer b.Process.Kill()
	if err := waitReady("http://" + bare + "/"); err != nil {
		return err
	}
	tmpl, err := os.ReadFile(payload)
	if err != nil {
		return fmt.Errorf("the push payload (run from the repository's root, or set -payload): %w", err)
	}
	g := &generator{tmpl: tmpl, secret: []byte(hexSecret)}
	var rows []row
	for _, fixed := range []bool{false, true} {
		cpu0 := cpuTime(b)
		r := g.run([]string{"http://" + bare + "/"}, dur, conns, map[bool]int{false: 0, true: rate}[fixed])
		if r.ok > 0 {
			r.cpuPer = (cpuTime(b) - cpu0) / time.Duration(r.ok)
		}
		r.target = "bare HMAC net/http"
		rows = append(rows, r)
	}
	var checks []check
	for i, t := range targets {
		var urls []string
		var procs []*exec.Cmd
		stop := func() error {
			for _, p := range procs {
				p.Process.Signal(os.Interrupt)
			}
			for _, p := range procs {
				done := make(chan error, 1)
				go func() { done <- p.Wait() }()
				select {
				case <-done:
				case <-time.After(2 * time.Minute):
					p.Process.Kill()
					return fmt.Errorf("immunity did not stop within 2 minutes of SIGINT")
				}
			}
			return nil
		}
		var dataDir string
		for n := range t.replicas {
			addr := freePort()
			rdir := filepath.Join(dir, fmt.Sprintf("t%d-r%d", i, n))
			if err := os.MkdirAll(rdir, 0o755); err != nil {
				return err
			}
			if n == 0 {
				dataDir = filepath.Join(rdir, "immunity-data")
			}
			srv := exec.Command(bin, "serve")
			srv.Dir = rdir
			logFile, _ := os.Create(filepath.Join(rdir, "server.log"))
			srv.Stdout, srv.Stderr = logFile, logFile
			srv.Env = append(os.Environ(), "IMMUNITY_LISTEN="+addr, "IMMUNITY_GITHUB_APP_ID=1",
				"IMMUNITY_GITHUB_PRIVATE_KEY_FILE="+keyFile, "IMMUNITY_GITHUB_WEBHOOK_SECRET="+hexSecret,
				"IMMUNITY_GITHUB_API_URL=http://127.0.0.1:1/", fmt.Sprintf("IMMUNITY_REPLICA=r%d", n))
			if t.database != "" {
				srv.Env = append(srv.Env, "IMMUNITY_DATABASE_URL="+t.database)
			}
			if err := srv.Start(); err != nil {
				stop()
				return fmt.Errorf("start immunity: %w", err)
			}
			procs = append(procs, srv)
			if err := waitReady("http://" + addr + "/readyz"); err != nil {
				stop()
				return fmt.Errorf("%w (server log: %s)", err, filepath.Join(rdir, "server.log"))
			}
			urls = append(urls, "http://"+addr+"/webhooks/github")
		}
		var acked []string
		for _, fixed := range []bool{false, true} {
			cpu0 := cpuTime(procs...)
			r := g.run(urls, dur, conns, map[bool]int{false: 0, true: rate}[fixed])
			if r.ok > 0 {
				r.cpuPer = (cpuTime(procs...) - cpu0) / time.Duration(r.ok)
			}
			r.target = t.name
			rows = append(rows, r)
			acked = append(acked, r.acked...)
		}
		if err := stop(); err != nil {
			return err
		}
		database := t.database
		if database == "" {
			database = filepath.Join(dataDir, "immunity.db")
		}
		chk, err := checkStore(database, acked)
		if err != nil {
			return err
		}
		checks = append(checks, chk)
	}
	report(rows, checks, dur, conns, rate)
	return nil
}

// cpuTime is the CPU time (user and system) the processes have used so far, from
// /proc/PID/stat; a process whose stat cannot be read counts 0.
func cpuTime(procs ...*exec.Cmd) time.Duration {
	var ticks int64
	for _, p := range procs {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.Process.Pid))
		if err != nil {
			continue
		}
		// Fields after the command (which is in parentheses and may hold spaces): utime and
		// stime are the 12th and 13th, in clock ticks (USER_HZ, 100 on Linux).
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(f) < 13 {
			continue
		}
		for _, v := range f[11:13] {
			n, _ := strconv.ParseInt(v, 10, 64)
			ticks += n
		}
	}
	return time.Duration(ticks) * (time.Second / 100)
}

func writeKey(file string) error {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	return os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}), 0o600)
}

func waitReady(urls ...string) error {
	for _, u := range urls {
		deadline := time.Now().Add(60 * time.Second)
		for {
			resp, err := http.Get(u)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode < 500 {
					break
				}
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s not ready after 60 s", u)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

func freePort() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// delivery makes the n-th delivery of a phase: a unique id and head commit, signed.
func (g *generator) delivery(phase string, n int) (id string, body []byte, sig string) {
	id = fmt.Sprintf("bench-%s-%d", phase, n)
	after := fmt.Sprintf("%040x", uint64(g.seq.Add(1)))
	body = bytes.Replace(g.tmpl, []byte(`"after": "6113728f27ae82c7b1a177c8d03f9e96e0adf246"`), []byte(`"after": "`+after+`"`), 1)
	m := hmac.New(sha256.New, g.secret)
	m.Write(body)
	return id, body, "sha256=" + hex.EncodeToString(m.Sum(nil))
}

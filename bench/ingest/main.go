// Command ingest measures how fast `immunity serve` takes GitHub webhook deliveries,
// beside a bare net/http server that only checks the HMAC and answers 202, in one run.
//
// It builds the immunity binary (or takes -immunity), starts it as its own process with a
// GitHub App configured (a fresh key and webhook secret, SQLite in a temporary folder),
// starts the bare server as another process, and then is the load generator itself, over
// loopback with -c keep-alive connections. Every delivery is a real push payload
// (fixtures/github/push.json) for a repository no app is configured for, made unique
// (its own delivery id and head commit, so none is a duplicate) and signed. Two phases
// per server, each -d long:
//
//   - max: every connection sends its next delivery as soon as the last was answered;
//   - fixed rate (-rate, default 1,000/s): deliveries are due at a steady pace whatever
//     the answers do, and a delivery's latency counts from when it was due, so a server
//     that falls behind shows it (no coordinated omission).
//
// Then it stops the server (SIGTERM: it drains its work) and checks the store: every
// acknowledged delivery recorded exactly once and handled, none lost, none doubled.
//
//	go run ./bench/ingest [-d 30s] [-c 16] [-rate 1000]
package main

import (
	"bytes"
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
	"strings"
	"time"
)

func main() {
	role := flag.String("role", "", "internal: bare")
	listen := flag.String("listen", "", "internal")
	dur := flag.Duration("d", 30*time.Second, "length of each phase")
	conns := flag.Int("c", 16, "keep-alive connections")
	rate := flag.Int("rate", 1000, "deliveries a second in the fixed-rate phase")
	bin := flag.String("immunity", "", "immunity binary to measure (default: go build the module)")
	flag.StringVar(&payload, "payload", "fixtures/github/push.json", "the push payload every delivery is made from")
	flag.Parse()
	log.SetFlags(0)
	if *role == "bare" {
		log.Fatal(serveBare(*listen, []byte(os.Getenv("BENCH_SECRET"))))
	}
	if err := orchestrate(*bin, *dur, *conns, *rate); err != nil {
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

func orchestrate(bin string, dur time.Duration, conns, rate int) error {
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
	ours, bare := freePort(), freePort()
	srv := exec.Command(bin, "serve")
	srv.Dir = dir
	logFile, _ := os.Create(filepath.Join(dir, "server.log"))
	srv.Stdout, srv.Stderr = logFile, logFile
	srv.Env = append(os.Environ(), "IMMUNITY_LISTEN="+ours, "IMMUNITY_GITHUB_APP_ID=1",
		"IMMUNITY_GITHUB_PRIVATE_KEY_FILE="+keyFile, "IMMUNITY_GITHUB_WEBHOOK_SECRET="+hexSecret,
		"IMMUNITY_GITHUB_API_URL=http://127.0.0.1:1/")
	if err := srv.Start(); err != nil {
		return fmt.Errorf("start immunity: %w", err)
	}
	defer srv.Process.Kill()
	self, _ := os.Executable()
	b := exec.Command(self, "-role", "bare", "-listen", bare)
	b.Env = append(os.Environ(), "BENCH_SECRET="+hexSecret)
	b.Stderr = os.Stderr
	if err := b.Start(); err != nil {
		return err
	}
	defer b.Process.Kill()
	if err := waitReady("http://"+ours+"/readyz", "http://"+bare+"/"); err != nil {
		return fmt.Errorf("%w (server log: %s)", err, filepath.Join(dir, "server.log"))
	}
	tmpl, err := os.ReadFile(payload)
	if err != nil {
		return fmt.Errorf("the push payload (run from the repository's root, or set -payload): %w", err)
	}
	g := &generator{tmpl: tmpl, secret: []byte(hexSecret)}
	var rows []row
	var acked []string
	for _, t := range []struct{ name, url string }{{"bare HMAC net/http", "http://" + bare + "/"}, {"immunity serve", "http://" + ours + "/webhooks/github"}} {
		for _, fixed := range []bool{false, true} {
			r := g.run(t.url, dur, conns, map[bool]int{false: 0, true: rate}[fixed])
			r.target = t.name
			rows = append(rows, r)
			if t.name == "immunity serve" {
				acked = append(acked, r.acked...)
			}
		}
	}
	srv.Process.Signal(os.Interrupt)
	done := make(chan error, 1)
	go func() { done <- srv.Wait() }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		return fmt.Errorf("immunity did not stop within 2 minutes of SIGINT")
	}
	chk, err := checkStore(filepath.Join(dir, "immunity-data"), acked)
	if err != nil {
		return err
	}
	report(rows, chk, dur, conns, rate)
	return nil
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

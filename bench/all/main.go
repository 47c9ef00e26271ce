// Command all runs every benchmark of bench/ one after the other and prints one table:
// each figure beside its baseline measured in the same run, the target and whether it
// was met, with the machine's load average before and after (other work on the machine
// moves every figure; read them beside it).
//
//	go run ./bench/all            # about 12 minutes on 2 cores
//	go run ./bench/all -quick     # shorter phases and a smaller corpus: a look, not a figure
//	go run ./bench/all -only ingest,mirror
//
// Each benchmark is its own program (or go test benchmark) with its own full table; their
// complete output is kept in -logs. A benchmark prints its figures for this table as
// lines "SUMMARY<TAB>bench<TAB>figure<TAB>ours<TAB>baseline<TAB>baseline is<TAB>target<TAB>met".
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

type bench struct {
	name  string
	about string
	full  []string // the command
	quick []string // the command with -quick
}

var benches = []bench{
	{"ingest", "webhook deliveries into immunity serve (SQLite; PostgreSQL with 1 and 3 replicas) beside a bare HMAC server",
		[]string{"go", "run", "./bench/ingest", "-d", "30s"}, []string{"go", "run", "./bench/ingest", "-d", "5s"}},
	{"pushcheck", "push webhook to the first Check Run at a fake GitHub, beside the webhook's own answer",
		[]string{"go", "test", "-run", "^$", "-bench", "PushToFirstCheckRun", "-benchtime", "50x", "./app/github"},
		[]string{"go", "test", "-run", "^$", "-bench", "PushToFirstCheckRun", "-benchtime", "10x", "./app/github"}},
	{"judge", "the canary judge on a corpus with known truth beside a Kayenta-style classifier",
		[]string{"go", "run", "./bench/judge"}, []string{"go", "run", "./bench/judge", "-reps", "10", "-aa", "40"}},
	{"sshfanout", "the ssh deployer's fan-out and rollback over real sshd beside scp/ssh scripts",
		[]string{"go", "run", "./bench/sshfanout"}, []string{"go", "run", "./bench/sshfanout", "-size", "10"}},
	{"mirror", "the traffic mirror beside nginx (needs nginx-light and wrk)",
		[]string{"go", "run", "./bench/mirror", "-rt", "-d", "5s", "-n", "3"}, []string{"go", "run", "./bench/mirror", "-rt", "-d", "2s", "-n", "1"}},
}

func main() {
	quick := flag.Bool("quick", false, "shorter runs (figures to look at, not to quote)")
	only := flag.String("only", "", "comma-separated benchmarks to run (default all: ingest,pushcheck,judge,sshfanout,mirror)")
	logs := flag.String("logs", "", "folder for each benchmark's full output (default a new temporary folder)")
	flag.Parse()
	if *logs == "" {
		*logs, _ = os.MkdirTemp("", "immunity-bench-")
	}
	os.MkdirAll(*logs, 0o755)
	before := loadavg()
	start := time.Now()
	var rows [][]string
	failed := false
	for _, b := range benches {
		if *only != "" && !slices.Contains(strings.Split(*only, ","), b.name) {
			continue
		}
		cmd := b.full
		if *quick {
			cmd = b.quick
		}
		fmt.Fprintf(os.Stderr, "== %s: %s\n   %s (load %s)\n", b.name, b.about, strings.Join(cmd, " "), loadavg())
		out, err := runLogged(cmd, filepath.Join(*logs, b.name+".txt"))
		got := summaries(out)
		if err != nil || len(got) == 0 {
			failed = true
			rows = append(rows, []string{b.name, "(did not finish: see " + filepath.Join(*logs, b.name+".txt") + ")", "", "", "", "", "FAILED"})
			continue
		}
		rows = append(rows, got...)
	}
	fmt.Printf("\nImmunity benchmarks, %s, %s; load average before %s, after %s; full output in %s\n\n",
		time.Now().Format("2006-01-02 15:04"), time.Since(start).Round(time.Second), before, loadavg(), *logs)
	fmt.Println("| benchmark | figure | ours | baseline | baseline is | target | met |")
	fmt.Println("|---|---|---:|---:|---|---|---|")
	for _, r := range rows {
		fmt.Printf("| %s |\n", strings.Join(r, " | "))
	}
	if failed {
		os.Exit(1)
	}
}

// runLogged runs cmd, showing its output as it comes on stderr and keeping it in file.
func runLogged(argv []string, file string) ([]byte, error) {
	f, err := os.Create(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var buf bytes.Buffer
	cmd := exec.Command(argv[0], argv[1:]...)
	w := io.MultiWriter(&buf, f, os.Stderr)
	cmd.Stdout, cmd.Stderr = w, w
	err = cmd.Run()
	return buf.Bytes(), err
}

// summaries reads the SUMMARY lines of a benchmark's output as table rows.
func summaries(out []byte) [][]string {
	var rows [][]string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if len(f) != 8 || f[0] != "SUMMARY" {
			continue
		}
		met := map[string]string{"true": "yes", "false": "**no**"}[f[7]]
		if f[6] == "" {
			met = "–"
		}
		rows = append(rows, append(f[1:7], met))
	}
	return rows
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

// Command mirror benchmarks Immunity's traffic mirror against nginx's `mirror` directive,
// side by side in one run, in front of the same backends.
//
// It starts (each pinned with taskset): a backends process (core 0) serving the primary,
// a fast shadow and a 200 ms shadow; our mirror as a sidecar process (core 0); nginx
// (core 0, one worker) with one server per case; and drives each case with wrk from its
// own core (core 1). Cases: no mirror, fast shadow, 200 ms shadow, dead shadow (a closed
// port). It prints req/s and p99 for both and checks our targets: a fast shadow costs
// at most 30% of our no-mirror throughput, a slow or dead one at most 10% with p99 within
// 0.5 ms of no-mirror. Costs are taken per round against that round's no-mirror run,
// and their median is checked. -cpuprofile DIR saves a CPU profile of our proxy during
// each of our runs (for reading, not for the targets: profiling costs a little).
//
// With -rt everything runs SCHED_RR, and the kernel's RT throttling
// (/proc/sys/kernel/sched_rt_runtime_us, 950 ms a second by default) stops core 0 for up
// to 50 ms a second: p99 then mostly measures those stops, for nginx as for us.
//
//	go build -o /tmp/benchmirror ./bench/mirror && /tmp/benchmirror -rt -d 2s -n 3
package main

import (
	"context"
	"flag"
	"io"
	"log"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"time"

	"github.com/immunity-app/immunity/canary/mirror"
)

func main() {
	role := flag.String("role", "", "internal: backends or proxy")
	listen := flag.String("listen", "", "internal")
	primary := flag.String("primary", "", "internal")
	control := flag.String("control", "", "internal")
	pprofAddr := flag.String("pprof", "", "internal: serve net/http/pprof here")
	flag.StringVar(&profileDir, "cpuprofile", "", "write CPU profiles of our proxy process during each of our cases to this folder (case.pprof)")
	dur := flag.Duration("d", 5*time.Second, "wrk duration per case")
	conns := flag.Int("c", 16, "wrk connections")
	flag.IntVar(&repeats, "n", 1, "runs per case; the median run (by req/s) is reported")
	flag.BoolVar(&realtime, "rt", false, "run everything under chrt -r 1 (SCHED_RR) to keep other load off the cores")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var err error
	switch *role {
	case "backends":
		err = runBackends(ctx, strings.Split(*listen, ","))
	case "proxy":
		if *pprofAddr != "" {
			go http.ListenAndServe(*pprofAddr, nil) // DefaultServeMux carries net/http/pprof
		}
		err = mirror.RunSidecar(ctx, mirror.SidecarOptions{Listen: *listen, Primary: *primary, Control: *control,
			Token: os.Getenv("IMMUNITY_MIRROR_TOKEN")})
	default:
		err = orchestrate(ctx, *dur, *conns)
	}
	if err != nil {
		log.Fatal(err)
	}
}

// runBackends serves the primary, a fast shadow and a 200 ms shadow on addrs[0..2].
func runBackends(ctx context.Context, addrs []string) error {
	body := strings.Repeat("x", 100) + "\n"
	fast := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body) })
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(200 * time.Millisecond)
		io.WriteString(w, body)
	})
	for i, h := range []http.Handler{fast, fast, slow} {
		ln, err := net.Listen("tcp", addrs[i])
		if err != nil {
			return err
		}
		go http.Serve(ln, h)
	}
	<-ctx.Done()
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

var (
	repeats    int
	realtime   bool
	profileDir string
)

// pinned returns the command line running name pinned to cpu (and SCHED_RR with -rt).
func pinned(cpu, name string, args ...string) (string, []string) {
	argv := append([]string{"-c", cpu, name}, args...)
	if realtime {
		return "chrt", append([]string{"-r", "1", "taskset"}, argv...)
	}
	return "taskset", argv
}

// start runs a child pinned to cpu; it is killed when the orchestrator ends.
func start(cpu string, name string, args ...string) *exec.Cmd {
	bin, argv := pinned(cpu, name, args...)
	cmd := exec.Command(bin, argv...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.Env = append(os.Environ(), "IMMUNITY_MIRROR_TOKEN=bench")
	if err := cmd.Start(); err != nil {
		log.Fatalf("start %s: %v", name, err)
	}
	return cmd
}

func waitUp(addr string) {
	for range 100 {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	log.Fatalf("%s never came up", addr)
}

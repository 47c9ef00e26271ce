// Command sshfanout measures the ssh deployer's fan-out against what people script today.
//
// It starts two real sshd servers on loopback (sshtest), each listening on ten loopback
// addresses, so 20 hosts have 20 distinct addresses and 20 connections, and sends one 50 MB
// incompressible release to all 20 hosts, side by side in one run:
//
//   - raw ceiling: 20 parallel `cat file | ssh host 'cat >/dev/null'` streams (no disk, no
//     checksum, no unpack: only logins and encryption)
//   - the ssh deployer: Upload (stream, sha256 on the host, unpack, rename) and Activate
//     (atomic switch) on all 20 hosts in parallel, from cold connections
//   - a scripted deploy: scp, then ssh to check the sha256, unpack and switch, in a
//     sequential loop and with xargs -P 8
//
// then rolls the 20 hosts back with the deployer on its warm pooled connections, and with
// the scripted `ssh host 'ln -sfn ... && mv -T ...'` for comparison. Every OpenSSH command
// uses aes128-gcm@openssh.com, the fastest cipher with AES-NI, as the deployer does.
//
//	go run ./bench/sshfanout [-size 50] [-hosts 20] [-rounds 1]
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/immunity-app/immunity/deployers"
	"github.com/immunity-app/immunity/deployers/ssh"
	"github.com/immunity-app/immunity/deployers/ssh/sshtest"
)

func main() {
	size := flag.Int("size", 50, "release size in MB (random bytes: incompressible)")
	nHosts := flag.Int("hosts", 20, "number of hosts (split over two sshd servers)")
	rounds := flag.Int("rounds", 1, "rounds; the median of each figure is printed")
	scripted := flag.Bool("scripted", true, "also time the scripted scp+ssh deploys and rollbacks (slow)")
	flag.Parse()
	if err := run(*size, *nHosts, *rounds, *scripted); err != nil {
		fmt.Fprintln(os.Stderr, "sshfanout:", err)
		os.Exit(1)
	}
}

func run(sizeMB, nHosts, rounds int, scripted bool) error {
	if err := sshtest.Available(); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "sshfanout-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	b, err := newBench(dir, sizeMB, nHosts)
	if err != nil {
		return err
	}
	defer b.env.Close()
	fmt.Printf("%d MB release (%d bytes packed) to %d hosts on 2 sshd servers, %d CPUs, cipher aes128-gcm@openssh.com\n\n",
		sizeMB, b.artifactSize, nHosts, runtime.NumCPU())
	scs := b.scenarios()
	if !scripted {
		scs = slices.DeleteFunc(scs, func(sc scenario) bool { return sc.scripted })
	}
	results := map[string][]time.Duration{}
	for r := 0; r < rounds; r++ {
		for _, sc := range scs {
			d, err := sc.fn(context.Background())
			if err != nil {
				return fmt.Errorf("%s: %w", sc.name, err)
			}
			results[sc.name] = append(results[sc.name], d)
			results[sc.name+" client"] = append(results[sc.name+" client"], b.clientCPU)
			results[sc.name+" server"] = append(results[sc.name+" server"], b.serverCPUUsed)
			fmt.Fprintf(os.Stderr, "round %d: %-40s %v\n", r+1, sc.name, d.Round(time.Millisecond))
		}
	}
	printTable(os.Stdout, scs, results)
	summarize(nHosts, sizeMB, results)
	return nil
}

// summarize prints the lines bench/all gathers into its table: the deploy beside the raw
// ceiling and the scripted fan-out, the rollback beside the scripted one.
func summarize(nHosts, sizeMB int, results map[string][]time.Duration) {
	line := func(figure, ours, base, target string, ok bool) {
		fmt.Printf("SUMMARY\tsshfanout\t%s\t%s\t%s\t%s\t%t\n", figure, ours, base, target, ok)
	}
	dep, raw := median(results[deployName]).Seconds(), median(results[rawName]).Seconds()
	line(fmt.Sprintf("deploy %d MB to %d hosts, s", sizeMB, nHosts), fmt.Sprintf("%.2f", dep), fmt.Sprintf("%.2f\traw ssh streams", raw), "", true)
	if x := results["scp + ssh switch, xargs -P 8"]; len(x) > 0 {
		sc := median(x).Seconds()
		line(fmt.Sprintf("deploy %d MB to %d hosts, s", sizeMB, nHosts), fmt.Sprintf("%.2f", dep), fmt.Sprintf("%.2f\tscp + ssh, xargs -P 8", sc), "faster", dep < sc)
	}
	rb := median(results[rollbackName]).Seconds()
	if x := results["rollback: ssh ln+mv, xargs -P 8"]; len(x) > 0 {
		sc := median(x).Seconds()
		line(fmt.Sprintf("rollback %d hosts, s", nHosts), fmt.Sprintf("%.3f", rb), fmt.Sprintf("%.3f\tssh ln+mv, xargs -P 8", sc), "< 1 s, faster", rb < 1 && rb < sc)
	} else {
		line(fmt.Sprintf("rollback %d hosts, s", nHosts), fmt.Sprintf("%.3f", rb), "\t", "< 1 s", rb < 1)
	}
}

type scenario struct {
	name     string
	base     string // the scenario it is compared with ("" = none)
	scripted bool   // an OpenSSH scp/ssh script (skipped with -scripted=false)
	fn       func(ctx context.Context) (time.Duration, error)
}

func (b *bench) scenarios() []scenario {
	return []scenario{
		{name: rawName, fn: b.raw},
		{name: deployName, base: rawName, fn: b.deploy},
		{name: "scp + ssh switch, xargs -P 8", base: rawName, scripted: true, fn: func(ctx context.Context) (time.Duration, error) { return b.scripted(ctx, 8) }},
		{name: "scp + ssh switch, sequential", base: rawName, scripted: true, fn: func(ctx context.Context) (time.Duration, error) { return b.scripted(ctx, 1) }},
		{name: rollbackName, fn: b.rollback},
		{name: "rollback: ssh ln+mv, xargs -P 8", base: rollbackName, scripted: true, fn: func(ctx context.Context) (time.Duration, error) { return b.scriptedRollback(ctx, 8) }},
		{name: "rollback: ssh ln+mv, sequential", base: rollbackName, scripted: true, fn: func(ctx context.Context) (time.Duration, error) { return b.scriptedRollback(ctx, 1) }},
	}
}

const (
	rawName      = "raw ceiling: 20 x cat | ssh 'cat >/dev/null'"
	deployName   = "immunity ssh deployer (upload+activate)"
	rollbackName = "immunity rollback, warm pooled connections"
)

func printTable(w io.Writer, scs []scenario, results map[string][]time.Duration) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\twall (median)\tvs\tCPU here\tCPU sshd side\t")
	for _, sc := range scs {
		d := median(results[sc.name])
		ratio := ""
		if sc.base != "" {
			ratio = fmt.Sprintf("%.2fx %s", d.Seconds()/median(results[sc.base]).Seconds(), shortName(sc.base))
		}
		fmt.Fprintf(tw, "%s\t%.3fs\t%s\t%.2fs\t%.2fs\t\n", sc.name, d.Seconds(), ratio,
			median(results[sc.name+" client"]).Seconds(), median(results[sc.name+" server"]).Seconds())
	}
	tw.Flush()
}

func shortName(s string) string {
	if s == rawName {
		return "raw"
	}
	return "immunity rollback"
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// bench holds the servers, hosts and release shared by the scenarios.
type bench struct {
	env           *sshtest.Env
	dir           string
	hosts         []deployers.Host
	ports         []int // sshd port of each host
	ips           []string
	rel           deployers.Release
	small         deployers.Release
	artifactSize  int64
	d             *ssh.Deployer // warm after deploy, used by rollback
	seq           int
	servers       []*sshtest.Server
	clientCPU     time.Duration // CPU used on the Immunity side by the last scenario
	serverCPUUsed time.Duration // and by the sshd sessions and their commands
}

// measure times fn and records the CPU it used on both sides; clientCPU is this process's
// CPU when fn does not set it (scripted runs set it to their shell's).
func (b *bench) measure(fn func() error) (time.Duration, error) {
	server0, err := b.serverCPU()
	if err != nil {
		return 0, err
	}
	b.clientCPU = -1
	start, self := time.Now(), selfCPU()
	err = fn()
	elapsed := time.Since(start)
	if b.clientCPU < 0 {
		b.clientCPU = selfCPU() - self
	}
	server1, serr := b.serverCPU()
	b.serverCPUUsed = server1 - server0
	if err == nil {
		err = serr
	}
	return elapsed, err
}

// serverCPU is the CPU time of all finished sshd sessions so far.
func (b *bench) serverCPU() (time.Duration, error) {
	var sum time.Duration
	for _, s := range b.servers {
		c, err := s.SessionCPU()
		if err != nil {
			return 0, err
		}
		sum += c
	}
	return sum, nil
}

// selfCPU is this process's CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func newBench(dir string, sizeMB, nHosts int) (*bench, error) {
	env, err := sshtest.NewEnv(dir)
	if err != nil {
		return nil, err
	}
	b := &bench{env: env, dir: dir}
	perServer := (nHosts + 1) / 2
	var extra []string
	for i := 2; i <= perServer; i++ {
		extra = append(extra, fmt.Sprintf("127.0.0.%d", i))
	}
	var servers []*sshtest.Server
	for i := 0; i < 2; i++ {
		s, err := env.Start(extra...)
		if err != nil {
			env.Close()
			return nil, err
		}
		servers = append(servers, s)
	}
	b.servers = servers
	for i := 0; i < nHosts; i++ {
		s := servers[i%2]
		ip := fmt.Sprintf("127.0.0.%d", i/2+1)
		b.ips = append(b.ips, ip)
		b.ports = append(b.ports, s.Port)
		b.hosts = append(b.hosts, deployers.Host{App: "bench", Region: "fanout", Name: fmt.Sprintf("host%02d", i+1), Address: env.AddressOn(s, ip)})
	}
	if b.rel, err = packRelease(dir, "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a", sizeMB<<20); err != nil {
		return nil, err
	}
	if b.small, err = packRelease(dir, "1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b", 1000); err != nil {
		return nil, err
	}
	fi, err := os.Stat(b.rel.Artifact)
	if err != nil {
		return nil, err
	}
	b.artifactSize = fi.Size()
	return b, nil
}

// freshBases gives every host a new, empty base folder and removes the previous ones.
func (b *bench) freshBases() error {
	b.seq++
	os.RemoveAll(filepath.Join(b.dir, fmt.Sprintf("hosts-%d", b.seq-1)))
	for i := range b.hosts {
		base := filepath.Join(b.dir, fmt.Sprintf("hosts-%d", b.seq), b.hosts[i].Name)
		if err := os.MkdirAll(base, 0o755); err != nil {
			return err
		}
		b.hosts[i].Base = base
	}
	return nil
}

func packRelease(dir, sha string, size int) (deployers.Release, error) {
	src := filepath.Join(dir, "src-"+sha)
	if err := os.MkdirAll(src, 0o755); err != nil {
		return deployers.Release{}, err
	}
	blob := make([]byte, size)
	rand.Read(blob)
	if err := os.WriteFile(filepath.Join(src, "blob"), blob, 0o644); err != nil {
		return deployers.Release{}, err
	}
	if err := os.WriteFile(filepath.Join(src, "VERSION"), []byte(sha+"\n"), 0o644); err != nil {
		return deployers.Release{}, err
	}
	art := filepath.Join(dir, sha+".tar.gz")
	f, err := os.Create(art)
	if err != nil {
		return deployers.Release{}, err
	}
	err = deployers.Pack(src, []string{"VERSION", "blob"}, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return deployers.Release{}, err
	}
	sum, err := deployers.FileChecksum(art)
	return deployers.Release{App: "bench", SHA: sha, Artifact: art, Checksum: sum}, err
}

// parallel runs fn for every host at once and joins the errors.
func (b *bench) parallel(fn func(i int, h deployers.Host) error) error {
	errs := make([]error, len(b.hosts))
	var wg sync.WaitGroup
	for i, h := range b.hosts {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = fn(i, h) }()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (b *bench) deploy(ctx context.Context) (time.Duration, error) {
	if err := b.freshBases(); err != nil {
		return 0, err
	}
	if b.d != nil {
		b.d.Close()
	}
	settings := ssh.Settings{KeyFile: b.env.KeyFile, KnownHosts: b.env.KnownHosts, Timeout: 5 * time.Minute}
	b.d = ssh.New(ssh.Options{Settings: func(deployers.Host) ssh.Settings { return settings }})
	elapsed, err := b.measure(func() error {
		return b.parallel(func(_ int, h deployers.Host) error {
			if err := b.d.Upload(ctx, h, b.rel); err != nil {
				return err
			}
			return b.d.Activate(ctx, h, b.rel.SHA)
		})
	})
	if err != nil {
		return 0, err
	}
	return elapsed, b.checkLive(b.rel.SHA)
}

// rollback puts a small release live (untimed), then times the switch of all hosts back
// to the big one on the deployer's warm connections.
func (b *bench) rollback(ctx context.Context) (time.Duration, error) {
	err := b.parallel(func(_ int, h deployers.Host) error {
		if err := b.d.Upload(ctx, h, b.small); err != nil {
			return err
		}
		return b.d.Activate(ctx, h, b.small.SHA)
	})
	if err != nil {
		return 0, err
	}
	elapsed, err := b.measure(func() error {
		return b.parallel(func(_ int, h deployers.Host) error { return b.d.Activate(ctx, h, b.rel.SHA) })
	})
	if err != nil {
		return 0, err
	}
	return elapsed, b.checkLive(b.rel.SHA)
}

func (b *bench) checkLive(sha string) error {
	for _, h := range b.hosts {
		v, err := os.ReadFile(filepath.Join(h.Base, "current", "VERSION"))
		if err != nil {
			return fmt.Errorf("%s: %w", h, err)
		}
		if strings.TrimSpace(string(v)) != sha {
			return fmt.Errorf("%s: live %q, want %s", h, v, sha)
		}
	}
	return nil
}

package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/immunity-app/immunity/canary/mirror"
)

type result struct {
	rps   float64
	p99ms float64
}

var cases = []string{"no mirror", "fast shadow", "200 ms shadow", "dead shadow"}

func orchestrate(ctx context.Context, dur time.Duration, conns int) error {
	self, _ := os.Executable()
	prim, fastS, slowS, dead := freePort(), freePort(), freePort(), freePort()
	back := start("0", self, "-role", "backends", "-listen", prim+","+fastS+","+slowS)
	defer back.Process.Kill()
	ours, ctl, pprofAddr := freePort(), freePort(), freePort()
	proxy := start("0", self, "-role", "proxy", "-listen", ours, "-primary", "http://"+prim, "-control", ctl, "-pprof", pprofAddr)
	defer proxy.Process.Kill()
	nginxPorts := []string{freePort(), freePort(), freePort(), freePort()}
	stopNginx, err := startNginx(prim, []string{"", fastS, slowS, dead}, nginxPorts)
	if err != nil {
		return err
	}
	defer stopNginx()
	for _, a := range append([]string{prim, fastS, slowS, ours, ctl}, nginxPorts...) {
		waitUp(a)
	}
	c := mirror.Client{URL: "http://" + ctl, Token: "bench"}
	shadows := []string{"", "http://" + fastS, "http://" + slowS, "http://" + dead}
	// Rounds go through every case in turn, so a change of background load hits all
	// cases alike; each case reports its median round (by req/s).
	oursR, nginxR := make([][]result, len(cases)), make([][]result, len(cases))
	drops := make([]mirror.Stats, len(cases))
	for range max(1, repeats) {
		for i, name := range cases {
			prof := profile(ctx, pprofAddr, name, dur)
			r, st, err := runOurs(ctx, c, shadows[i], "http://"+ours+"/", dur, conns)
			prof()
			if err != nil {
				return fmt.Errorf("ours, %s: %w", name, err)
			}
			oursR[i] = append(oursR[i], r)
			drops[i] = add(drops[i], st)
			if r, err = wrk(ctx, "http://"+nginxPorts[i]+"/", dur, conns); err != nil {
				return fmt.Errorf("nginx, %s: %w", name, err)
			}
			nginxR[i] = append(nginxR[i], r)
		}
	}
	report(oursR, medians(nginxR), drops, dur, conns)
	return nil
}

// runOurs switches our mirror to shadow (off when ""), runs wrk against it and returns
// what the mirror did meanwhile.
func runOurs(ctx context.Context, c mirror.Client, shadow, url string, dur time.Duration, conns int) (result, mirror.Stats, error) {
	var targets []string
	if shadow != "" {
		targets = []string{shadow}
	}
	if err := c.SetShadow(ctx, targets); err != nil {
		return result{}, mirror.Stats{}, err
	}
	defer c.Off(ctx)
	before, _ := c.Stats(ctx)
	r, err := wrk(ctx, url, dur, conns)
	time.Sleep(300 * time.Millisecond) // let queued copies drain before the next case
	after, _ := c.Stats(ctx)
	d := mirror.Stats{Queued: after.Queued - before.Queued, Dropped: after.Dropped - before.Dropped,
		Shed: after.Shed - before.Shed, ShadowErrors: after.ShadowErrors - before.ShadowErrors,
		Mirrored: after.Mirrored - before.Mirrored}
	return r, d, err
}

func add(a, b mirror.Stats) mirror.Stats {
	a.Queued += b.Queued
	a.Dropped += b.Dropped
	a.Shed += b.Shed
	a.ShadowErrors += b.ShadowErrors
	a.Mirrored += b.Mirrored
	return a
}

func medians(rs [][]result) []result {
	out := make([]result, len(rs))
	for i, r := range rs {
		r = append([]result(nil), r...)
		sort.Slice(r, func(a, b int) bool { return r[a].rps < r[b].rps })
		out[i] = r[len(r)/2]
	}
	return out
}

// report prints the median round of each case and checks the targets. A target is
// checked on paired rounds: each round's cost is against the no-mirror run of the same
// round (rounds go through the cases in turn, so both saw the same background load),
// and the median of those per-round costs is what must meet the limit.
func report(oursR [][]result, ngx []result, drops []mirror.Stats, dur time.Duration, conns int) {
	ours := medians(oursR)
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("\nwrk -t1 -c%d -d%s on core 1 (median of %d rounds); proxies and backends on core 0; SCHED_RR %v; load average %s\n\n",
		conns, dur, max(1, repeats), realtime, strings.Fields(string(load) + " ?")[0])
	fmt.Printf("| case | ours req/s | ours p99 ms | nginx req/s | nginx p99 ms | ours / nginx | our copies: queued / dropped / shed / shadow errors (all rounds) | copies answered by the shadow |\n|---|---:|---:|---:|---:|---:|---|---:|\n")
	for i, name := range cases {
		d := drops[i]
		share := "–"
		if made := d.Queued + d.Dropped + d.Shed; i > 0 && made > 0 {
			share = fmt.Sprintf("%.1f%%", 100*float64(d.Mirrored-d.ShadowErrors)/float64(made))
		}
		fmt.Printf("| %s | %.0f | %.2f | %.0f | %.2f | %.2f× | %d / %d / %d / %d | %s |\n", name, ours[i].rps, ours[i].p99ms, ngx[i].rps, ngx[i].p99ms,
			ours[i].rps/ngx[i].rps, d.Queued, d.Dropped, d.Shed, d.ShadowErrors, share)
	}
	fmt.Println()
	r0 := ours[0].rps / ngx[0].rps
	fmt.Printf("target no mirror:      %.2fx nginx (limit 0.80x): %s\n", r0, map[bool]string{true: "OK", false: "MISSED"}[r0 >= 0.8])
	fmt.Printf("SUMMARY\tmirror\treq/s, mirroring off\t%.0f\t%.0f\tnginx proxy_pass\t>= 0.8x\t%t\n", ours[0].rps, ngx[0].rps, r0 >= 0.8)
	slow := drops[2]
	share := 0.0
	if made := slow.Queued + slow.Dropped + slow.Shed; made > 0 {
		share = 100 * float64(slow.Mirrored-slow.ShadowErrors) / float64(made)
	}
	fmt.Printf("SUMMARY\tmirror\treq/s, 200 ms shadow (copies answered)\t%.0f (%.1f%%)\t%.0f (100%%)\tnginx mirror\tno slowdown\t%t\n", ours[2].rps, share, ngx[2].rps, ours[2].rps >= 0.9*ours[0].rps)
	for i := 1; i < len(cases); i++ {
		var costs, p99s []float64
		for r := range oursR[i] {
			costs = append(costs, 1-oursR[i][r].rps/oursR[0][r].rps)
			p99s = append(p99s, oursR[i][r].p99ms-oursR[0][r].p99ms)
		}
		cost, dp99 := median(costs), median(p99s)
		limit, p99ok := 0.10, dp99 <= 0.5
		if i == 1 {
			limit, p99ok = 0.30, true
		}
		ok := "OK"
		if cost > limit || !p99ok {
			ok = "MISSED"
		}
		fmt.Printf("target %-14s throughput cost %5.1f%% (limit %.0f%%; rounds %s), p99 %+.2f ms (rounds %s): %s\n",
			name(i)+":", 100*cost, 100*limit, list(costs, 100, "%.1f%%"), dp99, list(p99s, 1, "%+.2f"), ok)
	}
}

func median(xs []float64) float64 {
	xs = append([]float64(nil), xs...)
	sort.Float64s(xs)
	return xs[len(xs)/2]
}

func list(xs []float64, scale float64, format string) string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = fmt.Sprintf(format, scale*x)
	}
	return strings.Join(out, " ")
}

func name(i int) string { return cases[i] }

var (
	rpsRe = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	p99Re = regexp.MustCompile(`\n\s+99%\s+([0-9.]+)(us|ms|s)`)
)

// wrk runs wrk pinned to core 1 and reads req/s and p99.
func wrk(ctx context.Context, url string, dur time.Duration, conns int) (result, error) {
	bin, argv := pinned("1", "wrk", "-t1", "-c"+strconv.Itoa(conns), "-d"+dur.String(), "--latency", url)
	out, err := exec.CommandContext(ctx, bin, argv...).CombinedOutput()
	if err != nil {
		return result{}, fmt.Errorf("wrk: %w: %s", err, out)
	}
	s := string(out)
	m, p := rpsRe.FindStringSubmatch(s), p99Re.FindStringSubmatch(s)
	if m == nil || p == nil {
		return result{}, fmt.Errorf("wrk output not understood: %s", s)
	}
	var r result
	r.rps, _ = strconv.ParseFloat(m[1], 64)
	r.p99ms, _ = strconv.ParseFloat(p[1], 64)
	switch p[2] {
	case "us":
		r.p99ms /= 1000
	case "s":
		r.p99ms *= 1000
	}
	return r, nil
}

// startNginx runs nginx with one worker on core 0: one server per case, each mirroring
// to shadows[i] (none for ""). Upstream keep-alive everywhere: nginx at its best.
func startNginx(primary string, shadows, ports []string) (func(), error) {
	dir, err := os.MkdirTemp("", "benchmirror-nginx")
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "worker_processes 1;\nworker_cpu_affinity 01;\npid %s/nginx.pid;\nerror_log %s/error.log;\n", dir, dir)
	fmt.Fprintf(&b, "events { worker_connections 4096; }\nhttp {\n access_log off;\n client_body_temp_path %s;\n proxy_temp_path %s;\n", dir, dir)
	fmt.Fprintf(&b, " upstream primary { server %s; keepalive 64; }\n", primary)
	for i, s := range shadows {
		if s != "" {
			fmt.Fprintf(&b, " upstream shadow%d { server %s; keepalive 64; }\n", i, s)
		}
	}
	for i, s := range shadows {
		fmt.Fprintf(&b, " server {\n  listen %s;\n  proxy_http_version 1.1;\n  proxy_set_header Connection \"\";\n", ports[i])
		if s != "" {
			fmt.Fprintf(&b, "  location / { mirror /_mirror; mirror_request_body off; proxy_pass http://primary; }\n")
			fmt.Fprintf(&b, "  location = /_mirror { internal; proxy_pass http://shadow%d$request_uri; }\n", i)
		} else {
			fmt.Fprintf(&b, "  location / { proxy_pass http://primary; }\n")
		}
		b.WriteString(" }\n")
	}
	b.WriteString("}\n")
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(b.String()), 0o644); err != nil {
		return nil, err
	}
	cmd := start("0", "nginx", "-p", dir, "-c", conf, "-g", "daemon off;")
	return func() { cmd.Process.Signal(os.Interrupt); cmd.Wait(); os.RemoveAll(dir) }, nil
}

// profile starts a CPU profile of our proxy process for the coming wrk run when
// -cpuprofile is set, and returns the function that waits for it and writes it to
// DIR/<case>-<round>.pprof. Profiling costs our proxy a little: figures of such a run
// are for reading profiles, not for the targets.
func profile(ctx context.Context, pprofAddr, name string, dur time.Duration) func() {
	if profileDir == "" {
		return func() {}
	}
	done := make(chan []byte, 1)
	go func() {
		url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", pprofAddr, max(1, int(dur.Seconds())))
		var b []byte
		if resp, err := http.Get(url); err == nil {
			b, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		done <- b
	}()
	return func() {
		b := <-done
		os.MkdirAll(profileDir, 0o755)
		base := filepath.Join(profileDir, strings.ReplaceAll(name, " ", "-"))
		for n := 1; ; n++ {
			f := fmt.Sprintf("%s-%d.pprof", base, n)
			if _, err := os.Stat(f); err != nil {
				os.WriteFile(f, b, 0o644)
				return
			}
		}
	}
}

package main

import (
	"context"
	"fmt"
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
	ours, ctl := freePort(), freePort()
	proxy := start("0", self, "-role", "proxy", "-listen", ours, "-primary", "http://"+prim, "-control", ctl)
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
	var oursR, nginxR []result
	var drops []string
	for i, name := range cases {
		var targets []string
		if shadows[i] != "" {
			targets = []string{shadows[i]}
		}
		if err := c.SetShadow(ctx, targets); err != nil {
			return err
		}
		before, _ := c.Stats(ctx)
		r, err := median(ctx, "http://"+ours+"/", dur, conns)
		if err != nil {
			return fmt.Errorf("ours, %s: %w", name, err)
		}
		after, _ := c.Stats(ctx)
		oursR = append(oursR, r)
		drops = append(drops, fmt.Sprintf("queued %d, dropped %d, shed %d, shadow errors %d", after.Queued-before.Queued,
			after.Dropped-before.Dropped, after.Shed-before.Shed, after.ShadowErrors-before.ShadowErrors))
		c.Off(ctx)
		time.Sleep(300 * time.Millisecond)
		r, err = median(ctx, "http://"+nginxPorts[i]+"/", dur, conns)
		if err != nil {
			return fmt.Errorf("nginx, %s: %w", name, err)
		}
		nginxR = append(nginxR, r)
	}
	report(oursR, nginxR, drops, dur, conns)
	return nil
}

func report(ours, ngx []result, drops []string, dur time.Duration, conns int) {
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("\nwrk -t1 -c%d -d%s on core 1 (median of %d runs); proxies and backends on core 0; SCHED_RR %v; load average %s\n\n",
		conns, dur, max(1, repeats), realtime, strings.Fields(string(load) + " ?")[0])
	fmt.Printf("| case | ours req/s | ours p99 ms | nginx req/s | nginx p99 ms | our mirror queue |\n|---|---:|---:|---:|---:|---|\n")
	for i, name := range cases {
		fmt.Printf("| %s | %.0f | %.2f | %.0f | %.2f | %s |\n", name, ours[i].rps, ours[i].p99ms, ngx[i].rps, ngx[i].p99ms, drops[i])
	}
	base := ours[0]
	fmt.Println()
	for i := 1; i < len(cases); i++ {
		cost := 1 - ours[i].rps/base.rps
		limit, p99ok := 0.10, ours[i].p99ms-base.p99ms <= 0.5
		if i == 1 {
			limit, p99ok = 0.30, true
		}
		ok := "OK"
		if cost > limit || !p99ok {
			ok = "MISSED"
		}
		fmt.Printf("target %-14s throughput cost %5.1f%% (limit %.0f%%), p99 %+.2f ms: %s\n", name(i)+":", 100*cost, 100*limit, ours[i].p99ms-base.p99ms, ok)
	}
}

func name(i int) string { return cases[i] }

var (
	rpsRe = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	p99Re = regexp.MustCompile(`\n\s+99%\s+([0-9.]+)(us|ms|s)`)
)

// median runs wrk repeats times and returns the run with the median req/s.
func median(ctx context.Context, url string, dur time.Duration, conns int) (result, error) {
	var rs []result
	for range max(1, repeats) {
		r, err := wrk(ctx, url, dur, conns)
		if err != nil {
			return r, err
		}
		rs = append(rs, r)
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].rps < rs[j].rps })
	return rs[len(rs)/2], nil
}

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

package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/immunity-app/immunity/store"
)

// check is what the store says of the acknowledged deliveries.
type check struct {
	acked, stored, handled, lost, doubled int
	states                                map[string]int
}

// checkStore opens the stopped servers' database (a SQLite file or a PostgreSQL URL):
// every acknowledged delivery must be there once and handled; a bench delivery there that
// was not acknowledged, or one marked a duplicate (each was unique), is doubled.
func checkStore(database string, acked []string) (check, error) {
	ctx := context.Background()
	st, err := store.Open(ctx, database)
	if err != nil {
		return check{}, err
	}
	defer st.Close()
	ds, err := st.Deliveries(ctx)
	if err != nil {
		return check{}, err
	}
	c := check{acked: len(acked), states: map[string]int{}}
	want := make(map[string]bool, len(acked))
	for _, id := range acked {
		if want[id] {
			c.doubled++ // answered 2xx twice: cannot happen, each id is sent once
		}
		want[id] = true
	}
	seen := map[string]int{}
	for _, d := range ds {
		if !strings.HasPrefix(d.ID, "bench-") {
			continue
		}
		seen[d.ID]++
		c.states[d.State]++
		switch {
		case !want[d.ID] || d.State == "duplicate" || seen[d.ID] > 1:
			c.doubled++
		case d.State == "done":
			c.stored++
			c.handled++
		default:
			c.stored++
		}
	}
	for id := range want {
		if seen[id] == 0 {
			c.lost++
		}
	}
	return c, nil
}

func report(rows []row, checks []check, dur time.Duration, conns, rate int) {
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("\nwebhook ingest: signed push deliveries (unconfigured repo), %d keep-alive connections (shared among replicas), %s a phase, loopback; load average %s\n\n",
		conns, dur, strings.Join(strings.Fields(string(load))[:3], " "))
	fmt.Printf("| server | phase | sent | 2xx | not 2xx | deliveries/s | p50 ms | p99 ms | max ms | server CPU µs/delivery |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rows {
		fmt.Printf("| %s | %s | %d | %d | %d | %.0f | %.2f | %.2f | %.1f | %.0f |\n", r.target, r.mode, r.sent, r.ok, r.failed, r.rps, ms(r.p50), ms(r.p99), ms(r.max), float64(r.cpuPer)/float64(time.Microsecond))
	}
	bareMax, oursMax, oursFixed := rows[0], rows[2], rows[3]
	ratio := oursMax.rps / bareMax.rps
	fmt.Println()
	for i, c := range checks {
		fmt.Printf("store of %s: %d acknowledged, %d recorded, %d handled (states %v), %d lost, %d doubled\n", rows[2+2*i].target, c.acked, c.stored, c.handled, c.states, c.lost, c.doubled)
	}
	fmt.Println()
	c := checks[0]
	for _, o := range checks[1:] {
		c.acked, c.stored, c.handled, c.lost, c.doubled = c.acked+o.acked, c.stored+o.stored, c.handled+o.handled, c.lost+o.lost, c.doubled+o.doubled
	}
	verdict := func(ok bool) string { return map[bool]string{true: "OK", false: "MISSED"}[ok] }
	fmt.Printf("target max >= 3000/s:          %.0f/s: %s\n", oursMax.rps, verdict(oursMax.rps >= 3000))
	fmt.Printf("target >= 0.4x bare server:    %.2fx: %s\n", ratio, verdict(ratio >= 0.4))
	fmt.Printf("target p99 < 10 ms at %d/s:  %.2f ms: %s\n", rate, ms(oursFixed.p99), verdict(oursFixed.p99 < 10*time.Millisecond && oursFixed.failed == 0))
	fmt.Printf("target 0 lost, 0 doubled:      %d lost, %d doubled: %s\n", c.lost, c.doubled, verdict(c.lost == 0 && c.doubled == 0 && c.handled == c.acked))
	summary("ingest", "deliveries/s (max)", fmt.Sprintf("%.0f", oursMax.rps), fmt.Sprintf("%.0f", bareMax.rps), "bare HMAC net/http", ">= 3000 and >= 0.4x", oursMax.rps >= 3000 && ratio >= 0.4)
	summary("ingest", fmt.Sprintf("p99 ms at %d/s", rate), fmt.Sprintf("%.2f", ms(oursFixed.p99)), fmt.Sprintf("%.2f", ms(rows[1].p99)), "bare HMAC net/http", "< 10", oursFixed.p99 < 10*time.Millisecond)
	summary("ingest", "server CPU µs/delivery (max)", fmt.Sprintf("%.0f", float64(oursMax.cpuPer)/float64(time.Microsecond)), fmt.Sprintf("%.0f", float64(bareMax.cpuPer)/float64(time.Microsecond)), "bare HMAC net/http", "none (compared)", true)
	for i := 4; i+1 < len(rows); i += 2 {
		summary("ingest", "deliveries/s (max), "+strings.TrimPrefix(rows[i].target, "immunity serve "), fmt.Sprintf("%.0f", rows[i].rps), fmt.Sprintf("%.0f", oursMax.rps), oursMax.target, "none (compared)", true)
		summary("ingest", fmt.Sprintf("p99 ms at %d/s, ", rate)+strings.TrimPrefix(rows[i+1].target, "immunity serve "), fmt.Sprintf("%.2f", ms(rows[i+1].p99)), fmt.Sprintf("%.2f", ms(oursFixed.p99)), oursMax.target, "none (compared)", true)
	}
	summary("ingest", "lost / doubled (store)", fmt.Sprintf("%d / %d", c.lost, c.doubled), "0 / 0", "", "0 / 0", c.lost == 0 && c.doubled == 0 && c.handled == c.acked)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// summary prints one line that bench/all gathers into its table.
func summary(bench, figure, ours, base, baseName, target string, ok bool) {
	fmt.Printf("SUMMARY\t%s\t%s\t%s\t%s\t%s\t%s\t%t\n", bench, figure, ours, base, baseName, target, ok)
}

package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// generator sends deliveries and times their answers.
type generator struct {
	tmpl   []byte
	secret []byte
	seq    atomic.Uint64
	phases int
}

// row is one phase against one server.
type row struct {
	target, mode     string
	sent, ok, failed int
	rps              float64
	cpuPer           time.Duration // the server's CPU time per 2xx
	p50, p99, max    time.Duration
	acked            []string // delivery ids answered 2xx
	statuses         map[int]int
}

// run sends deliveries to urls (in turn: replicas behind a load balancer) for dur over
// conns connections: back to back when rate is 0, else rate a second, each timed from when
// it was due.
func (g *generator) run(urls []string, dur time.Duration, conns, rate int) row {
	g.phases++
	phase := fmt.Sprint(g.phases)
	perHost := max(1, conns/len(urls))
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxConnsPerHost: perHost, MaxIdleConnsPerHost: perHost, DisableCompression: true}}
	due := make(chan time.Time, 1<<20)
	start := time.Now()
	end := start.Add(dur)
	if rate > 0 {
		go func() {
			defer close(due)
			every := time.Second / time.Duration(rate)
			for t := start; t.Before(end); t = t.Add(every) {
				time.Sleep(time.Until(t))
				due <- t
			}
		}()
	}
	var (
		mu  sync.Mutex
		lat []time.Duration
		r   = row{mode: "max (closed loop)", statuses: map[int]int{}}
		n   atomic.Int64
		wg  sync.WaitGroup
	)
	if rate > 0 {
		r.mode = fmt.Sprintf("fixed %d/s", rate)
	}
	for c := range conns {
		url := urls[c%len(urls)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				var at time.Time
				if rate > 0 {
					t, ok := <-due
					if !ok {
						return
					}
					at = t
				} else if at = time.Now(); at.After(end) {
					return
				}
				id, body, sig := g.delivery(phase, int(n.Add(1)))
				req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-GitHub-Event", "push")
				req.Header.Set("X-GitHub-Delivery", id)
				req.Header.Set("X-Hub-Signature-256", sig)
				resp, err := client.Do(req)
				code := 0
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					code = resp.StatusCode
				}
				took := time.Since(at)
				mu.Lock()
				r.sent++
				r.statuses[code]++
				if code >= 200 && code < 300 {
					r.ok++
					r.acked = append(r.acked, id)
					lat = append(lat, took)
				} else {
					r.failed++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	r.rps = float64(r.ok) / elapsed.Seconds()
	slices.Sort(lat)
	if len(lat) > 0 {
		r.p50, r.p99, r.max = lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1]
	}
	client.CloseIdleConnections()
	return r
}

package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// stateCollector reads, at each scrape, what must be true after a restart: the release
// live on each host, the locks held, the runs in flight.
type stateCollector struct {
	eng                    engine
	release, locks, flying *prometheus.Desc
	up                     *prometheus.Desc
}

func newStateCollector(eng engine) *stateCollector {
	return &stateCollector{eng: eng,
		release: prometheus.NewDesc("immunity_release_info", "1 for the release live on each host (alert when it is not the one you expect).", []string{"app", "region", "host", "sha"}, nil),
		locks:   prometheus.NewDesc("immunity_locks_held", "1 for each region held by a lock (a deploy freeze), 0 otherwise.", []string{"app", "region"}, nil),
		flying:  prometheus.NewDesc("immunity_runs_in_flight", "Runs not yet finished, by app and state.", []string{"app", "state"}, nil),
		up:      prometheus.NewDesc("immunity_state_scrape_ok", "1 when the pipeline's state could be read for this scrape.", nil, nil),
	}
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.release
	ch <- c.locks
	ch <- c.flying
	ch <- c.up
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := c.eng.Status(ctx, "")
	runs, rerr := c.eng.Runs(ctx, "", true, 0)
	ok := 1.0
	if err != nil || rerr != nil {
		ok = 0
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, ok)
	for _, a := range st {
		for _, r := range a.Regions {
			for host, sha := range r.Live {
				if sha != "" {
					ch <- prometheus.MustNewConstMetric(c.release, prometheus.GaugeValue, 1, a.App, r.Name, host, sha)
				}
			}
			held := 0.0
			if r.Lock != nil {
				held = 1
			}
			ch <- prometheus.MustNewConstMetric(c.locks, prometheus.GaugeValue, held, a.App, r.Name)
		}
	}
	type key struct{ app, state string }
	n := map[key]int{}
	for _, r := range runs {
		n[key{r.App, string(r.State)}]++
	}
	for k, v := range n {
		ch <- prometheus.MustNewConstMetric(c.flying, prometheus.GaugeValue, float64(v), k.app, k.state)
	}
}

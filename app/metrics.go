package app

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// storeCollector exposes the pipeline's state as Prometheus metrics.
type storeCollector struct {
	eng  engine
	runs *prometheus.Desc
}

func newStoreCollector(eng engine) *storeCollector {
	return &storeCollector{eng: eng, runs: prometheus.NewDesc("immunity_runs_in_flight", "Runs not yet finished, by app and state.", []string{"app", "state"}, nil)}
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.runs }

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	runs, err := c.eng.Runs(ctx, "", true, 0)
	if err != nil {
		return
	}
	type key struct{ app, state string }
	n := map[key]int{}
	for _, r := range runs {
		n[key{r.App, r.State}]++
	}
	for k, v := range n {
		ch <- prometheus.MustNewConstMetric(c.runs, prometheus.GaugeValue, float64(v), k.app, k.state)
	}
}

package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/immunity-app/immunity/store"
)

// outboxCollector reads the store's outbox at scrape time: how many Slack and GitHub
// effects wait, and for how long the oldest has.
type outboxCollector struct {
	st            *store.Store
	depth, oldest *prometheus.Desc
}

// NewOutboxCollector reports the outbox of st (register it with Metrics.Register).
func NewOutboxCollector(st *store.Store) prometheus.Collector {
	return &outboxCollector{st: st,
		depth:  prometheus.NewDesc("immunity_outbox_depth", "Slack and GitHub effects recorded and not yet delivered, by service.", []string{"service"}, nil),
		oldest: prometheus.NewDesc("immunity_outbox_oldest_seconds", "Age of the oldest effect waiting to be delivered, by service (0 when none waits).", []string{"service"}, nil),
	}
}

func (c *outboxCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.depth
	ch <- c.oldest
}

func (c *outboxCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	stats, err := c.st.OutboxStats(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.depth, err)
		return
	}
	seen := map[string]bool{}
	for _, s := range stats {
		seen[s.Service] = true
		ch <- prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(s.Depth), s.Service)
		ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, s.Oldest.Seconds(), s.Service)
	}
	for _, svc := range []string{"slack", "github"} {
		if !seen[svc] {
			ch <- prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, 0, svc)
			ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, 0, svc)
		}
	}
}

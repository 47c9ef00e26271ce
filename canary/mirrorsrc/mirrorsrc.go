// Package mirrorsrc is the metric source made of the traffic mirror's own records: each
// request mirrored during the interval is one trial on both sides, answered by
// production (the baseline: the primary's status and latency) and by the canary (the
// shadow's). Both sides see exactly the same requests, so the comparison holds even for
// apps without a /metrics endpoint.
//
// error_rate: 5xx answers (and, for the canary, transport errors and timeouts) out of
// the mirrored requests. latency: each request's latency in seconds. mismatch_rate: the
// canary answered with another status (or body, when the mirror compares bodies); the
// baseline's is 0 by definition.
package mirrorsrc

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/immunity-app/immunity/canary/measure"
	"github.com/immunity-app/immunity/canary/mirror"
	"github.com/immunity-app/immunity/deployers"
	"github.com/immunity-app/immunity/pipeline/judge"
)

// Source reads the records of the mirrors in front of a window's baseline hosts.
type Source struct {
	lookup func(deployers.Host) *mirror.Proxy
	mu     sync.Mutex
	after  map[*mirror.Proxy]uint64 // last record seen per proxy
}

// New returns a source for one window; lookup finds a baseline host's mirror
// (mirror.Registry.Lookup).
func New(lookup func(deployers.Host) *mirror.Proxy) *Source {
	return &Source{lookup: lookup, after: map[*mirror.Proxy]uint64{}}
}

// Measure turns the records made since the previous call into the interval's data.
func (s *Source) Measure(ctx context.Context, w measure.Window, from, to time.Time) (judge.Input, error) {
	in := measure.Empty()
	canary := map[string]bool{}
	for _, h := range w.Canary {
		canary[strings.TrimRight(h.URL, "/")] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var missing []string
	for _, h := range w.Baseline {
		p := s.lookup(h)
		if p == nil {
			missing = append(missing, h.String())
			continue
		}
		last, primed := s.after[p]
		if !primed {
			s.after[p] = p.Stats().LastSeq
			continue
		}
		for _, r := range p.Records(last) {
			s.after[p] = r.Seq
			if canary[r.Target] {
				add(w.Metrics, r, in)
			}
		}
	}
	for _, m := range w.Metrics {
		b, c := in.Baseline[m.Name], in.Canary[m.Name]
		switch {
		case m.Name != measure.ErrorRate && m.Name != measure.Latency && m.Name != measure.MismatchRate:
			b.Err = "the mirror source knows error_rate, latency and mismatch_rate, not " + m.Name
			c.Err = b.Err
		case len(missing) > 0:
			b.Err = fmt.Sprintf("no traffic mirror in front of %s", strings.Join(missing, ", "))
		}
		in.Baseline[m.Name], in.Canary[m.Name] = b, c
	}
	return in, nil
}

// add counts one mirrored request on both sides.
func add(ms []measure.Metric, r mirror.Record, in judge.Input) {
	for _, m := range ms {
		b, c := in.Baseline[m.Name], in.Canary[m.Name]
		switch m.Name {
		case measure.ErrorRate:
			b.Trials++
			c.Trials++
			b.Events += bit(r.Primary.Failed())
			c.Events += bit(r.Shadow.Failed())
		case measure.MismatchRate:
			b.Trials++
			c.Trials++
			c.Events += bit(!r.BodyMatch || !r.StatusMatch)
		case measure.Latency:
			b.PerRequest, c.PerRequest = true, true
			if r.Shadow.Err == "" {
				b.Values = append(b.Values, r.Primary.Latency.Seconds())
				c.Values = append(c.Values, r.Shadow.Latency.Seconds())
			}
		}
		in.Baseline[m.Name], in.Canary[m.Name] = b, c
	}
}

func bit(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

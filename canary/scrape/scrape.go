// Package scrape is the embedded default metric source: it reads each host's /metrics
// (the Prometheus exposition format, parsed with prometheus/common/expfmt) at the end of
// every interval and turns the change since the previous read into the interval's data.
//
// Each metric names its series with an exposition selector (measure.Spec.Scrape, such as
// http_requests_total{code=~"5.."}). A rate's events and trials are the increase of the
// matching counters, summed over the series and the side's hosts, and so are those of a
// gauge given as a share of counts (Spec.TrialsScrape set: a cache's hits of its
// lookups). Another latency or gauge metric over a histogram gives per-request samples
// reconstructed from the increase of its buckets (measure.Samples), or with a quantile
// that quantile per host and interval; over a gauge, its value per host and interval (a
// counter: its increase).
//
// The defaults: error_rate is http_requests_total{code=~"5.."} out of
// http_requests_total, latency is http_request_duration_seconds. When the canary only
// receives mirrored traffic (Window.Methods), only the series of the mirrored methods
// count, on both sides, since production's POSTs would make the two sides incomparable;
// a selector naming a method itself is left alone. A counter that went down (the app
// restarted) counts from zero, and so does the other of its events and trials
// (measure.Increase).
//
// A Scraper remembers the last read of each host, so a window uses its own Scraper.
package scrape

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/expfmt"

	"github.com/immunity-app/immunity/canary/measure"
	"github.com/immunity-app/immunity/deployers"
	"github.com/immunity-app/immunity/pipeline/judge"

	dto "github.com/prometheus/client_model/go"
)

// Scraper is a measure.Source reading hosts' /metrics.
type Scraper struct {
	HTTP *http.Client // default: 5s timeout
	Path string       // default /metrics

	mu   sync.Mutex
	last map[string]reading // by host URL
}

// New returns a scraper for one window.
func New(hc *http.Client) *Scraper {
	if hc == nil {
		hc = &http.Client{Timeout: 5 * time.Second}
	}
	return &Scraper{HTTP: hc, Path: "/metrics", last: map[string]reading{}}
}

// reading is one scrape of one host: its metric families by name.
type reading map[string]*dto.MetricFamily

// Measure scrapes every host of both sides and returns the interval's data.
func (s *Scraper) Measure(ctx context.Context, w measure.Window, from, to time.Time) (judge.Input, error) {
	in := measure.Empty()
	rules := map[string]rule{}
	for _, m := range w.Metrics {
		rules[m.Name] = ruleFor(m, w.Methods)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	side := func(hosts []deployers.Host, out map[string]judge.Data) {
		for _, h := range hosts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				now, err := s.read(ctx, h)
				mu.Lock()
				defer mu.Unlock()
				s.add(w.Metrics, rules, h, now, err, out)
			}()
		}
	}
	side(w.Baseline, in.Baseline)
	side(w.Canary, in.Canary)
	wg.Wait()
	return in, nil
}

// add folds one host's interval into its side's data.
func (s *Scraper) add(ms []measure.Metric, rules map[string]rule, h deployers.Host, now reading, err error, out map[string]judge.Data) {
	s.mu.Lock()
	before, seen := s.last[h.URL]
	if err == nil {
		s.last[h.URL] = now
	}
	s.mu.Unlock()
	for _, m := range ms {
		d := out[m.Name]
		switch {
		case err != nil:
			d.Err = join(d.Err, err.Error())
		case !seen:
			// First read of this host: it only sets where the counters stand.
		default:
			if e := rules[m.Name].apply(m.Metric, before, now, &d); e != "" {
				d.Err = join(d.Err, fmt.Sprintf("%s: %s", h, e))
			}
		}
		out[m.Name] = d
	}
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// read scrapes one host.
func (s *Scraper) read(ctx context.Context, h deployers.Host) (reading, error) {
	u := strings.TrimRight(h.URL, "/") + s.Path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("scrape %s %s: %w", h, u, err)
	}
	req.Header.Set("Accept", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
	resp, err := s.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", h, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s %s: %s", h, u, resp.Status)
	}
	dec := expfmt.NewDecoder(resp.Body, expfmt.ResponseFormat(resp.Header))
	r := reading{}
	for {
		mf := &dto.MetricFamily{}
		if err := dec.Decode(mf); err != nil {
			if errors.Is(err, io.EOF) {
				return r, nil
			}
			return nil, fmt.Errorf("scrape %s %s: parsing: %w", h, u, err)
		}
		r[mf.GetName()] = mf
	}
}

package canary

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/immunity-app/immunity/canary/measure"
	"github.com/immunity-app/immunity/pipeline"
	"github.com/immunity-app/immunity/pipeline/judge"
)

// aaWindow records an A/A window beside a monitoring window: the first baseline host
// against the second, both production hosts on the same release, measured by a source
// of their own each interval and written as the CSV samples `immunity judge` reads
// (time,metric,value; a rate, or a gauge given as a share of counts, as its .events and
// .trials). Nothing judges it; `immunity
// judge calibrate --recorded` turns such windows into allowances.
type aaWindow struct {
	w        measure.Window
	src      measure.Source
	start    time.Time
	every    time.Duration
	files    [2]*os.File
	out      [2]*bufio.Writer
	recorded bool // some interval has been written
	err      error
}

// newAAWindow opens the recording of req's A/A window in req.Calibrate:
// START.baseline.csv and START.canary.csv.
func newAAWindow(req pipeline.MonitorRequest, src measure.Source, start time.Time) (*aaWindow, error) {
	if len(req.Baseline) < 2 {
		return nil, errors.New("an A/A window needs two baseline hosts")
	}
	w := window(req)
	w.Region, w.Release = req.BaselineRegion, ""
	w.Baseline, w.Canary = req.Baseline[:1], req.Baseline[1:2]
	if err := os.MkdirAll(req.Calibrate, 0o755); err != nil {
		return nil, fmt.Errorf("record an A/A window: %w", err)
	}
	a := &aaWindow{w: w, src: src, start: start, every: req.Interval}
	stamp := start.UTC().Format("20060102T150405.000Z")
	for i, side := range []string{"baseline", "canary"} {
		f, err := os.Create(filepath.Join(req.Calibrate, fmt.Sprintf("%s.%s.csv", stamp, side)))
		if err != nil {
			a.close()
			return nil, fmt.Errorf("record an A/A window: %w", err)
		}
		a.files[i], a.out[i] = f, bufio.NewWriter(f)
		fmt.Fprintf(a.out[i], "# A/A window: %s/%s (as %s) against %s/%s, %s intervals\ntime,metric,value\n",
			w.BaselineRegion, req.Baseline[0].Name, side, w.BaselineRegion, req.Baseline[1].Name, req.Interval)
	}
	return a, nil
}

// prime primes the source, as a window's first measurement does.
func (a *aaWindow) prime(ctx context.Context, at time.Time) error {
	_, err := a.src.Measure(ctx, a.w, at, at)
	return err
}

// look measures interval k (1-based, ending at to) and writes it. Each row is stamped
// with its interval's planned end, except the first interval written, whose rows are
// stamped at its middle: a reader cuts intervals from the first row on, so every
// interval's rows fall in their own.
func (a *aaWindow) look(ctx context.Context, k int, from, to time.Time) error {
	in, err := a.src.Measure(ctx, a.w, from, to)
	if err != nil {
		return err
	}
	at := a.start.Add(time.Duration(k) * a.every)
	if !a.recorded {
		at = at.Add(-a.every / 2)
	}
	ts := at.UTC().Format(time.RFC3339Nano)
	for i, side := range []map[string]judge.Data{in.Baseline, in.Canary} {
		names := make([]string, 0, len(side))
		for n := range side {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			d := side[n]
			if d.Err != "" {
				continue
			}
			if a.counts(n) {
				a.row(i, ts, n+".events", d.Events)
				a.row(i, ts, n+".trials", d.Trials)
				continue
			}
			for _, v := range d.Values {
				a.row(i, ts, n, v)
			}
		}
	}
	a.recorded = true
	return a.err
}

// counts tells whether metric name's data are counts (measure.Metric.Counts).
func (a *aaWindow) counts(name string) bool {
	for _, m := range a.w.Metrics {
		if m.Name == name {
			return m.Counts()
		}
	}
	return false
}

func (a *aaWindow) row(side int, ts, metric string, v float64) {
	if _, err := fmt.Fprintf(a.out[side], "%s,%s,%s\n", ts, metric, strconv.FormatFloat(v, 'g', -1, 64)); err != nil && a.err == nil {
		a.err = err
	}
}

// close writes out and closes both files; a window with no interval written leaves
// none behind.
func (a *aaWindow) close() error {
	var errs []error
	for i, f := range a.files {
		if f == nil {
			continue
		}
		if a.out[i] != nil {
			errs = append(errs, a.out[i].Flush())
		}
		errs = append(errs, f.Close())
		if !a.recorded {
			os.Remove(f.Name())
		}
	}
	return errors.Join(errs...)
}

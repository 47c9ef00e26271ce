package canary

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/immunity-app/immunity/canary/measure"
	"github.com/immunity-app/immunity/pipeline/judge"
)

// run is one window in progress and its cumulative data.
type run struct {
	w   measure.Window
	src measure.Source
	seq *judge.Sequence
	cum judge.Input
	log *slog.Logger
}

// loop measures and looks every interval until a Fail, an Error (measurements failing
// MaxErrors times in a row) or the end.
func (r *run) loop(ctx context.Context, every time.Duration, looks int, look func(judge.Verdict)) (judge.Verdict, error) {
	prev := time.Now()
	if _, err := r.src.Measure(ctx, r.w, prev, prev); err != nil {
		r.log.Warn("priming the metric source failed", "err", err)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for i := 1; ; i++ {
		select {
		case <-ctx.Done():
			return judge.Verdict{Outcome: judge.Error, Reason: "the window was cancelled", Final: true}, ctx.Err()
		case now := <-t.C:
			in, err := r.src.Measure(ctx, r.w, prev, now)
			if err != nil {
				in = measure.Failed(r.w, err)
			}
			prev = now
			r.add(in)
			final := i >= looks
			v := r.seq.Look(r.cum, final)
			r.log.Info("canary look", "look", i, "of", looks, "outcome", v.Outcome, "score", v.Score)
			if final {
				return v, nil
			}
			if look != nil {
				look(v)
			}
			if v.Stop() {
				v.Final = true
				v.Reason = fmt.Sprintf("stopped at look %d of %d: %s", i, looks, v.Reason)
				return v, nil
			}
		}
	}
}

// add folds one interval into the cumulative data. A metric whose measurement failed in
// this interval carries the error to the judge for this look (the judge counts failures
// in a row and turns MaxErrors of them into an Error verdict); the counts and samples
// of the intervals that worked stay in the window.
func (r *run) add(in judge.Input) {
	fold := func(cum, next map[string]judge.Data) {
		for _, m := range r.w.Metrics {
			d, c := next[m.Name], cum[m.Name]
			c.Err = d.Err
			c.Events += d.Events
			c.Trials += d.Trials
			c.Values = append(c.Values, d.Values...)
			cum[m.Name] = c
		}
	}
	fold(r.cum.Baseline, in.Baseline)
	fold(r.cum.Canary, in.Canary)
}

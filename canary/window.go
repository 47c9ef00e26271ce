package canary

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/immunity-app/immunity/canary/measure"
	"github.com/immunity-app/immunity/pipeline/judge"
)

// run is one window in progress; its Sequence keeps the intervals measured so far.
type run struct {
	w   measure.Window
	src measure.Source
	seq *judge.Sequence
	log *slog.Logger
	aa  *aaWindow // the A/A window recorded beside this one, if any
}

// loop measures and looks every interval until a Fail, an Error (measurements failing
// MaxErrors times in a row) or the end.
func (r *run) loop(ctx context.Context, every time.Duration, looks int, look func(judge.Verdict)) (judge.Verdict, error) {
	prev := time.Now()
	if _, err := r.src.Measure(ctx, r.w, prev, prev); err != nil {
		r.log.WarnContext(ctx, "priming the metric source failed", "err", err)
	}
	if r.aa != nil {
		r.aa.start = prev
		if err := r.aa.prime(ctx, prev); err != nil {
			r.log.Warn("priming the A/A window's metric source failed", "err", err)
		}
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
			if r.aa != nil {
				if err := r.aa.look(ctx, i, prev, now); err != nil {
					r.log.Warn("an A/A interval was not recorded", "look", i, "err", err)
				}
			}
			prev = now
			final := i >= looks
			v := r.seq.Look(in, final)
			r.log.InfoContext(ctx, "canary look", "look", i, "of", looks, "outcome", v.Outcome, "score", v.Score)
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

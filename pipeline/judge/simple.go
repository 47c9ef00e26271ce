package judge

import "fmt"

// Options tune the judge.
type Options struct {
	// Alpha is the overall false-alarm rate allowed across every look of a window.
	Alpha float64
	// Looks is how many interim looks the window is planned to have (0: one final look).
	Looks int
}

// Judge compares baseline and canary once, as a final verdict.
func Judge(ms []Metric, in Input, o Options) Verdict {
	s := NewSequence(ms, o)
	return s.Look(in, true)
}

// Sequence judges a window look by look. In holds the cumulative data so far.
type Sequence struct {
	metrics []Metric
	opts    Options
}

// NewSequence starts a window.
func NewSequence(ms []Metric, o Options) *Sequence { return &Sequence{metrics: ms, opts: o} }

// Look judges the data gathered so far. A Fail before the final look stops the window early.
func (s *Sequence) Look(in Input, final bool) Verdict {
	v := Verdict{Outcome: Pass, Final: final}
	pass := 0
	for _, m := range s.metrics {
		b, c := in.Baseline[m.Name], in.Canary[m.Name]
		r := MetricResult{Name: m.Name, Kind: m.Kind, Critical: m.Critical, Outcome: Pass}
		switch m.Kind {
		case Rate:
			r.NBaseline, r.NCanary = int(b.Trials), int(c.Trials)
			if b.Trials > 0 {
				r.Baseline = b.Events / b.Trials
			}
			if c.Trials > 0 {
				r.Canary = c.Events / c.Trials
			}
			switch {
			case c.Trials < 20 || b.Trials < 20:
				r.Outcome, r.Why = Inconclusive, "fewer than 20 requests on a side"
			case r.Canary > r.Baseline*(1+m.AllowedEffect)+0.02:
				r.Outcome, r.Why = Fail, fmt.Sprintf("canary rate %.2f%% is above baseline %.2f%% by more than allowed", 100*r.Canary, 100*r.Baseline)
			default:
				r.Why = "within the allowed range"
			}
		default:
			r.NBaseline, r.NCanary = len(b.Values), len(c.Values)
			r.Baseline, r.Canary = mean(b.Values), mean(c.Values)
			switch {
			case len(b.Values) < 3 || len(c.Values) < 3:
				r.Outcome, r.Why = Inconclusive, "fewer than 3 samples on a side"
			case r.Canary > r.Baseline*(1.5+m.AllowedEffect):
				r.Outcome, r.Why = Fail, "canary mean more than 1.5x the baseline's"
			default:
				r.Why = "within the allowed range"
			}
		}
		if r.Baseline > 0 {
			r.Effect = r.Canary/r.Baseline - 1
		}
		switch r.Outcome {
		case Pass:
			pass++
		case Fail:
			v.Outcome = Fail
		case Inconclusive:
			if v.Outcome == Pass {
				v.Outcome = Inconclusive
			}
		}
		v.Metrics = append(v.Metrics, r)
	}
	if len(s.metrics) > 0 {
		v.Score = 100 * float64(pass) / float64(len(s.metrics))
	}
	v.Reason = string(v.Outcome)
	return v
}

func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

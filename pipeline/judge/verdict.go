package judge

import (
	"fmt"
	"strings"
)

// measurementError is a metric's result on a look whose measurement failed: Error once
// MaxErrors looks in a row failed, else the last good result (or Inconclusive), noted.
func (s *Sequence) measurementError(i int, m Metric, b, c Data) MetricResult {
	s.errRun[i]++
	msg := b.Err
	if msg == "" {
		msg = c.Err
	} else if c.Err != "" && c.Err != b.Err {
		msg += "; " + c.Err
	}
	run := fmt.Sprintf("%d in a row, %d allowed", s.errRun[i], s.opts.MaxErrors-1)
	if s.errRun[i] >= s.opts.MaxErrors {
		return MetricResult{Name: m.Name, Kind: m.Kind, Critical: m.Critical, Outcome: Error,
			Why: fmt.Sprintf("%s: measurement failed (%s): %s: %s", m.Name, run, msg, Error)}
	}
	if p := s.last[i]; p != nil {
		r := *p
		r.Why = fmt.Sprintf("%s (measurement failed, %s: %s; last good look shown)", r.Why, run, msg)
		return r
	}
	return MetricResult{Name: m.Name, Kind: m.Kind, Critical: m.Critical, Outcome: Inconclusive,
		Why: fmt.Sprintf("%s: measurement failed (%s): %s: %s", m.Name, run, msg, Inconclusive)}
}

// aggregate turns metric results into a verdict. In order: any metric in Error → Error;
// a critical metric failing, or the score below MarginalScore → Fail; a critical metric
// inconclusive, or no metric judged → Inconclusive; any metric failing or marginal, or
// the score below PassScore → Marginal; else Pass. The score is the share of metrics
// with data that are not failing (a marginal one is within its allowed effect, one the
// look cannot decide yet has nothing against it); metrics without enough data are left
// out, as Kayenta leaves out metrics without data.
func aggregate(rs []MetricResult, o Options) Verdict {
	v := Verdict{Metrics: rs}
	var points, judged float64
	var errs, critFail, fails, marg, critInc []string
	for _, r := range rs {
		switch r.Outcome {
		case Pass:
			points++
		case Marginal: // within the allowed effect: it counts as passing
			points++
			marg = append(marg, r.Name)
		case Fail:
			fails = append(fails, r.Name)
			if r.Critical {
				critFail = append(critFail, r.Name)
			}
		case Error:
			errs = append(errs, r.Name)
			continue
		case Inconclusive:
			if r.Critical {
				critInc = append(critInc, r.Name)
			}
			if !tested(r, o) {
				continue // no data: left out of the score
			}
			points++ // too early to decide: nothing against it yet
		}
		judged++
	}
	v.Score = 100
	if judged > 0 {
		v.Score = 100 * points / judged
	}
	switch {
	case len(errs) > 0:
		v.Outcome, v.Reason = Error, "measurements failed too often: "+list(errs)
	case len(critFail) > 0:
		v.Outcome, v.Reason = Fail, "critical metric failed: "+list(critFail)
	case judged > 0 && v.Score < o.MarginalScore:
		v.Outcome, v.Reason = Fail, fmt.Sprintf("score %.0f is below %.0f: failed %s", v.Score, o.MarginalScore, list(fails))
	case len(critInc) > 0:
		v.Outcome, v.Reason = Inconclusive, "not enough data for critical metric "+list(critInc)
	case judged == 0:
		v.Outcome, v.Reason = Inconclusive, "no metric had enough data"
	case len(fails) > 0:
		v.Outcome, v.Reason = Marginal, "non-critical metric failed: "+list(fails)
	case len(marg) > 0:
		v.Outcome, v.Reason = Marginal, "worse than the baseline but within the allowed effect: "+list(marg)
	case v.Score < o.PassScore:
		v.Outcome, v.Reason = Marginal, fmt.Sprintf("score %.0f is below %.0f", v.Score, o.PassScore)
	default:
		v.Outcome, v.Reason = Pass, fmt.Sprintf("all %d judged metrics within the allowed effect", int(judged))
	}
	return v
}

func list(names []string) string { return strings.Join(names, ", ") }

// Stop reports whether the window should end now: an interim Fail or Error.
func (v Verdict) Stop() bool { return v.Outcome == Fail || v.Outcome == Error }

// tested reports whether a metric had the data for a test, even if its look could not
// decide yet.
func tested(r MetricResult, o Options) bool {
	if r.NBaseline == 0 || r.NCanary == 0 {
		return false
	}
	return r.Kind == Rate || min(r.NBaseline, r.NCanary) >= o.MinSamples
}

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
		return MetricResult{Name: m.Name, Kind: m.Kind, Critical: m.Critical, Outcome: Error, Classification: Nodata,
			Reason: "measurement failed", Why: fmt.Sprintf("%s: measurement failed (%s): %s: %s", m.Name, run, msg, Error)}
	}
	if p := s.last[i]; p != nil {
		r := *p
		r.Why = fmt.Sprintf("%s (measurement failed, %s: %s; last good look shown)", r.Why, run, msg)
		return r
	}
	return MetricResult{Name: m.Name, Kind: m.Kind, Critical: m.Critical, Outcome: Pass, Classification: Nodata,
		Reason: "measurement failed", Why: fmt.Sprintf("%s: measurement failed (%s): %s: no data yet", m.Name, run, msg)}
}

// aggregate turns metric results into a verdict. In order: any metric in Error → Error;
// any metric flagged (High or Low), or failing for want of data under no_data: fail →
// Fail; on the final look a metric without data under no_data: inconclusive →
// Inconclusive, else Pass; on an interim look Marginal when a metric is worse so far,
// else Pass. The score is the share of metrics with data that are not flagged (Kayenta's
// score, for display: it decides nothing).
func aggregate(rs []MetricResult, final bool) Verdict {
	v := Verdict{Metrics: rs}
	var points, judged float64
	var errs, flagged, noData, inc, marg []string
	for _, r := range rs {
		switch {
		case r.Outcome == Error:
			errs = append(errs, r.Name)
			continue
		case r.Classification == Nodata:
			if r.Outcome == Fail {
				noData = append(noData, r.Name)
			}
			if r.Outcome == Inconclusive {
				inc = append(inc, r.Name)
			}
			continue
		case r.Outcome == Fail:
			flagged = append(flagged, r.Name)
		case r.Outcome == Marginal:
			marg = append(marg, r.Name)
			points++
		default:
			points++
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
	case len(flagged) > 0:
		v.Outcome, v.Reason = Fail, "worse beyond the allowed effect: "+list(flagged)
	case len(noData) > 0:
		v.Outcome, v.Reason = Fail, "no data, and no_data says fail: "+list(noData)
	case len(inc) > 0:
		v.Outcome, v.Reason = Inconclusive, "no data, and no_data says inconclusive: "+list(inc)
	case !final && len(marg) > 0:
		v.Outcome, v.Reason = Marginal, "worse so far, not flagged yet: "+list(marg)
	case !final:
		v.Outcome, v.Reason = Pass, fmt.Sprintf("nothing against the canary so far (%d metrics judged)", int(judged))
	default:
		v.Outcome, v.Reason = Pass, fmt.Sprintf("no metric worse beyond its allowed effect (%d judged)", int(judged))
	}
	v.Verdict = title(v.Outcome)
	return v
}

func list(names []string) string { return strings.Join(names, ", ") }

// Stop reports whether the window should end now: an interim Fail or Error.
func (v Verdict) Stop() bool { return v.Outcome == Fail || v.Outcome == Error }

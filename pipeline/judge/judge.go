// Package judge compares a canary's metrics with a baseline's over a monitoring window
// and says whether the canary is worse. It does no I/O: callers hand it each interval's
// measurements as they come (Sequence.Look), it hands back a verdict that explains itself
// metric by metric (MetricResult.Why, Verdict.Table).
//
// The data keep their structure: the window is a sequence of intervals (10 s by default),
// and both sides of an interval saw the same moment (the same mirrored traffic, the same
// warm-up). Every value metric is therefore judged on per-interval paired differences,
// never on one pool of samples:
//
//   - Per-request latency (Data.PerRequest: a histogram's requests, a mirror's records):
//     within each interval the canary's requests are ranked against the baseline's (the
//     Mann-Whitney probability P that a canary request is slower), and P is turned into
//     that interval's log-shift d = σ·√2·Φ⁻¹(P) with σ the interval's log-spread (exact
//     for a lognormal shift). The intervals are combined as strata, as van Elteren's test
//     combines them (stratified.go). Where the canary's requests are nearly all slower
//     than the baseline's, the ranks no longer tell how much, and the window's effect is
//     estimated from the intervals' medians instead ("medians within intervals").
//   - A gauge (one value per host and interval, a latency quantile from a query) gives
//     d = log(canary/baseline) for each interval (a plain difference relative to the
//     baseline's level when values are not all positive).
//   - A gauge given as counts (Data.Events of Data.Trials: a cache's hits of its requests)
//     is the share Events/Trials; its d is the log ratio of the shares, and it carries
//     the binomial sampling variance the counts show, so an interval of few requests, or
//     of a warm-up's lower share, weighs less than one of many (pairLevels).
//   - A gauge that is zero in most intervals (a queue depth with spikes) is judged on what
//     it holds: the intervals where only one side was non-zero, an exact sign test on those
//     episodes, and its effect is the ratio of non-zero shares, so an even split is never
//     significant (zeros.go).
//   - A rate (errors out of requests) keeps the exact conditional binomial test of the
//     window's counts, with bursts left out and extra-binomial variation allowed for
//     (counts.go, dispersion.go).
//
// The per-interval differences d of a value metric are not independent: each side drifts
// slowly on its own (a host's cache, its neighbours) and has its own bursts. The model
// (paired.go) is d = effect + offset + drift + noise + sampling: a host-to-host offset
// constant over the window, an AR(1) drift across intervals, independent per-interval
// noise, and the sampling variance each interval's data show. The effect is a Huber
// M-estimate over the intervals (a burst interval counts as a large residual, not as a
// regression) and its variance sums the four parts. Their sizes are the metric's
// Allowance, calibrated from the user's own A/A windows (Calibrate, `immunity judge
// calibrate`) and updated by what the window itself shows; the interval is Student's t
// with the degrees of freedom of both. Calibration then replays its A/A windows look by
// look through the judge: what the model leaves out (bursts it clips but cannot remove,
// a warm-up noisier than the rest of the window) shows as a standardized statistic that
// varies more than a standard normal, and its root mean square is the metric's
// Allowance.Inflation, by which its intervals are widened (a rate's events count for
// less).
//
// Decision: a metric is flagged (classification High or Low, outcome Fail) when its
// regression is significant at its share of the false-alarm budget and its estimated
// effect is beyond its allowed effect. Any flagged metric fails the verdict. The budget
// Alpha is split over the metrics by weighted Bonferroni (a critical metric gets 4
// shares), and each share is spent over the window's looks by a group-sequential
// alpha-spending function (bounds.go), so looking every interval keeps the overall
// false-alarm rate at Alpha. No metric is flagged before MinIntervals intervals (a run
// of bursts must not outvote the window), and the looks before then spend nothing. At the end of the window the verdict is Pass or Fail;
// Marginal is only an interim state (something is worse but not flagged yet); a metric
// without data gives Inconclusive (or Pass, or Fail) only as its no-data policy says,
// and Error means measurements failed MaxErrors looks in a row.
//
// Offline (RunOffline, `immunity judge`): two CSV files of recorded samples, columns
// time,metric,value (time in Unix seconds or RFC 3339; a header row is optional), are
// cut into intervals by their time column and replayed look by look through the same
// Sequence as a live window. A latency or gauge metric's rows are its samples (a latency
// metric with more than 2 rows an interval on average is taken as per-request samples).
// A rate metric NAME takes rows NAME.events and NAME.trials (the counts of the interval
// ending at time), or plain NAME rows, one per request, value 1 for an event and 0 for
// none. A gauge NAME takes NAME.events and NAME.trials rows the same way when it is a
// share of counts (hits of requests).
package judge

// Outcome is a verdict's or a metric's result.
type Outcome string

const (
	Pass         Outcome = "pass"
	Marginal     Outcome = "marginal" // interim only: worse so far, not flagged
	Fail         Outcome = "fail"
	Inconclusive Outcome = "inconclusive"
	Error        Outcome = "error"
)

// Classification is a metric's class in Kayenta's words.
type Classification string

const (
	High   Classification = "High"   // flagged: significantly higher, beyond the allowed effect
	Low    Classification = "Low"    // flagged: significantly lower, beyond the allowed effect
	Passed Classification = "Pass"   // not flagged
	Nodata Classification = "Nodata" // no data on a side
)

// Kind says how a metric's samples are compared.
type Kind string

const (
	// Latency metrics are durations: per-request samples (Data.PerRequest) or one value
	// per host and interval (a quantile, a mean).
	Latency Kind = "latency"
	// Rate metrics are counts of events out of trials (errors out of requests).
	Rate Kind = "rate"
	// Gauge metrics are per-interval values such as memory in use.
	Gauge Kind = "gauge"
)

// Direction says which change is bad.
type Direction string

const (
	Increase Direction = "increase" // higher is worse (errors, latency)
	Decrease Direction = "decrease" // lower is worse (signups)
	Either   Direction = "either"
)

// NoData says what a metric without data means at the end of the window.
type NoData string

const (
	NoDataInconclusive NoData = "inconclusive" // the verdict is Inconclusive: the stage does not pass
	NoDataPass         NoData = "pass"         // the metric is left out
	NoDataFail         NoData = "fail"         // the verdict is Fail
)

// Metric is how one metric is judged.
type Metric struct {
	Name      string
	Kind      Kind
	Direction Direction
	// AllowedEffect is the relative change tolerated before a metric counts against the
	// canary: 0.2 means 20% worse is still acceptable.
	AllowedEffect float64
	Critical      bool // gets 4 shares of the false-alarm budget instead of 1
	NoData        NoData
	// Unit prints values in explanations: s, ms, bytes, or any word ("req/s").
	Unit string
	// Allowance is how much two production hosts on the same release differ (calibrated).
	Allowance Allowance
}

// Allowance is what a metric varies between two hosts running the same release, as
// relative sizes (log scale for positive values): what the test must not mistake for a
// regression. Calibrate estimates it from recorded A/A windows; the zero value assumes
// nothing and the window's own data decide the noise.
type Allowance struct {
	Noise     float64 `json:"noise,omitempty" yaml:"noise,omitempty"`           // sd of independent per-interval differences
	Drift     float64 `json:"drift,omitempty" yaml:"drift,omitempty"`           // sd of the slow AR(1) drift of the difference
	DriftCorr float64 `json:"drift_corr,omitempty" yaml:"drift_corr,omitempty"` // the drift's correlation from one interval to the next
	Offset    float64 `json:"offset,omitempty" yaml:"offset,omitempty"`         // sd of a host-to-host difference constant over a window
	// Dispersion (rates) is how many times more per-interval event counts vary than
	// independent events would (1 or more).
	Dispersion float64 `json:"dispersion,omitempty" yaml:"dispersion,omitempty"`
	// Inflation (1 or more) is how many times wider than the model says the judge's
	// intervals must be to hold their level on the A/A windows it was calibrated on: the
	// root mean square of the standardized statistic over every look of those windows
	// replayed (bursts the model clips but cannot remove, a warm-up noisier than the
	// rest, a dispersion that differs from interval to interval). A rate's counts are
	// weighed as 1/Inflation² of an event each.
	Inflation float64 `json:"inflation,omitempty" yaml:"inflation,omitempty"`
	// Windows is how many A/A windows the allowance was estimated from; it weighs the
	// allowance against the window's own data.
	Windows int `json:"windows,omitempty" yaml:"windows,omitempty"`
}

// Data is one side's measurement of one metric over one interval.
type Data struct {
	// Values are the samples of a Latency or Gauge metric: one per host, or with
	// PerRequest one per request.
	Values     []float64 `json:"values,omitempty"`
	PerRequest bool      `json:"per_request,omitempty"`
	// Events and Trials are the counts of a Rate metric (errors, requests), or of a Gauge
	// that is a share of counts (a cache's hits of its requests; no Values).
	Events float64 `json:"events,omitempty"`
	Trials float64 `json:"trials,omitempty"`
	// Err is set when this measurement failed.
	Err string `json:"err,omitempty"`
}

// Input is one interval's measurements: per metric name, the baseline's and the canary's.
type Input struct {
	Baseline map[string]Data
	Canary   map[string]Data
}

// MetricResult explains one metric's part in a verdict.
type MetricResult struct {
	Name           string         `json:"name"`
	Kind           Kind           `json:"kind"`
	Outcome        Outcome        `json:"outcome"`
	Classification Classification `json:"classification,omitempty"`
	Baseline       float64        `json:"baseline"` // typical value (median of interval levels), or event rate
	Canary         float64        `json:"canary"`
	// Effect is the relative change canary vs baseline (0.25 = 25% higher): a ratio for
	// positive values, a shift over the baseline's level for others, the ratio of event
	// rates for rates, the ratio of non-zero shares for a mostly-zero gauge. Capped at
	// 1e9 (printed ∞).
	Effect    float64 `json:"effect"`
	Low       float64 `json:"low"` // the look's confidence interval of Effect
	High      float64 `json:"high"`
	NBaseline int     `json:"n_baseline"` // samples, or trials for rates
	NCanary   int     `json:"n_canary"`
	Intervals int     `json:"intervals,omitempty"` // intervals with data on both sides
	// Test names the comparison: stratified ranks, paired intervals, non-zero intervals,
	// counts.
	Test string `json:"test,omitempty"`
	// EventsBaseline and EventsCanary are a rate's event counts, or a share gauge's
	// (Share: its hits of NBaseline and NCanary requests over the window; Baseline and
	// Canary are then, as for any gauge, the median of the intervals' shares).
	EventsBaseline int  `json:"events_baseline,omitempty"`
	EventsCanary   int  `json:"events_canary,omitempty"`
	Share          bool `json:"share,omitempty"`
	// Dispersion is how many times more a rate's counts varied between intervals than
	// independent events would (1 or more; 0 when not estimated); the test allowed for it.
	Dispersion float64 `json:"dispersion,omitempty"`
	// Bursts is how many intervals of a rate were left out of its test as bursts, and
	// BurstEvents how many events they held (both sides); Effect is without them.
	Bursts      int    `json:"bursts,omitempty"`
	BurstEvents int    `json:"burst_events,omitempty"`
	Unit        string `json:"unit,omitempty"`
	Critical    bool   `json:"critical"`
	Why         string `json:"why"`
	Reason      string `json:"reason,omitempty"` // the rule that decided, as in Why
}

// Verdict is the judge's answer.
type Verdict struct {
	Outcome Outcome `json:"outcome"`
	// Verdict is Outcome in Kayenta's words: Pass, Marginal, Fail, Inconclusive, Error.
	Verdict string         `json:"verdict,omitempty"`
	Score   float64        `json:"score"` // 0-100: share of judged metrics not flagged
	Reason  string         `json:"reason"`
	Metrics []MetricResult `json:"metrics"`
	Final   bool           `json:"final"`           // false for an interim look during the window
	Look    int            `json:"look,omitempty"`  // 1-based look of the window
	Looks   int            `json:"looks,omitempty"` // planned looks (Options.Looks)
}

// title is an outcome as a verdict word.
func title(o Outcome) string {
	switch o {
	case Pass:
		return "Pass"
	case Marginal:
		return "Marginal"
	case Fail:
		return "Fail"
	case Inconclusive:
		return "Inconclusive"
	case Error:
		return "Error"
	}
	return string(o)
}

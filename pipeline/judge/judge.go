// Package judge compares a canary's metrics with a baseline's and says whether the canary
// is worse: Pass, Marginal, Fail, Inconclusive (not enough data) or Error (the
// measurements failed). It does no I/O: callers hand it samples, it hands back a verdict
// that explains itself metric by metric (MetricResult.Why, Verdict.Table).
//
// The model, per metric:
//
//   - Latency and gauge metrics are samples (per request, or one value per interval).
//     The canary is compared with the Mann-Whitney rank test and the effect is the
//     Hodges-Lehmann estimate with its confidence interval, as Kayenta does: for positive
//     values as a ratio (canary/baseline - 1), otherwise as a shift relative to the
//     baseline's median. Below 50 values a side without ties the interval is exact.
//   - Rate metrics are events out of trials (errors out of requests), compared with the
//     conditional binomial test and its exact interval on the ratio of the two rates, so
//     3 errors against 0 at low traffic weigh as the 3 events they are. Intervals with a
//     burst of events are left out and extra-binomial variation is allowed for (dispersion.go).
//   - A metric fails when the canary is significantly worse (its interval excludes no
//     change in the bad direction) and its estimated effect is beyond the metric's
//     allowed effect; significantly worse but within the allowed effect is Marginal.
//     Without data, the metric's no-data policy decides on the final look.
//
// Many metrics and many looks: the overall false-alarm rate Alpha is split over the
// metrics (weighted Bonferroni, a critical metric counting 4 times), and each metric's
// share is spent over the window's looks with a group-sequential alpha-spending function
// (bounds.go), so a window looked at every interval fails a canary that is no different
// at most Alpha of the time, while a clearly bad canary fails at an early look. The
// interval shown at each look is the look's repeated confidence interval.
//
// The verdict: Error when a metric's measurement failed MaxErrors looks in a row; Fail
// when a critical metric fails or the Kayenta-style score (the share of judged metrics
// not failing) is below MarginalScore; Inconclusive when a critical metric
// has too little data; Marginal when any metric is marginal or a non-critical one fails;
// else Pass.
//
// Offline (RunOffline, `immunity judge`): two CSV files of recorded samples, columns
// time,metric,value (time in Unix seconds or RFC 3339; a header row is optional), are
// replayed look by look through the same Sequence as a live window, one look per 10 s
// interval from the earliest sample. A latency or gauge metric's rows are its samples.
// A rate metric NAME takes rows NAME.events and NAME.trials (the counts of the interval
// ending at time), or plain NAME rows, one per request, value 1 for an event and 0 for
// none.
package judge

// Outcome is a verdict's result.
type Outcome string

const (
	Pass         Outcome = "pass"
	Marginal     Outcome = "marginal"
	Fail         Outcome = "fail"
	Inconclusive Outcome = "inconclusive"
	Error        Outcome = "error"
)

// Kind says how a metric's samples are compared.
type Kind string

const (
	// Latency metrics are distributions of values (per-request or per-interval durations).
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

// NoData says what a metric without data means.
type NoData string

const (
	NoDataInconclusive NoData = "inconclusive"
	NoDataPass         NoData = "pass"
	NoDataFail         NoData = "fail"
)

// Metric is how one metric is judged.
type Metric struct {
	Name      string
	Kind      Kind
	Direction Direction
	// AllowedEffect is the relative change tolerated before a metric counts against the
	// canary: 0.2 means 20% worse is still acceptable.
	AllowedEffect float64
	Critical      bool // a failing critical metric fails the whole verdict
	NoData        NoData
	// Unit prints values in explanations: s, ms, bytes, or any word ("req/s").
	Unit string
}

// Data is one side's measurements of one metric.
type Data struct {
	// Values are the samples of a Latency or Gauge metric.
	Values []float64 `json:"values,omitempty"`
	// Events and Trials are the counts of a Rate metric (errors, requests).
	Events float64 `json:"events,omitempty"`
	Trials float64 `json:"trials,omitempty"`
	// Err is set when this measurement failed.
	Err string `json:"err,omitempty"`
}

// Input is what the judge looks at: per metric name, the baseline's and the canary's data.
type Input struct {
	Baseline map[string]Data
	Canary   map[string]Data
}

// MetricResult explains one metric's part in a verdict.
type MetricResult struct {
	Name     string  `json:"name"`
	Kind     Kind    `json:"kind"`
	Outcome  Outcome `json:"outcome"`
	Baseline float64 `json:"baseline"` // median value, or event rate
	Canary   float64 `json:"canary"`
	// Effect is the relative change canary vs baseline (0.25 = 25% higher): the
	// Hodges-Lehmann ratio for positive values, the shift over the baseline's median for
	// others, the ratio of event rates for rates. Capped at 1e9 (printed ∞).
	Effect    float64 `json:"effect"`
	Low       float64 `json:"low"` // the look's confidence interval of Effect
	High      float64 `json:"high"`
	NBaseline int     `json:"n_baseline"` // samples, or trials for rates
	NCanary   int     `json:"n_canary"`
	// EventsBaseline and EventsCanary are a rate's event counts.
	EventsBaseline int `json:"events_baseline,omitempty"`
	EventsCanary   int `json:"events_canary,omitempty"`
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
}

// Verdict is the judge's answer.
type Verdict struct {
	Outcome Outcome        `json:"outcome"`
	Score   float64        `json:"score"` // 0-100 (Kayenta style): share of judged metrics not failing
	Reason  string         `json:"reason"`
	Metrics []MetricResult `json:"metrics"`
	Final   bool           `json:"final"`           // false for an interim look during the window
	Look    int            `json:"look,omitempty"`  // 1-based look of the window
	Looks   int            `json:"looks,omitempty"` // planned looks (Options.Looks)
}

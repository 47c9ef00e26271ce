// Package judge compares a canary's metrics with a baseline's and says whether the canary
// is worse: Pass, Marginal, Fail, Inconclusive (not enough data) or Error (the
// measurements failed). It does no I/O: callers hand it samples, it hands back a verdict
// that explains itself metric by metric.
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
	Score   float64        `json:"score"` // 0-100 (Kayenta style): pass 1, marginal 1/2, fail 0
	Reason  string         `json:"reason"`
	Metrics []MetricResult `json:"metrics"`
	Final   bool           `json:"final"`           // false for an interim look during the window
	Look    int            `json:"look,omitempty"`  // 1-based look of the window
	Looks   int            `json:"looks,omitempty"` // planned looks (Options.Looks)
}

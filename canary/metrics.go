package canary

import (
	"github.com/immunity-app/immunity/canary/measure"
	"github.com/immunity-app/immunity/pipeline/judge"
)

// DefaultMetrics are judged when an app configures none. Both read the sample app's
// standard series (see canary/measure):
//   - error_rate (Rate, critical): 5xx requests out of all requests (GET and HEAD, the
//     methods mirrored), summed over the window's intervals; 20% worse is still allowed.
//   - latency (Latency, seconds): per-request durations reconstructed from the
//     histogram's bucket deltas, so the judge ranks requests rather than a handful of
//     per-interval means; 20% worse is still allowed.
//
// The values match pipeline's defaults (App.JudgeMetrics).
func DefaultMetrics() []judge.Metric {
	return []judge.Metric{
		{Name: measure.ErrorRate, Kind: judge.Rate, Direction: judge.Increase, AllowedEffect: 0.2,
			Critical: true, NoData: judge.NoDataInconclusive},
		{Name: measure.Latency, Kind: judge.Latency, Direction: judge.Increase, AllowedEffect: 0.2,
			NoData: judge.NoDataInconclusive, Unit: "s"},
	}
}

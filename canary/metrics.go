package canary

import (
	"github.com/immunity-app/immunity/canary/measure"
	"github.com/immunity-app/immunity/pipeline/judge"
)

// DefaultMetrics are judged when an app configures none. Both read the sample app's
// standard series (see canary/measure):
//   - error_rate (Rate, critical): 5xx requests out of all requests, summed over the
//     window's intervals; 50% relatively worse is still allowed.
//   - latency (Latency): per-request durations in seconds, reconstructed from the
//     histogram's bucket deltas, so the judge ranks requests rather than a handful of
//     per-interval means; 25% worse is still allowed.
func DefaultMetrics() []judge.Metric {
	return []judge.Metric{
		{Name: measure.ErrorRate, Kind: judge.Rate, Direction: judge.Increase, AllowedEffect: 0.5,
			Critical: true, NoData: judge.NoDataInconclusive},
		{Name: measure.Latency, Kind: judge.Latency, Direction: judge.Increase, AllowedEffect: 0.25,
			NoData: judge.NoDataInconclusive},
	}
}

package pipeline

import "github.com/immunity-app/immunity/pipeline/judge"

// JudgeMetrics is how the app's metrics are judged: its configured metrics, or the
// defaults for an app exposing http_requests_total and http_request_duration_seconds.
func (a *App) JudgeMetrics() []judge.Metric {
	if len(a.Metrics) == 0 {
		return []judge.Metric{
			{Name: "error_rate", Kind: judge.Rate, Direction: judge.Increase, AllowedEffect: 0.2, Critical: true, NoData: judge.NoDataInconclusive},
			{Name: "latency", Kind: judge.Latency, Direction: judge.Increase, AllowedEffect: 0.2, NoData: judge.NoDataInconclusive},
		}
	}
	var out []judge.Metric
	for _, m := range a.Metrics {
		out = append(out, judge.Metric{Name: m.Name, Kind: judge.Latency, Direction: judge.Increase, AllowedEffect: 0.2})
	}
	return out
}

package pipeline

import "github.com/immunity-app/immunity/pipeline/judge"

// AppMetrics are the app's configured metrics, or DefaultMetrics when it configures none.
func (a *App) AppMetrics() []Metric {
	if len(a.Metrics) == 0 {
		return DefaultMetrics()
	}
	return a.Metrics
}

// JudgeMetrics is how the app's metrics are judged.
func (a *App) JudgeMetrics() []judge.Metric {
	var out []judge.Metric
	for _, m := range a.AppMetrics() {
		out = append(out, m.Judge())
	}
	return out
}

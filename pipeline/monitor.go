package pipeline

import (
	"context"
	"path/filepath"
	"time"

	"github.com/immunity-app/immunity/deployers"
	"github.com/immunity-app/immunity/pipeline/config"
	"github.com/immunity-app/immunity/pipeline/judge"
)

// MonitorRequest asks for one monitoring window: the canary hosts receive mirrored
// read-only traffic from the baseline hosts' region, and their metrics are judged.
type MonitorRequest struct {
	App            string
	Region         string // the canary region
	Release        string // SHA on the canary hosts
	BaselineRegion string
	Canary         []deployers.Host
	Baseline       []deployers.Host
	Period         time.Duration
	Interval       time.Duration
	Metrics        []config.Metric // the app's metrics: how each is judged and where its samples come from
	Source         string          // scrape (default), prometheus, mirror
	Prometheus     string          // base URL when Source is prometheus
	// Calibrate, when set, is the folder the monitor records an A/A window into beside
	// the canary's: the first baseline host against the second (production hosts on the
	// same release), as CSV files `immunity judge calibrate --recorded` reads. Nothing
	// judges it.
	Calibrate string
}

// Monitor runs a monitoring window and returns the final verdict. look is called with
// each interim verdict; a Fail before the end of the window ends it early. Monitor turns
// the traffic mirror on for the window and off afterwards, whatever happens.
type Monitor interface {
	Monitor(ctx context.Context, req MonitorRequest, look func(judge.Verdict)) (judge.Verdict, error)
}

// CalibrationDir is where the A/A windows recorded while monitoring an app's region go.
func CalibrationDir(dataDir, app, region string) string {
	return filepath.Join(dataDir, "calibration", app, region)
}

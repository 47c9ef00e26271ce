package app

import (
	"context"
	"fmt"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/immunity-app/immunity/canary/chart"
	"github.com/immunity-app/immunity/pipeline/judge"
	"github.com/immunity-app/immunity/store"
)

// The canary view over time: every look a stage's comparison recorded
// (store.StageVerdicts), one chart per metric of the baseline's and the canary's values
// with the metric's allowed-effect band.

// metricLooks are one metric's values at each look of a stage, in the unit the chart
// shows, with the metric's allowed effect from the app's config.
func (s *Server) metricLooks(ctx context.Context, app string, st store.Stage, metric string) (looks []chart.Look, unit string, allowed float64, err error) {
	vs, err := s.eng.Store().StageVerdicts(ctx, st.ID)
	if err != nil {
		return nil, "", 0, err
	}
	if len(vs) == 0 && st.Verdict != "" { // recorded before every look was kept
		vs = []store.StageVerdict{{Verdict: st.Verdict, At: st.Updated}}
	}
	var first store.StageVerdict
	for _, sv := range vs {
		v := verdictOf(sv.Verdict)
		if v == nil {
			continue
		}
		for _, m := range v.Metrics {
			if m.Name != metric || m.NBaseline == 0 || m.NCanary == 0 || m.Outcome == judge.Error {
				continue
			}
			if first.At.IsZero() {
				first = sv
			}
			scale, u := chartUnit(m)
			unit = u
			looks = append(looks, chart.Look{Minutes: sv.At.Sub(first.At).Minutes(), Baseline: scale * m.Baseline, Canary: scale * m.Canary})
		}
	}
	if c, ok := s.eng.(configured); ok {
		if a, ok := c.Config().App(app); ok {
			for _, m := range a.AppMetrics() {
				if m.Name == metric {
					allowed = m.AllowedEffect
				}
			}
		}
	}
	return looks, unit, allowed, nil
}

// chartUnit is how a metric's values are charted: rates in %, seconds in ms.
func chartUnit(m judge.MetricResult) (scale float64, unit string) {
	switch {
	case m.Kind == judge.Rate:
		return 100, "%"
	case m.Unit == "s" || m.Unit == "seconds":
		return 1000, "ms"
	}
	return 1, m.Unit
}

// timeline draws one metric of a stage's canary comparison over its looks as a PNG.
func (s *Server) timeline(c *gin.Context) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil {
		c.String(http.StatusNotFound, "expected a run id")
		return
	}
	r, err := s.eng.Run(c.Request.Context(), id)
	if err != nil {
		c.String(http.StatusNotFound, err.Error())
		return
	}
	for _, st := range r.Stages {
		if st.Region != c.Param("region") {
			continue
		}
		looks, unit, allowed, err := s.metricLooks(c.Request.Context(), r.App, st, c.Param("metric"))
		if err != nil {
			c.String(http.StatusInternalServerError, "looks of run %d in %s: %v", id, st.Region, err)
			return
		}
		title := fmt.Sprintf("%s in %s: %s over %d looks", short(r.SHA), st.Region, c.Param("metric"), len(looks))
		png, err := chart.Timeline(title, unit, looks, allowed)
		if err != nil {
			c.String(http.StatusNotFound, "%s of run %d in %s: %v", c.Param("metric"), id, st.Region, err)
			return
		}
		c.Header("Cache-Control", "no-cache")
		c.Data(http.StatusOK, "image/png", png)
		return
	}
	c.String(http.StatusNotFound, "run %d has no stage in %s", id, c.Param("region"))
}

package app

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/immunity-app/immunity/pipeline"
	"github.com/immunity-app/immunity/store"
)

// The delivery page: an app's delivery figures over a period (the ones `immunity report`
// prints, from the same pipeline report) and a bar chart of them by week, drawn here as
// SVG so the page needs no script and the chart scales to the screen.

// reportView is the delivery page of an app.
type reportView struct {
	Title        string
	Me           viewer
	App          string
	Since, Until string // as asked, for the form
	Rep          store.Report
	Chart        weekChart
}

// weekChart is the weekly bar chart's geometry, in the SVG's own units.
type weekChart struct {
	Width, Height     int
	Left              int // the x where the bars' area begins
	Top, Base         int // the y of the scale's top line and of the bars' base
	ScaleX            int // the right end of the scale's numbers
	TopText, BaseText int // the y of the scale's numbers
	LabelY            int // the y of the weeks' labels
	Max               int // the count the top line stands for
	Weeks             []weekBars
}

// weekBars is one week's group of bars: deploys, failures and canary stops.
type weekBars struct {
	Label string // the week's Monday, "11-02"
	X     int    // the label's centre
	Bars  []weekBar
}

type weekBar struct {
	Class        string // deploys, failures or stops
	X, Y, W, H   int
	TextX, TextY int // where its count is written, above it
	Count        int
	Title        string
}

// Chart layout: a left margin for the scale, then one group of three bars a week.
const (
	chartLeft   = 28
	chartGroup  = 54
	chartBar    = 14
	chartTop    = 16
	chartBase   = 136
	chartHeight = 160
)

// weekChartOf lays out a report's weeks as bars scaled to the largest count.
func weekChartOf(weeks []store.ReportWeek) weekChart {
	c := weekChart{Width: chartLeft + chartGroup*max(len(weeks), 1) + 6, Height: chartHeight, Left: chartLeft, Top: chartTop, Base: chartBase,
		ScaleX: chartLeft - 4, TopText: chartTop + 4, BaseText: chartBase + 4, LabelY: chartBase + 16, Max: 1}
	for _, w := range weeks {
		c.Max = max(c.Max, w.Deploys, w.Failures, w.CanaryStops)
	}
	for i, w := range weeks {
		x := chartLeft + chartGroup*i + (chartGroup-3*chartBar)/2
		g := weekBars{Label: w.Start.UTC().Format("01-02"), X: x + 3*chartBar/2}
		day := w.Start.UTC().Format("2 Jan")
		for j, b := range []struct {
			class, what string
			n           int
		}{{"deploys", "deploys to production", w.Deploys}, {"failures", "production failures", w.Failures}, {"stops", "canary stops", w.CanaryStops}} {
			h := b.n * (chartBase - chartTop) / c.Max
			bx := x + j*chartBar
			g.Bars = append(g.Bars, weekBar{Class: b.class, X: bx, Y: chartBase - h, W: chartBar - 2, H: h, TextX: bx + (chartBar-2)/2, TextY: chartBase - h - 3, Count: b.n,
				Title: fmt.Sprintf("week of %s: %d %s", day, b.n, b.what)})
		}
		c.Weeks = append(c.Weeks, g)
	}
	return c
}

// reportPage answers /report/APP?since=30d&until=...: the app's delivery figures and
// their weekly chart; an unknown app is a 404 and a period that cannot be read a 400
// saying why.
func (s *Server) reportPage(c *gin.Context) {
	app := c.Param("app")
	rep, code, err := s.report(c, app)
	if err != nil {
		c.String(code, err.Error())
		return
	}
	render(c, "report", reportView{Title: app + " · delivery", Me: s.viewer(c), App: app,
		Since: c.Query("since"), Until: c.Query("until"), Rep: rep, Chart: weekChartOf(rep.Weeks)})
}

// durationFigure is a median and 90th percentile as a person reads them ("-" without any).
func durationFigure(d store.Durations) string {
	if d.Median == nil || d.P90 == nil {
		return "-"
	}
	return pipeline.HumanSeconds(*d.Median) + " (p90 " + pipeline.HumanSeconds(*d.P90) + ")"
}

// ratePercent is a ratio as a percentage ("33%"), "-" when there is none.
func ratePercent(r *float64) string {
	if r == nil {
		return "-"
	}
	return trimNumber(100**r) + "%"
}

// restoredAfter is how long a failure took to restore.
func restoredAfter(f store.ReportFailure) string {
	if f.Restored == nil {
		return ""
	}
	return pipeline.HumanSeconds(f.Restored.Sub(f.Started).Seconds())
}

// days is the length of a period in days.
func days(since, until time.Time) float64 { return until.Sub(since).Hours() / 24 }

// trimNumber is a number with at most two decimals and no trailing zeros.
func trimNumber(f float64) string {
	s := strconv.FormatFloat(f, 'f', 2, 64)
	return strings.TrimRight(strings.TrimRight(s, "0"), ".")
}

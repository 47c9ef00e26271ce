package app

import (
	"bytes"
	"context"
	"embed"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/immunity-app/immunity/bot"
	"github.com/immunity-app/immunity/canary/chart"
	"github.com/immunity-app/immunity/pipeline/judge"
	"github.com/immunity-app/immunity/store"
)

// The dashboard is server-rendered HTML (html/template, so every string from a commit, a
// message or a person is escaped). Pages are cut into fragments, each with its own URL
// under /ui/; the embedded live.js refetches the fragments an event from /api/events
// concerns. Without JavaScript the pages refresh themselves every few seconds.

//go:embed web
var webFS embed.FS

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"short":          short,
	"ago":            ago,
	"pct":            pct,
	"metricValue":    metricValue,
	"stateClass":     stateClass,
	"icon":           func(name string) string { return threadIcons[name] },
	"iconClass":      iconClass,
	"took":           took,
	"words":          words,
	"stamp":          stamp,
	"iso":            isoTime,
	"stampMilli":     stampMilli,
	"happened":       happened,
	"verdictTable":   func(v *judge.Verdict) string { return bot.VerdictTable(*v) },
	"viewerOf":       viewerOf,
	"actionsOf":      actionsOf,
	"stageActionsOf": stageActionsOf,
	"durationFigure": durationFigure,
	"ratePercent":    ratePercent,
	"trimNumber":     trimNumber,
	"restoredAfter":  restoredAfter,
	"days":           days,
}).ParseFS(webFS, "web/*.html"))

// asset serves the stylesheet or the script.
func asset(c *gin.Context) {
	types := map[string]string{"dashboard.css": "text/css; charset=utf-8", "live.js": "text/javascript; charset=utf-8"}
	ct, ok := types[c.Param("name")]
	if !ok {
		c.String(http.StatusNotFound, "no such asset")
		return
	}
	b, _ := webFS.ReadFile("web/" + c.Param("name"))
	c.Header("Cache-Control", "no-cache")
	c.Data(http.StatusOK, ct, b)
}

// threadIcons draw the thread's icons with symbols every font has, coloured by iconClass.
var threadIcons = map[string]string{
	bot.IconPending: "○", bot.IconRunning: "▶", bot.IconWaiting: "⏸", bot.IconOK: "✓", bot.IconFailed: "✗",
	bot.IconSkipped: "–", bot.IconBack: "↩", bot.IconLock: "⊘", bot.IconUnlock: "○", bot.IconGo: "→",
}

var iconClasses = map[string]string{
	bot.IconRunning: "run", bot.IconWaiting: "warn", bot.IconOK: "ok", bot.IconFailed: "bad", bot.IconBack: "bad",
	bot.IconLock: "bad", bot.IconGo: "run",
}

func iconClass(name string) string {
	if c, ok := iconClasses[name]; ok {
		return c
	}
	return "idle"
}

// stateClass colours a state (a run's, stage's or host step's, an outcome): ok, bad,
// warn, run or idle.
func stateClass(state any) string {
	switch fmt.Sprint(state) {
	case "succeeded", "done", "pass", "ok", "passed":
		return "ok"
	case "failed", "fail", "rolled_back", "error", "refused", "denied":
		return "bad"
	case "awaiting_approval", "waiting", "marginal", "approved":
		return "warn"
	case "deploying", "testing", "monitoring", "building", "running", "uploading", "switching":
		return "run"
	}
	return "idle"
}

func short(s string) string {
	if len(s) > 7 {
		return s[:7]
	}
	return s
}

// ago is a time as people glance at it: "12s ago", "5m ago", then the date.
func ago(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := time.Since(t)
	switch {
	case d < time.Second:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return t.Format("2006-01-02 15:04")
}

// pct is a relative change as a signed percentage ("+25.0%").
func pct(e float64) string {
	if e >= 1e9 {
		return "+∞"
	}
	return fmt.Sprintf("%+.1f%%", 100*e)
}

// metricValue shows a metric's value in its unit.
func metricValue(m judge.MetricResult, x float64) string {
	if m.NBaseline == 0 || m.NCanary == 0 || m.Outcome == judge.Error {
		return "-"
	}
	switch {
	case m.Kind == judge.Rate:
		return strconv.FormatFloat(100*x, 'g', 3, 64) + "%"
	case m.Unit == "s" || m.Unit == "seconds":
		return strconv.FormatFloat(1000*x, 'g', 3, 64) + " ms"
	}
	return strconv.FormatFloat(x, 'g', 4, 64) + m.Unit
}

// took is how long a finished stage ran.
func took(s store.Stage) string {
	if s.Started.IsZero() || s.Finished.Before(s.Started) {
		return ""
	}
	return "in " + s.Finished.Sub(s.Started).Round(time.Second).String()
}

// render executes a template into a buffer first, so a failure is a clean 500.
func render(c *gin.Context, name string, data any) { renderStatus(c, http.StatusOK, name, data) }

func renderStatus(c *gin.Context, status int, name string, data any) {
	var b bytes.Buffer
	if err := pages.ExecuteTemplate(&b, name, data); err != nil {
		c.String(http.StatusInternalServerError, "render %s: %v", name, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.Data(status, "text/html; charset=utf-8", b.Bytes())
}

// homeView is the overview; withAudit adds the newest audit entries (who did what), which
// only a viewer allowed the private views sees.
func (s *Server) homeView(ctx context.Context, withAudit bool) (homeView, error) {
	apps, err := s.appViews(ctx, "")
	if err != nil {
		return homeView{}, err
	}
	v := homeView{Title: "pipeline", Apps: apps, Runs: s.runsView(ctx), AuditHidden: !withAudit}
	if withAudit {
		v.Audit, _ = s.eng.Store().Audits(ctx, "", 30)
	}
	return v, nil
}

func (s *Server) dashboard(c *gin.Context) {
	v, err := s.homeView(c.Request.Context(), s.mayReadPrivate(c))
	if err != nil {
		c.String(http.StatusInternalServerError, err.Error())
		return
	}
	v.Me = s.viewer(c)
	for i := range v.Apps {
		v.Apps[i].Me = v.Me
	}
	render(c, "home", v)
}

// appFragment is one app's card.
func (s *Server) appFragment(c *gin.Context) {
	apps, err := s.appViews(c.Request.Context(), c.Param("app"))
	if err != nil || len(apps) != 1 {
		c.String(http.StatusNotFound, "no app %q", c.Param("app"))
		return
	}
	apps[0].Me = s.viewer(c)
	render(c, "app", apps[0])
}

func (s *Server) runsFragment(c *gin.Context) { render(c, "runs", s.runsView(c.Request.Context())) }

func (s *Server) auditFragment(c *gin.Context) {
	audit, _ := s.eng.Store().Audits(c.Request.Context(), "", 30)
	render(c, "audit", audit)
}

// loadRun reads the run named in the path, answering 404 when there is none.
func (s *Server) loadRun(c *gin.Context) (runView, bool) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil {
		c.String(http.StatusNotFound, "expected a run id")
		return runView{}, false
	}
	r, err := s.eng.Run(c.Request.Context(), id)
	if err != nil {
		c.String(http.StatusNotFound, err.Error())
		return runView{}, false
	}
	return s.runViewOf(c.Request.Context(), r), true
}

func (s *Server) runPage(c *gin.Context) {
	if v, ok := s.loadRun(c); ok {
		v.Me = s.viewer(c)
		render(c, "run", v)
	}
}

func (s *Server) runFragment(c *gin.Context) {
	if v, ok := s.loadRun(c); ok {
		v.Me = s.viewer(c)
		render(c, "runbody", v)
	}
}

func (s *Server) runLogFragment(c *gin.Context) {
	if v, ok := s.loadRun(c); ok {
		render(c, "runlog", v)
	}
}

// chart draws a stage's canary verdict as a PNG.
func (s *Server) chart(c *gin.Context) {
	id, _ := strconv.ParseInt(c.Param("id"), 10, 64)
	r, err := s.eng.Run(c.Request.Context(), id)
	if err != nil {
		c.String(http.StatusNotFound, err.Error())
		return
	}
	for _, st := range r.Stages {
		if st.Region != c.Param("region") {
			continue
		}
		v := verdictOf(st.Verdict)
		if v == nil {
			break
		}
		png, err := chart.PNG(*v, fmt.Sprintf("%s %s in %s: %s", r.App, short(r.SHA), st.Region, strings.ToUpper(string(v.Outcome))))
		if err != nil {
			c.String(http.StatusNotFound, "chart of run %d in %s: %v", id, st.Region, err)
			return
		}
		c.Header("Cache-Control", "no-cache")
		c.Data(http.StatusOK, "image/png", png)
		return
	}
	c.String(http.StatusNotFound, "run %d has no verdict in %s", id, c.Param("region"))
}

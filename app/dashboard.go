package app

import (
	"encoding/json"
	"html/template"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/immunity-app/immunity/pipeline"
	"github.com/immunity-app/immunity/pipeline/judge"
	"github.com/immunity-app/immunity/store"
)

var funcs = template.FuncMap{
	"mul100": func(f float64) float64 { return f * 100 },
	"short": func(s string) string {
		if len(s) > 7 {
			return s[:7]
		}
		return s
	},
	"verdict": func(s string) *judge.Verdict {
		if s == "" {
			return nil
		}
		var v judge.Verdict
		if json.Unmarshal([]byte(s), &v) != nil {
			return nil
		}
		return &v
	},
}

var pages = template.Must(template.New("").Funcs(funcs).Parse(`
{{define "head"}}<!doctype html><html><head><meta charset="utf-8"><title>Immunity</title>
<meta http-equiv="refresh" content="2">
<style>
body{font:14px system-ui,sans-serif;margin:2em;color:#222} table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border:1px solid #ddd;padding:4px 8px;text-align:left} th{background:#f5f5f5}
.succeeded,.pass,.done{color:#1a7f37}.failed,.fail,.rolled_back{color:#cf222e}.awaiting_approval,.marginal{color:#9a6700}
.deploying,.testing,.monitoring{color:#0969da} code{background:#f3f3f3;padding:1px 4px} pre{background:#f6f8fa;padding:8px;overflow:auto}
</style></head><body><h1><a href="/">Immunity</a></h1>{{end}}
{{define "index"}}{{template "head"}}
{{range .Status}}<h2>{{.App}}</h2><table><tr><th>region</th><th>live</th><th>now</th><th>waiting for promotion</th><th>lock</th></tr>
{{range .Regions}}<tr><td>{{.Name}}{{if .Production}} (production){{end}}</td>
<td>{{range $h, $sha := .Live}}{{$h}}: <code>{{short $sha}}</code> {{end}}</td>
<td>{{with .Active}}<a href="/runs/{{.RunID}}">{{short .SHA}}</a> <span class="{{.State}}">{{.State}}</span> {{.Message}}{{end}}</td>
<td>{{with .Waiting}}<a href="/runs/{{.RunID}}">{{short .SHA}}</a> {{.Subject}}{{end}}</td>
<td>{{with .Lock}}locked by {{.Holder}}: {{.Reason}}{{end}}</td></tr>{{end}}</table>{{end}}
<p>Try at the CLI: <code>immunity status</code>, <code>immunity promote APP REGION</code>, <code>immunity lock papi prod3 REASON</code>, <code>immunity rollback APP REGION</code>.</p>
<h2>Runs</h2><table><tr><th>run</th><th>app</th><th>commit</th><th>state</th><th>stages</th></tr>
{{range .Runs}}<tr><td><a href="/runs/{{.ID}}">{{.ID}}</a></td><td>{{.App}}</td><td><code>{{short .SHA}}</code> {{.Subject}}</td>
<td class="{{.State}}">{{.State}}</td><td>{{range .Stages}}<span class="{{.State}}">{{.Region}}: {{.State}}</span> {{end}}</td></tr>{{end}}</table>
<h2>Audit log</h2><table><tr><th>when</th><th>who</th><th>via</th><th>what</th><th>outcome</th></tr>
{{range .Audit}}<tr><td>{{.At.Format "15:04:05"}}</td><td>{{.Actor}}</td><td>{{.Via}}</td><td>{{.Action}} {{.App}} {{.Region}} {{short .SHA}}</td><td>{{.Outcome}} {{.Detail}}</td></tr>{{end}}</table>
</body></html>{{end}}
{{define "run"}}{{template "head"}}{{with .Run}}
<h2>Run {{.ID}}: {{.App}} <code>{{short .SHA}}</code> {{.Subject}}</h2><p>by {{.Author}}, <span class="{{.State}}">{{.State}}</span> {{.Message}}</p>
{{range .Stages}}<h3>{{.Region}}: <span class="{{.State}}">{{.State}}</span></h3><p>{{.Message}}{{if .ApprovedBy}} (promoted by {{.ApprovedBy}}){{end}}</p>
<table><tr><th>host</th><th>step</th><th></th></tr>{{range .Hosts}}<tr><td>{{.Host}}</td><td class="{{.Step}}">{{.Step}}</td><td>{{.Message}}</td></tr>{{end}}</table>
{{with verdict .Verdict}}<p>canary verdict: <b class="{{.Outcome}}">{{.Outcome}}</b> (score {{printf "%.0f" .Score}}) {{.Reason}}</p>
<table><tr><th>metric</th><th>baseline</th><th>canary</th><th>effect</th><th>n</th><th>result</th><th>why</th></tr>
{{range .Metrics}}<tr><td>{{.Name}}</td><td>{{printf "%.4g" .Baseline}}</td><td>{{printf "%.4g" .Canary}}</td><td>{{printf "%+.1f%%" (mul100 .Effect)}}</td><td>{{.NBaseline}}/{{.NCanary}}</td><td class="{{.Outcome}}">{{.Outcome}}</td><td>{{.Why}}</td></tr>{{end}}</table>{{end}}
{{if .Tests}}<pre>{{.Tests}}</pre>{{end}}{{end}}{{end}}
<h3>Log</h3><pre>{{range .Events}}{{.At.Format "15:04:05.000"}} {{if .Region}}[{{.Region}}{{if .Host}}/{{.Host}}{{end}}] {{end}}{{.Message}}
{{end}}</pre></body></html>{{end}}
`))

func (s *Server) dashboard(c *gin.Context) {
	ctx := c.Request.Context()
	st, err := s.eng.Status(ctx, "")
	if err != nil {
		c.String(http.StatusInternalServerError, err.Error())
		return
	}
	runs, _ := s.eng.Runs(ctx, "", false, 30)
	audit, _ := s.eng.Store().Audits(ctx, "", 30)
	c.Header("Content-Type", "text/html; charset=utf-8")
	pages.ExecuteTemplate(c.Writer, "index", struct {
		Status []pipeline.AppStatus
		Runs   []store.Run
		Audit  []store.Audit
	}{st, runs, audit})
}

func (s *Server) runPage(c *gin.Context) {
	id, _ := strconv.ParseInt(c.Param("id"), 10, 64)
	r, err := s.eng.Run(c.Request.Context(), id)
	if err != nil {
		c.String(http.StatusNotFound, err.Error())
		return
	}
	events, _ := s.eng.Store().Events(c.Request.Context(), id, 1000)
	c.Header("Content-Type", "text/html; charset=utf-8")
	pages.ExecuteTemplate(c.Writer, "run", struct {
		Run    store.Run
		Events []store.Event
	}{r, events})
}

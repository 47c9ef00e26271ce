// Package app is Immunity's HTTP server: the dashboard, the JSON API the CLI talks to,
// health and metrics endpoints, and the mount points of the GitHub and Slack handlers.
// Every door that changes something (CLI, chat, comments, buttons) goes through the one
// command layer handed to NewServer.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/immunity-app/immunity/app/metrics"
	"github.com/immunity-app/immunity/pipeline"
	"github.com/immunity-app/immunity/store"
)

// CommandFunc runs one command line as typed in chat, for an actor, and returns the answer.
type CommandFunc func(ctx context.Context, who pipeline.Actor, text string) (reply string, ok bool)

// engine is what the server reads from the pipeline.
type engine interface {
	Status(ctx context.Context, app string) ([]pipeline.AppStatus, error)
	Runs(ctx context.Context, app string, activeOnly bool, limit int) ([]store.Run, error)
	Run(ctx context.Context, id int64) (store.Run, error)
	Store() *store.Store
	Audit(ctx context.Context, a pipeline.Actor, action, app, region, sha, args, outcome, detail string)
	Report(ctx context.Context, app string, since, until time.Time) (store.Report, error)
}

// Server is the HTTP server.
type Server struct {
	eng     engine
	command CommandFunc
	log     *slog.Logger
	router  *gin.Engine
	ready   atomic.Bool
	srv     *http.Server
	live    *Live // the dashboard's live updates; a pipeline.Listener
	auth    auth  // dashboard sign-in and sessions
}

// NewServer builds the router. mounts add the GitHub and Slack routes.
func NewServer(eng engine, m *metrics.Metrics, command CommandFunc, log *slog.Logger, mounts ...func(gin.IRouter)) *Server {
	gin.SetMode(gin.ReleaseMode)
	s := &Server{eng: eng, command: command, log: log, router: gin.New(), live: NewLive(eng.Store(), log)}
	s.router.Use(gin.Recovery(), crossOrigin(http.NewCrossOriginProtection()))
	s.router.GET("/healthz", func(c *gin.Context) { c.String(http.StatusOK, "ok") })
	s.router.GET("/readyz", s.readyz)
	s.router.GET("/metrics", gin.WrapH(m.Handler()))
	api := s.router.Group("/api")
	api.GET("/status", s.apiStatus)
	api.GET("/runs", s.apiRuns)
	api.GET("/runs/:id", s.private, s.apiRun)
	api.GET("/history", s.apiHistory)
	api.GET("/report", s.apiReport)
	api.GET("/audit", s.private, s.apiAudit)
	api.POST("/commands", s.apiCommand)
	api.GET("/tokens", s.apiTokens)
	api.POST("/tokens", s.apiCreateToken)
	api.DELETE("/tokens/:name", s.apiRevokeToken)
	s.router.GET("/", s.dashboard)
	s.router.GET("/runs/:id", s.private, s.runPage)
	s.router.GET("/regions/:app/:region", s.private, s.regionPageHandler)
	s.router.GET("/ui/regions/:app/:region", s.private, s.regionFragmentHandler)
	s.router.GET("/audit", s.private, s.auditPageHandler)
	s.router.GET("/report/:app", s.reportPage)
	s.router.GET("/runs/:id/stages/:region/chart.png", s.chart)
	s.router.GET("/runs/:id/stages/:region/metrics/:metric/timeline.png", s.timeline)
	s.router.GET("/ui/apps/:app", s.appFragment)
	s.router.GET("/ui/runs", s.runsFragment)
	s.router.GET("/ui/runs/:id", s.private, s.runFragment)
	s.router.GET("/ui/runs/:id/log", s.private, s.runLogFragment)
	s.router.GET("/ui/audit", s.private, s.auditFragment)
	s.router.GET("/assets/:name", asset)
	api.GET("/events", func(c *gin.Context) { s.live.serveEvents(c, s.mayReadPrivate(c)) })
	s.signInRoutes(s.router)
	s.router.POST("/actions", s.action)
	for _, m := range mounts {
		m(s.router)
	}
	return s
}

// readyz answers 200 once the engine has resumed and while the database takes writes.
func (s *Server) readyz(c *gin.Context) {
	if !s.ready.Load() {
		c.String(http.StatusServiceUnavailable, "starting")
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
	defer cancel()
	if err := s.eng.Store().Writable(ctx); err != nil {
		s.log.Warn("not ready", "err", err)
		c.String(http.StatusServiceUnavailable, "%v", err)
		return
	}
	c.String(http.StatusOK, "ready")
}

// Handler is the server's http.Handler (tests use it with httptest).
func (s *Server) Handler() http.Handler { return s.router }

// SetReady flips /readyz once the engine has resumed.
func (s *Server) SetReady(v bool) { s.ready.Store(v) }

// Listen binds addr; Serve then serves on it. Binding first lets callers report a busy
// port before anything else starts.
func (s *Server) Listen(addr string) (net.Listener, error) {
	return net.Listen("tcp", addr)
}

// Serve serves on every listener (the TCP address, the local socket) until ctx ends,
// then drains for up to 10 s.
func (s *Server) Serve(ctx context.Context, lns ...net.Listener) error {
	s.srv = &http.Server{Handler: s.router, ReadHeaderTimeout: 10 * time.Second, ConnContext: connContext}
	errc := make(chan error, len(lns))
	for _, ln := range lns {
		s.notePrivate(ln)
		go func() { errc <- s.srv.Serve(ln) }()
	}
	select {
	case err := <-errc:
		s.srv.Close()
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := s.srv.Shutdown(sctx)
	for range lns {
		if e := <-errc; e != nil && !errors.Is(e, http.ErrServerClosed) && err == nil {
			err = e
		}
	}
	return err
}

type commandRequest struct {
	Text string `json:"text"`
}

type commandReply struct {
	OK   bool   `json:"ok"`
	Text string `json:"text"`
}

// apiCommand runs a command typed at the CLI (or sent by a script) as its verified
// caller: the OS user on the local socket, or a personal token's owner. An anonymous
// caller may run the commands that change nothing (status, history, help); the command
// layer refuses the rest. Only application/json is taken, so that no web page can post
// here from a browser without a CORS preflight this server never grants.
func (s *Server) apiCommand(c *gin.Context) {
	if !requireJSON(c) {
		return
	}
	who, _, err := s.caller(c)
	if err != nil {
		c.JSON(http.StatusUnauthorized, commandReply{Text: err.Error()})
		return
	}
	var req commandRequest
	if err := c.ShouldBindJSON(&req); err != nil || req.Text == "" {
		c.JSON(http.StatusBadRequest, commandReply{Text: "expected a JSON body {\"text\": \"promote papi prod3\"}"})
		return
	}
	if who.Via == "" {
		who = pipeline.Actor{Name: "anonymous", Via: "api"}
	}
	reply, ok := s.command(c.Request.Context(), who, req.Text)
	status := http.StatusOK
	if !ok {
		status = http.StatusUnprocessableEntity
	}
	c.JSON(status, commandReply{OK: ok, Text: reply})
}

func (s *Server) apiStatus(c *gin.Context) {
	st, err := s.eng.Status(c.Request.Context(), c.Query("app"))
	if err != nil {
		c.JSON(http.StatusNotFound, gin.H{"error": err.Error()})
		return
	}
	c.JSON(http.StatusOK, st)
}

// maxRunsListed is the most runs GET /api/runs answers at once.
const maxRunsListed = 1000

// apiRuns lists runs, newest first. Beyond loopback, a caller who is not signed in gets
// them without what only a signed-in caller reads (GET /api/runs/N): each stage's test
// output, who approved it and who started the run.
func (s *Server) apiRuns(c *gin.Context) {
	limit, err := strconv.Atoi(c.DefaultQuery("limit", "50"))
	if err != nil || limit < 1 || limit > maxRunsListed {
		c.JSON(http.StatusBadRequest, gin.H{"error": fmt.Sprintf("limit %q: expected a number of runs from 1 to %d", c.Query("limit"), maxRunsListed)})
		return
	}
	runs, err := s.eng.Runs(c.Request.Context(), c.Query("app"), c.Query("active") == "1", limit)
	if err != nil {
		c.JSON(http.StatusInternalServerError, gin.H{"error": err.Error()})
		return
	}
	if !s.mayReadPrivate(c) {
		for i := range runs {
			runs[i].Actor = ""
			for j := range runs[i].Stages {
				st := &runs[i].Stages[j]
				st.Tests, st.ApprovedBy, st.ApprovedByID, st.ApprovedVia = "", "", "", ""
			}
		}
	}
	c.JSON(http.StatusOK, runs)
}

func (s *Server) apiRun(c *gin.Context) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil {
		c.JSON(http.StatusBadRequest, gin.H{"error": "expected a run id"})
		return
	}
	r, err := s.eng.Run(c.Request.Context(), id)
	if err != nil {
		c.JSON(http.StatusNotFound, gin.H{"error": err.Error()})
		return
	}
	events, _ := s.eng.Store().Events(c.Request.Context(), id, 1000)
	c.JSON(http.StatusOK, gin.H{"run": r, "events": events})
}

func (s *Server) apiHistory(c *gin.Context) {
	h, err := s.eng.Store().History(c.Request.Context(), c.Query("app"), c.Query("region"), 100)
	if err != nil {
		c.JSON(http.StatusInternalServerError, gin.H{"error": err.Error()})
		return
	}
	c.JSON(http.StatusOK, h)
}

func (s *Server) apiAudit(c *gin.Context) {
	a, err := s.eng.Store().Audits(c.Request.Context(), c.Query("app"), 200)
	if err != nil {
		c.JSON(http.StatusInternalServerError, gin.H{"error": err.Error()})
		return
	}
	c.JSON(http.StatusOK, a)
}

// isoTime is a time as the audit log and the API show it: ISO 8601 with its zone.
func isoTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(time.RFC3339)
}

// crossOrigin refuses a state-changing request a browser sent from another origin
// (Sec-Fetch-Site, else Origin against Host): no web page can make a signed-in browser,
// or one on the server's machine, change anything here. Requests without those headers
// (the CLI, GitHub's and Slack's signed webhooks) pass on to their own checks.
func crossOrigin(p *http.CrossOriginProtection) gin.HandlerFunc {
	return func(c *gin.Context) {
		if err := p.Check(c.Request); err != nil {
			c.AbortWithStatusJSON(http.StatusForbidden, commandReply{Text: "refused a cross-origin request: " + err.Error()})
			return
		}
		c.Next()
	}
}

package app

import (
	"errors"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/immunity-app/immunity/pipeline"
	"github.com/immunity-app/immunity/store"
)

// report reads an app's delivery figures over the period of the request's since and until
// (pipeline.ParsePeriod); the status and message of the refusal when it cannot.
func (s *Server) report(c *gin.Context, app string) (store.Report, int, error) {
	if app == "" {
		return store.Report{}, http.StatusBadRequest, errors.New("expected ?app=APP")
	}
	since, until, err := pipeline.ParsePeriod(c.Query("since"), c.Query("until"), time.Now())
	if err != nil {
		return store.Report{}, http.StatusBadRequest, err
	}
	rep, err := s.eng.Report(c.Request.Context(), app, since, until)
	switch {
	case errors.Is(err, pipeline.ErrUnknownApp):
		return store.Report{}, http.StatusNotFound, err
	case errors.Is(err, pipeline.ErrBadInput):
		return store.Report{}, http.StatusBadRequest, err
	case err != nil:
		s.log.Error("delivery report", "app", app, "err", err)
		return store.Report{}, http.StatusInternalServerError, err
	}
	return rep, http.StatusOK, nil
}

// apiReport answers GET /api/report?app=APP&since=30d&until=...: the app's delivery
// figures (store.Report) as JSON.
func (s *Server) apiReport(c *gin.Context) {
	rep, code, err := s.report(c, c.Query("app"))
	if err != nil {
		c.JSON(code, gin.H{"error": err.Error()})
		return
	}
	c.JSON(http.StatusOK, rep)
}

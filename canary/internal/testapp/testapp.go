// Package testapp is a tiny real HTTP app for the canary's tests: it answers every path,
// fails one request in every FailEvery with a 500, takes Delay per request, and exposes
// the sample app's metric names on /metrics through client_golang:
// http_requests_total{method,path,code} and http_request_duration_seconds{method,path}.
package testapp

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// App is one instance of the test app.
type App struct {
	FailEvery atomic.Int64 // 0: never fail
	Delay     atomic.Int64 // nanoseconds per request
	served    atomic.Int64
	requests  *prometheus.CounterVec
	durations *prometheus.HistogramVec
	mux       *http.ServeMux
}

// New returns an app that fails one request in failEvery (0: none) and takes delay.
func New(failEvery int, delay time.Duration) *App {
	reg := prometheus.NewRegistry()
	a := &App{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "http_requests_total", Help: "Requests."},
			[]string{"method", "path", "code"}),
		durations: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "http_request_duration_seconds",
			Help: "Request durations.", Buckets: prometheus.DefBuckets}, []string{"method", "path"}),
		mux: http.NewServeMux(),
	}
	a.FailEvery.Store(int64(failEvery))
	a.Delay.Store(int64(delay))
	reg.MustRegister(a.requests, a.durations)
	a.mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	a.mux.HandleFunc("/", a.serve)
	return a
}

// Served is how many non-metrics requests the app answered.
func (a *App) Served() int64 { return a.served.Load() }

func (a *App) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

func (a *App) serve(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	n := a.served.Add(1)
	time.Sleep(time.Duration(a.Delay.Load()))
	code := http.StatusOK
	if f := a.FailEvery.Load(); f > 0 && n%f == 0 {
		code = http.StatusInternalServerError
	}
	w.WriteHeader(code)
	fmt.Fprintf(w, "hello %s\n", r.URL.Path)
	io.Copy(io.Discard, r.Body)
	a.requests.WithLabelValues(r.Method, "/", strconv.Itoa(code)).Inc()
	a.durations.WithLabelValues(r.Method, "/").Observe(time.Since(start).Seconds())
}

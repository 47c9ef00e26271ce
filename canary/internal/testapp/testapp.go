// Package testapp is a tiny real HTTP app for the canary's tests: it answers every path,
// fails one request in every FailEvery with a 500, takes Delay per request, and exposes
// the sample app's metric names on /metrics through client_golang:
// http_requests_total{method,path,code} and http_request_duration_seconds{method,path}.
// Each request also looks up a cache that misses one lookup in every MissEvery:
// cache_lookups_total{cache} and cache_hits_total{cache}, cache "items".
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
	MissEvery atomic.Int64 // 0: every cache lookup hits
	served    atomic.Int64
	requests  *prometheus.CounterVec
	durations *prometheus.HistogramVec
	lookups   *prometheus.CounterVec
	hits      *prometheus.CounterVec
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
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cache_lookups_total", Help: "Cache lookups."}, []string{"cache"}),
		hits:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cache_hits_total", Help: "Cache hits."}, []string{"cache"}),
		mux:     http.NewServeMux(),
	}
	a.FailEvery.Store(int64(failEvery))
	a.Delay.Store(int64(delay))
	reg.MustRegister(a.requests, a.durations, a.lookups, a.hits)
	a.mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	a.mux.HandleFunc("/", a.serve)
	return a
}

// Restart sets every metric back to nothing, as a restarted process exposes them.
func (a *App) Restart() {
	a.requests.Reset()
	a.durations.Reset()
	a.lookups.Reset()
	a.hits.Reset()
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
	a.lookups.WithLabelValues("items").Inc()
	if m := a.MissEvery.Load(); m == 0 || n%m != 0 {
		a.hits.WithLabelValues("items").Inc()
	}
}

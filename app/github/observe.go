package github

import (
	"net/http"
	"time"
)

// observer is told what Immunity's metrics count (app/metrics.Metrics does it).
type observer interface {
	Delivery(event, outcome string, took time.Duration)
	Transport(service string, next http.RoundTripper) http.RoundTripper
	Retry(service string)
	RateLimitWait(service string, d time.Duration)
}

// noObserver counts nothing.
type noObserver struct{}

func (noObserver) Delivery(string, string, time.Duration)                       {}
func (noObserver) Transport(_ string, next http.RoundTripper) http.RoundTripper { return next }
func (noObserver) Retry(string)                                                 {}
func (noObserver) RateLimitWait(string, time.Duration)                          {}

// Option tunes New and NewClients.
type Option func(*options)

type options struct {
	obs      observer
	gateWake func()
}

// WithMetrics reports webhook deliveries and GitHub API calls, retries and rate-limit
// waits to m.
func WithMetrics(m observer) Option { return func(o *options) { o.obs = m } }

func optionsOf(opts []Option) options {
	o := options{obs: noObserver{}}
	for _, f := range opts {
		f(&o)
	}
	return o
}

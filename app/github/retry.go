package github

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/immunity-app/immunity/internal/wait"
)

// retryTransport retries GitHub calls that failed in a way worth retrying: 5xx, 429, and
// 403 when it is a rate limit (primary: X-RateLimit-Remaining 0; secondary: Retry-After or
// "secondary rate limit" in the body). The wait honours Retry-After and X-RateLimit-Reset,
// else backs off exponentially; a wait longer than MaxWait gives up at once (the caller's
// own queue retries later) rather than holding a goroutine for an hour.
type retryTransport struct {
	next     http.RoundTripper
	attempts int           // total tries, default 5
	base     time.Duration // first backoff, default 1s
	maxWait  time.Duration // longest single wait, default 2m
	now      func() time.Time
	sleep    func(ctx context.Context, d time.Duration) error
	log      *slog.Logger
	obs      observer
}

func newRetryTransport(next http.RoundTripper, log *slog.Logger) *retryTransport {
	if next == nil {
		next = http.DefaultTransport
	}
	return &retryTransport{next: next, attempts: 5, base: time.Second, maxWait: 2 * time.Minute, now: time.Now, sleep: wait.Sleep, log: log, obs: noObserver{}}
}

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	body, err := snapshotBody(req)
	if err != nil {
		return nil, err
	}
	for try := 1; ; try++ {
		r := req
		if body != nil {
			r = req.Clone(req.Context())
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		resp, err := t.next.RoundTrip(r)
		wait, retry := t.decide(try, req, resp, err)
		if !retry || try >= t.attempts || wait > t.maxWait {
			return resp, err
		}
		if resp != nil {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
			resp.Body.Close()
		}
		t.obs.Retry("github")
		if resp != nil && (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusForbidden) {
			t.obs.RateLimitWait("github", wait)
		}
		if t.log != nil {
			t.log.WarnContext(req.Context(), "github call will be retried", "method", req.Method, "path", req.URL.Path, "try", try, "wait", wait, "status", statusOf(resp), "err", err)
		}
		if err := t.sleep(req.Context(), wait); err != nil {
			return nil, fmt.Errorf("%s %s: waiting to retry: %w", req.Method, req.URL.Path, err)
		}
	}
}

func snapshotBody(req *http.Request) ([]byte, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return nil, nil
	}
	b, err := io.ReadAll(req.Body)
	req.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("%s %s: read request body: %w", req.Method, req.URL.Path, err)
	}
	req.Body = io.NopCloser(bytes.NewReader(b))
	return b, nil
}

func statusOf(resp *http.Response) int {
	if resp == nil {
		return 0
	}
	return resp.StatusCode
}

// decide says whether to retry after try number try, and how long to wait first.
func (t *retryTransport) decide(try int, req *http.Request, resp *http.Response, err error) (time.Duration, bool) {
	backoff := t.base << (try - 1)
	if err != nil {
		// A connection error: sent again when the request never left, or when sending it
		// twice does what sending it once does.
		return backoff, notSent(err) || repeatable(req)
	}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
	case resp.StatusCode == http.StatusForbidden && isRateLimited(resp):
	case resp.StatusCode >= 500:
		return backoff, repeatable(req) // GitHub may have carried it out all the same
	default:
		return 0, false
	}
	if d, ok := t.headerWait(resp.Header); ok {
		return d, true
	}
	return max(backoff, time.Minute/time.Duration(max(t.attempts, 1))), true
}

// repeatable says whether a request may be sent again after an answer that does not say
// whether GitHub carried it out (a 5xx, a connection lost once it was sent): every method
// but POST (GET reads; PATCH, PUT and DELETE set what they set), and the POST that mints
// an installation token (one more token is harmless). Any other POST (a check run, a
// deployment, a comment) goes back to its caller, whose retry first asks GitHub whether it
// was made.
func repeatable(req *http.Request) bool {
	return req.Method != http.MethodPost || strings.HasSuffix(req.URL.Path, "/access_tokens")
}

// notSent tells a connection error that happened before the request left (the dial: a
// refused connection, an unknown host) from one that may have come after GitHub got it.
func notSent(err error) bool {
	var op *net.OpError
	var dns *net.DNSError
	return errors.As(err, &dns) || errors.As(err, &op) && op.Op == "dial"
}

// headerWait reads Retry-After (seconds or an HTTP date) or, when the primary limit is
// exhausted, X-RateLimit-Reset (unix seconds).
func (t *retryTransport) headerWait(h http.Header) (time.Duration, bool) {
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if s, err := strconv.Atoi(v); err == nil && s >= 0 {
			return time.Duration(s) * time.Second, true
		}
		if at, err := http.ParseTime(v); err == nil {
			return max(at.Sub(t.now()), 0), true
		}
	}
	if h.Get("X-RateLimit-Remaining") == "0" {
		if s, err := strconv.ParseInt(h.Get("X-RateLimit-Reset"), 10, 64); err == nil {
			return max(time.Unix(s, 0).Sub(t.now())+time.Second, 0), true
		}
	}
	return 0, false
}

// isRateLimited tells a 403 rate limit from a 403 refusal. It peeks at the body and puts
// it back.
func isRateLimited(resp *http.Response) bool {
	h := resp.Header
	if h.Get("X-RateLimit-Remaining") == "0" || h.Get("Retry-After") != "" {
		return true
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(b))
	s := strings.ToLower(string(b))
	return strings.Contains(s, "rate limit")
}

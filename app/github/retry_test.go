package github

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/immunity-app/immunity/internal/freeport"

	"github.com/google/go-cmp/cmp"
	gh "github.com/google/go-github/v60/github"

	"github.com/immunity-app/immunity/app/github/githubtest"
)

// TestRetries: rate limits (429, primary 403, secondary 403) and 5xx are retried after the
// wait GitHub asks for; a plain 403 or 404 is not.
func TestRetries(t *testing.T) {
	t.Parallel()
	now := time.Unix(1763776800, 0) // the transport's clock in this test
	reset := now.Add(30 * time.Second).Unix()
	for _, c := range []struct {
		name   string
		patch  bool // an update (PATCH), not a create (POST)
		faults []githubtest.Fault
		waits  []time.Duration // what the transport asked to sleep, rounded to seconds
		ok     bool
	}{
		{"429 Retry-After", false, []githubtest.Fault{{Status: 429, Header: map[string]string{"Retry-After": "7"}, Body: `{"message":"Too many requests"}`}},
			[]time.Duration{7 * time.Second}, true},
		{"403 secondary", false, []githubtest.Fault{{Status: 403, Header: map[string]string{"Retry-After": "60"},
			Body: `{"message":"You have exceeded a secondary rate limit. Please wait a few minutes before you try again.","documentation_url":"https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"}`}},
			[]time.Duration{60 * time.Second}, true},
		{"403 primary", false, []githubtest.Fault{{Status: 403, Header: map[string]string{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": fmt.Sprint(reset)},
			Body: `{"message":"API rate limit exceeded for installation ID 42."}`}},
			[]time.Duration{31 * time.Second}, true},
		{"403 secondary without headers", false, []githubtest.Fault{{Status: 403, Body: `{"message":"You have exceeded a secondary rate limit."}`}},
			[]time.Duration{12 * time.Second}, true},
		{"502 twice", true, []githubtest.Fault{{Status: 502}, {Status: 503}}, []time.Duration{time.Second, 2 * time.Second}, true},
		// GitHub may have made it: the caller asks before making it again.
		{"502 on a create", false, []githubtest.Fault{{Status: 502}}, nil, false},
		{"plain 403", false, []githubtest.Fault{{Status: 403, Body: `{"message":"Resource not accessible by integration"}`}}, nil, false},
		{"404", false, []githubtest.Fault{{Status: 404, Body: `{"message":"Not Found"}`}}, nil, false},
		{"reset too far", false, []githubtest.Fault{{Status: 429, Header: map[string]string{"Retry-After": "3600"}}}, nil, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			fake := githubtest.New(t)
			fake.FailNext(c.faults...)
			tr := newRetryTransport(http.DefaultTransport, nil)
			tr.now = func() time.Time { return now }
			var waits []time.Duration
			tr.sleep = func(ctx context.Context, d time.Duration) error {
				waits = append(waits, (d + time.Second - 1).Truncate(time.Second)) // ceil
				return nil
			}
			cl := gh.NewClient(&http.Client{Transport: tr})
			cl.BaseURL = mustURL(t, fake.APIURL())
			var err error
			if c.patch {
				_, _, err = cl.Checks.UpdateCheckRun(context.Background(), "o", "r", 1001, gh.UpdateCheckRunOptions{Name: "immunity / prod3", Status: gh.String("in_progress")})
			} else {
				_, _, err = cl.Checks.CreateCheckRun(context.Background(), "o", "r", gh.CreateCheckRunOptions{Name: "immunity / prod3", HeadSHA: strings.Repeat("a", 40)})
			}
			if (err == nil) != c.ok {
				t.Errorf("err = %v, want ok=%v", err, c.ok)
			}
			if d := cmp.Diff(c.waits, waits); d != "" {
				t.Errorf("waits (-want +got):\n%s", d)
			}
			if c.ok {
				// the retried request carried the same body
				reqs := fake.Requests()
				if string(reqs[0].Body) != string(reqs[len(reqs)-1].Body) || len(reqs[0].Body) == 0 {
					t.Errorf("retried body %q, first %q", reqs[len(reqs)-1].Body, reqs[0].Body)
				}
			}
		})
	}
}

// A connection lost after a request was sent: an update is sent again (twice does what
// once does), a create is not (GitHub may have made it; its caller looks before making it
// again). A connection refused (nothing was sent) is tried again either way.
func TestRetriesAfterAConnectionError(t *testing.T) {
	t.Parallel()
	newClient := func(t *testing.T, base string) (*gh.Client, *int) {
		tr := newRetryTransport(http.DefaultTransport, nil)
		sleeps := new(int)
		tr.sleep = func(context.Context, time.Duration) error { *sleeps++; return nil }
		cl := gh.NewClient(&http.Client{Transport: tr})
		cl.BaseURL = mustURL(t, base)
		return cl, sleeps
	}
	ctx := context.Background()
	create := gh.CreateCheckRunOptions{Name: "immunity / prod3", HeadSHA: strings.Repeat("a", 40)}

	fake := githubtest.New(t)
	cl, _ := newClient(t, fake.APIURL())
	fake.LoseAnswer("POST /repos/o/r/check-runs", 1)
	if _, _, err := cl.Checks.CreateCheckRun(ctx, "o", "r", create); err == nil {
		t.Error("a create whose answer was lost reported success")
	}
	if n := len(fake.CheckRuns()); n != 1 {
		t.Errorf("a create whose answer was lost made %d check runs, want the 1 GitHub made", n)
	}
	fake.LoseAnswer("PATCH /repos/o/r/check-runs/1001", 1)
	if _, _, err := cl.Checks.UpdateCheckRun(ctx, "o", "r", 1001, gh.UpdateCheckRunOptions{Name: "immunity / prod3", Status: gh.String("in_progress")}); err != nil {
		t.Errorf("an update whose answer was lost was not sent again: %v", err)
	}
	if n := len(fake.Find("PATCH /repos/o/r/check-runs/1001")); n != 2 {
		t.Errorf("update sent %d times, want 2", n)
	}

	addr, err := freeport.Addr() // nothing listens there
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + addr + "/"
	cl, sleeps := newClient(t, closed)
	if _, _, err := cl.Checks.CreateCheckRun(ctx, "o", "r", create); err == nil {
		t.Error("a create to a closed port succeeded")
	}
	if *sleeps != 4 {
		t.Errorf("a create that could not connect was tried %d times, want 5", *sleeps+1)
	}
}

// TestRetryWaitsForReal goes through the real sleep once (Retry-After: 1).
func TestRetryWaitsForReal(t *testing.T) {
	t.Parallel()
	fake := githubtest.New(t)
	fake.FailNext(githubtest.Fault{Status: 429, Header: map[string]string{"Retry-After": "1"}})
	cl := gh.NewClient(&http.Client{Transport: newRetryTransport(nil, nil)})
	cl.BaseURL = mustURL(t, fake.APIURL())
	start := time.Now()
	if _, _, err := cl.Repositories.GetPermissionLevel(context.Background(), "o", "r", "u"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("retried after %v, before the Retry-After second", d)
	}
	if n := len(fake.Requests()); n != 2 {
		t.Errorf("%d requests, want 2", n)
	}
}

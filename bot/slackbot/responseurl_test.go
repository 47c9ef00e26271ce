package slackbot

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

func TestCheckResponseURL(t *testing.T) {
	t.Parallel()
	const api = "http://127.0.0.1:4390/api/"
	for _, c := range []struct {
		url string
		ok  bool
	}{
		{"https://hooks.slack.com/commands/T0001/1234/abcd", true},
		{"https://HOOKS.slack.com/actions/T0001/1234/abcd", true},
		{"http://127.0.0.1:4390/hooks/commands/T0001/1/x", true}, // the configured API's host (a fake Slack)
		{"http://hooks.slack.com/commands/T0001/1234/abcd", false},
		{"https://hooks.slack.com.evil.example/commands/x", false},
		{"https://evil.example/?https://hooks.slack.com/", false},
		{"https://user@hooks.slack.com/commands/x", false},
		{"http://127.0.0.1:4391/hooks/x", false},  // another port
		{"https://127.0.0.1:4390/hooks/x", false}, // another scheme
		{"http://169.254.169.254/latest/meta-data/", false},
		{"file:///etc/passwd", false},
		{"/hooks/commands", false},
		{"", false},
	} {
		if err := checkResponseURL(c.url, api); (err == nil) != c.ok {
			t.Errorf("checkResponseURL(%q) = %v; want ok=%v", c.url, err, c.ok)
		}
	}
}

// TestForeignResponseURLRefused: a slash command or a button whose response_url is not
// Slack's gets no answer there: nothing is sent to that address.
func TestForeignResponseURLRefused(t *testing.T) {
	t.Parallel()
	var hits atomic.Int64
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	t.Cleanup(elsewhere.Close)
	f := newFakeSlack(t)
	exec := &fakeExec{}
	b, r := newTestBot(t, testConfig(f.GetAPIURL()), openStore(t, filepath.Join(t.TempDir(), "db")), exec)
	if w := serve(r, signedRequest("/slack/commands", secret, slashBody(t, "promote papi prod3", elsewhere.URL+"/commands/T1/2/x"), time.Now())); w.Code != http.StatusOK {
		t.Fatalf("slash command: %d %s", w.Code, w.Body)
	}
	if w := serve(r, signedRequest("/slack/interactions", secret, buttonBody(t, elsewhere.URL+"/actions/T1/2/x"), time.Now())); w.Code != http.StatusOK {
		t.Fatalf("button: %d %s", w.Code, w.Body)
	}
	b.Close(context.Background())
	if len(exec.Reqs()) != 2 {
		t.Errorf("ran %d commands, want 2 (the commands still run; only the answer is withheld)", len(exec.Reqs()))
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("%d requests sent to a response_url that is not Slack's", n)
	}
}

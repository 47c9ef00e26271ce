package app

import (
	"bufio"
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/immunity-app/immunity/internal/pgtest"
	"github.com/immunity-app/immunity/pipeline"
	"github.com/immunity-app/immunity/store"
)

// readEvent reads an SSE stream up to the next data line.
func readEvent(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the event stream: %v", err)
		}
		if data, ok := strings.CutPrefix(line, "data: "); ok {
			return strings.TrimSpace(data)
		}
	}
}

func TestEventStreamDeliversAnEngineEvent(t *testing.T) {
	t.Parallel()
	in := openTest(t)
	srv := httptest.NewServer(in.Server.Handler())
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/api/events", nil)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type = %q", ct)
	}
	r := bufio.NewReader(resp.Body)
	if line, _ := r.ReadString('\n'); !strings.HasPrefix(line, "retry:") {
		t.Fatalf("first line %q, want the retry hint", line)
	}
	// The stream is subscribed once its first bytes arrive: the engine's event reaches it.
	if _, err := in.Engine.Lock(ctx, pipeline.Actor{Name: "ada", Via: "cli"}, "papi", "prod3", "freeze"); err != nil {
		t.Fatal(err)
	}
	data := readEvent(t, r)
	for _, want := range []string{`"kind":"region.locked"`, `"app":"papi"`, `"region":"prod3"`, `"seq":1`} {
		if !strings.Contains(data, want) {
			t.Errorf("event %s lacks %s", data, want)
		}
	}
}

func TestLiveDropsABrowserThatFallsBehind(t *testing.T) {
	t.Parallel()
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "immunity.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	l := NewLive(st, slog.Default())
	defer l.Close()
	<-l.ready // subscribed
	slow, _ := l.Subscribe()
	fast, leave := l.Subscribe()
	defer leave()
	ev := pipeline.Event{Kind: pipeline.Logged, App: "papi", Message: "line"}
	for i := 0; i < liveBuffer+1; i++ {
		l.Notify(context.Background(), ev) // never waits for anyone
		<-fast
	}
	n := 0
	for range slow { // closed once dropped
		n++
	}
	if n != liveBuffer || l.Dropped() != 1 || l.Clients() != 1 {
		t.Fatalf("slow browser got %d events before being dropped (want %d); dropped %d, clients %d", n, liveBuffer, l.Dropped(), l.Clients())
	}
}

func TestShutdownEndsEventStreams(t *testing.T) {
	t.Parallel()
	in := openTest(t)
	ln, err := in.Server.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- in.Server.Serve(ctx, ln) }()
	resp, err := http.Get("http://" + ln.Addr().String() + "/api/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	bufio.NewReader(resp.Body).ReadString('\n')
	stop()
	// Without closing its streams, Shutdown would wait out its drain deadline and fail.
	if err := <-served; err != nil {
		t.Fatalf("Serve after shutdown with a browser watching: %v", err)
	}
}

// Two servers on one PostgreSQL database: a browser watching B sees the stage transition
// A made (a promotion typed at A), through the database's live messages.
func TestEventStreamShowsAnotherReplicasTransition(t *testing.T) {
	t.Parallel()
	_, database := pgtest.Own(t)
	open := func(replica string) *Instance {
		return openWith(t, "server: {database: '"+database+"', replica: "+replica+"}\n"+dashboardConfig)
	}
	a, b := open("a"), open("b")
	fillDashboard(t, a) // a run waiting for promotion to prod3, and prod3 locked
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := a.Engine.Unlock(ctx, pipeline.Actor{ID: "github:1", Name: "ada", Via: "github"}, "papi", "prod3", false); err != nil {
		t.Fatal(err)
	}

	srv := httptest.NewServer(b.Server.Handler())
	defer srv.Close()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/api/events", nil)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	if line, _ := r.ReadString('\n'); resp.StatusCode != http.StatusOK || !strings.HasPrefix(line, "retry:") {
		t.Fatalf("B's stream: %s %q", resp.Status, line)
	}
	out, err := a.Engine.Promote(ctx, pipeline.Actor{ID: "github:1", Name: "ada", Via: "github"}, "papi", "prod3", "")
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	for {
		data := readEvent(t, r) // fails the test when the stream ends (its context's deadline)
		seen = append(seen, data)
		if strings.Contains(data, `"kind":"stage.changed"`) {
			for _, want := range []string{`"app":"papi"`, `"region":"prod3"`, `"run":2`, `"state":"running"`, `ada promoted papi 3333333 to prod3`} {
				if !strings.Contains(data, want) {
					t.Errorf("B's event %s lacks %s (A answered %q)", data, want, out)
				}
			}
			break
		}
	}
	if b.Server.live.Sent() == 0 || a.Server.live.Lost() != 0 {
		t.Errorf("B sent %d events, A lost %d; seen %v", b.Server.live.Sent(), a.Server.live.Lost(), seen)
	}
}

// TestEventStreamBeyondLoopbackKeepsTheLogToSignedInCallers: on a server reachable beyond
// loopback, an anonymous stream gets no line of a run's log and no event's message (the
// run's log needs sign-in there); a signed-in caller's stream gets both.
func TestEventStreamBeyondLoopbackKeepsTheLogToSignedInCallers(t *testing.T) {
	t.Parallel()
	in := openTest(t)
	in.Server.notePrivate(fakeListener{&net.TCPAddr{IP: net.IPv4zero}})
	srv := httptest.NewServer(in.Server.Handler())
	defer srv.Close()
	tok, err := CreateToken(t.Context(), in.Store, "ci", RoleMember, "test")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	open := func(headers ...string) *bufio.Reader {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/api/events", nil)
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		r := bufio.NewReader(resp.Body)
		if line, _ := r.ReadString('\n'); !strings.HasPrefix(line, "retry:") {
			t.Fatalf("first line %q, want the retry hint", line)
		}
		return r
	}
	anon, signed := open(), open("Authorization", "Bearer "+tok)
	in.Server.live.Notify(ctx, pipeline.Event{Kind: pipeline.Logged, App: "papi", Run: store.Run{ID: 7}, Message: "secret build output"})
	in.Server.live.Notify(ctx, pipeline.Event{Kind: pipeline.StageChanged, App: "papi", Region: "sandbox1", Run: store.Run{ID: 7}, Message: "FAIL TestSearch: secret test output"})
	if data := readEvent(t, anon); !strings.Contains(data, `"kind":"stage.changed"`) || strings.Contains(data, "secret") || !strings.Contains(data, `"run":7`) {
		t.Errorf("anonymous stream's first event %s; want the stage's change without its message (and no log line)", data)
	}
	if data := readEvent(t, signed); !strings.Contains(data, `"kind":"log"`) || !strings.Contains(data, "secret build output") {
		t.Errorf("signed-in stream's first event %s; want the log line", data)
	}
	if data := readEvent(t, signed); !strings.Contains(data, "secret test output") {
		t.Errorf("signed-in stream's second event %s; want the stage's message", data)
	}
}

package mirror

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// shadowServer is a real HTTP server that records what it was asked and answers
// with status, optionally waiting until release is closed.
type shadowServer struct {
	*httptest.Server
	mu      sync.Mutex
	got     []string // "METHOD URI"
	arrived chan string
	release chan struct{}
	status  int
}

func newShadow(t *testing.T, status int, block bool) *shadowServer {
	s := &shadowServer{arrived: make(chan string, 100), status: status}
	if block {
		s.release = make(chan struct{})
	}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		line := r.Method + " " + r.URL.RequestURI()
		s.mu.Lock()
		s.got = append(s.got, line)
		s.mu.Unlock()
		s.arrived <- line
		if s.release != nil {
			<-s.release
		}
		w.WriteHeader(s.status)
		io.WriteString(w, "shadow")
	}))
	t.Cleanup(func() {
		if s.release != nil {
			select {
			case <-s.release:
			default:
				close(s.release)
			}
		}
		s.Close()
	})
	return s
}

func (s *shadowServer) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.got...)
}

func newPrimary(t *testing.T) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Primary", "yes")
		if r.URL.Path == "/teapot" {
			w.WriteHeader(http.StatusTeapot)
		}
		io.WriteString(w, "primary "+r.Method+" "+r.URL.RequestURI()+" "+string(body))
	}))
	t.Cleanup(s.Close)
	return s
}

func newProxy(t *testing.T, primary string, o Options) (*Proxy, front) {
	p, err := New(primary, o)
	if err != nil {
		t.Fatal(err)
	}
	return p, serveProxy(t, p)
}

// front is where a proxy under test answers.
type front struct{ URL string }

func serveProxy(t testing.TB, p *Proxy) front {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := p.Serve(ln, nil)
	t.Cleanup(func() { srv.Close(); p.Close() })
	return front{URL: "http://" + ln.Addr().String()}
}

func do(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitFor polls cond until it holds or a generous deadline passes (no timing is asserted).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestPrimaryAnsweredUnchangedAndSafeMethodsMirrored(t *testing.T) {
	t.Parallel()
	primary := newPrimary(t)
	shadow := newShadow(t, http.StatusOK, false)
	p, front := newProxy(t, primary.URL, Options{})
	if err := p.SetShadow([]string{shadow.URL}); err != nil {
		t.Fatal(err)
	}
	code, body := do(t, "GET", front.URL+"/a?x=1", "")
	if code != 200 || body != "primary GET /a?x=1 " {
		t.Fatalf("GET through the mirror = %d %q", code, body)
	}
	if code, body := do(t, "POST", front.URL+"/b", "payload"); code != 200 || body != "primary POST /b payload" {
		t.Fatalf("POST through the mirror = %d %q", code, body)
	}
	do(t, "PUT", front.URL+"/c", "x")
	do(t, "DELETE", front.URL+"/d", "")
	do(t, "HEAD", front.URL+"/e", "")
	waitFor(t, "two mirrored requests", func() bool { return p.Stats().Mirrored == 2 })
	got := shadow.requests()
	if strings.Join(got, ",") != "GET /a?x=1,HEAD /e" && strings.Join(got, ",") != "HEAD /e,GET /a?x=1" {
		t.Fatalf("shadow got %q, want only the GET and the HEAD", got)
	}
	if st := p.Stats(); st.StatusMismatch != 0 || st.ShadowFailed != 0 {
		t.Fatalf("stats = %+v, want no mismatch and no failure", st)
	}
}

func TestConfiguredMethods(t *testing.T) {
	t.Parallel()
	shadow := newShadow(t, http.StatusOK, false)
	p, front := newProxy(t, newPrimary(t).URL, Options{Methods: []string{"OPTIONS"}})
	p.SetShadow([]string{shadow.URL})
	do(t, "GET", front.URL+"/a", "")
	do(t, "OPTIONS", front.URL+"/o", "")
	waitFor(t, "one mirrored request", func() bool { return p.Stats().Mirrored == 1 })
	if got := shadow.requests(); len(got) != 1 || got[0] != "OPTIONS /o" {
		t.Fatalf("shadow got %q, want only OPTIONS /o", got)
	}
}

func TestOffMirrorsNothing(t *testing.T) {
	t.Parallel()
	shadow := newShadow(t, http.StatusOK, false)
	p, front := newProxy(t, newPrimary(t).URL, Options{})
	p.SetShadow([]string{shadow.URL})
	p.Off()
	for range 5 {
		do(t, "GET", front.URL+"/a", "")
	}
	// A request mirrored after the off ones proves the queue has been drained past them.
	p.SetShadow([]string{shadow.URL})
	do(t, "GET", front.URL+"/marker", "")
	waitFor(t, "the marker", func() bool { return p.Stats().Mirrored == 1 })
	if got := shadow.requests(); len(got) != 1 || got[0] != "GET /marker" {
		t.Fatalf("shadow got %q, want only the marker", got)
	}
	if st := p.Stats(); st.Queued != 1 {
		t.Fatalf("queued = %d, want 1", st.Queued)
	}
}

func TestPrimaryAnswersBeforeSlowShadow(t *testing.T) {
	t.Parallel()
	shadow := newShadow(t, http.StatusOK, true)
	p, front := newProxy(t, newPrimary(t).URL, Options{})
	p.SetShadow([]string{shadow.URL})
	// The first copy reaches the shadow, which holds it; primary requests still complete
	// while the shadow has not answered.
	do(t, "GET", front.URL+"/1", "")
	<-shadow.arrived
	for i := range 20 {
		if code, _ := do(t, "GET", front.URL+"/more", ""); code != 200 {
			t.Fatalf("request %d = %d while the shadow is held", i, code)
		}
	}
	if st := p.Stats(); st.Mirrored != 0 {
		t.Fatalf("mirrored = %d before the shadow answered, want 0", st.Mirrored)
	}
	close(shadow.release)
	waitFor(t, "21 mirrored", func() bool { return p.Stats().Mirrored == 21 })
}

func TestDeadShadowCountsErrors(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	p, front := newProxy(t, newPrimary(t).URL, Options{})
	p.SetShadow([]string{dead})
	for range 3 {
		if code, _ := do(t, "GET", front.URL+"/a", ""); code != 200 {
			t.Fatalf("primary = %d with a dead shadow", code)
		}
	}
	waitFor(t, "3 shadow errors", func() bool { return p.Stats().ShadowErrors == 3 })
	st := p.Stats()
	if st.ShadowFailed != 3 || st.StatusMismatch != 3 || st.Mirrored != 3 {
		t.Fatalf("stats = %+v", st)
	}
	if recs := p.Records(0); len(recs) != 3 || recs[0].Shadow.Err == "" || recs[0].Primary.Status != 200 {
		t.Fatalf("records = %+v", recs)
	}
}

func TestDeadShadowRests(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	p, front := newProxy(t, newPrimary(t).URL, Options{})
	p.SetShadow([]string{dead})
	for i := range tripLimit {
		do(t, "GET", front.URL+"/a", "")
		waitFor(t, "a shadow error", func() bool { return p.Stats().ShadowErrors == uint64(i+1) })
	}
	for range 3 {
		if code, _ := do(t, "GET", front.URL+"/a", ""); code != 200 {
			t.Fatalf("primary = %d while the shadow rests", code)
		}
	}
	if st := p.Stats(); st.Shed != 3 || st.Queued != tripLimit {
		t.Fatalf("shed %d queued %d, want 3 shed after %d failures", st.Shed, st.Queued, tripLimit)
	}
}

func TestHangingShadowTimesOut(t *testing.T) {
	t.Parallel()
	shadow := newShadow(t, http.StatusOK, true)
	p, front := newProxy(t, newPrimary(t).URL, Options{Timeout: 50 * time.Millisecond})
	p.SetShadow([]string{shadow.URL})
	do(t, "GET", front.URL+"/a", "")
	waitFor(t, "a timeout", func() bool { return p.Stats().ShadowErrors == 1 })
	if r := p.Records(0); !strings.Contains(r[0].Shadow.Err, "deadline") {
		t.Fatalf("shadow error = %q, want a deadline", r[0].Shadow.Err)
	}
}

func TestQueueBoundDropsAndCounts(t *testing.T) {
	t.Parallel()
	shadow := newShadow(t, http.StatusOK, true)
	p, front := newProxy(t, newPrimary(t).URL, Options{Workers: 1, Queue: 2})
	p.SetShadow([]string{shadow.URL})
	do(t, "GET", front.URL+"/first", "")
	<-shadow.arrived // the only worker is busy from now on
	for range 10 {
		do(t, "GET", front.URL+"/more", "")
	}
	st := p.Stats()
	if st.Queued != 3 || st.Dropped != 8 {
		t.Fatalf("queued %d dropped %d, want 3 (1 in flight + 2 waiting) and 8", st.Queued, st.Dropped)
	}
	close(shadow.release)
	waitFor(t, "3 mirrored", func() bool { return p.Stats().Mirrored == 3 })
}

func TestMismatchCounted(t *testing.T) {
	t.Parallel()
	shadow := newShadow(t, http.StatusInternalServerError, false)
	p, front := newProxy(t, newPrimary(t).URL, Options{CompareBody: true})
	p.SetShadow([]string{shadow.URL})
	do(t, "GET", front.URL+"/a", "")
	if code, _ := do(t, "GET", front.URL+"/teapot", ""); code != http.StatusTeapot {
		t.Fatalf("primary status not passed through: %d", code)
	}
	waitFor(t, "2 mirrored", func() bool { return p.Stats().Mirrored == 2 })
	st := p.Stats()
	if st.StatusMismatch != 2 || st.ShadowFailed != 2 || st.PrimaryFailed != 0 || st.BodyMismatch != 2 {
		t.Fatalf("stats = %+v", st)
	}
	recs := p.Records(0)
	if len(recs) != 2 {
		t.Fatalf("records = %+v", recs)
	}
	for _, r := range recs {
		want := map[string]int{"/a": 200, "/teapot": http.StatusTeapot}[r.URI]
		if r.Primary.Status != want || r.Shadow.Status != 500 || r.StatusMatch {
			t.Fatalf("record %+v: want primary %d, shadow 500, no match", r, want)
		}
	}
	if later := p.Records(recs[0].Seq); len(later) != 1 || later[0].Seq != recs[1].Seq {
		t.Fatalf("Records(after first) = %+v", later)
	}
}

func TestBodyCompare(t *testing.T) {
	t.Parallel()
	same := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "primary "+r.Method+" "+r.URL.RequestURI()+" ")
	}))
	defer same.Close()
	other := newShadow(t, http.StatusOK, false)
	p, front := newProxy(t, newPrimary(t).URL, Options{CompareBody: true})
	p.SetShadow([]string{same.URL, other.URL}) // round robin: one each
	do(t, "GET", front.URL+"/x", "")
	do(t, "GET", front.URL+"/x", "")
	waitFor(t, "2 mirrored", func() bool { return p.Stats().Mirrored == 2 })
	if st := p.Stats(); st.StatusMismatch != 0 || st.BodyMismatch != 1 {
		t.Fatalf("stats = %+v, want 1 body mismatch", st)
	}
}

func TestRoundRobinOverTargets(t *testing.T) {
	t.Parallel()
	a, b := newShadow(t, 200, false), newShadow(t, 200, false)
	p, front := newProxy(t, newPrimary(t).URL, Options{Workers: 1})
	p.SetShadow([]string{a.URL, b.URL})
	for range 4 {
		do(t, "GET", front.URL+"/r", "")
	}
	waitFor(t, "4 mirrored", func() bool { return p.Stats().Mirrored == 4 })
	if len(a.requests()) != 2 || len(b.requests()) != 2 {
		t.Fatalf("a got %d, b got %d, want 2 each", len(a.requests()), len(b.requests()))
	}
}

func TestSetShadowRefusesBadURL(t *testing.T) {
	t.Parallel()
	p, _ := newProxy(t, newPrimary(t).URL, Options{})
	if err := p.SetShadow([]string{"canary1:8080"}); err == nil {
		t.Fatal("SetShadow accepted a URL without a scheme")
	}
	if _, err := New("not a url", Options{}); err == nil {
		t.Fatal("New accepted a bad primary")
	}
}

func TestResponsesStream(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	primary := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first\n")
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "second\n")
	}))
	defer primary.Close()
	shadow := newShadow(t, http.StatusOK, false)
	p, front := newProxy(t, primary.URL, Options{})
	p.SetShadow([]string{shadow.URL})
	resp, err := http.Get(front.URL + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 6)
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "first\n" {
		t.Fatalf("first chunk = %q, %v; want it before the primary finished", buf, err)
	}
	close(release)
	rest, _ := io.ReadAll(resp.Body)
	if string(rest) != "second\n" {
		t.Fatalf("rest = %q", rest)
	}
	waitFor(t, "the copy", func() bool { return p.Stats().Mirrored == 1 })
}

func TestPrimaryGetsHostForwardedForAndNoHopHeaders(t *testing.T) {
	t.Parallel()
	got := make(chan *http.Request, 1)
	primary := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r
		w.Header().Set("Keep-Alive", "timeout=5")
		io.WriteString(w, "ok")
	}))
	defer primary.Close()
	_, front := newProxy(t, primary.URL, Options{})
	req, _ := http.NewRequest("GET", front.URL+"/a/../b?q=1", nil)
	req.Host = "papi.example"
	req.Header.Set("X-Forwarded-For", "10.1.2.3")
	req.Header.Set("Proxy-Authorization", "Basic secret")
	req.Header.Set("Connection", "X-Private")
	req.Header.Set("X-Private", "hop")
	req.Header.Set("X-Request-Id", "abc")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	r := <-got
	if r.Host != "papi.example" || r.RequestURI != "/a/../b?q=1" {
		t.Errorf("primary saw Host %q URI %q, want the client's", r.Host, r.RequestURI)
	}
	if xff := r.Header.Get("X-Forwarded-For"); xff != "10.1.2.3, 127.0.0.1" {
		t.Errorf("X-Forwarded-For = %q", xff)
	}
	if r.Header.Get("Proxy-Authorization") != "" || r.Header.Get("X-Private") != "" || r.Header.Get("X-Request-Id") != "abc" {
		t.Errorf("headers at the primary: %v", r.Header)
	}
	if resp.Header.Get("Keep-Alive") != "" {
		t.Errorf("hop header Keep-Alive passed back: %v", resp.Header)
	}
}

func TestPrimaryGetsRequestBodies(t *testing.T) {
	t.Parallel()
	_, front := newProxy(t, newPrimary(t).URL, Options{})
	big := strings.Repeat("b", 3<<20)
	code, body := do(t, "POST", front.URL+"/upload", big)
	if code != 200 || body != "primary POST /upload "+big {
		t.Fatalf("POST through the proxy: %d, %d bytes", code, len(body))
	}
}

func TestUpgradesTunnelled(t *testing.T) {
	t.Parallel()
	primary := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "echo" {
			http.Error(w, "want an upgrade", http.StatusBadRequest)
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		brw.Flush()
		line, _ := brw.ReadString('\n')
		brw.WriteString("echo " + line)
		brw.Flush()
	}))
	defer primary.Close()
	_, front := newProxy(t, primary.URL, Options{})
	c, err := net.Dial("tcp", strings.TrimPrefix(front.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: papi\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade answer: %v %v", resp, err)
	}
	io.WriteString(c, "hello\n")
	if line, _ := br.ReadString('\n'); line != "echo hello\n" {
		t.Fatalf("through the tunnel: %q", line)
	}
}

func TestDeadPrimaryIsBadGateway(t *testing.T) {
	t.Parallel()
	_, front := newProxy(t, "http://"+freeAddr(t), Options{})
	if code, _ := do(t, "GET", front.URL+"/", ""); code != http.StatusBadGateway {
		t.Fatalf("dead primary: %d, want 502", code)
	}
}

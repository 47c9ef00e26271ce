package mirror

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// benchBackend is the backend of the benchmarks: a real HTTP server answering 101 bytes,
// like bench/mirror's backends.
func benchBackend(b *testing.B) *httptest.Server {
	body := strings.Repeat("x", 100) + "\n"
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body) }))
	b.Cleanup(s.Close)
	return s
}

// BenchmarkProxy measures a request through the proxy with mirroring off and on (fast
// shadow), end to end over HTTP. The side-by-side comparison with nginx is bench/mirror.
func BenchmarkProxy(b *testing.B) {
	primary, shadow := benchBackend(b), benchBackend(b)
	for _, on := range []bool{false, true} {
		name := map[bool]string{false: "off", true: "fast-shadow"}[on]
		b.Run(name, func(b *testing.B) {
			p := benchProxy(b, primary.URL, on, shadow.URL)
			front := serveProxy(b, p)
			c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := c.Get(front.URL + "/x")
					if err != nil {
						b.Fatal(err)
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
			drain(b, p)
		})
	}
}

// BenchmarkHandle is the proxy's own cost per request: its handler called directly (no
// client or front server), with the copies' cost counted by waiting until every queued
// copy was sent before the clock stops. The difference between "off" and "fast-shadow"
// is what mirroring costs per request (the shadow backend's own work included, as it is
// in bench/mirror).
func BenchmarkHandle(b *testing.B) {
	primary, shadow := benchBackend(b), benchBackend(b)
	for _, on := range []bool{false, true} {
		name := map[bool]string{false: "off", true: "fast-shadow"}[on]
		b.Run(name, func(b *testing.B) {
			p := benchProxy(b, primary.URL, on, shadow.URL)
			var ctx fasthttp.RequestCtx
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				ctx.Request.Reset()
				ctx.Response.Reset()
				ctx.Request.SetRequestURI("/x?id=1")
				ctx.Request.Header.SetHost("proxy")
				ctx.Request.Header.Set("User-Agent", "bench")
				ctx.Request.Header.Set("Accept", "*/*")
				p.handle(&ctx)
				ctx.Response.BodyWriteTo(io.Discard)
				ctx.Response.CloseBodyStream()
			}
			drain(b, p)
		})
	}
}

func benchProxy(b *testing.B, primary string, on bool, shadow string) *Proxy {
	p, err := New(primary, Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close() })
	if on {
		if err := p.SetShadow([]string{shadow}); err != nil {
			b.Fatal(err)
		}
	}
	return p
}

// drain waits until every queued copy was sent, so the copies' cost is in the timing.
func drain(b *testing.B, p *Proxy) {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		s := p.Stats()
		if s.Mirrored+s.Skipped >= s.Queued {
			return
		}
		time.Sleep(100 * time.Microsecond)
	}
	b.Fatalf("copies not sent after 10s: %+v", p.Stats())
}

package mirror

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkProxy measures a request through the proxy with mirroring off and on (fast
// shadow). The side-by-side comparison with nginx is bench/mirror.
func BenchmarkProxy(b *testing.B) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	primary := httptest.NewServer(ok)
	defer primary.Close()
	shadow := httptest.NewServer(ok)
	defer shadow.Close()
	for _, on := range []bool{false, true} {
		name := map[bool]string{false: "off", true: "fast-shadow"}[on]
		b.Run(name, func(b *testing.B) {
			p, err := New(primary.URL, Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			if on {
				p.SetShadow([]string{shadow.URL})
			}
			front := httptest.NewServer(p)
			defer front.Close()
			c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
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
		})
	}
}

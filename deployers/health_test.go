package deployers

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestProbeAcceptsAny2xxWithinItsTimeout(t *testing.T) {
	status := map[string]int{"/ok": 200, "/empty": 204, "/moved": 301, "/down": 503}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(300 * time.Millisecond)
			return
		}
		if r.URL.Path == "/moved" {
			w.Header().Set("Location", "/down")
		}
		w.WriteHeader(status[r.URL.Path])
	}))
	defer srv.Close()
	ctx := context.Background()
	for path, healthy := range map[string]bool{"/ok": true, "/empty": true, "/moved": false, "/down": false} {
		if err := Probe(ctx, srv.URL+path, time.Second); (err == nil) != healthy {
			t.Errorf("%s: err = %v, want healthy %v", path, err, healthy)
		}
	}
	if err := Probe(ctx, srv.URL+"/slow", 50*time.Millisecond); err == nil {
		t.Error("an answer slower than the timeout counted as healthy")
	}
}

package github

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"
)

// BenchmarkWebhook measures verifying, recording and acknowledging one push delivery
// (the work after the answer runs on its own goroutine and is waited for outside the
// timer): go test ./app/github -bench Webhook -run '^$'
func BenchmarkWebhook(b *testing.B) {
	h := newHarness(b)
	r := gin.New()
	h.app.Routes(r)
	body := fixture(b, "push.json", nil)
	sig := sign(body)
	b.ResetTimer()
	for i := range b.N {
		req := httptest.NewRequest("POST", "/webhooks/github", bytes.NewReader(body))
		req.Header.Set("X-GitHub-Event", "ping") // recorded and answered like a push; its work is trivial
		req.Header.Set("X-GitHub-Delivery", fmt.Sprint("bench-", i))
		req.Header.Set("X-Hub-Signature-256", sig)
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		if w.Code != http.StatusAccepted {
			b.Fatalf("delivery %d: %d %s", i, w.Code, w.Body)
		}
	}
	b.StopTimer()
	h.app.wg.Wait()
}

package github

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/immunity-app/immunity/app/github/githubtest"
	"github.com/immunity-app/immunity/bot"
	"github.com/immunity-app/immunity/checks"
	"github.com/immunity-app/immunity/deployers"
	"github.com/immunity-app/immunity/pipeline"
	"github.com/immunity-app/immunity/pipeline/config"
	"github.com/immunity-app/immunity/store"
)

// BenchmarkPushToFirstCheckRun measures a push webhook, over HTTP, to the first Check
// Run GitHub receives for its commit (the real engine, store and reporter; a fake GitHub
// over HTTP; a release build that takes no time), beside the webhook's own answer:
//
//	go test ./app/github -run '^$' -bench PushToFirstCheckRun -benchtime 50x
func BenchmarkPushToFirstCheckRun(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	cfg, err := config.Parse(filepath.Join(dir, "immunity.yml"), []byte(e2eConfig))
	if err != nil {
		b.Fatal(err)
	}
	st, err := store.Open(ctx, filepath.Join(dir, "immunity.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	dep := &hosts{state: map[string]deployers.HostState{}}
	eng, err := pipeline.New(pipeline.Options{Config: cfg, Store: st, Builder: builder{dir}, Tester: tester{},
		Deployer: func(*config.App, *config.Region) (deployers.Deployer, error) { return dep, nil }})
	if err != nil {
		b.Fatal(err)
	}
	fake := githubtest.New(b)
	ghApp, err := New(githubConfig(b, fake), eng, bot.New(eng, nil), nil)
	if err != nil {
		b.Fatal(err)
	}
	rep := checks.NewReporter(cfg, st, ghApp.Clients(), nil)
	eng.AddListener(rep)
	if err := eng.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer func() { eng.Stop(); rep.Close(ctx); ghApp.Close(ctx) }()
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	ghApp.Routes(r)
	srv := httptest.NewServer(r)
	defer srv.Close()

	var acks, firsts []time.Duration
	b.ResetTimer()
	for i := range b.N {
		sha := fmt.Sprintf("%040x", i+1)
		body := fixture(b, "push.json", map[string]any{"after": sha, "head_commit.id": sha})
		req, _ := http.NewRequest("POST", srv.URL+"/webhooks/github", bytes.NewReader(body))
		req.Header.Set("X-GitHub-Event", "push")
		req.Header.Set("X-GitHub-Delivery", "bench-"+sha)
		req.Header.Set("X-Hub-Signature-256", sign(body))
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusAccepted {
			b.Fatalf("push %d: %v %v", i, resp, err)
		}
		resp.Body.Close()
		acks = append(acks, time.Since(start))
		for !checkRunFor(fake, sha) {
			if time.Since(start) > 30*time.Second {
				b.Fatalf("no check run for %s after 30 s: %v", sha[:7], fake.Calls())
			}
			time.Sleep(200 * time.Microsecond)
		}
		firsts = append(firsts, time.Since(start))
	}
	b.StopTimer()
	ack, first := medianOf(acks), medianOf(firsts)
	b.ReportMetric(float64(ack.Microseconds())/1000, "ack-ms")
	b.ReportMetric(float64(first.Microseconds())/1000, "first-check-ms")
	if b.N >= 10 {
		fmt.Printf("SUMMARY\tpushcheck\tpush to first Check Run, ms (median of %d)\t%.1f\t%.1f\tthe webhook's answer\t< 1000\t%t\n",
			b.N, float64(first.Microseconds())/1000, float64(ack.Microseconds())/1000, first < time.Second)
	}
}

func checkRunFor(fake *githubtest.Server, sha string) bool {
	for _, r := range fake.Find("POST /repos/Codertocat/Hello-World/check-runs") {
		if r.JSON()["head_sha"] == sha {
			return true
		}
	}
	return false
}

func medianOf(ds []time.Duration) time.Duration {
	ds = slices.Clone(ds)
	slices.Sort(ds)
	return ds[len(ds)/2]
}

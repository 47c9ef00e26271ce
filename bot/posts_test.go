package bot

import (
	"testing"
	"time"

	"github.com/immunity-app/immunity/pipeline"
	"github.com/immunity-app/immunity/store"
)

func TestReconciliationIsPostedInTheRunsThreadOrTheChannel(t *testing.T) {
	ev := pipeline.Event{Kind: pipeline.Reconciled, App: "papi", Region: "prod3", Host: "host2", Time: time.Unix(1700000000, 0),
		Message: "prod3/host2 found on 1a2b3c4, store said 2b3c4d5", Run: store.Run{ID: 7, App: "papi"}}
	posts := PostsFor(nil, ev, nil)
	if len(posts) != 1 || posts[0].RunID != 7 || posts[0].Text != ev.Message || posts[0].Icon != IconWarning || posts[0].Key == "" {
		t.Fatalf("posts in a run = %+v", posts)
	}
	ev.Run = store.Run{}
	if posts = PostsFor(nil, ev, nil); len(posts) != 1 || posts[0].RunID != 0 || posts[0].Text != ev.Message {
		t.Fatalf("posts outside a run = %+v", posts)
	}
}

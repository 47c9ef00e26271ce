package slackbot

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/immunity-app/immunity/bot"
	"github.com/immunity-app/immunity/internal/pgtest"
	"github.com/immunity-app/immunity/store"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// Two replicas deliver the same run's root at once (one lost its outbox lease while
// posting): the store's claim lets one post it, the other waits and then threads under it.
func TestOneRootAcrossReplicas(t *testing.T) {
	for engine, database := range map[string]func(t *testing.T) string{
		"sqlite":   func(t *testing.T) string { return filepath.Join(t.TempDir(), "immunity.db") },
		"postgres": func(t *testing.T) string { return pgtest.Database(t) },
	} {
		t.Run(engine, func(t *testing.T) {
			f := newFakeSlack(t)
			f.Hold = make(chan struct{}) // Slack answers the first root only once both tried
			db := database(t)
			var bots []*Bot
			for _, name := range []string{"a", "b"} {
				st := openStore(t, db)
				st.SetReplica(name)
				b, _ := newTestBot(t, testConfig(f.GetAPIURL()), st, &fakeExec{})
				bots = append(bots, b)
			}
			row := func(kind string, it outboxItem) store.OutboxItem {
				payload, err := json.Marshal(it)
				if err != nil {
					t.Fatal(err)
				}
				return store.OutboxItem{Stream: "slack/run/5", Kind: kind, Payload: string(payload)}
			}
			root := row(kindRoot, outboxItem{RunID: 5, Channel: "#deploys", Root: &bot.Root{App: "papi", RunID: 5, SHA: "1a2b3c4d5e", State: store.RunBuilding}})

			var waited atomic.Int32
			var release sync.Once
			free := func() { release.Do(func() { close(f.Hold) }) }
			defer time.AfterFunc(10*time.Second, free).Stop() // both posting: the claim did not hold
			var wg sync.WaitGroup
			errs := make([]error, len(bots))
			for i, b := range bots {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						err := b.deliver(t.Context(), root, nil)
						if !errors.Is(err, errWait) {
							errs[i] = err
							return
						}
						waited.Add(1)
						free() // the other replica is posting; let Slack answer it
					}
				}()
			}
			wg.Wait()
			for _, err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			if waited.Load() == 0 {
				t.Fatal("neither replica waited for the other's root")
			}
			for i, b := range bots {
				post := row(kindPost, outboxItem{RunID: 5, Channel: "#deploys", Post: &bot.Post{RunID: 5, App: "papi", Text: "reply from " + []string{"a", "b"}[i]}})
				if err := b.deliver(t.Context(), post, nil); err != nil {
					t.Fatal(err)
				}
			}
			var roots, replies []call
			for _, c := range f.Calls() {
				if c.Method != "chat.postMessage" {
					continue
				}
				if c.ThreadTS == "" {
					roots = append(roots, c)
				} else {
					replies = append(replies, c)
				}
			}
			if len(roots) != 1 || len(replies) != 2 {
				t.Fatalf("roots %+v, replies %+v; want one root and both replies under it", roots, replies)
			}
			for _, c := range replies {
				if c.ThreadTS != roots[0].TS || c.Channel != "C0DEPLOYS" {
					t.Errorf("%q in thread %s of %s, want the one root %s", c.Text, c.ThreadTS, c.Channel, roots[0].TS)
				}
			}
		})
	}
}

// A signed request replayed to another replica, or to a server started again, while its
// timestamp is still accepted is refused there too: its command runs once.
func TestReplayRefusedByEveryReplica(t *testing.T) {
	for engine, database := range map[string]func(t *testing.T) string{
		"sqlite":   func(t *testing.T) string { return filepath.Join(t.TempDir(), "immunity.db") },
		"postgres": func(t *testing.T) string { return pgtest.Database(t) },
	} {
		t.Run(engine, func(t *testing.T) {
			f := newFakeSlack(t)
			resp := newResponses(t, f)
			db := database(t)
			exec := &fakeExec{}
			body := slashBody(t, "rollback papi prod3", resp.URL)
			first := signedRequest("/slack/commands", secret, body, time.Now())
			header := first.Header.Clone()
			botA, a := newTestBot(t, testConfig(f.GetAPIURL()), openStore(t, db), exec)
			botB, b := newTestBot(t, testConfig(f.GetAPIURL()), openStore(t, db), exec)
			if w := serve(a, first); w.Code != http.StatusOK {
				t.Fatalf("the signed request: %d %s", w.Code, w.Body)
			}
			// The same request again: to the other replica, then to a server started on the
			// same database afterwards.
			botC, restarted := newTestBot(t, testConfig(f.GetAPIURL()), openStore(t, db), exec)
			for name, r := range map[string]*gin.Engine{"another replica": b, "a server started again": restarted} {
				replayed := httptest.NewRequest(http.MethodPost, "/slack/commands", strings.NewReader(body))
				replayed.Header = header.Clone()
				if w := serve(r, replayed); w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), "replayed") {
					t.Errorf("replayed to %s: answered %d %s; want 401, replayed", name, w.Code, w.Body)
				}
			}
			// A new request (a new timestamp and signature) still runs.
			if w := serve(b, signedRequest("/slack/commands", secret, body, time.Now().Add(time.Second))); w.Code != http.StatusOK {
				t.Fatalf("a second signed request: %d %s", w.Code, w.Body)
			}
			for _, bt := range []*Bot{botA, botB, botC} {
				bt.Close(t.Context()) // waits for the commands in flight
			}
			if len(exec.Reqs()) != 2 {
				t.Fatalf("commands run: %+v; want the first request's and the second's", exec.Reqs())
			}
		})
	}
}

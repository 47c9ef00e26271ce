package slackbot

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/immunity-app/immunity/bot/slackbot/slackfake"
	"github.com/slack-go/slack"
)

// fakeSlack is the fake Slack the bot's tests talk to.
type fakeSlack = slackfake.Server

type call = slackfake.Call

func newFakeSlack(t *testing.T) *fakeSlack { return slackfake.New(t) }

// responses records what was posted to a response_url on the fake Slack's host (the bot
// follows only response_urls of Slack's hooks host or of the configured API's host).
type responses struct {
	URL  string
	mu   sync.Mutex
	msgs []slack.WebhookMessage
}

var responsesN atomic.Int64

// newResponses serves a fresh response_url on f.
func newResponses(t *testing.T, f *fakeSlack) *responses {
	r := &responses{}
	path := fmt.Sprintf("/hooks/commands/T0001/%d/resp", responsesN.Add(1))
	r.URL = strings.TrimSuffix(f.GetAPIURL(), "/") + path
	f.Handle(path, func(w http.ResponseWriter, req *http.Request) {
		var m slack.WebhookMessage
		if err := json.NewDecoder(req.Body).Decode(&m); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		r.msgs = append(r.msgs, m)
		r.mu.Unlock()
	})
	return r
}

func (r *responses) Msgs() []slack.WebhookMessage {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]slack.WebhookMessage(nil), r.msgs...)
}

// signedRequest builds a request the way Slack signs it: v0=HMAC-SHA256(secret,
// "v0:timestamp:body") in X-Slack-Signature, the timestamp in X-Slack-Request-Timestamp.
func signedRequest(path, secret, body string, at time.Time) *http.Request {
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	ts := strconv.FormatInt(at.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	io.WriteString(mac, "v0:"+ts+":"+body)
	req.Header.Set("X-Slack-Request-Timestamp", ts)
	req.Header.Set("X-Slack-Signature", "v0="+hex.EncodeToString(mac.Sum(nil)))
	return req
}

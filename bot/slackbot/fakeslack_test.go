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
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slacktest"
)

// call is one Web API call the fake Slack received.
type call struct {
	Method    string          `json:"method"`
	Channel   string          `json:"channel"`
	TS        string          `json:"ts,omitempty"`        // chat.update: the message updated; postMessage: the ts given back
	ThreadTS  string          `json:"thread_ts,omitempty"` // a reply's thread
	Broadcast bool            `json:"reply_broadcast,omitempty"`
	Text      string          `json:"text"`
	Blocks    json.RawMessage `json:"blocks,omitempty"`
	At        time.Time       `json:"-"` // when it was accepted, by now (or the real clock)
}

// fakeSlack is slacktest's server with the handlers it lacks (chat.update, the files
// upload flow, usergroups.users.list) and a chat.postMessage that hands out distinct ts;
// it records every call. limited makes the next N calls of a method answer 429.
type fakeSlack struct {
	*slacktest.Server
	mu      sync.Mutex
	calls   []call
	n       int
	uploads map[string][]byte // file id -> bytes
	shared  []url.Values      // files.completeUploadExternal forms
	limited map[string]int
	// limit, when set, is asked before each call: a Retry-After > 0 answers 429 with it.
	limit    func() (retryAfter int)
	hold     chan struct{}    // when set, chat.postMessage waits on it
	rejected int              // calls answered 429 by limit
	now      func() time.Time // the clock calls are stamped with; nil: the real one
	groups   map[string][]string
}

func newFakeSlack(t *testing.T) *fakeSlack {
	f := &fakeSlack{uploads: map[string][]byte{}, limited: map[string]int{}, groups: map[string][]string{}}
	f.Server = slacktest.NewTestServer(func(c slacktest.Customize) {
		c.Handle("/chat.postMessage", f.postMessage)
		c.Handle("/chat.update", f.update)
		c.Handle("/files.getUploadURLExternal", f.uploadURL)
		c.Handle("/upload/", f.upload)
		c.Handle("/files.completeUploadExternal", f.complete)
		c.Handle("/usergroups.users.list", f.groupMembers)
	})
	f.Start()
	t.Cleanup(f.Stop)
	return f
}

func (f *fakeSlack) form(w http.ResponseWriter, r *http.Request, method string) (url.Values, bool) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return nil, false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.limited[method] > 0 {
		f.limited[method]--
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusTooManyRequests)
		return nil, false
	}
	if f.limit != nil {
		if ra := f.limit(); ra > 0 {
			f.rejected++
			w.Header().Set("Retry-After", strconv.Itoa(ra))
			w.WriteHeader(http.StatusTooManyRequests)
			return nil, false
		}
	}
	return r.PostForm, true
}

// channelIDs are the workspace's channels: chat.postMessage takes a name or an ID and
// answers with the ID; chat.update and file uploads take only the ID, as Slack's API does.
var channelIDs = map[string]string{"#deploys": "C0DEPLOYS", "deploys": "C0DEPLOYS", "C0DEPLOYS": "C0DEPLOYS", "#ops": "C0OPS", "C0OPS": "C0OPS"}

// refuseChannel answers Slack's error for a channel the method cannot take.
func refuseChannel(w http.ResponseWriter, ch string, idOnly bool) bool {
	id, known := channelIDs[ch]
	if known && (!idOnly || id == ch) {
		return false
	}
	json.NewEncoder(w).Encode(map[string]any{"ok": false, "error": "channel_not_found"})
	return true
}

func (f *fakeSlack) postMessage(w http.ResponseWriter, r *http.Request) {
	if f.hold != nil {
		<-f.hold
	}
	v, ok := f.form(w, r, "chat.postMessage")
	if !ok || refuseChannel(w, v.Get("channel"), false) {
		return
	}
	f.mu.Lock()
	f.n++
	ts := fmt.Sprintf("1700000000.%06d", f.n)
	f.calls = append(f.calls, call{At: f.stamp(), Method: "chat.postMessage", Channel: v.Get("channel"), TS: ts, ThreadTS: v.Get("thread_ts"),
		Broadcast: v.Get("reply_broadcast") == "true", Text: v.Get("text"), Blocks: json.RawMessage(v.Get("blocks"))})
	f.mu.Unlock()
	json.NewEncoder(w).Encode(map[string]any{"ok": true, "channel": channelIDs[v.Get("channel")], "ts": ts})
}

func (f *fakeSlack) update(w http.ResponseWriter, r *http.Request) {
	v, ok := f.form(w, r, "chat.update")
	if !ok || refuseChannel(w, v.Get("channel"), true) {
		return
	}
	f.mu.Lock()
	f.calls = append(f.calls, call{At: f.stamp(), Method: "chat.update", Channel: v.Get("channel"), TS: v.Get("ts"), Text: v.Get("text"), Blocks: json.RawMessage(v.Get("blocks"))})
	f.mu.Unlock()
	json.NewEncoder(w).Encode(map[string]any{"ok": true, "channel": v.Get("channel"), "ts": v.Get("ts"), "text": v.Get("text")})
}

func (f *fakeSlack) uploadURL(w http.ResponseWriter, r *http.Request) {
	v, ok := f.form(w, r, "files.getUploadURLExternal")
	if !ok {
		return
	}
	f.mu.Lock()
	f.n++
	id := fmt.Sprintf("F%06d", f.n)
	f.mu.Unlock()
	json.NewEncoder(w).Encode(map[string]any{"ok": true, "file_id": id, "upload_url": f.GetAPIURL() + "upload/" + id + "?name=" + url.QueryEscape(v.Get("filename"))})
}

func (f *fakeSlack) upload(w http.ResponseWriter, r *http.Request) {
	file, _, err := r.FormFile("file")
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	b, _ := io.ReadAll(file)
	f.mu.Lock()
	f.uploads[strings.TrimPrefix(r.URL.Path, "/upload/")] = b
	f.mu.Unlock()
	w.Write([]byte("OK"))
}

func (f *fakeSlack) complete(w http.ResponseWriter, r *http.Request) {
	v, ok := f.form(w, r, "files.completeUploadExternal")
	if !ok || refuseChannel(w, v.Get("channel_id"), true) {
		return
	}
	var files []slack.FileSummary
	json.Unmarshal([]byte(v.Get("files")), &files)
	f.mu.Lock()
	f.shared = append(f.shared, v)
	f.calls = append(f.calls, call{At: f.stamp(), Method: "files.completeUploadExternal", Channel: v.Get("channel_id"), ThreadTS: v.Get("thread_ts"), Text: v.Get("files")})
	f.mu.Unlock()
	json.NewEncoder(w).Encode(map[string]any{"ok": true, "files": files})
}

func (f *fakeSlack) groupMembers(w http.ResponseWriter, r *http.Request) {
	v, ok := f.form(w, r, "usergroups.users.list")
	if !ok {
		return
	}
	f.mu.Lock()
	users := f.groups[v.Get("usergroup")]
	f.mu.Unlock()
	json.NewEncoder(w).Encode(map[string]any{"ok": true, "users": users})
}

func (f *fakeSlack) stamp() time.Time {
	if f.now != nil {
		return f.now()
	}
	return time.Now()
}

func (f *fakeSlack) Calls() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]call(nil), f.calls...)
}

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

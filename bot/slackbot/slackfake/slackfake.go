// Package slackfake is a fake Slack Web API for tests, strict where Slack is: the calls
// Immunity makes (chat.postMessage, chat.update, the files upload flow,
// usergroups.users.list, conversations.replies, .history and .list) on slack-go's slacktest server, each
// recorded, with rate limits and lost answers on demand. Servers under test reach it by slack.api_url (IMMUNITY_SLACK_API_URL).
package slackfake

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slacktest"
)

// Call is one Web API call the fake Slack received.
type Call struct {
	Method    string          `json:"method"`
	Channel   string          `json:"channel"`
	TS        string          `json:"ts,omitempty"`        // chat.update: the message updated; postMessage: the ts given back
	ThreadTS  string          `json:"thread_ts,omitempty"` // a reply's thread
	Broadcast bool            `json:"reply_broadcast,omitempty"`
	Text      string          `json:"text"`
	Blocks    json.RawMessage `json:"blocks,omitempty"`
	Metadata  json.RawMessage `json:"-"` // chat.postMessage's metadata, as sent
	At        time.Time       `json:"-"` // when it was accepted, by now (or the real clock)
	Refusal   string          `json:"-"` // a refused call's error and what was wrong (Refused)
}

// Server is slacktest's server with the handlers it lacks (chat.update, the files
// upload flow, usergroups.users.list) and a chat.postMessage that hands out distinct ts;
// it records every call. Like Slack's API, chat.update and file uploads take only a
// channel's ID. Set its knobs under Mu.
type Server struct {
	*slacktest.Server
	Mu      sync.Mutex
	calls   []Call
	n       int
	Uploads map[string][]byte // file id -> bytes
	shared  []url.Values      // files.completeUploadExternal forms
	// Limited makes the next N calls of a method answer 429.
	Limited map[string]int
	// Limit, when set, is asked before each call: a Retry-After > 0 answers 429 with it.
	Limit    func() (retryAfter int)
	Hold     chan struct{}    // when set, chat.postMessage waits on it
	Rejected int              // calls answered 429 by Limit
	Now      func() time.Time // the clock calls are stamped with; nil: the real one
	Groups   map[string][]string
	// Lose, when set, is asked after a call was carried out: true cuts the connection
	// instead of answering, as a network does when the answer is lost on its way back.
	Lose func(Call) bool
	Lost int // answers lost by Lose
	// Unscoped methods answer missing_scope, as Slack does for a token without their scope.
	Unscoped map[string]bool
	names    map[string]string // file id -> its name (files.getUploadURLExternal)
	refused  []Call            // messages refused as Slack refuses them (CheckMessage)
}

// New starts a fake Slack, stopped at the test's end; its Web API is at GetAPIURL().
func New(t testing.TB) *Server {
	f := &Server{Uploads: map[string][]byte{}, Limited: map[string]int{}, Groups: map[string][]string{}, names: map[string]string{}}
	f.Server = slacktest.NewTestServer(func(c slacktest.Customize) {
		c.Handle("/chat.postMessage", f.postMessage)
		c.Handle("/chat.update", f.update)
		c.Handle("/files.getUploadURLExternal", f.uploadURL)
		c.Handle("/upload/", f.upload)
		c.Handle("/files.completeUploadExternal", f.complete)
		c.Handle("/usergroups.users.list", f.groupMembers)
		c.Handle("/conversations.replies", f.replies)
		c.Handle("/conversations.history", f.history)
		c.Handle("/conversations.list", f.list)
	})
	f.Start()
	t.Cleanup(f.Stop)
	return f
}

func (f *Server) form(w http.ResponseWriter, r *http.Request, method string) (url.Values, bool) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return nil, false
	}
	f.Mu.Lock()
	defer f.Mu.Unlock()
	if f.Unscoped[method] {
		json.NewEncoder(w).Encode(map[string]any{"ok": false, "error": "missing_scope"})
		return nil, false
	}
	if f.Limited[method] > 0 {
		f.Limited[method]--
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusTooManyRequests)
		return nil, false
	}
	if f.Limit != nil {
		if ra := f.Limit(); ra > 0 {
			f.Rejected++
			w.Header().Set("Retry-After", strconv.Itoa(ra))
			w.WriteHeader(http.StatusTooManyRequests)
			return nil, false
		}
	}
	return r.PostForm, true
}

// channelIDs are the workspace's channels: chat.postMessage takes a name or an ID and
// answers with the ID; chat.update and file uploads take only the ID, as Slack's API does.
var channelIDs = map[string]string{"#deploys": "C0DEPLOYS", "deploys": "C0DEPLOYS", "C0DEPLOYS": "C0DEPLOYS", "#ops": "C0OPS", "ops": "C0OPS", "C0OPS": "C0OPS"}

// refuseChannel answers Slack's error for a channel the method cannot take.
func refuseChannel(w http.ResponseWriter, ch string, idOnly bool) bool {
	id, known := channelIDs[ch]
	if known && (!idOnly || id == ch) {
		return false
	}
	json.NewEncoder(w).Encode(map[string]any{"ok": false, "error": "channel_not_found"})
	return true
}

// refuseMessage answers Slack's error for a message over its limits (CheckMessage), and
// keeps the call among the refused ones.
func (f *Server) refuseMessage(w http.ResponseWriter, method string, v url.Values) bool {
	code, problems := CheckMessage(v.Get("text"), []byte(v.Get("blocks")))
	if code == "" {
		return false
	}
	f.Mu.Lock()
	f.refused = append(f.refused, Call{At: f.stamp(), Method: method, Channel: v.Get("channel"), TS: v.Get("ts"), ThreadTS: v.Get("thread_ts"),
		Text: v.Get("text"), Blocks: json.RawMessage(v.Get("blocks")), Refusal: code + ": " + strings.Join(problems, "; ")})
	f.Mu.Unlock()
	json.NewEncoder(w).Encode(map[string]any{"ok": false, "error": code, "errors": problems,
		"response_metadata": map[string]any{"messages": problems}})
	return true
}

func (f *Server) postMessage(w http.ResponseWriter, r *http.Request) {
	if f.Hold != nil {
		<-f.Hold
	}
	v, ok := f.form(w, r, "chat.postMessage")
	if !ok || refuseChannel(w, v.Get("channel"), false) || f.refuseMessage(w, "chat.postMessage", v) {
		return
	}
	f.Mu.Lock()
	f.n++
	ts := fmt.Sprintf("%d.%06d", time.Now().Unix(), f.n) // Slack's clock, not the test's
	c := Call{At: f.stamp(), Method: "chat.postMessage", Channel: v.Get("channel"), TS: ts, ThreadTS: v.Get("thread_ts"),
		Broadcast: v.Get("reply_broadcast") == "true", Text: v.Get("text"), Blocks: json.RawMessage(v.Get("blocks")), Metadata: json.RawMessage(v.Get("metadata"))}
	f.calls = append(f.calls, c)
	f.Mu.Unlock()
	if f.lose(w, c) {
		return
	}
	json.NewEncoder(w).Encode(map[string]any{"ok": true, "channel": channelIDs[v.Get("channel")], "ts": ts})
}

func (f *Server) update(w http.ResponseWriter, r *http.Request) {
	v, ok := f.form(w, r, "chat.update")
	if !ok || refuseChannel(w, v.Get("channel"), true) || f.refuseMessage(w, "chat.update", v) {
		return
	}
	f.Mu.Lock()
	f.calls = append(f.calls, Call{At: f.stamp(), Method: "chat.update", Channel: v.Get("channel"), TS: v.Get("ts"), Text: v.Get("text"), Blocks: json.RawMessage(v.Get("blocks"))})
	f.Mu.Unlock()
	json.NewEncoder(w).Encode(map[string]any{"ok": true, "channel": v.Get("channel"), "ts": v.Get("ts"), "text": v.Get("text")})
}

func (f *Server) uploadURL(w http.ResponseWriter, r *http.Request) {
	v, ok := f.form(w, r, "files.getUploadURLExternal")
	if !ok {
		return
	}
	f.Mu.Lock()
	f.n++
	id := fmt.Sprintf("F%06d", f.n)
	f.names[id] = v.Get("filename")
	f.Mu.Unlock()
	json.NewEncoder(w).Encode(map[string]any{"ok": true, "file_id": id, "upload_url": f.GetAPIURL() + "upload/" + id + "?name=" + url.QueryEscape(v.Get("filename"))})
}

func (f *Server) upload(w http.ResponseWriter, r *http.Request) {
	file, _, err := r.FormFile("file")
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	b, _ := io.ReadAll(file)
	f.Mu.Lock()
	f.Uploads[strings.TrimPrefix(r.URL.Path, "/upload/")] = b
	f.Mu.Unlock()
	w.Write([]byte("OK"))
}

func (f *Server) complete(w http.ResponseWriter, r *http.Request) {
	v, ok := f.form(w, r, "files.completeUploadExternal")
	if !ok || refuseChannel(w, v.Get("channel_id"), true) {
		return
	}
	var files []slack.FileSummary
	json.Unmarshal([]byte(v.Get("files")), &files)
	f.Mu.Lock()
	f.shared = append(f.shared, v)
	c := Call{At: f.stamp(), Method: "files.completeUploadExternal", Channel: v.Get("channel_id"), ThreadTS: v.Get("thread_ts"), Text: v.Get("files")}
	f.calls = append(f.calls, c)
	f.Mu.Unlock()
	if f.lose(w, c) {
		return
	}
	json.NewEncoder(w).Encode(map[string]any{"ok": true, "files": files})
}

// lose cuts the connection instead of answering when Lose says so.
func (f *Server) lose(w http.ResponseWriter, c Call) bool {
	f.Mu.Lock()
	cut := f.Lose != nil && f.Lose(c)
	if cut {
		f.Lost++
	}
	f.Mu.Unlock()
	if !cut {
		return false
	}
	conn, _, err := w.(http.Hijacker).Hijack()
	if err != nil {
		panic(err)
	}
	conn.Close()
	return true
}

// replies answers conversations.replies as Slack does: the thread's parent and its
// replies (a shared file as a message with its files), by the channel's ID only, and
// each message's metadata only when include_all_metadata asks for it.
func (f *Server) replies(w http.ResponseWriter, r *http.Request) {
	v, ok := f.form(w, r, "conversations.replies")
	if !ok || refuseChannel(w, v.Get("channel"), true) {
		return
	}
	ts := v.Get("ts")
	if ts == "" {
		json.NewEncoder(w).Encode(map[string]any{"ok": false, "error": "thread_not_found"})
		return
	}
	meta := v.Get("include_all_metadata") == "1" || v.Get("include_all_metadata") == "true"
	f.Mu.Lock()
	defer f.Mu.Unlock()
	var msgs []map[string]any
	found := false
	for _, c := range f.calls {
		if channelIDs[c.Channel] != v.Get("channel") {
			continue
		}
		switch {
		case c.Method == "chat.postMessage" && (c.TS == ts || c.ThreadTS == ts):
			found = found || c.TS == ts
			m := map[string]any{"type": "message", "ts": c.TS, "text": c.Text}
			if c.ThreadTS != "" {
				m["thread_ts"] = c.ThreadTS
			}
			if meta && len(c.Metadata) > 0 {
				m["metadata"] = c.Metadata
			}
			msgs = append(msgs, m)
		case c.Method == "files.completeUploadExternal" && c.ThreadTS == ts:
			var shared []slack.FileSummary
			json.Unmarshal([]byte(c.Text), &shared)
			var files []map[string]any
			for _, s := range shared {
				files = append(files, map[string]any{"id": s.ID, "title": s.Title, "name": f.names[s.ID]})
			}
			msgs = append(msgs, map[string]any{"type": "message", "thread_ts": ts, "files": files})
		}
	}
	if !found {
		json.NewEncoder(w).Encode(map[string]any{"ok": false, "error": "thread_not_found"})
		return
	}
	json.NewEncoder(w).Encode(map[string]any{"ok": true, "messages": msgs, "has_more": false})
}

// history answers conversations.history as Slack does: a channel's messages (not the
// replies in its threads, but those also sent to the channel), newest first, since oldest,
// by the channel's ID only, with metadata only when include_all_metadata asks for it.
func (f *Server) history(w http.ResponseWriter, r *http.Request) {
	v, ok := f.form(w, r, "conversations.history")
	if !ok || refuseChannel(w, v.Get("channel"), true) {
		return
	}
	oldest, _ := strconv.ParseFloat(v.Get("oldest"), 64)
	meta := v.Get("include_all_metadata") == "1" || v.Get("include_all_metadata") == "true"
	f.Mu.Lock()
	defer f.Mu.Unlock()
	msgs := []map[string]any{}
	for i := len(f.calls) - 1; i >= 0; i-- {
		c := f.calls[i]
		if c.Method != "chat.postMessage" || channelIDs[c.Channel] != v.Get("channel") || (c.ThreadTS != "" && !c.Broadcast) {
			continue
		}
		if ts, _ := strconv.ParseFloat(c.TS, 64); ts < oldest {
			continue
		}
		m := map[string]any{"type": "message", "ts": c.TS, "text": c.Text}
		if meta && len(c.Metadata) > 0 {
			m["metadata"] = c.Metadata
		}
		msgs = append(msgs, m)
	}
	json.NewEncoder(w).Encode(map[string]any{"ok": true, "messages": msgs, "has_more": false})
}

// list answers conversations.list: the workspace's channels, by ID and name.
func (f *Server) list(w http.ResponseWriter, r *http.Request) {
	if _, ok := f.form(w, r, "conversations.list"); !ok {
		return
	}
	chans := []map[string]any{}
	for name, id := range channelIDs {
		if !strings.HasPrefix(name, "#") && name != id {
			chans = append(chans, map[string]any{"id": id, "name": name, "is_channel": true})
		}
	}
	json.NewEncoder(w).Encode(map[string]any{"ok": true, "channels": chans, "response_metadata": map[string]any{"next_cursor": ""}})
}

func (f *Server) groupMembers(w http.ResponseWriter, r *http.Request) {
	v, ok := f.form(w, r, "usergroups.users.list")
	if !ok {
		return
	}
	f.Mu.Lock()
	users := f.Groups[v.Get("usergroup")]
	f.Mu.Unlock()
	json.NewEncoder(w).Encode(map[string]any{"ok": true, "users": users})
}

func (f *Server) stamp() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}

// Refused lists the messages refused for being over Slack's limits, in order.
func (f *Server) Refused() []Call {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	return append([]Call(nil), f.refused...)
}

// Calls lists the calls received, in order.
func (f *Server) Calls() []Call {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	return append([]Call(nil), f.calls...)
}

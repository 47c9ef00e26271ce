package github

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	gojson "github.com/goccy/go-json"
	gh "github.com/google/go-github/v60/github"

	"github.com/immunity-app/immunity/store"
)

// A payload is decoded once, on the request path, into the type its work reads: the
// go-github event of its X-GitHub-Event (pushes, check runs and suites: structs of our
// own with the fields used, so the rest of the payload, a push's commits above all, is
// skipped rather than built), or nothing for an event go-github does not know, which is
// only checked to be JSON. The decoder is goccy/go-json, which reads go-github's types as
// encoding/json does at about three times its speed (a push payload of 9 kB in ~50 µs,
// encoding/json ~180 µs): JSON was most of a delivery's cost.

// decode reads a delivery's payload.
func decode(event string, body []byte) (any, error) {
	var p any
	switch event {
	case "push":
		p = &pushEvent{}
	case "check_run":
		p = &checkRunEvent{}
	case "check_suite":
		p = &checkSuiteEvent{}
	case "deployment_protection_rule":
		p = &gateEvent{}
	default:
		p = gh.EventForType(event)
	}
	if p == nil {
		if !gojson.Valid(body) {
			return nil, fmt.Errorf("%s payload: not JSON", event)
		}
		return nil, nil
	}
	if err := gojson.Unmarshal(body, p); err != nil {
		return nil, fmt.Errorf("%s payload: %w", event, err)
	}
	return p, nil
}

// describe reads a delivery's identity and its dedupe key: a comment's id, a push's
// ref and head. Two deliveries of one of those (an org hook and a repo hook) are one event.
// A check run's or suite's event (a button pressed, a re-run asked for) names no event id
// of its own, so its key is its body's SHA-256: the delivery id is not signed, and a
// captured press sent again under another id is the same body, while a person's next
// press carries the check run or suite as it is by then (its output, its times).
func describe(event, id string, payload any, body []byte) (store.Delivery, error) {
	if event == "" || id == "" {
		return store.Delivery{}, errors.New("missing X-GitHub-Event or X-GitHub-Delivery")
	}
	d := store.Delivery{ID: id, Event: event}
	if p, ok := payload.(interface{ GetAction() string }); ok {
		d.Action = p.GetAction()
	}
	if p, ok := payload.(interface{ GetRepo() *gh.Repository }); ok {
		d.Repo = p.GetRepo().GetFullName()
	}
	switch p := payload.(type) {
	case *pushEvent:
		d.Repo = p.Repository.FullName
		if p.After != "" {
			d.DedupeKey = "push:" + strings.ToLower(d.Repo) + ":" + p.Ref + ":" + p.Before + ":" + p.After
		}
	case *gh.IssueCommentEvent:
		if p.Comment != nil {
			d.DedupeKey = event + ":" + strconv.FormatInt(p.GetComment().GetID(), 10) + ":" + d.Action
		}
	case *gh.CommitCommentEvent:
		if p.Comment != nil {
			d.DedupeKey = event + ":" + strconv.FormatInt(p.GetComment().GetID(), 10) + ":" + d.Action
		}
	case *checkRunEvent:
		d.Action, d.Repo = p.Action, p.Repository.FullName
		d.DedupeKey = bodyKey(event, d.Action, body)
	case *checkSuiteEvent:
		d.Action, d.Repo = p.Action, p.Repository.FullName
		d.DedupeKey = bodyKey(event, d.Action, body)
	case *gateEvent:
		d.Action, d.Repo = p.Action, p.Repository.FullName
	}
	return d, nil
}

// pushEvent is what a push delivery's work reads.
type pushEvent struct {
	Ref        string `json:"ref"`
	Before     string `json:"before"`
	After      string `json:"after"`
	Deleted    bool   `json:"deleted"`
	Repository struct {
		FullName string `json:"full_name"`
		Owner    struct {
			Login string `json:"login"`
		} `json:"owner"`
	} `json:"repository"`
	Installation struct {
		ID int64 `json:"id"`
	} `json:"installation"`
	Pusher struct {
		Name string `json:"name"`
	} `json:"pusher"`
	Sender sender `json:"sender"`
}

// bodyKey is the dedupe key of an event known by its whole body.
func bodyKey(event, action string, body []byte) string {
	sum := sha256.Sum256(body)
	return event + ":" + action + ":sha256:" + hex.EncodeToString(sum[:])
}

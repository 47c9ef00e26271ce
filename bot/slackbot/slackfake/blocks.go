package slackfake

import (
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// Slack's limits on a message, as its Web API enforces them (Block Kit reference: blocks,
// block elements, composition objects; chat.postMessage). A message over any of them is
// refused whole: invalid_blocks for its blocks, msg_too_long for its text.
const (
	MaxText          = 40000 // a message's text
	MaxBlocks        = 50    // blocks in a message
	MaxSectionText   = 3000  // a section's text, and any text object of a context
	MaxFieldText     = 2000  // each of a section's fields
	MaxFields        = 10    // a section's fields
	MaxContextItems  = 10    // a context block's elements
	MaxActions       = 25    // an actions block's elements
	MaxButtonText    = 75    // a button's label
	MaxButtonValue   = 2000  // a button's value
	MaxButtonURL     = 3000  // a button's url
	MaxID            = 255   // a block_id or an action_id
	MaxHeaderText    = 150   // a header's text
	minTextLen       = 1     // no text object may be empty
	errInvalidBlocks = "invalid_blocks"
	errMsgTooLong    = "msg_too_long"
)

type textObject struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

type element struct {
	Type     string      `json:"type"`
	Text     *textObject `json:"text"` // a button's label (or a context element's own text, below)
	ActionID string      `json:"action_id"`
	Value    string      `json:"value"`
	URL      string      `json:"url"`
	Style    string      `json:"style"`
}

type block struct {
	Type     string            `json:"type"`
	BlockID  string            `json:"block_id"`
	Text     *textObject       `json:"text"`
	Fields   []textObject      `json:"fields"`
	Elements []json.RawMessage `json:"elements"`
}

// CheckMessage answers what Slack would for a message of this text and blocks (the JSON
// array chat.postMessage and chat.update take): "" when it is accepted, else the error
// code and what was wrong, each with its JSON pointer as Slack gives it.
func CheckMessage(text string, blocks []byte) (code string, problems []string) {
	if utf8.RuneCountInString(text) > MaxText {
		return errMsgTooLong, []string{fmt.Sprintf("text: %d characters, at most %d", utf8.RuneCountInString(text), MaxText)}
	}
	if len(blocks) == 0 || string(blocks) == "null" {
		return "", nil
	}
	var bs []block
	if err := json.Unmarshal(blocks, &bs); err != nil {
		return errInvalidBlocks, []string{"blocks: not a JSON array of blocks: " + err.Error()}
	}
	bad := func(ptr, f string, a ...any) {
		problems = append(problems, fmt.Sprintf(f, a...)+" [json-pointer:"+ptr+"]")
	}
	length := func(ptr, s string, most int) {
		if n := utf8.RuneCountInString(s); n < minTextLen || n > most {
			bad(ptr, "must be between %d and %d characters, is %d", minTextLen, most, n)
		}
	}
	textObj := func(ptr string, t *textObject, most int, plainOnly bool) {
		switch {
		case t == nil:
			bad(ptr, "is required")
		case t.Type != "mrkdwn" && t.Type != "plain_text", plainOnly && t.Type != "plain_text":
			bad(ptr+"/type", "must be plain_text%s, is %q", map[bool]string{false: " or mrkdwn"}[plainOnly], t.Type)
		default:
			length(ptr+"/text", t.Text, most)
		}
	}
	if len(bs) > MaxBlocks {
		bad("/blocks", "must have at most %d items, has %d", MaxBlocks, len(bs))
	}
	ids := map[string]bool{}
	for i, b := range bs {
		at := fmt.Sprintf("/blocks/%d", i)
		if b.BlockID != "" {
			if len(b.BlockID) > MaxID {
				bad(at+"/block_id", "must be at most %d characters", MaxID)
			}
			if ids[b.BlockID] {
				bad(at+"/block_id", "is not unique: %q", b.BlockID)
			}
			ids[b.BlockID] = true
		}
		switch b.Type {
		case "section":
			if b.Text == nil && len(b.Fields) == 0 {
				bad(at, "needs text or fields")
			}
			if b.Text != nil {
				textObj(at+"/text", b.Text, MaxSectionText, false)
			}
			if len(b.Fields) > MaxFields {
				bad(at+"/fields", "must have at most %d items", MaxFields)
			}
			for j := range b.Fields {
				textObj(fmt.Sprintf("%s/fields/%d", at, j), &b.Fields[j], MaxFieldText, false)
			}
		case "context":
			if len(b.Elements) == 0 || len(b.Elements) > MaxContextItems {
				bad(at+"/elements", "must have between 1 and %d items, has %d", MaxContextItems, len(b.Elements))
			}
			for j, raw := range b.Elements {
				var t textObject
				if err := json.Unmarshal(raw, &t); err != nil || (t.Type != "mrkdwn" && t.Type != "plain_text" && t.Type != "image") {
					bad(fmt.Sprintf("%s/elements/%d", at, j), "must be a text or image element")
					continue
				}
				if t.Type != "image" {
					length(fmt.Sprintf("%s/elements/%d/text", at, j), t.Text, MaxSectionText)
				}
			}
		case "actions":
			if len(b.Elements) == 0 || len(b.Elements) > MaxActions {
				bad(at+"/elements", "must have between 1 and %d items, has %d", MaxActions, len(b.Elements))
			}
			actions := map[string]bool{}
			for j, raw := range b.Elements {
				ptr := fmt.Sprintf("%s/elements/%d", at, j)
				var e element
				if err := json.Unmarshal(raw, &e); err != nil || e.Type != "button" {
					bad(ptr, "must be a button")
					continue
				}
				textObj(ptr+"/text", e.Text, MaxButtonText, true)
				if len(e.ActionID) > MaxID {
					bad(ptr+"/action_id", "must be at most %d characters", MaxID)
				}
				if e.ActionID != "" && actions[e.ActionID] {
					bad(ptr+"/action_id", "is not unique: %q", e.ActionID)
				}
				actions[e.ActionID] = true
				if utf8.RuneCountInString(e.Value) > MaxButtonValue {
					bad(ptr+"/value", "must be at most %d characters", MaxButtonValue)
				}
				if utf8.RuneCountInString(e.URL) > MaxButtonURL {
					bad(ptr+"/url", "must be at most %d characters", MaxButtonURL)
				}
				if e.Style != "" && e.Style != "primary" && e.Style != "danger" {
					bad(ptr+"/style", "must be primary or danger, is %q", e.Style)
				}
			}
		case "header":
			textObj(at+"/text", b.Text, MaxHeaderText, true)
		case "divider":
		default:
			bad(at+"/type", "unknown block type %q", b.Type)
		}
	}
	if len(problems) > 0 {
		return errInvalidBlocks, problems
	}
	return "", nil
}

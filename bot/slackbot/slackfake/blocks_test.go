package slackfake

import (
	"encoding/json"
	"strings"
	"testing"
)

// The fake refuses each message Slack refuses, with Slack's error, and takes one at the
// limits.
func TestCheckMessageRefusesWhatSlackRefuses(t *testing.T) {
	t.Parallel()
	section := func(text string) map[string]any {
		return map[string]any{"type": "section", "text": map[string]any{"type": "mrkdwn", "text": text}}
	}
	button := func(id, label string) map[string]any {
		return map[string]any{"type": "button", "action_id": id, "value": "v", "text": map[string]any{"type": "plain_text", "text": label}}
	}
	many := func(n int, f func(i int) map[string]any) []any {
		var out []any
		for i := range n {
			out = append(out, f(i))
		}
		return out
	}
	ids := func(i int) string { return strings.Repeat("b", i+1) }
	atLimits := []any{
		section(strings.Repeat("é", MaxSectionText)),
		map[string]any{"type": "context", "elements": many(MaxContextItems, func(int) map[string]any {
			return map[string]any{"type": "mrkdwn", "text": strings.Repeat("x", MaxSectionText)}
		})},
		map[string]any{"type": "actions", "elements": many(MaxActions, func(i int) map[string]any { return button(ids(i), strings.Repeat("l", MaxButtonText)) })},
	}
	for len(atLimits) < MaxBlocks {
		atLimits = append(atLimits, map[string]any{"type": "divider"})
	}
	cases := []struct {
		name   string
		text   string
		blocks []any
		want   string
	}{
		{"at every limit", strings.Repeat("t", MaxText), atLimits, ""},
		{"text too long", strings.Repeat("t", MaxText+1), nil, "msg_too_long"},
		{"section text too long", "", []any{section(strings.Repeat("x", MaxSectionText+1))}, "invalid_blocks"},
		{"empty section text", "", []any{section("")}, "invalid_blocks"},
		{"too many blocks", "", append(atLimits, map[string]any{"type": "divider"}), "invalid_blocks"},
		{"too many buttons", "", []any{map[string]any{"type": "actions", "elements": many(MaxActions+1, func(i int) map[string]any { return button(ids(i), "go") })}}, "invalid_blocks"},
		{"button label too long", "", []any{map[string]any{"type": "actions", "elements": []any{button("a", strings.Repeat("l", MaxButtonText+1))}}}, "invalid_blocks"},
		{"same action twice", "", []any{map[string]any{"type": "actions", "elements": []any{button("a", "one"), button("a", "two")}}}, "invalid_blocks"},
		{"same block_id twice", "", []any{
			map[string]any{"type": "divider", "block_id": "x"}, map[string]any{"type": "divider", "block_id": "x"}}, "invalid_blocks"},
		{"block_id too long", "", []any{map[string]any{"type": "divider", "block_id": strings.Repeat("i", MaxID+1)}}, "invalid_blocks"},
		{"context text too long", "", []any{map[string]any{"type": "context", "elements": []any{map[string]any{"type": "mrkdwn", "text": strings.Repeat("x", MaxSectionText+1)}}}}, "invalid_blocks"},
		{"unknown block", "", []any{map[string]any{"type": "sectoin"}}, "invalid_blocks"},
	}
	for _, c := range cases {
		var raw []byte
		if c.blocks != nil {
			raw, _ = json.Marshal(c.blocks)
		}
		code, problems := CheckMessage(c.text, raw)
		if code != c.want {
			t.Errorf("%s: %q %v, want %q", c.name, code, problems, c.want)
		}
		if code != "" && len(problems) == 0 {
			t.Errorf("%s: refused without saying why", c.name)
		}
	}
}

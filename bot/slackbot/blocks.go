package slackbot

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/slack-go/slack"

	"github.com/immunity-app/immunity/bot"
)

// emoji draw the thread's icons in Slack.
var emoji = map[string]string{
	bot.IconPending: ":white_circle:", bot.IconRunning: ":arrows_counterclockwise:", bot.IconWaiting: ":double_vertical_bar:",
	bot.IconOK: ":white_check_mark:", bot.IconFailed: ":x:", bot.IconSkipped: ":heavy_minus_sign:",
	bot.IconBack: ":leftwards_arrow_with_hook:", bot.IconWarning: ":warning:", bot.IconLock: ":lock:", bot.IconUnlock: ":unlock:", bot.IconGo: ":rocket:",
}

func mrkdwn(s string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.MarkdownType, s, false, false)
}

// Slack refuses a whole message over any of its limits (invalid_blocks), and a refused
// post is retried and then dropped, so every text is fitted to its limit here: a
// section's or context's text at most sectionMax characters as sent (escaped), a
// button's label buttonMax, at most maxBlocks blocks and actionsMax buttons.
// slackfake refuses what Slack refuses (slackfake.CheckMessage).
const (
	sectionMax = 3000
	buttonMax  = 75
	maxBlocks  = 50
	actionsMax = 25
)

// fit escapes s for mrkdwn and clips it to at most max characters as sent, ending with
// "…" when clipped; an escape is never cut in half.
func fit(s string, max int) string {
	var b strings.Builder
	n := 0
	for i, r := range s {
		e := esc(string(r)) // the escaping every other text gets, one character at a time
		k := utf8.RuneCountInString(e)
		if last := i+len(string(r)) == len(s); n+k > max || (!last && n+k > max-1) {
			b.WriteString("…")
			return b.String()
		}
		b.WriteString(e)
		n += k
	}
	return b.String()
}

// rootBlocks render a run's root message: the commit, then a live line per region.
// runURL links to the run on the dashboard when the server's URL is known. The region
// lines fill as many sections as they need; past Slack's block limit, the last line
// says how many regions are left out.
func rootBlocks(r bot.Root, runURL string) []slack.Block {
	run := fmt.Sprintf("run #%d", r.RunID)
	if runURL != "" {
		run = fmt.Sprintf("<%s|run #%d>", runURL, r.RunID)
	}
	head := fmt.Sprintf("*%s* `%s` %s", fit(clip(r.App, 100), 600), short(r.SHA), fit(clip(r.Subject, 150), 800))
	var ctx []string
	if r.Author != "" {
		ctx = append(ctx, "by "+fit(clip(r.Author, 100), 600))
	}
	if r.Trigger != "" {
		ctx = append(ctx, fit(clip(r.Trigger, 200), 1200))
	}
	ctx = append(ctx, run, "*"+esc(r.State.Words())+"*")
	blocks := []slack.Block{
		slack.NewSectionBlock(mrkdwn(head), nil, nil, slack.SectionBlockOptionBlockID("immunity_head")),
		slack.NewContextBlock("immunity_context", mrkdwn(strings.Join(ctx, " · "))),
	}
	var lines []string
	size := 0
	section := func() {
		if len(lines) == 0 {
			return
		}
		id := "immunity_regions"
		if n := len(blocks) - 2; n > 0 {
			id = fmt.Sprintf("immunity_regions_%d", n+1)
		}
		blocks = append(blocks, slack.NewSectionBlock(mrkdwn(strings.Join(lines, "\n")), nil, nil, slack.SectionBlockOptionBlockID(id)))
		lines, size = nil, 0
	}
	for i, l := range r.Regions {
		line := fmt.Sprintf("%s *%s* %s", emoji[l.Icon], fit(clip(l.Region, 100), 600), fit(l.Text, 1000))
		n := utf8.RuneCountInString(line) + 1
		if size+n > sectionMax {
			if len(blocks) == maxBlocks-1 {
				// The last block Slack allows: room for a last line saying what is left out.
				for size+40 > sectionMax && len(lines) > 0 {
					size -= utf8.RuneCountInString(lines[len(lines)-1]) + 1
					lines, i = lines[:len(lines)-1], i-1
				}
				lines = append(lines, fmt.Sprintf("… and %d more regions", len(r.Regions)-i))
				break
			}
			section()
		}
		lines = append(lines, line)
		size += n
	}
	section()
	return blocks
}

// rootText is the root message's notification text.
func rootText(r bot.Root) string {
	return fmt.Sprintf("%s %s %s: %s", clip(r.App, 100), short(r.SHA), clip(r.Subject, 80), r.State.Words())
}

// postText is a post's notification text.
func postText(p bot.Post) string { return clip(p.Text, sectionMax) }

// postBlocks render one post: its line, the log lines, the metric table, its buttons.
func postBlocks(p bot.Post) []slack.Block {
	blocks := []slack.Block{slack.NewSectionBlock(mrkdwn(emoji[p.Icon]+" "+fit(p.Text, sectionMax-40)), nil, nil)}
	if len(p.Detail) > 0 {
		blocks = append(blocks, slack.NewSectionBlock(mrkdwn(codeBlock(strings.Join(p.Detail, "\n"))), nil, nil))
	}
	if p.Verdict != nil {
		blocks = append(blocks,
			slack.NewSectionBlock(mrkdwn("*Canary vs baseline* "+fit(bot.VerdictSummary(*p.Verdict), sectionMax-30)), nil, nil),
			slack.NewSectionBlock(mrkdwn(codeBlock(bot.VerdictTable(*p.Verdict))), nil, nil))
	}
	if len(p.Actions) > 0 {
		var els []slack.BlockElement
		for _, a := range p.Actions[:min(len(p.Actions), actionsMax)] {
			id := actionPrefix + a.ID
			if a.IfLive != "" {
				id += ifLiveSep + a.IfLive
			}
			btn := slack.NewButtonBlockElement(id, a.Command, slack.NewTextBlockObject(slack.PlainTextType, clip(a.Label, buttonMax-1), false, false))
			btn.Style = slack.Style(a.Style)
			els = append(els, btn)
		}
		blocks = append(blocks, slack.NewActionBlock(actionsBlockID, els...))
	}
	return blocks
}

// codeBlock fences text for mrkdwn, within Slack's section limit.
func codeBlock(s string) string {
	return "```\n" + fit(strings.ReplaceAll(s, "```", "'''"), sectionMax-10) + "\n```"
}

func short(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	return sha
}

package slackbot

import (
	"fmt"
	"strings"

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

// rootBlocks render a run's root message: the commit, then a live line per region.
// runURL links to the run on the dashboard when the server's URL is known.
func rootBlocks(r bot.Root, runURL string) []slack.Block {
	run := fmt.Sprintf("run #%d", r.RunID)
	if runURL != "" {
		run = fmt.Sprintf("<%s|run #%d>", runURL, r.RunID)
	}
	head := fmt.Sprintf("*%s* `%s` %s", esc(r.App), short(r.SHA), esc(clip(r.Subject, 150)))
	var ctx []string
	if r.Author != "" {
		ctx = append(ctx, "by "+esc(r.Author))
	}
	if r.Trigger != "" {
		ctx = append(ctx, esc(r.Trigger))
	}
	ctx = append(ctx, run, "*"+esc(r.State.Words())+"*")
	var lines []string
	for _, l := range r.Regions {
		lines = append(lines, fmt.Sprintf("%s *%s* %s", emoji[l.Icon], esc(l.Region), esc(l.Text)))
	}
	blocks := []slack.Block{
		slack.NewSectionBlock(mrkdwn(head), nil, nil, slack.SectionBlockOptionBlockID("immunity_head")),
		slack.NewContextBlock("immunity_context", mrkdwn(strings.Join(ctx, " · "))),
	}
	if len(lines) > 0 {
		blocks = append(blocks, slack.NewSectionBlock(mrkdwn(strings.Join(lines, "\n")), nil, nil, slack.SectionBlockOptionBlockID("immunity_regions")))
	}
	return blocks
}

// rootText is the root message's notification text.
func rootText(r bot.Root) string {
	return fmt.Sprintf("%s %s %s: %s", r.App, short(r.SHA), clip(r.Subject, 80), r.State.Words())
}

// postBlocks render one post: its line, the log lines, the metric table, its buttons.
func postBlocks(p bot.Post) []slack.Block {
	blocks := []slack.Block{slack.NewSectionBlock(mrkdwn(emoji[p.Icon]+" "+esc(p.Text)), nil, nil)}
	if len(p.Detail) > 0 {
		blocks = append(blocks, slack.NewSectionBlock(mrkdwn(codeBlock(strings.Join(p.Detail, "\n"))), nil, nil))
	}
	if p.Verdict != nil {
		blocks = append(blocks,
			slack.NewSectionBlock(mrkdwn("*Canary vs baseline* "+esc(bot.VerdictSummary(*p.Verdict))), nil, nil),
			slack.NewSectionBlock(mrkdwn(codeBlock(bot.VerdictTable(*p.Verdict))), nil, nil))
	}
	if len(p.Actions) > 0 {
		var els []slack.BlockElement
		for _, a := range p.Actions {
			id := actionPrefix + a.ID
			if a.IfLive != "" {
				id += ifLiveSep + a.IfLive
			}
			btn := slack.NewButtonBlockElement(id, a.Command, slack.NewTextBlockObject(slack.PlainTextType, a.Label, false, false))
			btn.Style = slack.Style(a.Style)
			els = append(els, btn)
		}
		blocks = append(blocks, slack.NewActionBlock(actionsBlockID, els...))
	}
	return blocks
}

// codeBlock fences text for mrkdwn, within Slack's 3000-character section limit.
func codeBlock(s string) string {
	s = esc(strings.ReplaceAll(s, "```", "'''"))
	if r := []rune(s); len(r) > 2900 {
		s = string(r[:2900]) + "\n…"
	}
	return "```\n" + s + "\n```"
}

func short(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	return sha
}

package checks

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"github.com/immunity-app/immunity/pipeline/config"
	"github.com/immunity-app/immunity/pipeline/judge"
	"github.com/immunity-app/immunity/store"
)

// MaxSummary is GitHub's limit on a check run's output summary, in bytes.
const MaxSummary = 65535

// Limits inside the summary, so one noisy part cannot crowd out the rest.
const (
	maxFailingLines = 40
	maxTestTail     = 16 << 10
)

// summary renders a stage as the check run's Markdown summary.
func summary(cfg *config.Config, app *config.App, run store.Run, st *store.Stage) string {
	var b strings.Builder
	fmt.Fprintf(&b, "## %s `%s` in %s: %s\n\n", app.Name, shortSHA(run.SHA), st.Region, st.State.Words())
	writeRelease(&b, cfg, run)
	writeRegion(&b, app, st)
	writeHosts(&b, st)
	writeTests(&b, app, st)
	writeVerdict(&b, st)
	if u := RunURL(cfg, run.ID); u != "" {
		fmt.Fprintf(&b, "\n---\n[Run %d on the Immunity dashboard](%s)\n", run.ID, u)
	}
	return fit(b.String(), MaxSummary, RunURL(cfg, run.ID))
}

func writeRelease(b *strings.Builder, cfg *config.Config, run store.Run) {
	fmt.Fprintf(b, "**Release** `%s`", run.SHA)
	if run.Subject != "" {
		fmt.Fprintf(b, " %s", inline(run.Subject))
	}
	if run.Author != "" {
		fmt.Fprintf(b, " by %s", inline(run.Author))
	}
	// The run's own state is left out: it changes often, and every change would mean
	// updating every stage's check run.
	fmt.Fprintf(b, "  \n**Run** %d", run.ID)
	if run.Trigger != "" {
		fmt.Fprintf(b, ", started by %s", inline(run.Trigger))
		if run.Actor != "" {
			fmt.Fprintf(b, " from %s", inline(run.Actor))
		}
	}
	b.WriteString("  \n")
}

func writeRegion(b *strings.Builder, app *config.App, st *store.Stage) {
	var traits []string
	if r, _, ok := app.Region(st.Region); ok {
		if r.Production {
			traits = append(traits, "production")
		}
		if r.ManualApproval {
			traits = append(traits, "manual approval")
		}
		if r.Monitor != nil {
			traits = append(traits, "canary of "+r.Monitor.MirrorFrom)
		}
	}
	fmt.Fprintf(b, "**Region** %s", st.Region)
	if len(traits) > 0 {
		fmt.Fprintf(b, " (%s)", strings.Join(traits, ", "))
	}
	if st.ApprovedBy != "" {
		fmt.Fprintf(b, ", approved by %s", inline(st.ApprovedBy))
	}
	b.WriteString("\n")
	if st.Message != "" {
		fmt.Fprintf(b, "\n> %s\n", inline(st.Message))
	}
}

func writeHosts(b *strings.Builder, st *store.Stage) {
	if len(st.Hosts) == 0 {
		return
	}
	b.WriteString("\n### Hosts\n\n| host | step | was | note |\n| --- | --- | --- | --- |\n")
	for _, h := range st.Hosts {
		was := ""
		if h.PrevSHA != "" {
			was = "`" + shortSHA(h.PrevSHA) + "`"
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s |\n", cell(h.Host), h.Step.Words(), was, cell(h.Message))
	}
}

var failing = regexp.MustCompile(`(?i)(^(--- )?FAIL\b|\bfail(ed|ure|ing)?\b|\berror\b|\bpanic\b)`)

func writeTests(b *strings.Builder, app *config.App, st *store.Stage) {
	b.WriteString("\n### Tests\n\n")
	if r, _, ok := app.Region(st.Region); ok && r.SkipTests {
		b.WriteString("Tests are skipped in this region.\n")
		return
	}
	out := strings.TrimRight(st.Tests, "\n")
	if out == "" {
		b.WriteString("No test output yet.\n")
		return
	}
	bad := failingLines(strings.Split(out, "\n"))
	if len(bad) > 0 && (st.State == store.StageFailed || st.State == store.StageRolledBack) {
		more := ""
		if len(bad) > maxFailingLines {
			more = fmt.Sprintf("\n… and %d more", len(bad)-maxFailingLines)
			bad = bad[:maxFailingLines]
		}
		b.WriteString("Failing lines:\n\n" + fence(strings.Join(bad, "\n")+more) + "\n")
	} else if st.State == store.StageFailed || st.State == store.StageRolledBack {
		b.WriteString("The stage failed; the test output ends with:\n\n")
	}
	if len(out) > maxTestTail {
		cut := out[len(out)-maxTestTail:]
		if i := strings.IndexByte(cut, '\n'); i >= 0 {
			cut = cut[i+1:]
		}
		out = "… (earlier output cut)\n" + cut
	}
	n := strings.Count(out, "\n") + 1
	fmt.Fprintf(b, "<details><summary>Test output (%d %s)</summary>\n\n%s\n</details>\n", n, plural(n, "line"), fence(out))
}

// failingLines picks the lines that say what failed: lines naming a failure, and the
// indented log lines next to a Go "--- FAIL" line (before it with -v, after it without).
func failingLines(lines []string) []string {
	keep := make([]bool, len(lines))
	indented := func(l string) bool { return strings.HasPrefix(l, " ") || strings.HasPrefix(l, "\t") }
	for i, l := range lines {
		if !failing.MatchString(l) {
			continue
		}
		keep[i] = true
		if !strings.HasPrefix(strings.TrimSpace(l), "--- FAIL") {
			continue
		}
		for j := i - 1; j >= 0 && indented(lines[j]); j-- {
			keep[j] = true
		}
		for j := i + 1; j < len(lines) && indented(lines[j]); j++ {
			keep[j] = true
		}
	}
	var out []string
	for i, l := range lines {
		if keep[i] {
			out = append(out, l)
		}
	}
	return out
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

func writeVerdict(b *strings.Builder, st *store.Stage) {
	if st.Verdict == "" {
		return
	}
	var v judge.Verdict
	if err := json.Unmarshal([]byte(st.Verdict), &v); err != nil {
		fmt.Fprintf(b, "\n### Metrics\n\nThe verdict could not be read: %s\n", inline(err.Error()))
		return
	}
	b.WriteString("\n### Metrics: canary vs baseline\n\n")
	b.WriteString(v.Table())
}

// fence wraps text in a code block whose fence is longer than any backtick run inside.
func fence(s string) string {
	n := 3
	for run, i := 0, 0; i < len(s); i++ {
		if s[i] == '`' {
			run++
			n = max(n, run+1)
		} else {
			run = 0
		}
	}
	f := strings.Repeat("`", n)
	return f + "\n" + s + "\n" + f + "\n"
}

// fit keeps s under limit bytes, cutting at a line, closing an open code block and saying
// where the rest is.
func fit(s string, limit int, link string) string {
	if len(s) <= limit {
		return s
	}
	note := fmt.Sprintf("\n\n**This summary was cut: it was %d bytes, GitHub shows at most %d.**", len(s), limit)
	if link != "" {
		note += fmt.Sprintf(" The whole report is on [the dashboard](%s).", link)
	}
	note += "\n"
	cut := s[:limit-len(note)-16]
	if i := strings.LastIndexByte(cut, '\n'); i > 0 {
		cut = cut[:i]
	}
	if strings.Count(cut, "\n```")%2 == 1 {
		cut += "\n```"
	}
	return cut + note
}

// inline makes untrusted one-line text safe inside Markdown prose.
func inline(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	r := strings.NewReplacer("<", "&lt;", ">", "&gt;", "[", `\[`, "]", `\]`, "*", `\*`, "_", `\_`, "`", "'", "|", `\|`)
	return r.Replace(s)
}

func cell(s string) string { return inline(s) }

func words(state string) string { return strings.ReplaceAll(state, "_", " ") }

func shortSHA(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	return sha
}

// RunURL is the dashboard page of a run, or "" when no server URL is configured.
func RunURL(cfg *config.Config, runID int64) string {
	if cfg == nil || cfg.Server.URL == "" || runID == 0 {
		return ""
	}
	return strings.TrimRight(cfg.Server.URL, "/") + fmt.Sprintf("/runs/%d", runID)
}

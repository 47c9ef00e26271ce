package bot

import (
	"fmt"
	"sort"
	"strings"

	"github.com/immunity-app/immunity/pipeline"
	"github.com/immunity-app/immunity/store"
)

// formatStatus renders each app's regions, one line each:
//
//	papi
//	  sandbox1  live 1a2b3c4
//	  prod3     live 0a1b2c3 · waiting for promotion: 1a2b3c4 "Fix login" (run 12) · locked by alice: freeze
func formatStatus(sts []pipeline.AppStatus) string {
	if len(sts) == 0 {
		return "no apps configured"
	}
	var b strings.Builder
	for i, st := range sts {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(st.App)
		width := 0
		for _, r := range st.Regions {
			width = max(width, len(r.Name))
		}
		for _, r := range st.Regions {
			fmt.Fprintf(&b, "\n  %-*s  %s", width, r.Name, strings.Join(regionFacts(r), " · "))
		}
	}
	return b.String()
}

func regionFacts(r pipeline.RegionStatus) []string {
	var facts []string
	if r.Production {
		facts = append(facts, "production")
	}
	facts = append(facts, "live "+liveText(r))
	if a := r.Active; a != nil {
		facts = append(facts, fmt.Sprintf("%s %s (run %d)", a.State.Words(), release(a.SHA, a.Subject), a.RunID))
	}
	if w := r.Waiting; w != nil {
		facts = append(facts, fmt.Sprintf("waiting for promotion: %s (run %d)", release(w.SHA, w.Subject), w.RunID))
	}
	if l := r.Lock; l != nil {
		lk := "locked by " + l.Holder
		if l.Reason != "" {
			lk += ": " + l.Reason
		}
		facts = append(facts, lk)
	}
	if g := r.Gate; g != nil && g.Rule != pipeline.RuleLocked {
		facts = append(facts, g.Why)
	} else if g != nil {
		for _, f := range r.Freezes { // behind the lock
			facts = append(facts, fmt.Sprintf("frozen until %s by %s: %s", f.Until.UTC().Format("Mon 2 Jan 15:04 MST"), f.Actor, f.Reason))
		}
	}
	return facts
}

func liveText(r pipeline.RegionStatus) string {
	if r.LiveSHA != "" {
		return short(r.LiveSHA)
	}
	if len(r.Live) == 0 {
		return "nothing"
	}
	hosts := make([]string, 0, len(r.Live))
	for h := range r.Live {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	parts := make([]string, len(hosts))
	for i, h := range hosts {
		parts[i] = h + "=" + short(r.Live[h])
	}
	return "mixed (" + strings.Join(parts, ", ") + ")"
}

func release(sha, subject string) string {
	if subject == "" {
		return short(sha)
	}
	return fmt.Sprintf("%s %q", short(sha), clip(subject))
}

// formatHistory renders what went live, newest first.
func formatHistory(app, region string, hs []store.HistoryEntry) string {
	where := app
	if region != "" {
		where += "/" + region
	}
	if len(hs) == 0 {
		return "no releases have gone live in " + where + " yet"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "history of %s, newest first:", where)
	for _, h := range hs {
		fmt.Fprintf(&b, "\n  %s  %-10s %-8s %s", h.At.UTC().Format("2006-01-02 15:04"), h.Region, h.Action, short(h.SHA))
		if h.Actor != "" {
			b.WriteString("  by " + h.Actor)
		}
		if h.RunID != 0 {
			fmt.Fprintf(&b, "  run %d", h.RunID)
		}
	}
	return b.String()
}

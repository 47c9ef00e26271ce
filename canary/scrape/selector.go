package scrape

import (
	"fmt"
	"regexp"
	"strings"

	dto "github.com/prometheus/client_model/go"
)

// selector is a parsed exposition selector: name{label="v",label=~"re",...}.
type selector struct {
	name     string
	matchers []matcher
}

type matcher struct {
	label, op, value string
	re               *regexp.Regexp
}

// termRe matches one `label op "value"` term.
var termRe = regexp.MustCompile(`^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)`)

// parseSelector reads `name` or `name{matchers}` as PromQL writes them.
func parseSelector(s string) (selector, error) {
	s = strings.TrimSpace(s)
	name, rest, braces := strings.Cut(s, "{")
	sel := selector{name: strings.TrimSpace(name)}
	if sel.name == "" {
		return sel, fmt.Errorf("selector %q: expected a metric name", s)
	}
	if !braces {
		return sel, nil
	}
	body, ok := strings.CutSuffix(strings.TrimSpace(rest), "}")
	if !ok {
		return sel, fmt.Errorf("selector %q: expected a closing }", s)
	}
	for strings.TrimSpace(body) != "" {
		m := termRe.FindStringSubmatch(body)
		if m == nil {
			return sel, fmt.Errorf("selector %q: expected label=\"value\" terms (=, !=, =~, !~) near %q", s, body)
		}
		t := matcher{label: m[1], op: m[2], value: strings.ReplaceAll(m[3], `\"`, `"`)}
		if t.op == "=~" || t.op == "!~" {
			re, err := regexp.Compile("^(?:" + t.value + ")$")
			if err != nil {
				return sel, fmt.Errorf("selector %q: %w", s, err)
			}
			t.re = re
		}
		sel.matchers = append(sel.matchers, t)
		body = body[len(m[0]):]
	}
	return sel, nil
}

// matches says whether a series of the selector's family has matching labels.
func (s selector) matches(m *dto.Metric) bool {
	for _, t := range s.matchers {
		v := ""
		for _, l := range m.GetLabel() {
			if l.GetName() == t.label {
				v = l.GetValue()
			}
		}
		var ok bool
		switch t.op {
		case "=":
			ok = v == t.value
		case "!=":
			ok = v != t.value
		case "=~":
			ok = t.re.MatchString(v)
		case "!~":
			ok = !t.re.MatchString(v)
		}
		if !ok {
			return false
		}
	}
	return true
}

// names says whether the selector matches on label.
func (s selector) names(label string) bool {
	for _, t := range s.matchers {
		if t.label == label {
			return true
		}
	}
	return false
}

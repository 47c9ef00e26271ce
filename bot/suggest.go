package bot

import (
	"fmt"
	"sort"
	"strings"

	"github.com/immunity-app/immunity/pipeline/config"
)

// suggest returns the candidates a mistyped word probably meant: those within a small
// edit distance (transpositions count once), or that it is a prefix of; best first.
func suggest(word string, cands []string) []string {
	if word == "" {
		return nil
	}
	limit := 2
	if len(word) <= 4 {
		limit = 1
	}
	type scored struct {
		s string
		d int
	}
	var out []scored
	for _, c := range cands {
		d := config.EditDistance(word, c)
		switch {
		case d <= limit:
			out = append(out, scored{c, d})
		case len(word) >= 3 && strings.HasPrefix(c, word):
			out = append(out, scored{c, limit + 1})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].d < out[j].d })
	var names []string
	for _, s := range out {
		if len(names) == 3 || s.d > out[0].d {
			break
		}
		names = append(names, s.s)
	}
	return names
}

// orList quotes names as `a`, `b` or `c`.
func orList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("`%s`", n)
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

// unknownName answers an app or region name that does not exist.
func unknownName(kind, name string, known []string, in string) string {
	where := ""
	if in != "" {
		where = " in " + in
	}
	if s := suggest(name, known); len(s) > 0 {
		return fmt.Sprintf("no %s %q%s; did you mean %s?", kind, clip(name), where, orList(s))
	}
	return fmt.Sprintf("no %s %q%s; expected one of %s", kind, clip(name), where, strings.Join(known, ", "))
}

// SuggestCommand returns the commands a mistyped command word probably meant ("promtoe":
// promote), best first; none when it is not close to any. GitHub comments use it to tell
// a typo from another bot's command.
func SuggestCommand(word string) []string {
	return suggest(strings.ToLower(word), commandNames())
}

package bot

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// param is one word of a command's syntax. The command table lists them in order;
// parsing and the usage line are both derived from that list.
type param struct {
	name     string // APP, REGION, SHA, COMMAND, reason…; the literal word for literals
	flag     string // "--release": a flag whose value is name (or a bool flag when name is "")
	literal  bool   // a fixed word such as "to"
	optional bool
	repoOpt  bool // optional when the app is implied by the repo (GitHub comments)
	rest     bool // the rest of the line (a lock's reason)
	list     bool // zero or more names, up to the literal that follows (a freeze's regions)
}

func (p param) isFlag() bool { return p.flag != "" }

// Parsed is a command as typed: the table entry's name and the values of its words.
type Parsed struct {
	Name    string
	App     string
	Region  string
	SHA     string
	Reason  string
	Force   bool
	All     bool     // --all: every app (freeze, unfreeze)
	Regions []string // the REGION… list (freeze, unfreeze)
	Until   string   // freeze's TIME, as typed
	RunID   int64    // rerun's --run
	Topic   string   // help's COMMAND
}

// ParseError is a command that could not be understood; Msg says why and how to fix it.
type ParseError struct {
	Command string // the table entry when the command word was recognized
	Msg     string
}

func (e *ParseError) Error() string { return e.Msg }

var (
	nameWord = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	shaWord  = regexp.MustCompile(`^[0-9a-f]{4,40}$`)
)

// prefixes are the ways a command may be addressed: `/immunity promote …`, `@immunity …`.
var prefixes = []string{"/immunity", "@immunity", "immunity", "immunity:"}

// Parse reads one command line. With impliedApp set (a GitHub comment on the app's repo),
// the APP word is left out (`/promote prod3`); it is tolerated if given anyway.
func Parse(text, impliedApp string) (Parsed, error) {
	words := strings.Fields(text)
	if len(words) > 0 && isPrefix(words[0]) {
		words = words[1:]
	}
	if len(words) == 0 {
		return Parsed{}, &ParseError{Msg: "no command given; try `help`"}
	}
	word := strings.ToLower(strings.TrimPrefix(words[0], "/"))
	spec, ok := lookup(word)
	if !ok {
		return Parsed{}, &ParseError{Msg: unknownCommand(word)}
	}
	p := Parsed{Name: spec.name}
	if err := bind(spec, words[1:], impliedApp, &p); err != nil {
		return Parsed{}, &ParseError{Command: spec.name, Msg: fmt.Sprintf("%s\nusage: %s", err, usage(spec, impliedApp != ""))}
	}
	return p, nil
}

func isPrefix(w string) bool {
	w = strings.ToLower(w)
	for _, p := range prefixes {
		if w == p {
			return true
		}
	}
	return false
}

func unknownCommand(word string) string {
	if s := suggest(word, commandNames()); len(s) > 0 {
		return fmt.Sprintf("unknown command %q; did you mean %s? Try `help`.", clip(word), orList(s))
	}
	return fmt.Sprintf("unknown command %q; expected one of %s. Try `help`.", clip(word), strings.Join(commandNames(), ", "))
}

// bind assigns the words after the command word to the spec's params.
func bind(spec *command, words []string, impliedApp string, p *Parsed) error {
	params := paramsFor(spec, impliedApp != "")
	pos, err := takeFlags(params, words, p)
	if err != nil {
		return err
	}
	if impliedApp != "" && hasParam(spec.params, "APP") && len(pos) > 0 && strings.EqualFold(pos[0], impliedApp) {
		pos = pos[1:] // `/promote papi prod3` on papi's repo
	}
	for _, q := range params {
		if q.list {
			return takeList(params, pos, p)
		}
	}
	return takePositionals(params, pos, impliedApp != "", p)
}

// takeList fills a syntax with a list: [APP] REGION… up to its literal (or the end), then
// the params after the literal and the rest. --all stands for APP and its regions.
func takeList(params []param, pos []string, p *Parsed) error {
	lit, after := "", []param(nil)
	for i, q := range params {
		if q.literal {
			lit, after = q.name, params[i+1:]
			break
		}
	}
	u := len(pos)
	if lit != "" {
		u = slices.IndexFunc(pos, func(w string) bool { return strings.EqualFold(w, lit) })
		if u < 0 {
			next := "words"
			if len(after) > 0 {
				next = after[0].name
			}
			return fmt.Errorf("missing %q %s", lit, next)
		}
	}
	head := pos[:u]
	switch {
	case p.All && len(head) > 0:
		return fmt.Errorf("--all is every app and region; name none, got %q", clip(strings.Join(head, " ")))
	case p.All:
	case hasParam(params, "APP") && len(head) == 0:
		return fmt.Errorf("missing APP (or --all for every app)")
	case hasParam(params, "APP"):
		if err := setValue(p, param{name: "APP"}, head[0]); err != nil {
			return err
		}
		head = head[1:]
	}
	for _, w := range head {
		if err := setValue(p, param{name: "REGION"}, w); err != nil {
			return err
		}
		if !slices.Contains(p.Regions, p.Region) {
			p.Regions = append(p.Regions, p.Region)
		}
	}
	p.Region = ""
	if lit == "" {
		return nil
	}
	rest := pos[u+1:]
	for _, q := range after {
		switch {
		case q.isFlag():
		case q.rest:
			p.Reason = strings.Join(rest, " ")
			return nil
		case len(rest) == 0:
			return fmt.Errorf("missing %s", q.name)
		default:
			if err := setValue(p, q, rest[0]); err != nil {
				return err
			}
			rest = rest[1:]
		}
	}
	if len(rest) > 0 {
		return fmt.Errorf("unexpected %q", clip(strings.Join(rest, " ")))
	}
	return nil
}

// paramsFor drops APP when the app is implied.
func paramsFor(spec *command, implied bool) []param {
	var out []param
	for _, q := range spec.params {
		if implied && q.name == "APP" && !q.isFlag() {
			continue
		}
		out = append(out, q)
	}
	return out
}

func hasParam(ps []param, name string) bool {
	for _, q := range ps {
		if q.name == name && !q.isFlag() {
			return true
		}
	}
	return false
}

// takeFlags sets flag values and returns the positional words. Once every positional
// param before a rest param is filled, the remaining words (flags included) are the rest.
func takeFlags(params []param, words []string, p *Parsed) ([]string, error) {
	nPos, hasRest := 0, false
	for _, q := range params {
		switch {
		case q.rest:
			hasRest = true
		case !q.isFlag():
			nPos++
		}
	}
	var pos []string
	for i := 0; i < len(words); i++ {
		w := words[i]
		if hasRest && len(pos) >= nPos {
			pos = append(pos, w)
			continue
		}
		if !strings.HasPrefix(w, "--") || w == "--" {
			pos = append(pos, w)
			continue
		}
		name, val, hasVal := strings.Cut(w, "=")
		q, ok := findFlag(params, strings.ToLower(name))
		if !ok {
			return nil, unknownFlag(name, params)
		}
		if q.name == "" { // bool flag
			if hasVal {
				return nil, fmt.Errorf("%s takes no value", q.flag)
			}
			set(p, q.flag, "true")
			continue
		}
		if !hasVal {
			if i+1 >= len(words) {
				return nil, fmt.Errorf("%s needs a %s", q.flag, q.name)
			}
			i++
			val = words[i]
		}
		if err := setValue(p, q, val); err != nil {
			return nil, err
		}
	}
	return pos, nil
}

func findFlag(params []param, name string) (param, bool) {
	for _, q := range params {
		if q.isFlag() && q.flag == name {
			return q, true
		}
	}
	return param{}, false
}

func unknownFlag(name string, params []param) error {
	var flags []string
	for _, q := range params {
		if q.isFlag() {
			flags = append(flags, q.flag)
		}
	}
	if len(flags) == 0 {
		return fmt.Errorf("unknown option %q; this command takes none", clip(name))
	}
	if s := suggest(strings.ToLower(name), flags); len(s) > 0 {
		return fmt.Errorf("unknown option %q; did you mean %s?", clip(name), orList(s))
	}
	return fmt.Errorf("unknown option %q; expected %s", clip(name), strings.Join(flags, " or "))
}

// takePositionals fills positional params in order. Required ones are filled first; spare
// words fill optional ones left to right.
func takePositionals(params []param, pos []string, implied bool, p *Parsed) error {
	var ps []param
	required := 0
	for _, q := range params {
		if q.isFlag() {
			continue
		}
		if q.rest {
			break
		}
		ps = append(ps, q)
		if !q.optional && !(implied && q.repoOpt) {
			required++
		}
	}
	if len(pos) < required {
		// One word short with a literal left out (`deploy papi 1a2b3c4 prod3`): the
		// literal is what is missing, not the word after it, which was typed.
		for k, q := range ps {
			if len(pos) == required-1 && q.literal && k+1 < len(ps) && !slices.ContainsFunc(pos, func(w string) bool { return strings.EqualFold(w, q.name) }) {
				return fmt.Errorf("missing %q before %s", q.name, ps[k+1].name)
			}
		}
		return fmt.Errorf("missing %s", missing(ps, len(pos), implied))
	}
	spare := len(pos) - required
	i := 0
	for _, q := range ps {
		opt := q.optional || (implied && q.repoOpt)
		if opt {
			if spare == 0 || i >= len(pos) {
				continue
			}
			spare--
		}
		if i >= len(pos) {
			break
		}
		if err := setValue(p, q, pos[i]); err != nil {
			return err
		}
		i++
	}
	if i < len(pos) {
		if len(params) > 0 && params[len(params)-1].rest {
			p.Reason = strings.Join(pos[i:], " ")
			return nil
		}
		return fmt.Errorf("unexpected %q", clip(strings.Join(pos[i:], " ")))
	}
	return nil
}

func missing(ps []param, have int, implied bool) string {
	var names []string
	n := 0
	for _, q := range ps {
		if q.optional || (implied && q.repoOpt) {
			continue
		}
		n++
		if n > have && !q.literal {
			names = append(names, q.name)
		}
	}
	if len(names) == 0 {
		return "words"
	}
	return strings.Join(names, " and ")
}

// setValue checks a word against what its param expects and stores it.
func setValue(p *Parsed, q param, v string) error {
	if q.literal {
		if !strings.EqualFold(v, q.name) {
			return fmt.Errorf("expected %q, got %q", q.name, clip(v))
		}
		return nil
	}
	lv := strings.ToLower(v)
	switch q.name {
	case "APP", "REGION", "COMMAND":
		lv = strings.TrimPrefix(lv, "/")
		if !nameWord.MatchString(lv) {
			return fmt.Errorf("%s: expected a name (letters, digits, - or _), got %q", q.name, clip(v))
		}
	case "SHA":
		if !shaWord.MatchString(lv) {
			return fmt.Errorf("%s: expected a commit id (4 to 40 hex digits), got %q", q.name, clip(v))
		}
	case "N":
		if n, err := strconv.ParseInt(lv, 10, 64); err != nil || n <= 0 {
			return fmt.Errorf("%s: expected a run number, got %q", q.name, clip(v))
		}
	}
	if q.name == "TIME" {
		lv = v // a time keeps its case: 2026-12-24T18:00Z
	}
	set(p, q.name, lv)
	return nil
}

func set(p *Parsed, name, v string) {
	switch name {
	case "APP":
		p.App = v
	case "REGION":
		p.Region = v
	case "SHA":
		p.SHA = v
	case "COMMAND":
		p.Topic = v
	case "N":
		p.RunID, _ = strconv.ParseInt(v, 10, 64)
	case "TIME":
		p.Until = v
	case "--force":
		p.Force = v == "true"
	case "--all":
		p.All = v == "true"
	}
}

// clip shortens untrusted text quoted back in an answer.
func clip(s string) string {
	const max = 40
	r := []rune(s)
	if len(r) > max {
		return string(r[:max]) + "…"
	}
	return s
}

package ssh

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// shellQuote returns s as one word for a POSIX shell: wrapped in single quotes, each
// single quote written as '\”. Nothing inside single quotes is special to the shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// errNUL: a shell command line cannot carry a NUL byte, so no argument may hold one.
var errNUL = errors.New("command argument contains a NUL byte")

// shellJoin quotes every element of argv and joins them with spaces.
func shellJoin(argv []string) (string, error) {
	q := make([]string, len(argv))
	for i, a := range argv {
		if strings.ContainsRune(a, 0) {
			return "", errNUL
		}
		q[i] = shellQuote(a)
	}
	return strings.Join(q, " "), nil
}

// script fills a fixed command template: every %s verb receives one argument, quoted.
// Templates are constants of this package; data only ever arrives through args.
func script(tmpl string, args ...string) (string, error) {
	q := make([]any, len(args))
	for i, a := range args {
		if strings.ContainsRune(a, 0) {
			return "", errNUL
		}
		q[i] = shellQuote(a)
	}
	return fmt.Sprintf(tmpl, q...), nil
}

var (
	releaseNameRE = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z._-]{0,127}$`)
	checksumRE    = regexp.MustCompile(`^[0-9a-f]{64}$`)
	envNameRE     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// checkName refuses release names that could not be a folder name (they are quoted
// anyway; this keeps paths such as "../x" or "a/b" out of the layout).
func checkName(sha string) error {
	if !releaseNameRE.MatchString(sha) || strings.HasSuffix(sha, ".tmp") {
		return fmt.Errorf("release name %q: expected a commit SHA", sha)
	}
	return nil
}

// envArgs turns an environment into quoted NAME=value words for `env`.
func envArgs(env map[string]string) ([]string, error) {
	var out []string
	for k, v := range env {
		if !envNameRE.MatchString(k) {
			return nil, fmt.Errorf("environment variable name %q: expected letters, digits and _", k)
		}
		out = append(out, k+"="+v)
	}
	slices.Sort(out)
	return out, nil
}

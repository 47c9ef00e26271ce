package pipeline

import (
	"fmt"
	"unicode"
	"unicode/utf8"
)

// MaxReason bounds a lock reason (and other free text people type): short enough for
// one line of a Slack block (whose text may hold 3,000 characters) with room for the rest.
const MaxReason = 200

// CheckText refuses free text that is too long, is not UTF-8, or holds control
// characters (newlines, escapes, NUL): such text would break the lines of the audit log,
// Slack blocks and terminals it is shown in.
func CheckText(what, s string, max int) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s: %w: it is not valid UTF-8", what, ErrBadInput)
	}
	if n := utf8.RuneCountInString(s); n > max {
		return fmt.Errorf("%s: %w: %d characters, at most %d", what, ErrBadInput, n, max)
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return fmt.Errorf("%s: %w: it holds the control character %U", what, ErrBadInput, r)
		}
	}
	return nil
}

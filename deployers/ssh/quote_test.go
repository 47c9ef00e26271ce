package ssh

import (
	"os/exec"
	"strings"
	"testing"
)

// The quoted word must reach a real /bin/sh as exactly the original bytes.
func FuzzShellQuote(f *testing.F) {
	for _, s := range []string{"", "plain", "it's", "'", "''", `"$HOME"`, "$(id)", "`id`", "a b\tc\nd", `\'\\`, "*?[]{}~#&|;<>", "--x", "ü日本"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if strings.ContainsRune(s, 0) {
			if _, err := shellJoin([]string{s}); err == nil {
				t.Fatal("a NUL byte was accepted")
			}
			return
		}
		out, err := exec.Command("/bin/sh", "-c", "printf '%s' "+shellQuote(s)).Output()
		if err != nil {
			t.Fatalf("sh on %q: %v", s, err)
		}
		if string(out) != s {
			t.Fatalf("quoted %q came back as %q", s, out)
		}
	})
}

func TestScriptQuotesEveryArgument(t *testing.T) {
	got, err := script("cd %s && ls %s", "/srv/a b", "x'; rm -rf /; '")
	if err != nil {
		t.Fatal(err)
	}
	if want := `cd '/srv/a b' && ls 'x'\''; rm -rf /; '\'''`; got != want {
		t.Errorf("script = %s, want %s", got, want)
	}
	for _, bad := range []string{"", "../x", "a/b", ".hidden", "abc.tmp", "a b"} {
		if checkName(bad) == nil {
			t.Errorf("checkName(%q) accepted", bad)
		}
	}
}

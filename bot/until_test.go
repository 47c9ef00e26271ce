package bot

import (
	"strings"
	"testing"
	"time"
)

func TestParseUntil(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	good := map[string]string{
		"2h":                     "2026-12-03T12:00:00Z",
		"90m":                    "2026-12-03T11:30:00Z",
		"3d":                     "2026-12-06T10:00:00Z",
		"2026-12-24T18:00Z":      "2026-12-24T18:00:00Z",
		"2026-12-24t18:00z":      "2026-12-24T18:00:00Z",
		"2026-12-24T18:00+01:00": "2026-12-24T17:00:00Z",
		"2026-12-24T18:00:30Z":   "2026-12-24T18:00:30Z",
		"2026-12-24T18:00":       "2026-12-24T18:00:00Z",
		"2026-12-24":             "2026-12-24T00:00:00Z",
	}
	for in, want := range good {
		got, err := ParseUntil(in, now)
		if err != nil || got.UTC().Format(time.RFC3339) != want {
			t.Errorf("ParseUntil(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"soon", "-2h", "0d", "xd", "24/12/2026", "0s"} {
		if _, err := ParseUntil(in, now); err == nil || !strings.Contains(err.Error(), "TIME: expected a duration such as 2h or 3d") {
			t.Errorf("ParseUntil(%q) = %v; want a clear error", in, err)
		}
	}
}

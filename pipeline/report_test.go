package pipeline

import (
	"testing"
	"time"
)

func TestParsePeriod(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	day := func(m time.Month, d int) time.Time { return time.Date(2026, m, d, 0, 0, 0, 0, time.UTC) }
	for _, c := range []struct {
		since, until string
		from, to     time.Time
	}{
		{"", "", now.AddDate(0, 0, -30), now},
		{"30d", "", now.AddDate(0, 0, -30), now},
		{"2w", "", now.AddDate(0, 0, -14), now},
		{"36h", "", now.Add(-36 * time.Hour), now},
		{"2026-11-01", "2026-11-08", day(11, 1), day(11, 8)},
		{"2026-11-01T06:00:00+02:00", "1d", time.Date(2026, 11, 1, 4, 0, 0, 0, time.UTC), now.AddDate(0, 0, -1)},
	} {
		from, to, err := ParsePeriod(c.since, c.until, now)
		if err != nil || !from.Equal(c.from) || !to.Equal(c.to) {
			t.Errorf("%q %q: %v %v %v, want %v %v", c.since, c.until, from, to, err, c.from, c.to)
		}
	}
	for _, c := range [][2]string{{"yesterday", ""}, {"0d", ""}, {"-3d", ""}, {"99999d", ""}, {"30d", "nope"}, {"2026-11-08", "2026-11-01"}, {"1d", "2d"}} {
		if _, _, err := ParsePeriod(c[0], c[1], now); err == nil {
			t.Errorf("%q %q: no error", c[0], c[1])
		}
	}
}

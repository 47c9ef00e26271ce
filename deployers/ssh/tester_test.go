package ssh

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/immunity-app/immunity/deployers"
)

func TestRunTestsOnTheHost(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1, Settings{})
	ctx := context.Background()
	rel := release(t, "bbbbbbb2222", 100)
	mustAll(t, f.deploy(ctx, f.hosts, rel))
	tests := deployers.Tests{
		Command: []string{"sh", "-c", `cat version; echo "url=$IMMUNITY_BASE_URL extra=$EXTRA"; echo failing >&2; exit 3`},
		Env:     map[string]string{"EXTRA": "it's $(not run)", "IMMUNITY_BASE_URL": "http://10.0.0.1:8080"},
		Timeout: time.Minute,
	}
	out, err := f.d.RunTests(ctx, f.hosts[0], rel.SHA, tests)
	var remote *remoteError
	if !errors.As(err, &remote) || remote.code != 3 {
		t.Errorf("failing tests on the host: %v, want exit 3", err)
	}
	for _, want := range []string{rel.SHA, "url=http://10.0.0.1:8080 extra=it's $(not run)", "failing"} {
		if !strings.Contains(out, want) {
			t.Errorf("test output %q lacks %q", out, want)
		}
	}
	if _, err := f.d.RunTests(ctx, f.hosts[0], "../etc", tests); err == nil {
		t.Error("a release name with a path in it was accepted")
	}
}

package pipeline

import (
	"os"
	"testing"

	"github.com/immunity-app/immunity/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// The engine on PostgreSQL: a whole run through every region, and a restart in the middle
// of a production rollout, the heal of a run left half-waiting, and the transitions that
// move several rows in one write (a failure injected in their middle changes nothing), and
// the commands with their audit entries, as on SQLite.
func TestEngineOnPostgres(t *testing.T) {
	t.Run("run", func(t *testing.T) { testRunGoesRegionByRegion(t, newHarnessOn(t, fourRegions, pgtest.Database(t))) })
	t.Run("restart", func(t *testing.T) { testRestartResumes(t, newHarnessOn(t, fourRegions, pgtest.Database(t))) })
	t.Run("heal", func(t *testing.T) { testHalfWrittenWaitIsHealed(t, newHarnessOn(t, fourRegions, pgtest.Database(t))) })
	t.Run("supersede", func(t *testing.T) { testSupersedeIsOneWrite(t, newHarnessOn(t, fourRegions, pgtest.Database(t))) })
	t.Run("build failure", func(t *testing.T) { testBuildFailureIsOneWrite(t, newHarnessOn(t, fourRegions, pgtest.Database(t))) })
	t.Run("rerun", func(t *testing.T) { testRerunIsOneWrite(t, newHarnessOn(t, fourRegions, pgtest.Database(t))) })
	t.Run("deploy", func(t *testing.T) { testDeployIsOneWrite(t, newHarnessOn(t, fourRegions, pgtest.Database(t))) })
	t.Run("audit", func(t *testing.T) {
		testCommandsAndTheirAuditAreOneWrite(t, newHarnessOn(t, fourRegions, pgtest.Database(t)))
	})
}

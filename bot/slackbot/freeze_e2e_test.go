package slackbot

import (
	"context"
	"strings"
	"testing"

	"github.com/immunity-app/immunity/pipeline"
	"github.com/immunity-app/immunity/pipeline/config"
	"github.com/immunity-app/immunity/store"
)

// TestE2EFreezeBlocksPromotionUntilForcedByTheGrantedRole: a freeze typed in Slack holds
// prod3 (announced, shown in status); a promotion is refused with the freeze's reason;
// --force by someone without the force grant is refused and changes nothing; --force by
// someone granted it passes, is audited and said in the run's thread; unfreeze lifts it.
func TestE2EFreezeBlocksPromotionUntilForcedByTheGrantedRole(t *testing.T) {
	t.Parallel()
	e := newE2E(t)
	ctx := context.Background()
	const amy, steve = "U0CA5", "U2147483697"
	// steve may promote and freeze production; amy may also force.
	e.eng.Config().Apps[0].Access.Production = []config.Grant{
		{Actions: []string{"promote", "lock", "unlock"}, SlackUsers: []string{steve}},
		{Actions: []string{"promote", "force"}, SlackUsers: []string{amy}},
	}
	if a := e.slash(t, steve, "steve", "freeze papi prod3 until 2h launch week"); !a.Public || !strings.Contains(a.Text, "froze papi prod3 until") {
		t.Fatalf("freeze answer %+v", a)
	}
	if a := e.slash(t, amy, "amy", "freeze papi until 2h x"); a.Public || !strings.Contains(a.Text, "amy may not lock papi/prod3") {
		t.Fatalf("amy freezes without the lock grant: %+v", a)
	}
	run, err := e.eng.StartRun(ctx, "papi", sha1, pipeline.Trigger{Kind: "push"})
	if err != nil {
		t.Fatal(err)
	}
	e.waitWaiting(t, run.ID, "prod3")
	if a := e.slash(t, steve, "steve", "status papi"); !strings.Contains(a.Text, "frozen (papi prod3) until") || !strings.Contains(a.Text, "by steve: launch week") {
		t.Errorf("status does not show the freeze: %+v", a)
	}
	before := e.snapshot(t)
	a := e.slash(t, steve, "steve", "promote papi prod3")
	if !strings.Contains(a.Text, "region is frozen: frozen (papi prod3) until") || !strings.Contains(a.Text, "launch week") || !strings.Contains(a.Text, "nothing was changed") {
		t.Fatalf("promote into a frozen region: %+v", a)
	}
	if a := e.slash(t, steve, "steve", "promote papi prod3 --force"); a.Public || !strings.Contains(a.Text, "steve may not force papi/prod3") {
		t.Fatalf("steve forces without the grant: %+v", a)
	}
	if got := e.snapshot(t); got != before {
		t.Fatalf("refused promotions changed the store:\nbefore %s\nafter  %s", before, got)
	}
	audit, _ := e.st.Audits(ctx, "papi", 3)
	if len(audit) != 3 || audit[0].Outcome != "refused" || audit[0].Args != "promote papi prod3 --force" || audit[1].Outcome != "refused" || audit[1].Action != "promote" {
		t.Fatalf("refusals not audited: %+v", audit)
	}

	a = e.slash(t, amy, "amy", "promote papi prod3 --force")
	if !a.Public || !strings.Contains(a.Text, "force-promoted papi 1a2b3c4 to prod3") {
		t.Fatalf("amy's forced promotion: %+v", a)
	}
	e.waitStage(t, run.ID, "prod3", store.StageSucceeded)
	audit, _ = e.st.Audits(ctx, "papi", 1)
	if len(audit) != 1 || audit[0].ActorID != "slack:T0001/"+amy || audit[0].Action != "promote" || audit[0].Args != "--force" || audit[0].Outcome != "ok" {
		t.Fatalf("the forced promotion's audit: %+v", audit)
	}
	waitFor(t, "the break-glass said in the thread and the freeze in the channel", func() bool {
		forced, froze := false, false
		for _, c := range e.slack.Calls() {
			forced = forced || (c.ThreadTS != "" && strings.Contains(c.Text, "amy promoted papi 1a2b3c4 to prod3 with --force (break-glass"))
			froze = froze || (c.ThreadTS == "" && strings.Contains(c.Text, "steve froze papi prod3 until"))
		}
		return forced && froze
	})
	if a := e.slash(t, steve, "steve", "unfreeze papi prod3"); !strings.Contains(a.Text, "unfroze papi prod3") {
		t.Fatalf("unfreeze: %+v", a)
	}
	if fs, _ := e.st.Freezes(ctx, "papi", e.eng.Now()); len(fs) != 0 {
		t.Fatalf("freezes after unfreeze: %+v", fs)
	}
}

package pipeline

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/immunity-app/immunity/store"
)

// A command's change and its audit entry are one write: with the entry's insert failing,
// every kind of command (lock, unlock, freeze, unfreeze, promote, force-promote,
// rollback, deploy, re-run) changes nothing and leaves no entry; once the insert works
// again, the same command makes its change and exactly one entry saying who made it.
func TestCommandsAndTheirAuditAreOneWrite(t *testing.T) {
	testCommandsAndTheirAuditAreOneWrite(t, newHarness(t, fourRegions))
}

// auditCommand is one command of the test: what it changes (state, read from the store)
// and the command itself.
type auditCommand struct {
	action string
	args   string
	state  func() string
	do     func() (string, error)
}

// entries is the audit log's entries of an action, oldest first.
func (h *harness) entries(action string) []store.Audit {
	h.t.Helper()
	all, err := h.st.Audits(context.Background(), "", 10000)
	if err != nil {
		h.t.Fatal(err)
	}
	var out []store.Audit
	for i := len(all) - 1; i >= 0; i-- {
		if all[i].Action == action {
			out = append(out, all[i])
		}
	}
	return out
}

// checkEntryRefused runs a command with the audit log refusing its entry: nothing may
// change, no entry may be left.
func (h *harness) checkEntryRefused(c auditCommand) {
	h.t.Helper()
	before, entries := c.state(), len(h.entries(c.action))
	lift := h.failWrites("INSERT", "audit", "NEW.action = '"+c.action+"'")
	defer lift()
	if msg, err := c.do(); err == nil || !strings.Contains(err.Error(), "injected failure") {
		h.t.Fatalf("%s %s with its audit entry refused: %q, %v; want the injected failure", c.action, c.args, msg, err)
	}
	if got := c.state(); got != before {
		h.t.Fatalf("%s %s whose audit entry was refused changed the store, with no entry saying who did it:\n%s\nit was\n%s", c.action, c.args, got, before)
	}
	if got := h.entries(c.action); len(got) != entries {
		h.t.Fatalf("%s %s whose audit entry was refused left entries: %+v", c.action, c.args, got[entries:])
	}
}

// checkAuditedOnce runs a command twice: with the audit log refusing its entry
// (checkEntryRefused), then with the log working: the change is made and one entry
// records it.
func (h *harness) checkAuditedOnce(c auditCommand) {
	h.t.Helper()
	h.checkEntryRefused(c)
	before, entries := c.state(), len(h.entries(c.action))
	if _, err := c.do(); err != nil {
		h.t.Fatalf("%s %s: %v", c.action, c.args, err)
	}
	if got := c.state(); got == before {
		h.t.Fatalf("%s %s changed nothing: %s", c.action, c.args, got)
	}
	got := h.entries(c.action)
	if len(got) != entries+1 {
		h.t.Fatalf("%s %s wrote %d audit entries; want one: %+v", c.action, c.args, len(got)-entries, got[entries:])
	}
	if a := got[entries]; a.ActorID != ada.Key() || a.Actor != "ada" || a.Via != "cli" || a.Outcome != "ok" || a.Args != c.args || a.App != "papi" {
		h.t.Fatalf("%s %s: audit entry %+v", c.action, c.args, a)
	}
}

func testCommandsAndTheirAuditAreOneWrite(t *testing.T, h *harness) {
	ctx := context.Background()
	seed := h.seed()

	lock := func() string {
		l, err := h.st.Lock(ctx, "papi", "sandbox1")
		return fmt.Sprintf("%q %q %v", l.HolderID, l.Reason, err)
	}
	h.checkAuditedOnce(auditCommand{action: "lock", state: lock, do: func() (string, error) {
		return h.eng.Lock(ctx, ada, "papi", "sandbox1", "flaky tests")
	}})
	h.checkAuditedOnce(auditCommand{action: "unlock", state: lock, do: func() (string, error) {
		return h.eng.Unlock(ctx, ada, "papi", "sandbox1", false)
	}})

	until := time.Now().Add(time.Hour).Truncate(time.Second)
	freezes := func() string {
		fs, err := h.st.Freezes(ctx, "papi", time.Now())
		out := fmt.Sprint(err)
		for _, f := range fs {
			out += fmt.Sprintf(" %s/%s until %s by %s", f.App, f.Region, f.Until.UTC().Format(time.RFC3339), f.ActorID)
		}
		return out
	}
	h.checkAuditedOnce(auditCommand{action: "freeze", args: "until " + until.UTC().Format(time.RFC3339), state: freezes, do: func() (string, error) {
		return h.eng.Freeze(ctx, ada, "papi", []string{"prod4"}, until, "quarter end")
	}})
	h.checkAuditedOnce(auditCommand{action: "unfreeze", state: freezes, do: func() (string, error) {
		return h.eng.Unfreeze(ctx, ada, "papi", []string{"prod4"})
	}})

	// A run waiting for its promotion to prod3: promoted, forced or not.
	run := h.push("second")
	h.waitState(run.ID, store.RunWaiting)
	rows := func() string { return h.rows(run.ID) }
	promote := auditCommand{action: "promote", state: rows, do: func() (string, error) {
		return h.eng.Promote(ctx, ada, "papi", "prod3", "")
	}}
	force := auditCommand{action: "promote", args: "--force", state: rows, do: func() (string, error) {
		return h.eng.ForcePromote(ctx, ada, "papi", "prod3", "")
	}}
	h.checkEntryRefused(force)
	h.checkAuditedOnce(promote)
	h.waitState(run.ID, store.RunSucceeded)

	// prod4 rolled back to the seed: no plan, no host touched while the entry is refused.
	region := func(name string) func() string {
		return func() string {
			live, err := h.st.Live(ctx, "papi", name)
			hist, herr := h.st.History(ctx, "papi", name, 100)
			open, oerr := h.st.OpenRollbacks(ctx)
			var hosts []string
			for host, sha := range live {
				hosts = append(hosts, host+"="+short(sha))
			}
			sort.Strings(hosts)
			h.dep.mu.Lock()
			defer h.dep.mu.Unlock()
			return fmt.Sprintf("live %v %v; on the host %s; %d history entries %v; %d open rollbacks %v", hosts, err, short(h.dep.current["prod4/host1"]), len(hist), herr, len(open), oerr)
		}
	}
	h.checkAuditedOnce(auditCommand{action: "rollback", state: region("prod4"), do: func() (string, error) {
		return h.eng.Rollback(ctx, ada, "papi", "prod4", "")
	}})
	if live, _ := h.st.Live(ctx, "papi", "prod4"); live["host1"] != seed {
		t.Fatalf("after the rollback prod4 runs %v; want the seed %s", live, short(seed))
	}

	// The second release deployed to prod4 again.
	runsOf := func() string {
		runs, err := h.st.RunsOf(ctx, "papi", run.SHA)
		return fmt.Sprintf("%d runs %v", len(runs), err)
	}
	h.checkAuditedOnce(auditCommand{action: "deploy", state: runsOf, do: func() (string, error) {
		return h.eng.Deploy(ctx, ada, "papi", run.SHA, "prod4", false)
	}})
	deployed, _ := h.st.RunsOf(ctx, "papi", run.SHA)
	h.waitState(deployed[0].ID, store.RunSucceeded)

	// A run whose tests failed in sandbox1, re-run.
	sha := h.build.add("flaky tests")
	h.tests.mu.Lock()
	h.tests.fail[sha] = true
	h.tests.mu.Unlock()
	flaky, err := h.eng.StartRun(ctx, "papi", sha, Trigger{Kind: "push"})
	if err != nil {
		t.Fatal(err)
	}
	h.waitState(flaky.ID, store.RunFailed)
	h.tests.mu.Lock()
	h.tests.fail[sha] = false
	h.tests.mu.Unlock()
	h.checkAuditedOnce(auditCommand{action: "rerun", state: func() string { return h.rows(flaky.ID) }, do: func() (string, error) {
		return h.eng.Rerun(ctx, ada, flaky.ID, "sandbox1")
	}})
	h.waitState(flaky.ID, store.RunWaiting)

	// What is refused is still audited as refused, once; what changed nothing leaves no
	// entry claiming a change.
	before := len(h.entries("unlock"))
	if _, err := h.eng.Unlock(ctx, ada, "papi", "sandbox1", false); err == nil {
		t.Fatal("unlocked a region that is not locked")
	}
	if got := h.entries("unlock"); len(got) != before+1 || got[before].Outcome != "failed" {
		t.Fatalf("an unlock of a region not locked: entries %+v", got[before:])
	}
	if _, err := h.eng.Lock(ctx, ada, "papi", "prod4", "release train"); err != nil {
		t.Fatal(err)
	}
	before = len(h.entries("lock"))
	if _, err := h.eng.Lock(ctx, bob, "papi", "prod4", "mine"); err == nil {
		t.Fatal("locked a region locked already")
	}
	if got := h.entries("lock"); len(got) != before+1 || got[before].Outcome != "refused" || got[before].ActorID != bob.Key() {
		t.Fatalf("a lock of a region locked already: entries %+v", got[before:])
	}
	if l, _ := h.st.Lock(ctx, "papi", "prod4"); l.HolderID != ada.Key() {
		t.Fatalf("the refused lock changed the lock: %+v", l)
	}
}

var bob = Actor{ID: "github:7", Name: "bob", Via: "slack"}

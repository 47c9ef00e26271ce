// Package demo runs the worked example of DESIGN.md on one machine: a scratch git
// repository of the sample app papi, four regions on the local deployer (sandbox1,
// sandbox2 monitored against prod3, prod3 and prod4 in production), production traffic,
// and a script of commits: a good one promoted to production, one that breaks a test, one
// with a runtime regression, one whose regression only real traffic shows, and a rollback.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/immunity-app/immunity/app"
	"github.com/immunity-app/immunity/bot"
	"github.com/immunity-app/immunity/pipeline"
	"github.com/immunity-app/immunity/pipeline/config"
	"github.com/immunity-app/immunity/pipeline/judge"
	"github.com/immunity-app/immunity/store"
)

// Options configure the demo.
type Options struct {
	Once   bool   // run the script, print the summary, exit
	Listen string // dashboard and API address
	Dir    string // working folder; "" makes a temporary one
	Out    io.Writer
	// Monitor is the monitoring period of sandbox2 (default 8s).
	Monitor time.Duration
}

// outcome is one line of the summary.
type outcome struct {
	sha, what string
	ok        bool
}

// Run runs the demo.
func Run(ctx context.Context, o Options) error {
	if o.Monitor == 0 {
		o.Monitor = 8 * time.Second
	}
	dir := o.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "immunity-demo-")
		if err != nil {
			return err
		}
		dir = d
		if o.Once {
			defer os.RemoveAll(dir)
		}
	}
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return fmt.Errorf("demo: cannot listen on %s (is another Immunity running? try --listen 127.0.0.1:0): %w", o.Listen, err)
	}
	repo, err := newRepo(filepath.Join(dir, "papi.git"))
	if err != nil {
		return err
	}
	cfgFile, err := writeConfig(dir, o.Monitor)
	if err != nil {
		return err
	}
	cfg, err := config.Load(cfgFile)
	if err != nil {
		return err
	}
	cfg.Server.URL = "http://" + ln.Addr().String()
	out := &lockedWriter{w: o.Out}
	thread := bot.NewConsoleThread(out, cfg)
	defer thread.Close()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	in, err := app.Open(ctx, app.Options{Config: cfg, Logger: logger, Listeners: []pipeline.Listener{thread}})
	if err != nil {
		return err
	}
	defer in.Close(true)
	if err := in.Start(ctx); err != nil {
		return err
	}
	in.Server.SetReady(true)
	sctx, stopServe := context.WithCancel(ctx)
	defer stopServe()
	lns := []net.Listener{ln}
	if sock, err := app.ListenSocket(in.SocketPath()); err == nil {
		lns = append(lns, sock)
	} else {
		fmt.Fprintf(out, "no local socket for the CLI: %v\n", err)
	}
	go in.Server.Serve(sctx, lns...)
	fmt.Fprintf(out, "Immunity demo: dashboard at %s  (work folder %s)\n", cfg.Server.URL, dir)

	d := &demo{in: in, repo: repo, out: out, thread: thread}
	seed, err := repo.commit("papi: first release", nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\n== putting %s live in every region as the starting point\n", short(seed))
	if _, err := in.Engine.Seed(ctx, pipeline.Actor{ID: "demo", Name: "demo", Via: "demo", Admin: true}, "papi", seed); err != nil {
		return err
	}
	tctx, stopTraffic := context.WithCancel(ctx)
	defer stopTraffic()
	d.traffic(tctx)

	outcomes := d.script(ctx, seed)
	thread.Flush()
	fmt.Fprintf(out, "\n== summary\n")
	all := true
	for _, oc := range outcomes {
		what := oc.what
		if !oc.ok {
			what, all = "NOT AS EXPECTED: "+what, false
		}
		fmt.Fprintf(out, "%s %s\n", short(oc.sha), what)
	}
	if st, err := in.Engine.Status(ctx, "papi"); err == nil {
		for _, r := range st[0].Regions {
			fmt.Fprintf(out, "live in %-9s %s\n", r.Name, short(r.LiveSHA))
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if o.Once {
		if !all {
			return errors.New("demo: not every outcome happened (see NOT AS EXPECTED above)")
		}
		return nil
	}
	fmt.Fprintf(out, "\nThe demo keeps running: open %s, or in another terminal try `go run . status papi`,\n"+
		"`go run . history papi`, and, as this machine's user through the demo's local socket,\n"+
		"`IMMUNITY_SOCKET=%s go run . lock papi prod3 testing`\n"+
		"(`... go run . token create ada` makes a token to sign in to the dashboard with). Commit a change in %s\n"+
		"(knobs.go holds the sample app's behaviour) and a run starts. Ctrl-C stops it.\n", cfg.Server.URL, in.SocketPath(), repo.dir)
	<-ctx.Done()
	return nil
}

type demo struct {
	in     *app.Instance
	repo   *repo
	out    io.Writer
	thread *bot.ConsoleThread
}

// person is the demo's operator: the server itself acts for ada.
var person = pipeline.Actor{ID: "demo:ada", Name: "ada", Via: "demo", Admin: true}

// script makes the commits and checks each outcome.
func (d *demo) script(ctx context.Context, seed string) []outcome {
	var res []outcome
	step := func(title, msg string, knobs map[string]string, check func(run store.Run) (string, bool)) store.Run {
		if ctx.Err() != nil {
			return store.Run{}
		}
		fmt.Fprintf(d.out, "\n== %s\n", title)
		sha, err := d.repo.commit(msg, knobs)
		if err != nil {
			res = append(res, outcome{sha, "commit failed: " + err.Error(), false})
			return store.Run{}
		}
		run, err := d.in.Engine.StartRun(ctx, "papi", sha, pipeline.Trigger{Kind: "push", Actor: pipeline.Actor{Name: "ada", Via: "push"}})
		if err != nil {
			res = append(res, outcome{sha, "could not start a run: " + err.Error(), false})
			return store.Run{}
		}
		what, ok := check(run)
		res = append(res, outcome{sha, what, ok})
		return run
	}

	good := step("(a) a good commit: sandbox1, sandbox2, then a person promotes it to production",
		"Greet with more items", map[string]string{"Greeting": `"hello from papi, now with more items"`},
		func(run store.Run) (string, bool) {
			r := d.wait(ctx, run.ID, func(r store.Run) bool { return r.State == store.RunWaiting || r.State.Terminal() })
			if r.State != store.RunWaiting {
				return "expected to wait for promotion to prod3, ended " + string(r.State) + ": " + r.Message, false
			}
			d.thread.Flush()
			fmt.Fprintf(d.out, "\n   ada types in chat: /immunity promote papi prod3\n")
			reply := d.in.Commands.Exec(ctx, bot.Request{Actor: person, Text: "promote papi prod3"})
			fmt.Fprintf(d.out, "   immunity answers: %s\n", reply.Text)
			if !reply.OK {
				return "promotion refused: " + reply.Text, false
			}
			r = d.wait(ctx, run.ID, func(r store.Run) bool { return r.State.Terminal() })
			if r.State != store.RunSucceeded {
				return "expected to reach production, ended " + string(r.State) + ": " + r.Message, false
			}
			return "passed sandbox1 and sandbox2, promoted by ada, rolled out to prod3 then prod4", true
		})

	step("(b) a commit that breaks an integration test", "Stop sorting items",
		map[string]string{"ItemsSorted": "false"},
		func(run store.Run) (string, bool) {
			r := d.wait(ctx, run.ID, func(r store.Run) bool { return r.State.Terminal() })
			if r.State == store.RunFailed && stageState(r, "sandbox1") == store.StageFailed {
				return "stopped at sandbox1: " + firstLine(stage(r, "sandbox1").Message), true
			}
			return "expected to fail its tests in sandbox1, ended " + string(r.State) + ": " + r.Message, false
		})

	step("(c) a commit with a runtime regression that passes the tests", "Cache items in a slower store",
		map[string]string{"ItemsSorted": "true", "ExtraLatency": "120 * time.Millisecond", "ErrorPercent": "8"},
		func(run store.Run) (string, bool) { return d.expectCanaryFail(ctx, run) })

	step("(d) a commit whose regression only real traffic shows (only /api/search is slower)", "Rank search results",
		map[string]string{"ExtraLatency": "0 * time.Millisecond", "ErrorPercent": "0", "SearchLatency": "250 * time.Millisecond"},
		func(run store.Run) (string, bool) { return d.expectCanaryFail(ctx, run) })

	if ctx.Err() == nil {
		fmt.Fprintf(d.out, "\n== (e) roll production back to the previous release\n")
		ok := true
		for _, region := range []string{"prod3", "prod4"} {
			fmt.Fprintf(d.out, "   ada types in chat: /immunity rollback papi %s\n", region)
			reply := d.in.Commands.Exec(ctx, bot.Request{Actor: person, Text: "rollback papi " + region})
			fmt.Fprintf(d.out, "   immunity answers: %s\n", reply.Text)
			ok = ok && reply.OK
		}
		st, _ := d.in.Engine.Status(ctx, "papi")
		for _, r := range st[0].Regions {
			if (r.Name == "prod3" || r.Name == "prod4") && r.LiveSHA != seed {
				ok = false
			}
		}
		what := fmt.Sprintf("rolled back: prod3 and prod4 run %s again", short(seed))
		if !ok {
			what = "rollback of prod3 and prod4 did not put " + short(seed) + " back"
		}
		res = append(res, outcome{good.SHA, what, ok})
	}
	return res
}

// expectCanaryFail waits for a run to be stopped by the canary analysis in sandbox2.
func (d *demo) expectCanaryFail(ctx context.Context, run store.Run) (string, bool) {
	r := d.wait(ctx, run.ID, func(r store.Run) bool { return r.State.Terminal() || r.State == store.RunWaiting })
	s := stage(r, "sandbox2")
	if r.State != store.RunFailed || s == nil || s.State != store.StageFailed || s.Verdict == "" {
		return "expected the canary analysis to stop it in sandbox2, ended " + string(r.State) + ": " + r.Message, false
	}
	var v judge.Verdict
	if err := jsonUnmarshal(s.Verdict, &v); err != nil || v.Outcome != judge.Fail {
		return "expected a Fail verdict in sandbox2, got " + string(v.Outcome), false
	}
	d.thread.Flush()
	fmt.Fprintf(d.out, "\n   the judge's explanation:\n%s\n", indent(verdictText(v), "   "))
	var bad []string
	for _, m := range v.Metrics {
		if m.Outcome == judge.Fail {
			bad = append(bad, m.Name)
		}
	}
	return fmt.Sprintf("passed its tests, stopped by the canary analysis in sandbox2 (%s worse than prod3)", strings.Join(bad, ", ")), true
}

// wait polls a run until done says so.
func (d *demo) wait(ctx context.Context, id int64, done func(store.Run) bool) store.Run {
	var r store.Run
	for ctx.Err() == nil {
		var err error
		if r, err = d.in.Engine.Run(ctx, id); err == nil && done(r) {
			return r
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	return r
}

// traffic sends production GET traffic to prod3 and prod4 through their mirrors.
func (d *demo) traffic(ctx context.Context) {
	a, _ := d.in.Config.App("papi")
	var targets []string
	for _, name := range []string{"prod3", "prod4"} {
		r, _, _ := a.Region(name)
		for _, h := range d.in.Engine.Hosts(a, r) {
			targets = append(targets, d.in.MirrorURL(h))
		}
	}
	paths := []string{"/api/items", "/api/items/1", "/api/items/2", "/api/search?q=blue", "/", "/api/items/999"}
	client := &http.Client{Timeout: 5 * time.Second}
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; ctx.Err() == nil; i++ {
				u := targets[i%len(targets)] + paths[(i/len(targets))%len(paths)]
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
				if resp, err := client.Do(req); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				select {
				case <-ctx.Done():
				case <-time.After(20 * time.Millisecond):
				}
			}
		}()
	}
	go func() { <-ctx.Done(); wg.Wait() }()
}

func stage(r store.Run, region string) *store.Stage {
	for i := range r.Stages {
		if r.Stages[i].Region == region {
			return &r.Stages[i]
		}
	}
	return nil
}

func stageState(r store.Run, region string) store.StageState {
	if s := stage(r, region); s != nil {
		return s.State
	}
	return ""
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func indent(s, pre string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i := range lines {
		lines[i] = pre + lines[i]
	}
	return strings.Join(lines, "\n")
}

func short(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	return sha
}

// lockedWriter serialises writes from the reporters and the script.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

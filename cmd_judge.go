package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/immunity-app/immunity/pipeline/config"
	"github.com/immunity-app/immunity/pipeline/judge"
)

const (
	judgeUsage     = "usage: immunity judge --config FILE [--app NAME] --baseline FILE --canary FILE [--at SECONDS] [--json]"
	calibrateUsage = "usage: immunity judge calibrate --config FILE [--app NAME] {--baseline FILE --canary FILE ... | --recorded DIR}"
)

// judgeCmd judges two recorded sets of samples offline, exactly as a monitoring window
// would, with the metric settings of an app in the config file; `judge calibrate` measures
// the metrics' allowances from recorded A/A pairs and writes them into the config.
func judgeCmd(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) > 0 && args[0] == "calibrate" {
		return calibrateCmd(args[1:], stdout)
	}
	fs := flag.NewFlagSet("judge", flag.ContinueOnError)
	cfgFile := fs.String("config", "", "config file whose app's metrics section says how to judge")
	appName := fs.String("app", "", "the app whose metrics to use (default: the only app in the config)")
	baseline := fs.String("baseline", "", "CSV of the baseline's samples: time,metric,value")
	canary := fs.String("canary", "", "CSV of the canary's samples: time,metric,value")
	at := fs.Float64("at", 0, "the verdict the pipeline would have given this many seconds into the window (default: the end)")
	asJSON := fs.Bool("json", false, "print the verdict as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cfgFile == "" || *baseline == "" || *canary == "" || fs.NArg() > 0 {
		return errors.New(judgeUsage)
	}
	if *at < 0 || math.IsNaN(*at) || math.IsInf(*at, 0) {
		return fmt.Errorf("judge: --at %v: expected seconds into the window, 0 or more", *at)
	}
	_, a, err := loadApp(*cfgFile, *appName)
	if err != nil {
		return err
	}
	b, c, err := openPair(*baseline, *canary)
	if err != nil {
		return err
	}
	defer b.Close()
	defer c.Close()
	o := judge.Offline{Metrics: a.JudgeMetrics(), Interval: monitorInterval(a), At: time.Duration(*at * float64(time.Second))}
	rep, err := o.Run(ctx, b, c)
	if err != nil {
		return err
	}
	if err := rep.Print(stdout, *asJSON); err != nil {
		return err
	}
	switch rep.Verdict.Outcome {
	case judge.Fail, judge.Error, judge.Inconclusive:
		return errExit(3)
	}
	return nil
}

// calibrateCmd reads recorded A/A pairs, estimates each metric's allowance and writes it
// into the config.
func calibrateCmd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("judge calibrate", flag.ContinueOnError)
	cfgFile := fs.String("config", "", "config file to write the allowances into")
	appName := fs.String("app", "", "the app whose metrics to calibrate (default: the only app in the config)")
	var bases, cans []string
	fs.Func("baseline", "CSV of one production host's samples (repeat, one per --canary)", func(s string) error { bases = append(bases, s); return nil })
	fs.Func("canary", "CSV of another production host's samples on the same release, same time", func(s string) error { cans = append(cans, s); return nil })
	recorded := fs.String("recorded", "", "folder of A/A windows a monitor with calibrate: true recorded (every NAME.baseline.csv with its NAME.canary.csv)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *recorded != "" {
		b, c, err := recordedPairs(*recorded)
		if err != nil {
			return err
		}
		bases, cans = append(bases, b...), append(cans, c...)
	}
	if *cfgFile == "" || len(bases) == 0 || len(bases) != len(cans) || fs.NArg() > 0 {
		return errors.New(calibrateUsage)
	}
	_, a, err := loadApp(*cfgFile, *appName)
	if err != nil {
		return err
	}
	ms := a.JudgeMetrics()
	interval, period := monitorInterval(a), monitorPeriod(a)
	o := judge.Offline{Metrics: ms, Interval: interval}
	looks := max(1, int(period/interval))
	var windows [][]judge.Input
	for i := range bases {
		b, c, err := openPair(bases[i], cans[i])
		if err != nil {
			return err
		}
		w, err := o.Windows(b, c, looks)
		b.Close()
		c.Close()
		if err != nil {
			return fmt.Errorf("%s and %s: %w", bases[i], cans[i], err)
		}
		windows = append(windows, w...)
	}
	allow, err := judge.Calibrate(ms, windows)
	if err != nil {
		return err
	}
	if len(allow) == 0 {
		return errors.New("judge calibrate: no metric had data in the recordings; nothing written")
	}
	if err := config.WriteAllowances(*cfgFile, a.Name, allow); err != nil {
		return err
	}
	names := make([]string, 0, len(allow))
	for n := range allow {
		names = append(names, n)
	}
	slices.Sort(names)
	fmt.Fprintf(stdout, "Calibrated on %d A/A windows of %s (%d looks of %s); wrote to %s:\n", len(windows), period, looks, interval, *cfgFile)
	for _, n := range names {
		fmt.Fprintf(stdout, "  %s: %s\n", n, config.FormatAllowance(allow[n]))
	}
	var left []string
	for _, m := range ms {
		if _, ok := allow[m.Name]; !ok {
			left = append(left, m.Name)
		}
	}
	if len(left) > 0 {
		fmt.Fprintf(stdout, "  no data, left as they were: %s\n", strings.Join(left, ", "))
	}
	return nil
}

// recordedPairs lists the A/A windows recorded in dir: each NAME.baseline.csv with its
// NAME.canary.csv.
func recordedPairs(dir string) (bases, cans []string, err error) {
	found, err := filepath.Glob(filepath.Join(dir, "*.baseline.csv"))
	if err != nil {
		return nil, nil, err
	}
	slices.Sort(found)
	for _, b := range found {
		c := strings.TrimSuffix(b, ".baseline.csv") + ".canary.csv"
		if _, err := os.Stat(c); err != nil {
			return nil, nil, fmt.Errorf("judge calibrate: %s has no %s beside it", b, filepath.Base(c))
		}
		bases, cans = append(bases, b), append(cans, c)
	}
	if len(bases) == 0 {
		if _, err := os.Stat(dir); err != nil {
			return nil, nil, fmt.Errorf("judge calibrate: %w", err)
		}
		return nil, nil, fmt.Errorf("judge calibrate: no recorded A/A windows (NAME.baseline.csv) in %s", dir)
	}
	return bases, cans, nil
}

func loadApp(file, name string) (*config.Config, *config.App, error) {
	cfg, err := config.Load(file)
	if err != nil {
		return nil, nil, err
	}
	switch {
	case name != "":
		a, ok := cfg.App(name)
		if !ok {
			return nil, nil, fmt.Errorf("judge: no app %q in %s", name, file)
		}
		return cfg, a, nil
	case len(cfg.Apps) == 1:
		return cfg, &cfg.Apps[0], nil
	}
	return nil, nil, fmt.Errorf("judge: %s has %d apps; name one with --app", file, len(cfg.Apps))
}

func openPair(baseline, canary string) (*os.File, *os.File, error) {
	b, err := os.Open(baseline)
	if err != nil {
		return nil, nil, err
	}
	c, err := os.Open(canary)
	if err != nil {
		b.Close()
		return nil, nil, err
	}
	return b, c, nil
}

// monitorInterval and monitorPeriod are the app's window, as its first monitored region
// sets it (the monitor's defaults otherwise).
func monitorInterval(a *config.App) time.Duration {
	for _, r := range a.Regions {
		if r.Monitor != nil {
			return r.Monitor.Interval.Or(10 * time.Second)
		}
	}
	return 10 * time.Second
}

func monitorPeriod(a *config.App) time.Duration {
	for _, r := range a.Regions {
		if r.Monitor != nil {
			return r.Monitor.Period.Or(5 * time.Minute)
		}
	}
	return 5 * time.Minute
}

// errExit ends the command with a status code and no further message.
type errExit int

func (e errExit) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

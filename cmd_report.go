package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/immunity-app/immunity/pipeline"
	"github.com/immunity-app/immunity/store"
)

const reportUse = "usage: immunity report APP [--since 30d|2026-11-01] [--until DATE|TIME] [--json]"

// reportCmd shows an app's delivery figures over a period, from the server's /api/report.
func reportCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	since := fs.String("since", "30d", "start of the period: a duration back from now (30d, 2w, 36h) or a date (2026-11-01) or an RFC 3339 time")
	until := fs.String("until", "", "end of the period (not included), in the same forms; default now")
	asJSON := fs.Bool("json", false, "print the report as JSON (as /api/report gives it)")
	var app string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		app, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return errExit(2)
	}
	if app == "" && fs.NArg() > 0 {
		app = fs.Arg(0)
	}
	if app == "" || fs.NArg() > 1 || (fs.NArg() == 1 && fs.Arg(0) != app) {
		fmt.Fprintln(stderr, reportUse)
		return errExit(2)
	}
	if _, _, err := pipeline.ParsePeriod(*since, *until, time.Now()); err != nil {
		fmt.Fprintf(stderr, "immunity report: %v\n%s\n", err, reportUse)
		return errExit(2)
	}
	q := url.Values{"app": {app}, "since": {*since}}
	if *until != "" {
		q.Set("until", *until)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var answer struct {
		store.Report
		Error string `json:"error"`
	}
	code, err := dial().do(ctx, http.MethodGet, "/api/report?"+q.Encode(), nil, &answer)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		if answer.Error == "" {
			answer.Error = http.StatusText(code)
		}
		if code == http.StatusBadRequest || code == http.StatusNotFound {
			fmt.Fprintln(stderr, "immunity report:", answer.Error)
			return errExit(2)
		}
		return errors.New("report: " + answer.Error)
	}
	if *asJSON {
		return writeJSON(stdout, answer.Report)
	}
	return writeReport(stdout, answer.Report)
}

// writeReport prints a report as a person reads it.
func writeReport(w io.Writer, r store.Report) error {
	days := r.Until.Sub(r.Since).Hours() / 24
	prod := strings.Join(r.Production, ", ")
	if prod == "" {
		prod = "none"
	}
	fmt.Fprintf(w, "%s: delivery from %s to %s UTC (%s days; production: %s)\n\n", r.App,
		r.Since.UTC().Format("2006-01-02 15:04"), r.Until.UTC().Format("2006-01-02 15:04"), trimFloat(days), prod)
	t := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(t, "deploys to production\t%d\t(%s a week, %s a day)\n", r.Deploys, trimFloat(r.DeploysPerWeek), trimFloat(r.DeploysPerDay))
	lead := fmt.Sprintf("(%d deploys", r.LeadTime.Count)
	if r.LeadTimeUnknown > 0 {
		lead += fmt.Sprintf("; %d with an unknown commit time", r.LeadTimeUnknown)
	}
	fmt.Fprintf(t, "lead time\t%s\t%s)\n", medianP90(r.LeadTime), lead)
	rate := "-"
	if r.ChangeFailureRate != nil {
		rate = fmt.Sprintf("%s%%", trimFloat(*r.ChangeFailureRate*100))
	}
	fmt.Fprintf(t, "change failure rate\t%s\t(%d of %d production stages failed or were rolled back)\n", rate, r.Failures, r.ProductionStages)
	restore := fmt.Sprintf("(%d restored", r.TimeToRestore.Count)
	if r.RestoresOpen > 0 {
		restore += fmt.Sprintf("; %d not yet", r.RestoresOpen)
	}
	fmt.Fprintf(t, "time to restore\t%s\t%s)\n", medianP90(r.TimeToRestore), restore)
	fmt.Fprintf(t, "canary stops\t%d\t(regressions stopped before production)\n", r.CanaryStops)
	if r.InFlight > 0 {
		fmt.Fprintf(t, "in flight\t%d\t(production stages still deploying at the end)\n", r.InFlight)
	}
	if err := t.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	t = tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(t, "WEEK OF\tDEPLOYS\tFAILURES\tCANARY STOPS\t")
	for _, wk := range r.Weeks {
		fmt.Fprintf(t, "%s\t%d\t%d\t%d\t\n", wk.Start.UTC().Format("2006-01-02"), wk.Deploys, wk.Failures, wk.CanaryStops)
	}
	if err := t.Flush(); err != nil {
		return err
	}
	if len(r.FailureList) > 0 {
		fmt.Fprintln(w, "\nfailures:")
		for _, f := range r.FailureList {
			restored := "not restored"
			if f.Restored != nil {
				restored = "restored after " + pipeline.HumanSeconds(f.Restored.Sub(f.Started).Seconds())
			}
			fmt.Fprintf(w, "  %s  run %d  %s in %s, %s; %s\n", f.Started.UTC().Format("2006-01-02 15:04"), f.RunID, short(f.SHA), f.Region, strings.ReplaceAll(f.How, "_", " "), restored)
		}
	}
	return nil
}

func medianP90(d store.Durations) string {
	if d.Median == nil || d.P90 == nil {
		return "-"
	}
	return "median " + pipeline.HumanSeconds(*d.Median) + ", p90 " + pipeline.HumanSeconds(*d.P90)
}

func trimFloat(f float64) string {
	s := fmt.Sprintf("%.2f", f)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s
}

func short(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	return sha
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

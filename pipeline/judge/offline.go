package judge

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Offline replays recorded samples through a Sequence, exactly as the live pipeline
// judges a monitoring window (the CSV format is in the package comment). The window
// starts at the earliest time in either file and is cut into intervals by the time
// column; look k adds the rows of (start + (k-1)·interval, start + k·interval] (the
// first also takes the start itself: a row's time is the end of what it counts), and a
// Fail or Error stops the replay early, as it stops a live window. Rows of metrics not in
// the config are ignored and listed.
type Offline struct {
	Metrics  []Metric
	Interval time.Duration // default 10s, the monitor's default interval
	Options  Options       // Looks is set from the data
	// At, when set, ends the replay at the look covering that much of the window: the
	// verdict the pipeline would have given then, with the whole window's look schedule.
	At time.Duration
}

// Replay is the outcome of an offline run.
type Replay struct {
	Verdict Verdict
	Start   time.Time
	Looks   int
	Ignored []string // metric names in the files but not in the config
}

// RunOffline judges baseline against canary samples with the default interval and
// options, and prints the verdict (its table, or JSON) to out.
func RunOffline(ctx context.Context, metrics []Metric, baselineCSV, canaryCSV io.Reader, asJSON bool, out io.Writer) (Verdict, error) {
	r, err := Offline{Metrics: metrics}.Run(ctx, baselineCSV, canaryCSV)
	if err != nil {
		return Verdict{}, err
	}
	return r.Verdict, r.Print(out, asJSON)
}

// Run reads both files and replays them.
func (o Offline) Run(ctx context.Context, baselineCSV, canaryCSV io.Reader) (Replay, error) {
	if len(o.Metrics) == 0 {
		return Replay{}, errors.New("judge offline: no metrics configured")
	}
	base, err := readSamples(baselineCSV)
	if err != nil {
		return Replay{}, fmt.Errorf("read baseline samples: %w", err)
	}
	can, err := readSamples(canaryCSV)
	if err != nil {
		return Replay{}, fmt.Errorf("read canary samples: %w", err)
	}
	if len(base)+len(can) == 0 {
		return Replay{}, errors.New("judge offline: both sample files are empty")
	}
	interval := o.Interval
	if interval <= 0 {
		interval = 10 * time.Second
	}
	start, end := span(base, can)
	looks := max(1, int(math.Ceil(float64(end.Sub(start))/float64(interval))))
	opts := o.Options
	opts.Looks = looks
	stop := looks
	if o.At > 0 {
		stop = min(looks, max(1, int(math.Ceil(float64(o.At)/float64(interval)))))
	}
	ivB, ivC := intervals(o.Metrics, base, start, interval, looks), intervals(o.Metrics, can, start, interval, looks)
	seq := NewSequence(o.Metrics, opts)
	rep := Replay{Start: start, Looks: looks, Ignored: ignored(o.Metrics, base, can)}
	for k := 1; k <= stop; k++ {
		if err := ctx.Err(); err != nil {
			return rep, fmt.Errorf("judge offline at look %d: %w", k, err)
		}
		rep.Verdict = seq.Look(Input{Baseline: ivB[k-1], Canary: ivC[k-1]}, k == looks)
		if rep.Verdict.Stop() {
			break
		}
	}
	return rep, nil
}

// Windows reads a recorded A/A pair (two production hosts on the same release, the
// format of Run) and cuts it into windows of looks intervals each, for Calibrate; a last
// window shorter than half of looks is dropped.
func (o Offline) Windows(baselineCSV, canaryCSV io.Reader, looks int) ([][]Input, error) {
	if len(o.Metrics) == 0 {
		return nil, errors.New("judge calibrate: no metrics configured")
	}
	base, err := readSamples(baselineCSV)
	if err != nil {
		return nil, fmt.Errorf("read baseline samples: %w", err)
	}
	can, err := readSamples(canaryCSV)
	if err != nil {
		return nil, fmt.Errorf("read canary samples: %w", err)
	}
	if len(base) == 0 || len(can) == 0 {
		return nil, errors.New("judge calibrate: a sample file is empty")
	}
	interval := o.Interval
	if interval <= 0 {
		interval = 10 * time.Second
	}
	looks = max(1, looks)
	start, end := span(base, can)
	n := max(1, int(math.Ceil(float64(end.Sub(start))/float64(interval))))
	ivB, ivC := intervals(o.Metrics, base, start, interval, n), intervals(o.Metrics, can, start, interval, n)
	var out [][]Input
	for k := 0; k < n; k += looks {
		if n-k < (looks+1)/2 {
			break
		}
		var w []Input
		for i := k; i < min(n, k+looks); i++ {
			w = append(w, Input{Baseline: ivB[i], Canary: ivC[i]})
		}
		out = append(out, w)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("judge calibrate: the recording spans %d intervals, fewer than half a window of %d", n, looks)
	}
	return out, nil
}

// Print writes the verdict as its table with a line saying what was replayed, or as JSON.
func (r Replay) Print(w io.Writer, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r.Verdict); err != nil {
			return fmt.Errorf("write verdict: %w", err)
		}
		return nil
	}
	interval := ""
	if r.Looks > 0 {
		interval = fmt.Sprintf("%d looks from %s", r.Looks, r.Start.UTC().Format(time.RFC3339))
	}
	head := "Replayed " + interval
	if !r.Verdict.Final {
		head += fmt.Sprintf("; stopped early at look %d", r.Verdict.Look)
	}
	if len(r.Ignored) > 0 {
		head += "; ignored metrics not in the config: " + strings.Join(r.Ignored, ", ")
	}
	if _, err := fmt.Fprintf(w, "%s\n\n%s", head, r.Verdict.Table()); err != nil {
		return fmt.Errorf("write verdict: %w", err)
	}
	return nil
}

type sample struct {
	at     time.Time
	metric string
	value  float64
}

func readSamples(r io.Reader) ([]sample, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = 3
	cr.TrimLeadingSpace = true
	cr.Comment = '#'
	var out []sample
	for line := 1; ; line++ {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err // csv errors name their line
		}
		if line == 1 && strings.EqualFold(rec[0], "time") {
			continue
		}
		at, err := parseTime(rec[0])
		if err != nil {
			return nil, fmt.Errorf("line %d: time %q: expected Unix seconds or RFC 3339", line, rec[0])
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rec[2]), 64)
		if err != nil {
			return nil, fmt.Errorf("line %d: value %q: expected a number", line, rec[2])
		}
		out = append(out, sample{at: at, metric: strings.TrimSpace(rec[1]), value: v})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].at.Before(out[j].at) })
	return out, nil
}

func parseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
	}
	return time.Parse(time.RFC3339Nano, s)
}

func span(sides ...[]sample) (start, end time.Time) {
	for _, ss := range sides {
		if len(ss) == 0 {
			continue
		}
		if first := ss[0].at; start.IsZero() || first.Before(start) {
			start = first
		}
		if last := ss[len(ss)-1].at; last.After(end) {
			end = last
		}
	}
	return start, end
}

// intervals cuts one side's samples into the window's intervals. A latency metric whose
// rows average more than 2 an interval is per-request samples.
func intervals(ms []Metric, ss []sample, start time.Time, every time.Duration, looks int) []map[string]Data {
	kinds := map[string]Kind{}
	for _, m := range ms {
		kinds[m.Name] = m.Kind
	}
	out := make([]map[string]Data, looks)
	for i := range out {
		out[i] = map[string]Data{}
	}
	rows := map[string]int{}
	for _, s := range ss {
		k := min(looks-1, max(0, int(math.Ceil(float64(s.at.Sub(start))/float64(every)))-1))
		name, part := s.metric, ""
		if kinds[name] == "" {
			if i := strings.LastIndexByte(name, '.'); i > 0 && counted(kinds[name[:i]], name[i+1:]) {
				name, part = name[:i], name[i+1:]
			}
		}
		kind, ok := kinds[name]
		if !ok {
			continue
		}
		d := out[k][name]
		switch {
		case part == "events":
			d.Events += s.value
		case part == "trials":
			d.Trials += s.value
		case kind != Rate:
			d.Values = append(d.Values, s.value)
			rows[name]++
		default:
			d.Events += s.value
			d.Trials++
		}
		out[k][name] = d
	}
	for name, n := range rows {
		if kinds[name] != Latency || n <= 2*looks {
			continue
		}
		for _, iv := range out {
			if d, ok := iv[name]; ok {
				d.PerRequest = true
				iv[name] = d
			}
		}
	}
	return out
}

// counted tells whether a row NAME.part is one of a metric's counts: a rate's, or a
// gauge's given as a share (hits of requests).
func counted(k Kind, part string) bool {
	return (k == Rate || k == Gauge) && (part == "events" || part == "trials")
}

func ignored(ms []Metric, sides ...[]sample) []string {
	known := map[string]bool{}
	for _, m := range ms {
		known[m.Name] = true
		if m.Kind == Rate || m.Kind == Gauge {
			known[m.Name+".events"], known[m.Name+".trials"] = true, true
		}
	}
	seen := map[string]bool{}
	var out []string
	for _, ss := range sides {
		for _, s := range ss {
			if !known[s.metric] && !seen[s.metric] {
				seen[s.metric] = true
				out = append(out, s.metric)
			}
		}
	}
	slices.Sort(out)
	return out
}

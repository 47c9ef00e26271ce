package config

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"gopkg.in/yaml.v3"

	"github.com/immunity-app/immunity/pipeline/judge"
)

// WriteAllowances sets the allowance of the named app's metrics in the config file at
// path (what `immunity judge calibrate` measured) and keeps the rest of the file: its
// comments, its order, its other keys. An app that relies on the default metrics gets
// them written out, with their allowances. The new file is checked like any config
// before it replaces the old one (temp file and rename); on any problem nothing changes.
func WriteAllowances(path, app string, allow map[string]judge.Allowance) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil || len(root.Content) == 0 {
		return fmt.Errorf("%s: not a config file: %v", path, err)
	}
	a := appNode(root.Content[0], app)
	if a == nil {
		return fmt.Errorf("%s: no app %q", path, app)
	}
	ms := mapValue(a, "metrics")
	if ms == nil || len(ms.Content) == 0 {
		ms = &yaml.Node{Kind: yaml.SequenceNode}
		for _, m := range DefaultMetrics() {
			var n yaml.Node
			if err := n.Encode(defaultMetricFields(m)); err != nil {
				return fmt.Errorf("write the default metric %s: %w", m.Name, err)
			}
			n.Style = yaml.FlowStyle
			ms.Content = append(ms.Content, &n)
		}
		setMapValue(a, "metrics", ms)
	}
	if ms.Kind != yaml.SequenceNode {
		return fmt.Errorf("%s:%d: app %s: metrics: expected a list", path, ms.Line, app)
	}
	done := map[string]bool{}
	for _, m := range ms.Content {
		name := mapValue(m, "name")
		if name == nil {
			continue
		}
		al, ok := allow[name.Value]
		if !ok {
			continue
		}
		var n yaml.Node
		if err := n.Encode(al); err != nil {
			return fmt.Errorf("write the allowance of %s: %w", name.Value, err)
		}
		n.Style = yaml.FlowStyle
		setMapValue(m, "allowance", &n)
		done[name.Value] = true
	}
	var missing []string
	for name := range allow {
		if !done[name] {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return fmt.Errorf("%s: app %s has no metrics %v to write allowances to", path, app, missing)
	}
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&root); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	if _, err := Parse(path, out.Bytes()); err != nil {
		return fmt.Errorf("the config with allowances does not check (nothing written): %w", err)
	}
	return replaceFile(path, out.Bytes())
}

// defaultMetricFields is a default metric as a config entry, without empty fields.
func defaultMetricFields(m Metric) map[string]any {
	out := map[string]any{"name": m.Name, "kind": m.Kind, "direction": m.Direction,
		"allowed_effect": m.AllowedEffect, "critical": m.Critical}
	if m.Unit != "" {
		out["unit"] = m.Unit
	}
	return out
}

// replaceFile writes data next to path and renames it over path, keeping its mode.
func replaceFile(path string, data []byte) error {
	mode := os.FileMode(0o644)
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write config: %w", err)
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("write config: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	return nil
}

// appNode finds the mapping of the app named name under apps:.
func appNode(doc *yaml.Node, name string) *yaml.Node {
	apps := mapValue(doc, "apps")
	if apps == nil || apps.Kind != yaml.SequenceNode {
		return nil
	}
	for _, a := range apps.Content {
		if n := mapValue(a, "name"); n != nil && n.Value == name {
			return a
		}
	}
	return nil
}

// mapValue is the value of key in a mapping node (nil when absent or not a mapping).
func mapValue(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// setMapValue sets key in a mapping node, replacing its value or adding it at the end.
func setMapValue(m *yaml.Node, key string, v *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content[i+1] = v
			return
		}
	}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, v)
}

// FormatAllowance is an allowance as the config writes it, for display.
func FormatAllowance(a judge.Allowance) string {
	f := func(x float64) string { return strconv.FormatFloat(x, 'g', 3, 64) }
	return fmt.Sprintf("{noise: %s, drift: %s, drift_corr: %s, offset: %s, dispersion: %s, inflation: %s, windows: %d}",
		f(a.Noise), f(a.Drift), f(a.DriftCorr), f(a.Offset), f(a.Dispersion), f(a.Inflation), a.Windows)
}

package githubtest

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// Webhook payloads GitHub publishes no example of (in @octokit/webhooks-examples) are made
// from the schema GitHub publishes for them: the x-webhooks of its REST description. Every
// property the schema names is given its example value (or the first of its enum, or a
// plain value of its type), then a test sets what it needs, and the result is checked
// against the schema, so a test never sends what GitHub would not.

// Webhook makes the payload of a webhook of GitHub's description (name as there:
// "deployment-protection-rule-requested"), with set's dotted paths ("repository.full_name")
// given their values, and checks it against the webhook's schema.
func Webhook(t testing.TB, name string, set map[string]any) []byte {
	t.Helper()
	schema := webhookSchema(t, name)
	v, _ := exampleOf(schema, 0).(map[string]any)
	if v == nil {
		t.Fatalf("webhook %s: its schema is not an object", name)
	}
	paths := make([]string, 0, len(set))
	for p := range set {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		setPath(v, p, set[p])
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var back any
	json.Unmarshal(b, &back)
	if err := schema.VisitJSON(back, openapi3.MultiErrors()); err != nil {
		t.Fatalf("webhook %s as the test made it does not match GitHub's schema: %v", name, err)
	}
	return b
}

func setPath(m map[string]any, path string, v any) {
	for {
		head, rest, more := strings.Cut(path, ".")
		if !more {
			if v == nil {
				delete(m, head)
			} else {
				m[head] = v
			}
			return
		}
		next, ok := m[head].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[head] = next
		}
		m, path = next, rest
	}
}

var (
	webhooksOnce sync.Once
	webhooksDoc  *openapi3.T
	webhooksErr  error
)

// webhookSchema loads the schema of one webhook from the description (once per binary).
func webhookSchema(t testing.TB, name string) *openapi3.Schema {
	t.Helper()
	webhooksOnce.Do(func() { webhooksDoc, webhooksErr = loadWebhooks(SpecFile()) })
	needDescription(t, webhooksErr)
	ref := webhooksDoc.Components.Schemas["webhook-"+name]
	if ref == nil || ref.Value == nil {
		t.Fatalf("no webhook %q in GitHub's description", name)
	}
	return ref.Value
}

// loadWebhooks keeps the schemas of the webhooks Immunity reads (and what they refer to).
func loadWebhooks(file string) (*openapi3.T, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var full struct {
		OpenAPI    any            `json:"openapi"`
		Info       any            `json:"info"`
		Components map[string]any `json:"components"`
	}
	if err := json.Unmarshal(data, &full); err != nil {
		return nil, fmt.Errorf("parse description: %w", err)
	}
	var refs []any
	for _, name := range webhookNames {
		refs = append(refs, map[string]any{"$ref": "#/components/schemas/webhook-" + name})
	}
	cut, err := json.Marshal(map[string]any{"openapi": full.OpenAPI, "info": full.Info, "paths": map[string]any{},
		"components": referenced(refs, full.Components)})
	if err != nil {
		return nil, err
	}
	doc, err := openapi3.NewLoader().LoadFromData(cut)
	if err != nil {
		return nil, fmt.Errorf("load webhook schemas: %w", err)
	}
	return doc, nil
}

// webhookNames are the webhooks Webhook makes.
var webhookNames = []string{"deployment-protection-rule-requested"}

// exampleOf is a value of the schema: its example, the first of its enum, or one made of
// its type (objects with every property, arrays empty).
func exampleOf(s *openapi3.Schema, depth int) any {
	if s == nil || depth > 12 {
		return nil
	}
	if s.Example != nil {
		return s.Example
	}
	if len(s.Enum) > 0 {
		return s.Enum[0]
	}
	for _, alts := range []openapi3.SchemaRefs{s.AllOf, s.OneOf, s.AnyOf} {
		if len(alts) > 0 && alts[0].Value != nil {
			return exampleOf(alts[0].Value, depth+1)
		}
	}
	switch {
	case s.Type.Is("object") || len(s.Properties) > 0:
		m := map[string]any{}
		for k, p := range s.Properties {
			if p.Value == nil {
				continue
			}
			if v := exampleOf(p.Value, depth+1); v != nil {
				m[k] = v
			} else if !p.Value.Nullable {
				m[k] = map[string]any{}
			}
		}
		return m
	case s.Type.Is("array"):
		return []any{}
	case s.Type.Is("integer"), s.Type.Is("number"):
		return 1
	case s.Type.Is("boolean"):
		return false
	case s.Type.Is("string"):
		switch s.Format {
		case "uri":
			return "https://api.github.com/"
		case "date-time":
			return "2026-01-01T00:00:00Z"
		case "email":
			return "octocat@github.com"
		}
		return "x"
	}
	return nil
}

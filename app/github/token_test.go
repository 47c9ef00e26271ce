package github

import "testing"

func TestCloneURL(t *testing.T) {
	for api, want := range map[string]string{
		"https://api.github.com/":            "https://github.com/acme/papi.git",
		"https://github.example.com/api/v3/": "https://github.example.com/acme/papi.git",
		"https://api.github.example.com/":    "https://github.example.com/acme/papi.git",
	} {
		if got := CloneURL(api, "acme/papi"); got != want {
			t.Errorf("CloneURL(%q) = %q, want %q", api, got, want)
		}
	}
}

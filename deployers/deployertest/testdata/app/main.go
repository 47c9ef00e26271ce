// Command app is the tiny HTTP server the deployer contract tests deploy. It listens on
// 127.0.0.1:$PORT and answers:
//
//	GET /healthz  200 "ok" (503 when the release's `mode` file says "unhealthy")
//	GET /         JSON {"release": $IMMUNITY_RELEASE, "version": <VERSION file>, "pid": ..., ...}
//
// The `mode` file in the working folder (the release folder) selects a failure on purpose:
// "exit" makes it print a message and exit 3 before listening, "unhealthy" makes /healthz
// answer 503.
package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
)

func main() {
	version := readFile("VERSION")
	mode := readFile("mode")
	fmt.Printf("testapp %s starting: release=%s region=%s host=%s port=%s\n",
		version, os.Getenv("IMMUNITY_RELEASE"), os.Getenv("IMMUNITY_REGION"), os.Getenv("IMMUNITY_HOST"), os.Getenv("PORT"))
	if mode == "exit" {
		fmt.Fprintln(os.Stderr, "testapp: refusing to start: this release is broken on purpose (mode=exit)")
		os.Exit(3)
	}
	http.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if mode == "unhealthy" {
			http.Error(w, "unhealthy on purpose", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		wd, _ := os.Getwd()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"release": os.Getenv("IMMUNITY_RELEASE"),
			"version": version,
			"region":  os.Getenv("IMMUNITY_REGION"),
			"host":    os.Getenv("IMMUNITY_HOST"),
			"extra":   os.Getenv("TESTAPP_EXTRA"),
			"pid":     os.Getpid(),
			"wd":      wd,
		})
	})
	addr := "127.0.0.1:" + os.Getenv("PORT")
	l, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "testapp: listen %s: %v\n", addr, err)
		os.Exit(1)
	}
	fmt.Printf("testapp listening on %s\n", addr)
	if err := http.Serve(l, nil); err != nil {
		fmt.Fprintf(os.Stderr, "testapp: serve %s: %v\n", addr, err)
		os.Exit(1)
	}
}

func readFile(name string) string {
	b, err := os.ReadFile(name)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

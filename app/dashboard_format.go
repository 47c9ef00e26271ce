package app

import (
	"fmt"
	"strings"
	"time"

	"github.com/immunity-app/immunity/store"
)

// How the dashboard words what it shows: states in the store's words for people (never
// the stored "awaiting_approval"), times with their date and zone.

// words is a state, outcome or action as people read it.
func words(state any) string {
	switch s := state.(type) {
	case store.RunState:
		return s.Words()
	case store.StageState:
		return s.Words()
	case store.StepState:
		return s.Words()
	case store.ReleaseState:
		return s.Words()
	}
	return strings.ReplaceAll(fmt.Sprint(state), "_", " ")
}

// stamp is a time to read: date, time of day and zone, in the server's zone.
func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Local().Format("2006-01-02 15:04:05 MST")
}

// stampMilli is a log line's time: date, time to the millisecond and zone.
func stampMilli(t time.Time) string {
	return t.Local().Format("2006-01-02 15:04:05.000 MST")
}

// historyWords say what a region's history entry did.
var historyWords = map[string]string{"seed": "seeded", "deploy": "deployed", "promote": "promoted", "rollback": "rolled back"}

// happened is a history entry's action as people read it.
func happened(action string) string {
	if w, ok := historyWords[action]; ok {
		return w
	}
	return words(action)
}

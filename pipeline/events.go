package pipeline

import (
	"context"
	"time"

	"github.com/immunity-app/immunity/store"
)

// Actor is who asked for something, and through which door.
type Actor struct {
	Name string // display name: Slack user name, GitHub login, local user
	Via  string // cli, slack, github, button, demo, push, engine
	// Identities used by access control; empty when unknown.
	GitHubLogin string
	SlackUserID string
}

func (a Actor) String() string {
	if a.Via == "" {
		return a.Name
	}
	return a.Name + " (" + a.Via + ")"
}

// EventKind says what happened.
type EventKind string

// Event kinds a Listener receives.
const (
	RunCreated   EventKind = "run.created"   // a run exists (its build may still be going)
	RunChanged   EventKind = "run.changed"   // the run's state changed
	StageChanged EventKind = "stage.changed" // a stage's state changed (Stage is set)
	HostChanged  EventKind = "host.changed"  // a host step changed (Stage and Host are set)
	Looked       EventKind = "stage.looked"  // an interim verdict during monitoring (Stage is set)
	RolledBack   EventKind = "region.rolled_back"
	Deployed     EventKind = "region.deployed" // a release went live in a region outside a run's stages (seed)
	Locked       EventKind = "region.locked"
	Unlocked     EventKind = "region.unlocked"
	Logged       EventKind = "log" // a line for the run's log
)

// Event is one thing that happened. Run is a fresh snapshot of the run it concerns (zero
// for region events outside a run); Stage points into Run.Stages.
type Event struct {
	Kind    EventKind
	Time    time.Time
	App     string
	Region  string
	Host    string
	SHA     string // the release concerned (rollback target, deployed release)
	Actor   Actor
	Message string
	Run     store.Run
	Stage   *store.Stage
}

// Listener is told about every transition after it is persisted. Notify must return
// quickly: slow reporters queue their work and never block or fail the pipeline.
type Listener interface {
	Notify(ctx context.Context, ev Event)
}

// ListenerFunc adapts a function to a Listener.
type ListenerFunc func(ctx context.Context, ev Event)

// Notify calls f.
func (f ListenerFunc) Notify(ctx context.Context, ev Event) { f(ctx, ev) }

package pipeline

import (
	"context"
	"time"

	"github.com/immunity-app/immunity/store"
)

// Actor is who asked for something, and through which door. ID is the verified identity
// that locks and the audit log are keyed by; Name is only for people to read.
type Actor struct {
	// ID is stable and verified by the door the request came through:
	// "slack:TEAM/USER" (a signed Slack request), "github:ID" (a signed webhook or a
	// dashboard session from GitHub sign-in), "token:NAME" (a personal API token),
	// "local:USER" (the server's unix socket), "demo", "engine". "" means nobody verified.
	ID   string
	Name string // display name: Slack user name, GitHub login, token name, OS user
	Via  string // cli, socket, dashboard, slack, github, button, demo, push, engine
	// Identities access grants are matched against; empty when unknown.
	GitHubLogin string
	GitHubID    int64
	SlackUserID string
	Token       string // the name of the API token used
	// Admin is the server's operator: its own OS user on the local socket, an admin token,
	// the demo and the engine. Admins pass every access grant and may force.
	Admin bool
}

// Key is what a lock holder and an audit row are keyed by: the verified ID, or, for an
// actor made inside the server without one, its door and name.
func (a Actor) Key() string {
	if a.ID != "" {
		return a.ID
	}
	return a.Via + ":" + a.Name
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
	// RollbackPlanned: a person's rollback of a region is planned (recorded); RolledBack
	// follows once every host is back.
	RollbackPlanned EventKind = "region.rollback_planned"
	Deployed        EventKind = "region.deployed" // a release went live in a region outside a run's stages (seed)
	Locked          EventKind = "region.locked"
	Unlocked        EventKind = "region.unlocked"
	// Frozen and Unfrozen: a freeze until a time was put on (App, Region "" for every
	// region; one event per app for an org-wide freeze) or lifted; Message says it all.
	Frozen   EventKind = "region.frozen"
	Unfrozen EventKind = "region.unfrozen"
	Logged   EventKind = "log" // a line for the run's log
	// Reconciled: a host was found running something else than the store said; the store
	// now agrees (Host, SHA found, Message "prod3/host2 found on X, store said Y").
	Reconciled EventKind = "host.reconciled"
	// Answered: what a person who pressed a button of a run's report (a GitHub check
	// run's) was answered (Region, Message "ada pressed Promote: promoted ..."), so the
	// surface that showed the button shows the answer too.
	Answered EventKind = "button.answered"
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
	// Again: the run's state told again on a start or a takeover (Engine.retell), which
	// a listener may have been told before; a report keyed by what it says repeats nothing.
	Again bool `json:",omitempty"`
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

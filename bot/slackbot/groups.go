package slackbot

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/slack-go/slack"
)

// groupsTTL is how long a user group's members are remembered.
const groupsTTL = 5 * time.Minute

// groupLister is the one Slack call Groups makes.
type groupLister interface {
	GetUserGroupMembersContext(ctx context.Context, group string, opts ...slack.GetUserGroupMembersOption) ([]string, error)
}

// Groups answers "is this Slack user in that user group?" for access grants
// (usergroups.users.list, remembered for a few minutes).
type Groups struct {
	api   groupLister
	mu    sync.Mutex
	cache map[string]cachedGroup
}

type cachedGroup struct {
	members []string
	at      time.Time
}

// NewGroups asks Slack through client.
func NewGroups(client *slack.Client) *Groups {
	return &Groups{api: client, cache: map[string]cachedGroup{}}
}

// InSlackGroup reports whether user is a member of the user group (its id, S…).
func (g *Groups) InSlackGroup(ctx context.Context, group, user string) (bool, error) {
	g.mu.Lock()
	c, ok := g.cache[group]
	g.mu.Unlock()
	if !ok || time.Since(c.at) > groupsTTL {
		members, err := g.api.GetUserGroupMembersContext(ctx, group)
		if err != nil {
			return false, fmt.Errorf("list members of Slack user group %s: %w", group, err)
		}
		c = cachedGroup{members: members, at: time.Now()}
		g.mu.Lock()
		g.cache[group] = c
		g.mu.Unlock()
	}
	return slices.Contains(c.members, user), nil
}

package pipeline

import (
	"context"
	"fmt"

	"github.com/immunity-app/immunity/deployers"
	"github.com/immunity-app/immunity/pipeline/config"
	"github.com/immunity-app/immunity/store"
)

// Host effects under the app's lease. The store fences every write of an app's work by
// the lease's token, but a host is no database row: a server that stalled past its lease
// (paused, starved, cut off) and then goes on would upload, switch, restart or test hosts
// its successor works. So every host effect of work done under a lease begins only while
// this engine still holds that lease (the same token, at least a third of its time
// left, by Holding.Lease) and the work was not cancelled; otherwise it does nothing and
// answers store.ErrLeaseLost. A check when a call begins is not enough: a server may be
// paused in the middle of a call (a restart waiting for its app's health check, a fork)
// and go on after it lost the lease. So the same check is the fence of every effect
// within the call (deployers.WithFence): a call in flight when its server stalled does
// nothing more once it goes on. Reading a host (State, Healthy) is always allowed.

// leasedDeployer is a region's deployer as the engine's work uses it.
type leasedDeployer struct {
	deployers.Deployer
	e   *Engine
	app string
}

// leasedDeployers wraps Options.Deployer so that every deployer it gives is a leasedDeployer.
func (e *Engine) leasedDeployers(get func(*config.App, *config.Region) (deployers.Deployer, error)) func(*config.App, *config.Region) (deployers.Deployer, error) {
	return func(a *config.App, r *config.Region) (deployers.Deployer, error) {
		d, err := get(a, r)
		if err != nil {
			return nil, err
		}
		return leasedDeployer{Deployer: d, e: e, app: a.Name}, nil
	}
}

// mayAct reports whether work done with ctx may still act on a host of app: nil when ctx
// carries no lease (a command of a single server, such as Seed) or this engine still holds
// the one it carries.
func (e *Engine) mayAct(ctx context.Context, app, what string, h deployers.Host) error {
	want, ok := store.LeaseOf(ctx)
	if !ok {
		return ctx.Err()
	}
	var l store.Lease
	held := false
	if hold := e.leases[app]; hold != nil {
		l, held = hold.Lease()
	}
	if !held || l.Token != want.Token {
		e.log.Warn("lease lost: leaving the host alone", "app", app, "region", h.Region, "host", h.Name, "step", what, "token", want.Token)
		return fmt.Errorf("%s %s of %s: %w", what, h, app, store.ErrLeaseLost)
	}
	return ctx.Err()
}

// fenced is ctx whose host effects each check first that work done with ctx may still
// act on h (mayAct), the fence of a deployer call.
func (e *Engine) fenced(ctx context.Context, app, what string, h deployers.Host) context.Context {
	return deployers.WithFence(ctx, func() error { return e.mayAct(ctx, app, what, h) })
}

func (d leasedDeployer) Upload(ctx context.Context, h deployers.Host, rel deployers.Release) error {
	if err := d.e.mayAct(ctx, d.app, "upload", h); err != nil {
		return err
	}
	return d.Deployer.Upload(d.e.fenced(ctx, d.app, "upload", h), h, rel)
}

func (d leasedDeployer) Activate(ctx context.Context, h deployers.Host, sha string) error {
	if err := d.e.mayAct(ctx, d.app, "activate", h); err != nil {
		return err
	}
	return d.Deployer.Activate(d.e.fenced(ctx, d.app, "activate", h), h, sha)
}

func (d leasedDeployer) Switch(ctx context.Context, h deployers.Host, sha string) error {
	if err := d.e.mayAct(ctx, d.app, "switch", h); err != nil {
		return err
	}
	return d.Deployer.Switch(d.e.fenced(ctx, d.app, "switch", h), h, sha)
}

func (d leasedDeployer) Restart(ctx context.Context, h deployers.Host) error {
	if err := d.e.mayAct(ctx, d.app, "restart", h); err != nil {
		return err
	}
	return d.Deployer.Restart(d.e.fenced(ctx, d.app, "restart", h), h)
}

// adopterOf is a deployer's Adopter, when its hosts' apps are processes of this server.
func adopterOf(dep deployers.Deployer) (deployers.Adopter, bool) {
	if l, ok := dep.(leasedDeployer); ok {
		dep = l.Deployer
	}
	a, ok := dep.(deployers.Adopter)
	return a, ok
}

// leasedTester runs integration tests only while the work's lease is held.
type leasedTester struct {
	Tester
	e *Engine
}

func (t leasedTester) Test(ctx context.Context, rel deployers.Release, h deployers.Host, tests deployers.Tests) (string, error) {
	if err := t.e.mayAct(ctx, h.App, "test", h); err != nil {
		return "", err
	}
	return t.Tester.Test(ctx, rel, h, tests)
}

// adopt has this engine look after the app's processes on the hosts of deployers that run
// them itself (the local deployer), now that it works the app: a host's running app is
// adopted (it keeps serving), one that died is started again. Hosts whose switch or restart
// is under way are left to the step, which the engine resumes.
func (e *Engine) adopt(ctx context.Context, a *config.App) {
	var resuming map[string]bool
	for j := range a.Regions {
		reg := &a.Regions[j]
		dep, err := e.deployer(a, reg)
		if err != nil {
			continue
		}
		ad, ok := adopterOf(dep)
		if !ok {
			continue
		}
		if resuming == nil {
			if resuming, err = e.Resuming(ctx); err != nil {
				e.log.Warn("adopt the app's processes", "app", a.Name, "err", err)
				return
			}
		}
		hosts := e.Hosts(a, reg)
		parallelN(indexes(len(hosts)), 8, func(i int) error {
			h := hosts[i]
			if resuming[a.Name+"/"+reg.Name+"/"+h.Name] {
				return nil
			}
			if err := e.mayAct(ctx, a.Name, "adopt", h); err != nil {
				return nil
			}
			if err := ad.EnsureRunning(e.fenced(ctx, a.Name, "adopt", h), h); err != nil {
				e.log.Warn("host not running", "app", a.Name, "region", reg.Name, "host", h.Name, "err", err)
			}
			return nil
		})
	}
}

// letGo lets go of the app's processes on hosts of deployers that run them itself, without
// stopping them: another server works the app now.
func (e *Engine) letGo(a *config.App) {
	for j := range a.Regions {
		reg := &a.Regions[j]
		dep, err := e.deployer(a, reg)
		if err != nil {
			continue
		}
		if ad, ok := adopterOf(dep); ok {
			for _, h := range e.Hosts(a, reg) {
				ad.Forget(h)
			}
		}
	}
}

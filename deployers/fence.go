package deployers

import "context"

// A fence is what work done on hosts under a lease checks right before each effect: a
// server may be paused (SIGSTOP, a frozen VM) in the middle of a call and go on when
// another server works the app, so a check when the call begins is not enough. A
// deployer that honours the fence calls CheckFence right before each thing it changes on
// a host (a release placed or removed, a link switched, the app started, its pid
// recorded, a process signalled); once the fence refuses, the call changes nothing more
// and returns the fence's error. Cleaning up what the call itself began (stopping the
// process it just started) is no effect on the host's app and needs no check.

type fenceKey struct{}

// WithFence is ctx whose host effects are each preceded by check: nil lets the effect
// happen, an error stops the call there.
func WithFence(ctx context.Context, check func() error) context.Context {
	return context.WithValue(ctx, fenceKey{}, check)
}

// CheckFence is the answer of ctx's fence (WithFence) right now: nil when the next host
// effect may happen, or when ctx has no fence.
func CheckFence(ctx context.Context) error {
	if check, ok := ctx.Value(fenceKey{}).(func() error); ok && check != nil {
		return check()
	}
	return nil
}

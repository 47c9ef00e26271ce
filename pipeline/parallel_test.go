package pipeline

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestParallelNKeepsToItsLimitAndJoinsErrors(t *testing.T) {
	var now, most atomic.Int32
	err := parallelN([]int{1, 2, 3, 4, 5, 6, 7}, 3, func(i int) error {
		n := now.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		time.Sleep(5 * time.Millisecond)
		now.Add(-1)
		if i%3 == 0 {
			return errors.New("host failed")
		}
		return nil
	})
	if most.Load() > 3 || most.Load() < 2 {
		t.Fatalf("at most %d at once, want 3", most.Load())
	}
	if err == nil || len(err.(interface{ Unwrap() []error }).Unwrap()) != 2 {
		t.Fatalf("errors = %v, want two", err)
	}
}

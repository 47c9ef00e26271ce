package measure

import "testing"

func TestIncrease(t *testing.T) {
	for _, tc := range []struct{ e0, n0, e1, n1, events, trials float64 }{
		{900, 1000, 1340, 1500, 440, 500},
		{900, 1000, 900, 1000, 0, 0},
		{900, 1000, 60, 80, 60, 80}, // restarted
		{60, 80, 45, 90, 45, 90},    // restarted, the trials grew past their old level
		{10, 100, 40, 60, 40, 60},   // restarted, the events grew past their old level
		{0, 0, 5, 7, 5, 7},          // counters that appeared
		{5, 7, 0, 0, 0, 0},          // counters that disappeared
		{5, 7, -1, 3, 0, 3},         // a level below zero is none
	} {
		e, n := Increase(tc.e0, tc.n0, tc.e1, tc.n1)
		if e != tc.events || n != tc.trials || e < 0 || e > n {
			t.Errorf("Increase(%v, %v, %v, %v) = %v, %v; want %v, %v", tc.e0, tc.n0, tc.e1, tc.n1, e, n, tc.events, tc.trials)
		}
	}
}

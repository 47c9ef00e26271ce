package bot

import (
	"encoding/json"
	"testing"

	"github.com/immunity-app/immunity/pipeline/judge"
	"github.com/immunity-app/immunity/store"
)

// An interim Marginal says what it means: worse so far, nothing flagged yet.
func TestLookTextSaysWhatMarginalMeans(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		o    judge.Outcome
		want string
	}{
		{judge.Marginal, " · look 3 of 30: marginal (worse so far, not flagged yet)"},
		{judge.Pass, " · look 3 of 30: pass"},
	} {
		v, _ := json.Marshal(judge.Verdict{Outcome: tc.o, Look: 3, Looks: 30})
		if got := lookText(store.Stage{State: store.StageMonitoring, Verdict: string(v)}); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.o, got, tc.want)
		}
	}
}

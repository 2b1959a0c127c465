package mover

import "testing"

func TestExitCode(t *testing.T) {
	tests := []struct {
		result Result
		want   int
	}{
		{Result{Phase: PhaseSucceeded, Reason: ReasonCompleted}, ExitOK},
		{Result{Phase: PhaseSkipped, Reason: ReasonNoWorkspaceStorage}, ExitOK},
		{Result{Phase: PhaseFailed, Reason: ReasonRegistryUnreachable}, ExitRetryable},
		{Result{Phase: PhaseFailed, Reason: ReasonRegistryError}, ExitRetryable},
		{Result{Phase: PhaseFailed, Reason: ReasonTargetNotEmpty}, ExitPermanent},
		{Result{Phase: PhaseFailed, Reason: ReasonUnauthorized}, ExitPermanent},
		{Result{Phase: PhaseFailed, Reason: ReasonUnsafeEntry}, ExitPermanent},
		{Result{Phase: PhaseFailed, Reason: ReasonUnreadableFile}, ExitPermanent},
		{Result{Phase: PhaseFailed, Reason: ReasonTagExists}, ExitPermanent},
		{Result{Phase: PhaseFailed, Reason: ReasonUnsafeSource}, ExitPermanent},
		{Result{Phase: PhaseFailed, Reason: ReasonUnsafeTarget}, ExitPermanent},
	}
	for _, tt := range tests {
		if got := tt.result.ExitCode(); got != tt.want {
			t.Errorf("%s/%s: exit %d, want %d", tt.result.Phase, tt.result.Reason, got, tt.want)
		}
	}
}

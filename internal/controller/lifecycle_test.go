package controller

import (
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
	"github.com/dwbackup/devworkspace-backup-operator/internal/mover"
)

func terminatedPod(message string, finished time.Time) corev1.Pod {
	return corev1.Pod{Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{
		Name: moverContainerName,
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
			Message: message, FinishedAt: metav1.NewTime(finished),
		}},
	}}}}
}

func TestMoverResultFrom(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 2, 0, 0, 0, time.UTC)
	ok := `{"phase":"Succeeded","reason":"Completed","digest":"sha256:abc","sizeBytes":10,"files":3}`
	failed := `{"phase":"Failed","reason":"Unauthorized","message":"401"}`
	truncated := `{"phase":"Succeeded","reason":"Completed","message":"` + strings.Repeat("x", 4200)
	tests := []struct {
		name      string
		pods      []corev1.Pod
		wantOK    bool
		wantPhase mover.Phase
	}{
		{"no pods", nil, false, ""},
		{"no message", []corev1.Pod{terminatedPod("", t0)}, false, ""},
		{"a result", []corev1.Pod{terminatedPod(ok, t0)}, true, mover.PhaseSucceeded},
		{"newest pod wins", []corev1.Pod{terminatedPod(ok, t0.Add(time.Minute)), terminatedPod(failed, t0)}, true, mover.PhaseSucceeded},
		{"truncated at 4 KiB", []corev1.Pod{terminatedPod(truncated[:4096], t0)}, false, ""},
		{"not JSON", []corev1.Pod{terminatedPod("panic: runtime error", t0)}, false, ""},
		{"JSON without a phase", []corev1.Pod{terminatedPod(`{"foo":1}`, t0)}, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, gotOK := moverResultFrom(tt.pods)
			if gotOK != tt.wantOK || got.Phase != tt.wantPhase {
				t.Fatalf("moverResultFrom = %+v, %v; want phase %q, %v", got, gotOK, tt.wantPhase, tt.wantOK)
			}
		})
	}
}

func TestJobStateOf(t *testing.T) {
	cond := func(typ batchv1.JobConditionType, reason string) *batchv1.Job {
		return &batchv1.Job{Status: batchv1.JobStatus{Conditions: []batchv1.JobCondition{
			{Type: typ, Status: corev1.ConditionTrue, Reason: reason},
		}}}
	}
	if s, _ := jobStateOf(&batchv1.Job{}); s != jobActive {
		t.Errorf("no conditions: want active")
	}
	if s, _ := jobStateOf(cond(batchv1.JobComplete, "")); s != jobSucceeded {
		t.Errorf("Complete: want succeeded")
	}
	if s, r := jobStateOf(cond(batchv1.JobFailed, "DeadlineExceeded")); s != jobFailed || r != "DeadlineExceeded" {
		t.Errorf("Failed: want failed with reason")
	}
	if s, _ := jobStateOf(cond(batchv1.JobSuspended, "")); s != jobActive {
		t.Errorf("Suspended: want active")
	}
}

// The API documents the reasons the mover reports, which the controllers pass through unchanged:
// they must be the mover's words.
func TestMoverReasonsInTheAPI(t *testing.T) {
	for api, mv := range map[string]string{
		backupv1alpha1.ReasonNoWorkspaceStorage:  mover.ReasonNoWorkspaceStorage,
		backupv1alpha1.ReasonUnauthorized:        mover.ReasonUnauthorized,
		backupv1alpha1.ReasonRegistryUnreachable: mover.ReasonRegistryUnreachable,
		backupv1alpha1.ReasonUnreadableFile:      mover.ReasonUnreadableFile,
		backupv1alpha1.ReasonTargetNotEmpty:      mover.ReasonTargetNotEmpty,
		backupv1alpha1.ReasonUnsafeEntry:         mover.ReasonUnsafeEntry,
		backupv1alpha1.ReasonDigestMismatch:      mover.ReasonDigestMismatch,
		backupv1alpha1.ReasonArtifactNotFound:    mover.ReasonArtifactNotFound,
		backupv1alpha1.ReasonTagExists:           mover.ReasonTagExists,
	} {
		if api != mv {
			t.Errorf("api/v1alpha1 says %q where the mover reports %q", api, mv)
		}
	}
}

func TestLaunchRetriesGiveUpAfterTheWindow(t *testing.T) {
	var l launchRetries
	start := time.Date(2026, 11, 26, 2, 0, 0, 0, time.UTC)
	if l.giveUp("a", start) || l.giveUp("a", start.Add(launchRetryWindow)) {
		t.Fatal("gave up within the window")
	}
	if l.giveUp("b", start.Add(time.Hour)) {
		t.Fatal("another object shares the window")
	}
	if !l.giveUp("a", start.Add(launchRetryWindow+time.Second)) {
		t.Fatal("did not give up after the window")
	}
	l.forget("a")
	if l.giveUp("a", start.Add(2*time.Hour)) {
		t.Fatal("a forgotten object starts a new window")
	}
}

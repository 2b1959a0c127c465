package controller

import (
	"encoding/json"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/dwbackup/devworkspace-backup-operator/internal/mover"
)

// jobState is what a mover Job's conditions say.
type jobState int

const (
	jobActive jobState = iota
	jobSucceeded
	jobFailed
)

// jobStateOf reads the Job's terminal conditions; anything else is still active.
func jobStateOf(job *batchv1.Job) (jobState, string) {
	for _, c := range job.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case batchv1.JobComplete:
			return jobSucceeded, ""
		case batchv1.JobFailed:
			return jobFailed, c.Reason
		default:
		}
	}
	return jobActive, ""
}

// moverResultFrom finds the mover's JSON result in the termination messages of the Job's pods,
// newest pod first. ok is false when no pod left a readable result (the message may be missing,
// or cut at 4 KiB by the kubelet).
func moverResultFrom(pods []corev1.Pod) (result mover.Result, ok bool) {
	var newest *corev1.ContainerStateTerminated
	for i := range pods {
		for _, cs := range pods[i].Status.ContainerStatuses {
			t := cs.State.Terminated
			if cs.Name != moverContainerName || t == nil || strings.TrimSpace(t.Message) == "" {
				continue
			}
			if newest == nil || t.FinishedAt.After(newest.FinishedAt.Time) {
				newest = t
			}
		}
	}
	if newest == nil {
		return mover.Result{}, false
	}
	if err := json.Unmarshal([]byte(newest.Message), &result); err != nil || result.Phase == "" {
		return mover.Result{}, false
	}
	return result, true
}

// podCreationFailure returns the message of a FailedCreate Event the Job controller records when
// it cannot create the mover pod (quota, admission), so the backup fails now, not at the deadline.
func podCreationFailure(events []corev1.Event) (string, bool) {
	for _, e := range events {
		if e.Reason == "FailedCreate" && e.Type == corev1.EventTypeWarning {
			return e.Message, true
		}
	}
	return "", false
}

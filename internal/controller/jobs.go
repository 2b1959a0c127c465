package controller

import (
	"context"
	"fmt"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
	"github.com/dwbackup/devworkspace-backup-operator/internal/mover"
)

// getJob reads a mover Job from the cache, and from the API server when the cache has not seen
// it yet (it was created a moment ago). nil means it does not exist.
func getJob(ctx context.Context, c client.Client, reader client.Reader, namespace, name string) (*batchv1.Job, error) {
	job := &batchv1.Job{}
	key := client.ObjectKey{Namespace: namespace, Name: name}
	err := c.Get(ctx, key, job)
	if apierrors.IsNotFound(err) {
		err = reader.Get(ctx, key, job)
	}
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get Job %s: %w", key, err)
	}
	return job, nil
}

// deleteJob deletes a mover Job and its pods (background propagation: the call returns at once,
// the pod gets SIGTERM right away). The UID precondition makes sure the Job deleted is the one
// that was checked, never one created under the same name since.
func deleteJob(ctx context.Context, c client.Client, job *batchv1.Job) error {
	err := c.Delete(ctx, job, client.PropagationPolicy(metav1.DeletePropagationBackground),
		client.Preconditions{UID: &job.UID})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("delete Job %s/%s: %w", job.Namespace, job.Name, err)
	}
	return nil
}

// jobPods lists the cached pods of a mover Job.
func jobPods(ctx context.Context, c client.Client, job *batchv1.Job) ([]corev1.Pod, error) {
	pods := &corev1.PodList{}
	err := c.List(ctx, pods, client.InNamespace(job.Namespace), client.MatchingLabels{labelOwnerUID: job.Labels[labelOwnerUID]})
	if err != nil {
		return nil, fmt.Errorf("list pods of Job %s/%s: %w", job.Namespace, job.Name, err)
	}
	var owned []corev1.Pod
	for _, p := range pods.Items {
		if metav1.IsControlledBy(&p, job) {
			owned = append(owned, p)
		}
	}
	return owned, nil
}

// jobPodCreationFailure looks, only while the Job has no pod, for the Job controller's
// FailedCreate Event (quota, admission). Events are read from the API server by field selector.
func jobPodCreationFailure(ctx context.Context, reader client.Reader, job *batchv1.Job) (string, bool, error) {
	if !noPodsYet(job) {
		return "", false, nil
	}
	events := &corev1.EventList{}
	err := reader.List(ctx, events, client.InNamespace(job.Namespace), client.MatchingFieldsSelector{
		Selector: fields.SelectorFromSet(fields.Set{"involvedObject.kind": "Job", "involvedObject.name": job.Name}),
	})
	if err != nil {
		return "", false, fmt.Errorf("list Events of Job %s/%s: %w", job.Namespace, job.Name, err)
	}
	var mine []corev1.Event
	for _, e := range events.Items {
		if e.InvolvedObject.UID == job.UID {
			mine = append(mine, e)
		}
	}
	msg, failed := podCreationFailure(mine)
	return msg, failed, nil
}

// podOwner maps a mover Pod to its owner through the annotation its Job template sets.
func podOwner(annotation string) handler.MapFunc {
	return func(_ context.Context, obj client.Object) []ctrl.Request {
		name, ok := obj.GetAnnotations()[annotation]
		if !ok {
			return nil
		}
		return []ctrl.Request{{NamespacedName: types.NamespacedName{Namespace: obj.GetNamespace(), Name: name}}}
	}
}

// noPodsYet reports whether the Job controller has not started any pod of the Job.
func noPodsYet(job *batchv1.Job) bool {
	return job.Status.Active == 0 && job.Status.Succeeded == 0 && job.Status.Failed == 0
}

// jobProgress is what a mover Job shows: still running, ended with the mover's result, ended
// without one, or a failure the Job itself tells (gone, pod not creatable, failed without result).
type jobProgress struct {
	stopped   string // why the Job was stopped for the developer (superviseJob); "" while it may run
	running   bool
	requeue   time.Duration // while running: when to look again (no event announces a pod that never comes)
	failure   *outcome
	result    mover.Result
	hasResult bool
	succeeded bool // the Job succeeded; without a result the caller decides what that means
	jobName   string
}

// followJob reads a mover Job for the backup and restore reconcilers alike. A Job whose pod cannot
// be created (a FailedCreate Warning: quota, admission) is deleted and reported at once.
func followJob(ctx context.Context, c client.Client, reader client.Reader, owner client.Object, name string) (jobProgress, error) {
	namespace := owner.GetNamespace()
	job, err := getJob(ctx, c, reader, namespace, name)
	if err != nil {
		return jobProgress{}, err
	}
	if job == nil {
		return jobProgress{failure: &outcome{stalled: true, reason: backupv1alpha1.ReasonJobFailed,
			message: fmt.Sprintf("mover Job %s was deleted before it finished", name)}}, nil
	}
	if !ownedBy(job, owner) {
		return jobProgress{failure: &outcome{stalled: true, reason: backupv1alpha1.ReasonJobConflict,
			message: fmt.Sprintf("mover Job %s was replaced by a Job this %s did not create; its result is not trusted", name, kindOf(owner))}}, nil
	}
	state, jobReason := jobStateOf(job)
	if state == jobActive {
		msg, failed, err := jobPodCreationFailure(ctx, reader, job)
		if err != nil || !failed {
			p := jobProgress{running: true}
			if noPodsYet(job) {
				p.requeue = pollNoPods
			}
			return p, err
		}
		if err := deleteJob(ctx, c, job); err != nil {
			return jobProgress{}, err
		}
		return jobProgress{failure: &outcome{stalled: true, reason: backupv1alpha1.ReasonPodCreationFailed,
			message: fmt.Sprintf("the mover pod of Job %s could not be created: %s", name, msg)}}, nil
	}
	pods, err := jobPods(ctx, c, job)
	if err != nil {
		return jobProgress{}, err
	}
	p := jobProgress{succeeded: state == jobSucceeded, jobName: name}
	p.result, p.hasResult = moverResultFrom(pods)
	if !p.hasResult && !p.succeeded {
		reason := backupv1alpha1.ReasonJobFailed
		if jobReason == batchv1.JobReasonDeadlineExceeded {
			reason = backupv1alpha1.ReasonDeadlineExceeded
		}
		p.failure = &outcome{stalled: true, reason: reason, message: fmt.Sprintf(
			"mover Job %s failed (%s) without a result; see kubectl -n %s logs job/%s", name, jobReason, namespace, name)}
	}
	return p, nil
}

// superviseJob is how the backup and restore reconcilers follow their mover Job: it deletes the
// Job at once when the developer needs the workspace (see workspaceStartedReason) and says why in
// stopped; otherwise it follows the Job.
func superviseJob(ctx context.Context, c client.Client, reader client.Reader, owner client.Object, workspaceName string,
	ws *workspace, jobName string) (jobProgress, error) {
	why, err := workspaceStartedReason(ctx, c, workspaceName, ws)
	switch {
	case err != nil:
		return jobProgress{}, err
	case why != "":
		return jobProgress{stopped: why}, stopMoverJob(ctx, c, reader, owner, jobName)
	}
	return followJob(ctx, c, reader, owner, jobName)
}

// failedResult is the outcome of a failed Job that left a result: the mover's reason, unless the
// result claims a success the Job contradicts.
func failedResult(p jobProgress) outcome {
	if p.result.Phase != mover.PhaseFailed || p.result.Reason == "" {
		return outcome{stalled: true, reason: backupv1alpha1.ReasonJobFailed, message: fmt.Sprintf(
			"mover Job %s failed; its pod reported %q (%s)", p.jobName, p.result.Phase, p.result.Message)}
	}
	return outcome{stalled: true, reason: p.result.Reason, message: p.result.Message}
}

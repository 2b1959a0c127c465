package main

import (
	"context"
	"fmt"
	"os"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
	"github.com/dwbackup/devworkspace-backup-operator/internal/mover"
	"github.com/dwbackup/devworkspace-backup-operator/internal/registry"
)

// drain plays the Job controller and the kubelet (envtest runs neither) for the first n mover
// Jobs: each gets a pod that terminated with the mover's result, then the Job completes. Every
// Succeeded backup frees a throttle slot, so the manager starts the next waiting one: this takes
// n backups through their whole life (create, Running, Succeeded, clean-up).
func drain(ctx context.Context, c client.Client, tr *tracker, n int, res *managerResult) error {
	if n == 0 {
		return nil
	}
	logf("playing the Job controller for %d backups", n)
	start := time.Now()
	handled := map[types.UID]bool{}
	err := poll(ctx, 10*time.Minute, func() (bool, error) {
		s := tr.snapshot()
		if s.err != nil || len(s.succeeded) >= n {
			return true, s.err
		}
		return false, finishNewJobs(ctx, c, handled, n)
	})
	if err != nil {
		return fmt.Errorf("draining %d backups: %w", n, err)
	}
	s := tr.snapshot()
	res.drained, res.finished = len(s.succeeded), s.succeeded
	res.drainSeconds = time.Since(start).Seconds()
	logf("%d backups Succeeded in %.2f s", res.drained, res.drainSeconds)
	return nil
}

// finishNewJobs completes the mover Jobs not seen before (by UID: a Job deleted and created again
// is a new one), up to n in total: the artifact is pushed
// under the Job's tag (the manager confirms it in the registry), the pods go first and the Jobs
// complete a moment later, so the manager's pod informer has the termination message when it sees
// the Job end.
func finishNewJobs(ctx context.Context, c client.Client, handled map[types.UID]bool, n int) error {
	jobs := &batchv1.JobList{}
	own := client.MatchingLabels{backupv1alpha1.LabelManagedBy: backupv1alpha1.ManagedByValue}
	if err := c.List(ctx, jobs, own); err != nil {
		return err
	}
	var fresh []*batchv1.Job
	for i := range jobs.Items {
		job := &jobs.Items[i]
		key := job.Namespace + "/" + job.Name
		if handled[job.UID] || len(handled) >= n {
			continue
		}
		pushed := pushArtifact(ctx, job)
		if pushed.Phase != mover.PhaseSucceeded {
			return fmt.Errorf("push the artifact of Job %s: %s", key, pushed.Message)
		}
		if err := createTerminatedPod(ctx, c, job, pushed); err != nil {
			return fmt.Errorf("pod of Job %s: %w", key, err)
		}
		handled[job.UID] = true
		fresh = append(fresh, job)
	}
	if len(fresh) == 0 {
		return nil
	}
	time.Sleep(300 * time.Millisecond)
	for _, job := range fresh {
		if err := completeJob(ctx, c, job); err != nil {
			return fmt.Errorf("complete Job %s/%s: %w", job.Namespace, job.Name, err)
		}
	}
	return nil
}

// pushArtifact does what the mover of a Job would: it backs up an empty tree under the Job's
// --repository and --tag, into the benchmark's in-process registry.
func pushArtifact(ctx context.Context, job *batchv1.Job) mover.Result {
	arg := func(flag string) string {
		cmd := job.Spec.Template.Spec.Containers[0].Command
		for i := range len(cmd) - 1 {
			if cmd[i] == flag {
				return cmd[i+1]
			}
		}
		return ""
	}
	dir, err := os.MkdirTemp("", "bench-tree-")
	if err != nil {
		return mover.Result{Phase: mover.PhaseFailed, Message: err.Error()}
	}
	defer func() { _ = os.RemoveAll(dir) }()
	return mover.Backup(ctx, mover.BackupOptions{Source: dir, Repository: arg("--repository"), Tag: arg("--tag"),
		Workspace: arg("--workspace"), Namespace: job.Namespace, Registry: registry.Options{Insecure: true}})
}

// createTerminatedPod creates the Job's pod, terminated with the mover's result as its
// termination message, as the Job controller and the kubelet would.
func createTerminatedPod(ctx context.Context, c client.Client, job *batchv1.Job, result mover.Result) error {
	now := metav1.Now()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			// A Job created again after its first was deleted gets a pod of its own (envtest has no
			// garbage collector to remove the first one's).
			Name: job.Name + "-" + string(job.UID)[:8], Namespace: job.Namespace,
			Labels: job.Spec.Template.Labels, Annotations: job.Spec.Template.Annotations,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "Job", Name: job.Name, UID: job.UID,
				Controller: ptr.To(true)}},
		},
		Spec: job.Spec.Template.Spec,
	}
	if err := c.Create(ctx, pod); err != nil {
		return err
	}
	pod.Status.Phase = corev1.PodSucceeded
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{
		Name: pod.Spec.Containers[0].Name, Image: pod.Spec.Containers[0].Image,
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
			ExitCode: 0, Message: string(result.Encode()), StartedAt: now, FinishedAt: now}},
	}}
	return c.Status().Update(ctx, pod)
}

// completeJob writes the status the Job controller writes when its pod succeeded.
func completeJob(ctx context.Context, c client.Client, job *batchv1.Job) error {
	now := metav1.Now()
	job.Status.StartTime = &now
	job.Status.Succeeded = 1
	job.Status.CompletionTime = &now
	job.Status.Conditions = []batchv1.JobCondition{
		{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, LastTransitionTime: now},
	}
	return c.Status().Update(ctx, job)
}

package controller

import (
	"context"
	"slices"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
)

const (
	// annotationDeleteAttempts counts failed attempts to delete a pruned backup's artifact, so the
	// bound survives a restart of the operator.
	annotationDeleteAttempts = "backup.dwbackup.io/artifact-delete-attempts"
	// maxArtifactDeleteAttempts bounds how long a pruned backup waits for an unreachable registry.
	maxArtifactDeleteAttempts = 5
)

// finalize runs when a WorkspaceBackup is deleted: a running Job is stopped first; the registry
// content of a backup pruned by retention is deleted (when the policy says so); any other
// deletion keeps the artifact. Then the finalizer is released.
func (r *WorkspaceBackupReconciler) finalize(ctx context.Context, b *backupv1alpha1.WorkspaceBackup) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(b, backupv1alpha1.FinalizerArtifact) {
		return ctrl.Result{}, nil
	}
	r.expected.forget(b.Spec.PolicyName, b.UID)
	if err := stopMoverJob(ctx, r.Client, r.APIReader, b, b.Status.JobName); err != nil {
		return ctrl.Result{}, err
	}
	if err := r.deletePrunedArtifact(ctx, b); err != nil {
		attempts, _ := strconv.Atoi(b.Annotations[annotationDeleteAttempts])
		attempts++
		if attempts < maxArtifactDeleteAttempts {
			patch := client.MergeFrom(b.DeepCopy())
			b.Annotations[annotationDeleteAttempts] = strconv.Itoa(attempts)
			if perr := r.Patch(ctx, b, patch); perr != nil {
				return ctrl.Result{}, client.IgnoreNotFound(perr)
			}
			return ctrl.Result{RequeueAfter: r.artifactRetryInterval()}, nil
		}
		r.Recorder.Eventf(b, nil, corev1.EventTypeWarning, "ArtifactDeleteFailed", "Delete",
			"gave up deleting %s after %d attempts; the artifact is left in the registry: %v",
			b.Status.Artifact.Reference, attempts, err)
	}
	patch := client.MergeFrom(b.DeepCopy())
	controllerutil.RemoveFinalizer(b, backupv1alpha1.FinalizerArtifact)
	return ctrl.Result{}, client.IgnoreNotFound(r.Patch(ctx, b, patch))
}

// deletePrunedArtifact deletes the registry content of a backup retention pruned, when its policy
// has deleteArtifacts. Anything else (a person deleting, a namespace going away) keeps it.
func (r *WorkspaceBackupReconciler) deletePrunedArtifact(ctx context.Context, b *backupv1alpha1.WorkspaceBackup) error {
	if b.Annotations[backupv1alpha1.AnnotationPruned] == "" || b.Status.Phase != backupv1alpha1.BackupSucceeded ||
		b.Status.Artifact == nil || b.Status.Artifact.Reference == "" {
		return nil
	}
	policy := &backupv1alpha1.BackupPolicy{}
	if err := r.Get(ctx, client.ObjectKey{Name: b.Spec.PolicyName}, policy); err != nil {
		return client.IgnoreNotFound(err) // the policy is gone: keep the artifact
	}
	if policy.Spec.Retention.DeleteArtifacts != nil && !*policy.Spec.Retention.DeleteArtifacts {
		return nil
	}
	// The annotation can be set by anyone who can edit the backup: the artifact goes only when
	// retention itself, decided again now, prunes this backup.
	if pruned, err := r.retentionPrunes(ctx, policy, b); err != nil || !pruned {
		return err
	}
	reg, err := newRegistryClient(ctx, r.APIReader, r.OperatorNamespace, policy, b.Namespace)
	if err != nil {
		return err
	}
	referenced, err := r.digestReferenced(ctx, b)
	if err != nil {
		return err
	}
	return deleteArtifact(ctx, reg, b.Status.Artifact.Reference, b.Status.Artifact.Digest, referenced)
}

// retentionPrunes reports whether the policy's retention prunes b among the backups of its
// workspace that are not being deleted.
func (r *WorkspaceBackupReconciler) retentionPrunes(ctx context.Context, policy *backupv1alpha1.BackupPolicy,
	b *backupv1alpha1.WorkspaceBackup) (bool, error) {
	list := &backupv1alpha1.WorkspaceBackupList{}
	if err := r.List(ctx, list, client.InNamespace(b.Namespace), client.MatchingLabels{backupv1alpha1.LabelPolicy: policy.Name}); err != nil {
		return false, err
	}
	group := []*backupv1alpha1.WorkspaceBackup{b}
	for i := range list.Items {
		other := &list.Items[i]
		if other.UID != b.UID && other.DeletionTimestamp.IsZero() && retentionGroup(other) == retentionGroup(b) {
			group = append(group, other)
		}
	}
	loc, err := time.LoadLocation(policy.Spec.TimeZone)
	if err != nil {
		loc = time.UTC
	}
	return slices.Contains(toPrune(group, policy.Spec.Retention, loc), b), nil
}

// digestReferenced returns a check for whether any other remaining backup of the same repository
// restores from a digest.
func (r *WorkspaceBackupReconciler) digestReferenced(ctx context.Context, b *backupv1alpha1.WorkspaceBackup) (func(string) bool, error) {
	list := &backupv1alpha1.WorkspaceBackupList{}
	if err := r.List(ctx, list, client.InNamespace(b.Namespace)); err != nil {
		return nil, err
	}
	repository, _ := splitReference(b.Status.Artifact.Reference)
	return func(digest string) bool {
		for i := range list.Items {
			other := &list.Items[i]
			if other.UID == b.UID || other.Status.Artifact == nil || other.Annotations[backupv1alpha1.AnnotationPruned] != "" {
				continue
			}
			otherRepo, _ := splitReference(other.Status.Artifact.Reference)
			if otherRepo == repository && other.Status.Artifact.Digest == digest {
				return true
			}
		}
		return false
	}, nil
}

package controller

import (
	"context"
	"fmt"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
)

// applyRetention prunes the backups of b's policy and workspace id that the policy no longer
// keeps; it runs whenever a backup finishes.
func (r *WorkspaceBackupReconciler) applyRetention(ctx context.Context, b *backupv1alpha1.WorkspaceBackup) error {
	policy := &backupv1alpha1.BackupPolicy{}
	if err := r.Get(ctx, client.ObjectKey{Name: b.Spec.PolicyName}, policy); err != nil {
		return client.IgnoreNotFound(err) // no policy, no retention: keep everything
	}
	list := &backupv1alpha1.WorkspaceBackupList{}
	if err := r.List(ctx, list, client.InNamespace(b.Namespace), client.MatchingLabels{backupv1alpha1.LabelPolicy: policy.Name}); err != nil {
		return err
	}
	group := retentionGroup(b)
	list.Items = slices.DeleteFunc(list.Items, func(item backupv1alpha1.WorkspaceBackup) bool { return retentionGroup(&item) != group })
	return retainPolicy(ctx, r.Client, r.Clock.Now(), policy, list.Items)
}

// retainPolicy prunes, per namespace and workspace id, the backups of one policy that its
// retention no longer keeps: each is marked pruned (so its finalizer deletes its artifact) and
// deleted. It runs when a backup finishes and at each schedule slot.
func retainPolicy(ctx context.Context, c client.Client, now time.Time, policy *backupv1alpha1.BackupPolicy,
	backups []backupv1alpha1.WorkspaceBackup) error {
	loc, err := time.LoadLocation(policy.Spec.TimeZone)
	if err != nil {
		loc = time.UTC // the policy reports the invalid zone; retention still runs
	}
	groups := map[string][]*backupv1alpha1.WorkspaceBackup{}
	for i := range backups {
		b := &backups[i]
		if b.DeletionTimestamp.IsZero() {
			key := b.Namespace + "/" + retentionGroup(b)
			groups[key] = append(groups[key], b)
		}
	}
	for _, group := range groups {
		for _, old := range toPrune(group, policy.Spec.Retention, loc) {
			if err := prune(ctx, c, now, old); err != nil {
				return err
			}
		}
	}
	return nil
}

// prune marks a backup as pruned by retention, then deletes it. b may be a cache object: it is
// copied before any change.
func prune(ctx context.Context, c client.Client, now time.Time, b *backupv1alpha1.WorkspaceBackup) error {
	b = b.DeepCopy()
	if b.Annotations[backupv1alpha1.AnnotationPruned] == "" {
		patch := client.MergeFrom(b.DeepCopy())
		if b.Annotations == nil {
			b.Annotations = map[string]string{}
		}
		b.Annotations[backupv1alpha1.AnnotationPruned] = now.UTC().Format(time.RFC3339)
		if err := c.Patch(ctx, b, patch); err != nil {
			return client.IgnoreNotFound(err)
		}
	}
	if err := c.Delete(ctx, b); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete pruned backup %s/%s: %w", b.Namespace, b.Name, err)
	}
	return nil
}

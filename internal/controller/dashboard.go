package controller

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
	"github.com/dwbackup/devworkspace-backup-operator/internal/dwo"
)

// What Che's Dashboard reads about backups, kept for a policy with spec.dashboard.enabled
// (docs/dashboard.md): DWO's three annotations on each DevWorkspace after each finished backup
// (written by the backup reconciler), and the Secret devworkspace-backup-registry-auth in each
// namespace the policy backs up (kept by the policy reconciler). Secrets are never listed or
// watched: the policy's status records where its copies are and the hash of the source they were
// made from, and the source is read by name at every policy reconcile (at least every
// registryRecheck), so a changed source is seen within that time.

// labelDWOWatchSecret makes DWO's cache (which holds only Secrets with this label) see the copy,
// so DWO's restore-on-start, which the Dashboard's "restore" uses, pulls with it.
const labelDWOWatchSecret = "controller.devfile.io/watch-secret"

// maxLastBackupError is the longest last-backup-error value, as DWO truncates it.
const maxLastBackupError = 1024

// maxNamedConflicts is how many conflicting namespaces a condition message names.
const maxNamedConflicts = 5

// lastBackupAnnotations is the merge patch of a DevWorkspace's annotations that reports a finished
// backup to the Dashboard as DWO does (a nil value removes the key), or nil when nothing is to be
// written: the backup was skipped, the annotations already say it, or they report a backup that
// finished later (an older outcome never replaces a newer one, whoever wrote it).
func lastBackupAnnotations(current map[string]string, phase backupv1alpha1.BackupPhase, finished time.Time, failure string) map[string]*string {
	var want map[string]*string
	at := finished.UTC().Truncate(time.Second).Format(time.RFC3339Nano)
	switch phase {
	case backupv1alpha1.BackupSucceeded:
		want = map[string]*string{backupv1alpha1.AnnotationLastBackupSuccessful: ptr.To("true"),
			backupv1alpha1.AnnotationLastBackupFinishedAt: &at, backupv1alpha1.AnnotationLastBackupError: nil}
	case backupv1alpha1.BackupFailed:
		want = map[string]*string{backupv1alpha1.AnnotationLastBackupSuccessful: ptr.To("false"),
			backupv1alpha1.AnnotationLastBackupFinishedAt: &at, backupv1alpha1.AnnotationLastBackupError: ptr.To(truncateUTF8(failure, maxLastBackupError))}
	default:
		return nil
	}
	if prev, err := time.Parse(time.RFC3339Nano, current[backupv1alpha1.AnnotationLastBackupFinishedAt]); err == nil &&
		prev.After(finished.Truncate(time.Second)) {
		return nil
	}
	for k, v := range want {
		got, ok := current[k]
		if (v == nil && ok) || (v != nil && (!ok || got != *v)) {
			return want
		}
	}
	return nil
}

// truncateUTF8 cuts s to at most n bytes, ending in "..." when cut, never inside a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("...")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// reportToDashboard writes the outcome of a finished backup on its DevWorkspace when its policy
// has spec.dashboard.enabled and applies to the namespace, with a metadata-only merge patch
// guarded by the resourceVersion it decided on. A recreated workspace (another id) gets nothing.
func (r *WorkspaceBackupReconciler) reportToDashboard(ctx context.Context, b *backupv1alpha1.WorkspaceBackup) error {
	if b.Status.Phase != backupv1alpha1.BackupSucceeded && b.Status.Phase != backupv1alpha1.BackupFailed || b.Status.CompletionTime == nil {
		return nil
	}
	policy := &backupv1alpha1.BackupPolicy{}
	if err := r.Get(ctx, client.ObjectKey{Name: b.Spec.PolicyName}, policy); err != nil {
		return client.IgnoreNotFound(err)
	}
	if policy.Spec.Dashboard == nil || !policy.Spec.Dashboard.Enabled {
		return nil
	}
	ns := &corev1.Namespace{}
	if err := r.Get(ctx, client.ObjectKey{Name: b.Namespace}, ns); err != nil {
		return client.IgnoreNotFound(err)
	}
	if ok, err := selects(policy.Spec.NamespaceSelector, ns.Labels); err != nil || !ok {
		return nil
	}
	dw := &dwo.DevWorkspace{}
	if err := r.Get(ctx, client.ObjectKey{Namespace: b.Namespace, Name: b.Spec.WorkspaceName}, dw); err != nil {
		return client.IgnoreNotFound(err)
	}
	if b.Status.WorkspaceID != "" && dw.Status.DevWorkspaceID != b.Status.WorkspaceID {
		return nil
	}
	failure := fmt.Sprintf("WorkspaceBackup %s failed (%s): %s", b.Name, readyReason(b.Status.Conditions), b.Status.Message)
	changes := lastBackupAnnotations(dw.Annotations, b.Status.Phase, b.Status.CompletionTime.Time, failure)
	if changes == nil {
		return nil
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"resourceVersion": dw.ResourceVersion, "annotations": changes}})
	if err != nil {
		return err
	}
	target := &dwo.DevWorkspace{ObjectMeta: metav1.ObjectMeta{Namespace: dw.Namespace, Name: dw.Name}}
	if err := r.Patch(ctx, target, client.RawPatch(types.MergePatchType, patch)); err != nil && !apierrors.IsNotFound(err) {
		// A conflict means the workspace changed since the cache showed it: decide again.
		return fmt.Errorf("annotate DevWorkspace %s/%s for the Dashboard: %w", dw.Namespace, dw.Name, err)
	}
	return nil
}

// dashboardMemory is what this process verified of each policy's copies: the namespaces whose
// copy it saw or wrote for a source hash, and the namespaces holding a Secret of that name the
// policy did not make, with when that was seen. It saves a read per namespace at every reconcile;
// lost on restart, so the first reconcile of a process checks every copy again (and recreates one
// deleted by hand).
type dashboardMemory struct {
	mu        sync.Mutex
	verified  map[types.UID]map[string]string    // namespace -> source hash
	conflicts map[types.UID]map[string]time.Time // namespace -> when seen
}

// current reports a copy verified for hash, or a conflict seen less than registryRecheck ago.
func (d *dashboardMemory) current(uid types.UID, namespace, hash string, now time.Time) (ours, conflict bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if at, ok := d.conflicts[uid][namespace]; ok && now.Sub(at) < registryRecheck {
		return false, true
	}
	return d.verified[uid][namespace] == hash, false
}

// record remembers what ensureDashboardCopy found in namespace.
func (d *dashboardMemory) record(uid types.UID, namespace, hash string, ours bool, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.verified == nil {
		d.verified, d.conflicts = map[types.UID]map[string]string{}, map[types.UID]map[string]time.Time{}
	}
	if d.verified[uid] == nil {
		d.verified[uid], d.conflicts[uid] = map[string]string{}, map[string]time.Time{}
	}
	delete(d.verified[uid], namespace)
	delete(d.conflicts[uid], namespace)
	if ours {
		d.verified[uid][namespace] = hash
	} else {
		d.conflicts[uid][namespace] = now
	}
}

// forget drops a namespace whose copy was removed.
func (d *dashboardMemory) forget(uid types.UID, namespace string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.verified[uid], namespace)
	delete(d.conflicts[uid], namespace)
}

// syncDashboard keeps the Dashboard's Secret in the namespaces the policy backs up (sel), removes
// the policy's copies elsewhere, and sets DashboardReady. A namespace is recorded in
// status.dashboard.namespaces before its copy is created (requeue asks for the reconcile that
// creates it once that status is written), so no copy is ever made that the status does not
// name: the status is how copies are found again to be removed. Only transient errors are
// returned.
func (r *BackupPolicyReconciler) syncDashboard(ctx context.Context, policy *backupv1alpha1.BackupPolicy, sel selection) (requeue bool, err error) {
	status := &policy.Status
	spec := policy.Spec.Dashboard
	if spec == nil || !spec.Enabled {
		meta.RemoveStatusCondition(&status.Conditions, backupv1alpha1.ConditionDashboardReady)
		return false, r.removeDashboardCopies(ctx, policy, nil)
	}
	if spec.AuthSecretName == "" {
		r.setDashboardReady(policy, metav1.ConditionTrue, backupv1alpha1.ReasonDashboardSynced,
			"spec.dashboard.authSecretName is not set: no Secret is copied and the Dashboard reads the registry anonymously")
		return false, r.removeDashboardCopies(ctx, policy, nil)
	}
	source, err := r.dashboardSource(ctx, policy)
	if t, ok := asTerminal(err); ok {
		// The copies stay as they are: a source being fixed must not cut the Dashboard off meanwhile.
		r.setDashboardReady(policy, metav1.ConditionFalse, t.reason, t.message)
		if t.reason == backupv1alpha1.ReasonDashboardPushCredential {
			return false, r.removeDashboardCopies(ctx, policy, nil)
		}
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := r.removeDashboardCopies(ctx, policy, sel.Namespaces); err != nil {
		return false, err
	}
	recorded := map[string]bool{}
	hash := ""
	if status.Dashboard != nil {
		hash = status.Dashboard.SecretHash
		for _, ns := range status.Dashboard.Namespaces {
			recorded[ns] = true
		}
	}
	targets := slices.Sorted(maps.Keys(sel.Namespaces))
	if !allIn(targets, recorded) {
		status.Dashboard = dashboardStatus(hash, targets)
		return true, nil
	}
	sourceHash := secretHash(source)
	var conflicts []string
	var errs []error
	now := r.Clock.Now()
	for _, ns := range targets {
		ours, conflict := r.memory.current(policy.UID, ns, sourceHash, now)
		if !ours && !conflict {
			// One namespace that refuses (a quota on Secrets) must not hold up the others.
			if ours, err = r.ensureDashboardCopy(ctx, policy, ns, source, sourceHash); err != nil {
				errs = append(errs, err)
				continue
			}
			r.memory.record(policy.UID, ns, sourceHash, ours, now)
		}
		if !ours {
			conflicts = append(conflicts, ns)
		}
	}
	if len(errs) > 0 {
		status.Dashboard = dashboardStatus(hash, targets) // not all copies are current yet
		return false, errors.Join(errs...)
	}
	status.Dashboard = dashboardStatus(sourceHash, targets)
	if len(conflicts) > 0 {
		r.setDashboardReady(policy, metav1.ConditionFalse, backupv1alpha1.ReasonDashboardSecretConflict, conflictMessage(conflicts))
		return false, nil
	}
	r.setDashboardReady(policy, metav1.ConditionTrue, backupv1alpha1.ReasonDashboardSynced,
		fmt.Sprintf("Secret %s is in the %d namespaces the policy backs up", backupv1alpha1.DashboardSecretName, len(targets)))
	return false, nil
}

// allIn reports whether every name is in set.
func allIn(names []string, set map[string]bool) bool {
	for _, n := range names {
		if !set[n] {
			return false
		}
	}
	return true
}

// dashboardSource reads spec.dashboard.authSecretName (SecretNotFound, InvalidSecret), and refuses
// it when it holds the push credential of spec.registry.authSecretName (DashboardPushCredential).
func (r *BackupPolicyReconciler) dashboardSource(ctx context.Context, policy *backupv1alpha1.BackupPolicy) (*corev1.Secret, error) {
	source, err := readDockerConfigSecret(ctx, r.APIReader, r.OperatorNamespace, policy.Spec.Dashboard.AuthSecretName,
		"spec.dashboard.authSecretName")
	if err != nil || policy.Spec.Registry.AuthSecretName == "" {
		return source, err
	}
	push, _, err := readPolicyCredentials(ctx, r.APIReader, r.OperatorNamespace, policy.Spec.Registry)
	if err != nil {
		return nil, err
	}
	if bytes.Equal(push, source.Data[corev1.DockerConfigJsonKey]) {
		return nil, terminalf(backupv1alpha1.ReasonDashboardPushCredential,
			"spec.dashboard.authSecretName: Secret %s/%s holds the same credentials as spec.registry.authSecretName; the Dashboard's Secret is readable in every workspace namespace, so give it a read-only credential (nothing is copied)",
			r.OperatorNamespace, policy.Spec.Dashboard.AuthSecretName)
	}
	return source, nil
}

// ensureDashboardCopy creates or updates the policy's copy of source in namespace. It reports
// false, touching nothing, when a Secret of that name exists that the policy did not make.
func (r *BackupPolicyReconciler) ensureDashboardCopy(ctx context.Context, policy *backupv1alpha1.BackupPolicy,
	namespace string, source *corev1.Secret, hash string) (bool, error) {
	want := dashboardCopy(policy, namespace, source, hash)
	err := r.Create(ctx, want)
	if err == nil || !apierrors.IsAlreadyExists(err) {
		if err != nil {
			err = fmt.Errorf("create Secret %s/%s: %w", namespace, backupv1alpha1.DashboardSecretName, err)
		}
		return err == nil, err
	}
	existing := &corev1.Secret{}
	if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(want), existing); err != nil {
		return false, client.IgnoreNotFound(err)
	}
	if !ownedBy(existing, policy) {
		return false, nil
	}
	if existing.Annotations[backupv1alpha1.AnnotationDashboardSourceHash] == hash {
		return true, nil
	}
	existing.Data = want.Data
	existing.Labels, existing.Annotations = want.Labels, want.Annotations
	if err := r.Update(ctx, existing); err != nil {
		return false, fmt.Errorf("update Secret %s/%s: %w", namespace, backupv1alpha1.DashboardSecretName, err)
	}
	return true, nil
}

// removeDashboardCopies deletes the policy's copies in the namespaces its status records that are
// not in keep, and drops them from the status. The API server selects them by name and the policy-UID label, so no other Secret
// is read or touched (RBAC: deletecollection, no get or list).
func (r *BackupPolicyReconciler) removeDashboardCopies(ctx context.Context, policy *backupv1alpha1.BackupPolicy, keep map[string]bool) error {
	status := &policy.Status
	if status.Dashboard == nil {
		return nil
	}
	var left []string
	for i, ns := range status.Dashboard.Namespaces {
		if keep[ns] {
			left = append(left, ns)
			continue
		}
		err := r.DeleteAllOf(ctx, &corev1.Secret{}, client.InNamespace(ns),
			client.MatchingLabels{labelOwnerUID: string(policy.UID), backupv1alpha1.LabelManagedBy: backupv1alpha1.ManagedByValue},
			client.MatchingFields{"metadata.name": backupv1alpha1.DashboardSecretName})
		if err != nil && !apierrors.IsNotFound(err) {
			status.Dashboard = dashboardStatus(status.Dashboard.SecretHash, append(left, status.Dashboard.Namespaces[i:]...))
			return fmt.Errorf("delete Secret %s/%s: %w", ns, backupv1alpha1.DashboardSecretName, err)
		}
		r.memory.forget(policy.UID, ns)
	}
	status.Dashboard = dashboardStatus(status.Dashboard.SecretHash, left)
	return nil
}

// dashboardStatus is status.dashboard for copies of hash in namespaces (nil when there are none).
// A hash of "" means the copies were not all made yet.
func dashboardStatus(hash string, namespaces []string) *backupv1alpha1.DashboardStatus {
	if len(namespaces) == 0 {
		return nil
	}
	return &backupv1alpha1.DashboardStatus{SecretHash: hash, Namespaces: slices.Sorted(slices.Values(namespaces))}
}

func (r *BackupPolicyReconciler) setDashboardReady(policy *backupv1alpha1.BackupPolicy, status metav1.ConditionStatus, reason, message string) {
	meta.SetStatusCondition(&policy.Status.Conditions, metav1.Condition{Type: backupv1alpha1.ConditionDashboardReady,
		Status: status, Reason: reason, Message: message, ObservedGeneration: policy.Generation})
}

// dashboardCopy is the policy's copy of source in namespace: the same type and data, labelled and
// owned by the policy (so deleting the policy garbage-collects it) and carrying the source's hash.
func dashboardCopy(policy *backupv1alpha1.BackupPolicy, namespace string, source *corev1.Secret, hash string) *corev1.Secret {
	labels := childLabels()
	labels[labelOwnerUID] = string(policy.UID)
	labels[labelDWOWatchSecret] = "true"
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name: backupv1alpha1.DashboardSecretName, Namespace: namespace, Labels: labels,
			Annotations: map[string]string{backupv1alpha1.AnnotationDashboardSourceHash: hash},
			// No blockOwnerDeletion: that would need update on backuppolicies/finalizers.
			OwnerReferences: []metav1.OwnerReference{{APIVersion: backupv1alpha1.GroupVersion.String(), Kind: "BackupPolicy",
				Name: policy.Name, UID: policy.UID, Controller: ptr.To(true)}},
		},
		Type: source.Type,
		Data: maps.Clone(source.Data),
	}
}

// secretHash is the SHA-256 of a Secret's type and data, keys in order.
func secretHash(s *corev1.Secret) string {
	h := sha256.New()
	h.Write([]byte(string(s.Type) + "\x00"))
	for _, k := range slices.Sorted(maps.Keys(s.Data)) {
		h.Write([]byte(k + "\x00" + strconv.Itoa(len(s.Data[k])) + "\x00"))
		h.Write(s.Data[k])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// conflictMessage names the namespaces whose Secret is left alone.
func conflictMessage(namespaces []string) string {
	named := namespaces[:min(len(namespaces), maxNamedConflicts)]
	more := ""
	if n := len(namespaces) - len(named); n > 0 {
		more = fmt.Sprintf(" and %d more", n)
	}
	return fmt.Sprintf("a Secret %s that this policy did not make (DevWorkspace Operator's, or a person's) is in namespace %s%s; it is left alone: delete it there to let the policy keep it",
		backupv1alpha1.DashboardSecretName, strings.Join(named, ", "), more)
}

/*
Copyright 2026.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

	http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/
package controller

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
	"github.com/dwbackup/devworkspace-backup-operator/internal/dwo"
)

// registryRecheck is how often a policy that names a Secret or CA ConfigMap re-reads them: they
// are not watched (Secrets are never listed or watched), so a fix or a deletion is seen this late.
const registryRecheck = 5 * time.Minute

// indexBackupPolicy indexes WorkspaceBackups by spec.policyName: a policy's history and active
// backups, manual ones included, without scanning every backup in the cluster.
const indexBackupPolicy = "backuppolicy.spec.policyName"

// Event reasons of the policy controller (events, not conditions).
const (
	eventScheduled        = "Scheduled"
	eventMissedSchedule   = "MissedSchedule"
	eventBackupNotCreated = "BackupNotCreated"
	eventInvalidPolicy    = "InvalidPolicy"
)

// BackupPolicyReconciler turns a policy's schedule slots into WorkspaceBackups (docs/architecture.md, "Control flow"). It
// never runs a backup itself and writes nothing but WorkspaceBackups, the policy's status and
// Events.
type BackupPolicyReconciler struct {
	client.Client
	// APIReader reads without the cache: Secrets are never listed or watched.
	APIReader client.Reader
	Scheme    *runtime.Scheme
	Recorder  events.EventRecorder
	Options
	// expected remembers the last slot each policy processed while the cache may still show the
	// previous lastScheduleTime (expectations.go).
	expected *expectations
	// intervals caches each schedule's expected interval (shared with the metrics collector).
	intervals *intervalCache
	// imports remembers the history imports this process ran (historyimport_step.go).
	imports importMemory
	// memory is what this process verified of the Dashboard's Secret copies (dashboard.go).
	memory dashboardMemory
}

// +kubebuilder:rbac:groups=backup.dwbackup.io,resources=backuppolicies,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=backup.dwbackup.io,resources=backuppolicies/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=backup.dwbackup.io,resources=workspacebackups,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=workspace.devfile.io,resources=devworkspaces,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups="",namespace=dwbackup-system,resources=secrets,verbs=get
// +kubebuilder:rbac:groups="",namespace=dwbackup-system,resources=configmaps,verbs=get
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=create;deletecollection
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;update,resourceNames=devworkspace-backup-registry-auth

// Reconcile reads the policy, runs the pipeline and writes the status once.
func (r *BackupPolicyReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	policy := &backupv1alpha1.BackupPolicy{}
	if err := r.Get(ctx, req.NamespacedName, policy); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if policy.DeletionTimestamp != nil {
		return ctrl.Result{}, nil // no finalizer and no owned objects: backups outlive their policy
	}
	before := policy.DeepCopy()
	result, err := r.reconcilePolicy(ctx, policy)
	r.reportInvalid(before, policy)
	if !equality.Semantic.DeepEqual(before.Status, policy.Status) {
		stale, patchErr := patchStatus(ctx, r.Client, policy, before)
		if stale {
			// Decided on a stale copy: nothing was written; decide again once the cache catches up.
			return ctrl.Result{RequeueAfter: time.Second}, err
		}
		if patchErr != nil {
			return ctrl.Result{}, errors.Join(err, client.IgnoreNotFound(patchErr))
		}
	}
	return result, err
}

// reconcilePolicy is the pipeline: validate -> observe and select -> slots -> create backups ->
// status. It changes only policy.Status; Reconcile writes it.
func (r *BackupPolicyReconciler) reconcilePolicy(ctx context.Context, policy *backupv1alpha1.BackupPolicy) (ctrl.Result, error) {
	now := r.Clock.Now()
	status := &policy.Status
	status.ObservedGeneration = policy.Generation

	valid, err := r.validate(ctx, policy)
	if err != nil {
		return r.stall(policy, err)
	}
	state, err := r.observe(ctx, policy.Name)
	if err != nil {
		return ctrl.Result{}, err
	}
	sel := selectWorkspaces(valid.selectors, state.namespaces, state.workspaces, historyOf(state.backups))
	summarize(status, sel, state.backups)
	unprotected, crossing := unprotectedAt(sel.ExposedSince, r.intervals.get(policy.Spec, valid, now), now)
	status.WorkspacesUnprotected = unprotected
	setConditions(&status.Conditions, policy.Generation, readyOutcome(policy))
	retryImport := r.importHistory(ctx, policy, valid, state)
	next, err := r.processSlot(ctx, policy, valid, sel, state.backups, now)
	if err != nil {
		return ctrl.Result{}, err
	}
	recordedFirst, err := r.syncDashboard(ctx, policy, sel)
	if err != nil {
		return ctrl.Result{}, err
	}
	if recordedFirst {
		// The copies are made once the status naming their namespaces is written.
		return ctrl.Result{RequeueAfter: time.Second}, nil
	}
	// Look again at the next slot, or earlier when a workspace becomes unprotected before it.
	if !crossing.IsZero() && (next.IsZero() || crossing.Before(next)) {
		next = crossing
	}
	result := requeueAt(now, next, referencesRegistryObjects(policy))
	if retryImport > 0 && (result.RequeueAfter == 0 || retryImport < result.RequeueAfter) {
		result.RequeueAfter = retryImport
	}
	return result, nil
}

// readyOutcome is the condition of a valid policy.
func readyOutcome(policy *backupv1alpha1.BackupPolicy) outcome {
	if policy.Spec.Suspend {
		return outcome{ready: true, reason: backupv1alpha1.ReasonSuspended,
			message: "spec.suspend is true: no new backups are scheduled"}
	}
	return outcome{ready: true, reason: backupv1alpha1.ReasonValid, message: "the policy is valid"}
}

// processSlot creates the backups of a due slot (and applies retention to the policy's history)
// or skips a missed one, records it in lastScheduleTime, sets nextScheduleTime and returns the
// next slot.
func (r *BackupPolicyReconciler) processSlot(ctx context.Context, policy *backupv1alpha1.BackupPolicy,
	valid validPolicy, sel selection, backups []backupv1alpha1.WorkspaceBackup, now time.Time) (time.Time, error) {
	status := &policy.Status
	if done := r.expected.processedSlot(policy.UID); !done.IsZero() && after(done, status.LastScheduleTime) {
		status.LastScheduleTime = &metav1.Time{Time: done}
	}
	slot := scheduleOf(policy, valid).slotsAt(now)
	switch {
	case !slot.Due.IsZero():
		// Backups first, then lastScheduleTime: a crash in between re-processes the slot, and the
		// deterministic names turn the second attempt into AlreadyExists (no duplicate, no miss).
		if err := r.createBackups(ctx, policy, slot.Due, sel); err != nil {
			return time.Time{}, err
		}
		if err := retainPolicy(ctx, r.Client, now, policy, backups); err != nil {
			return time.Time{}, err
		}
		status.LastScheduleTime = &metav1.Time{Time: slot.Due}
		r.expected.markProcessed(policy.UID, slot.Due)
	case !slot.Missed.IsZero():
		r.Recorder.Eventf(policy, nil, corev1.EventTypeWarning, eventMissedSchedule, "Schedule",
			"slot %s was missed by more than startingDeadlineSeconds (%s) and is skipped",
			slot.Missed.Format(time.RFC3339), valid.deadline)
		status.LastScheduleTime = &metav1.Time{Time: slot.Missed}
		r.expected.markProcessed(policy.UID, slot.Missed)
	}
	status.NextScheduleTime = nil
	if !slot.Next.IsZero() {
		status.NextScheduleTime = &metav1.Time{Time: slot.Next}
	}
	return slot.Next, nil
}

// after reports whether t is later than the (possibly unset) status time.
func after(t time.Time, status *metav1.Time) bool {
	return status == nil || t.After(status.Time)
}

// validate checks the spec and the registry Secret and CA ConfigMap it names.
func (r *BackupPolicyReconciler) validate(ctx context.Context, policy *backupv1alpha1.BackupPolicy) (validPolicy, error) {
	valid, err := validateSpec(&policy.Spec)
	if err != nil {
		return valid, err
	}
	return valid, checkRegistryRefs(ctx, r.APIReader, r.OperatorNamespace, policy.Spec.Registry)
}

// stall reports a stalled error as Ready=False, Stalled=True; any other error is returned to be
// retried with backoff. A stalled policy schedules nothing.
func (r *BackupPolicyReconciler) stall(policy *backupv1alpha1.BackupPolicy, err error) (ctrl.Result, error) {
	s, ok := asTerminal(err)
	if !ok {
		return ctrl.Result{}, err
	}
	setConditions(&policy.Status.Conditions, policy.Generation, outcome{stalled: true, reason: s.reason, message: s.message})
	policy.Status.NextScheduleTime = nil
	switch s.reason {
	case backupv1alpha1.ReasonSecretNotFound, backupv1alpha1.ReasonInvalidSecret, backupv1alpha1.ReasonCABundleNotFound:
		// Not watched: look again later, the fix may be a kubectl apply in the operator namespace.
		return ctrl.Result{RequeueAfter: registryRecheck}, nil
	default:
		return ctrl.Result{}, nil // a spec change bumps the generation and wakes us
	}
}

// observed is the part of the cluster one policy's selection reads, all from the cache.
type observed struct {
	namespaces map[string]namespaceInfo
	workspaces []workspace
	backups    []backupv1alpha1.WorkspaceBackup
}

// observe lists namespaces, DevWorkspaces and the policy's backups from the cache. The lists are
// read only, so they skip the cache's deep copy (thousands of workspaces per slot).
func (r *BackupPolicyReconciler) observe(ctx context.Context, policyName string) (observed, error) {
	var state observed
	namespaces := &corev1.NamespaceList{}
	if err := r.List(ctx, namespaces, client.UnsafeDisableDeepCopy); err != nil {
		return state, fmt.Errorf("listing namespaces: %w", err)
	}
	state.namespaces = make(map[string]namespaceInfo, len(namespaces.Items))
	for i := range namespaces.Items {
		ns := &namespaces.Items[i]
		state.namespaces[ns.Name] = namespaceInfo{Labels: ns.Labels, Terminating: ns.DeletionTimestamp != nil}
	}
	devWorkspaces := &dwo.DevWorkspaceList{}
	if err := r.List(ctx, devWorkspaces, client.UnsafeDisableDeepCopy); err != nil {
		return state, fmt.Errorf("listing DevWorkspaces: %w", err)
	}
	state.workspaces = make([]workspace, 0, len(devWorkspaces.Items))
	for i := range devWorkspaces.Items {
		state.workspaces = append(state.workspaces, workspaceFrom(&devWorkspaces.Items[i]))
	}
	backups := &backupv1alpha1.WorkspaceBackupList{}
	if err := r.List(ctx, backups, client.MatchingFields{indexBackupPolicy: policyName}, client.UnsafeDisableDeepCopy); err != nil {
		return state, fmt.Errorf("listing WorkspaceBackups of policy %s: %w", policyName, err)
	}
	state.backups = backups.Items
	return state, nil
}

// scheduleOf is the policy's schedule state: since its last processed slot, else its creation.
func scheduleOf(policy *backupv1alpha1.BackupPolicy, valid validPolicy) scheduleState {
	since := policy.CreationTimestamp.Time
	if policy.Status.LastScheduleTime != nil {
		since = policy.Status.LastScheduleTime.Time
	}
	return scheduleState{Schedule: valid.schedule, Location: valid.location, Since: since,
		Deadline: valid.deadline, Suspend: policy.Spec.Suspend}
}

// createBackups creates one WorkspaceBackup per due workspace for the slot. AlreadyExists means
// an earlier attempt made it: adopt. A workspace whose backup the API refuses for good
// (namespace terminating, quota, admission) gets a Warning event and the slot goes on; any other
// error stops here so the slot is retried.
func (r *BackupPolicyReconciler) createBackups(ctx context.Context, policy *backupv1alpha1.BackupPolicy,
	slot time.Time, sel selection) error {
	log := logf.FromContext(ctx)
	created, adopted, refused := 0, 0, 0
	for _, ws := range sel.Due {
		backup := scheduledBackup(policy.Name, ws, slot)
		err := r.Create(ctx, backup)
		switch {
		case err == nil:
			created++
		case apierrors.IsAlreadyExists(err):
			adopted++
		case apierrors.IsForbidden(err) || apierrors.IsInvalid(err) || apierrors.IsNotFound(err):
			refused++
			r.Recorder.Eventf(policy, nil, corev1.EventTypeWarning, eventBackupNotCreated, "CreateBackup",
				"WorkspaceBackup %s/%s for slot %s: %v", backup.Namespace, backup.Name, slot.Format(time.RFC3339), err)
		default:
			return fmt.Errorf("creating WorkspaceBackup %s/%s: %w", backup.Namespace, backup.Name, err)
		}
	}
	log.Info("processed schedule slot", "slot", slot, "created", created, "adopted", adopted, "refused", refused,
		"selected", sel.Selected, "withoutStorage", sel.NoStorage)
	r.Recorder.Eventf(policy, nil, corev1.EventTypeNormal, eventScheduled, "Schedule",
		"slot %s: %d backups created (%d already existed, %d refused); %d workspaces selected, %d without storage",
		slot.Format(time.RFC3339), created, adopted, refused, sel.Selected, sel.NoStorage)
	return nil
}

// scheduledBackup is the WorkspaceBackup of one workspace at one slot (newWorkspaceBackup), with
// its deterministic name and the slot annotation its tag is derived from.
func scheduledBackup(policyName string, ws workspace, slot time.Time) *backupv1alpha1.WorkspaceBackup {
	b := newWorkspaceBackup(ws.Namespace, childName(ws.Name, policyName, slotSuffix(slot)), ws.Name, ws.ID, policyName,
		backupv1alpha1.TriggerScheduled)
	b.Annotations = map[string]string{backupv1alpha1.AnnotationSlot: slot.UTC().Format(time.RFC3339)}
	return b
}

// summarize fills the counting fields of the status from the selection and the policy's backups.
func summarize(status *backupv1alpha1.BackupPolicyStatus, sel selection, backups []backupv1alpha1.WorkspaceBackup) {
	status.Workspaces = sel.Selected
	status.SkippedWorkspaces = sel.NoStorage
	status.ActiveBackups = 0
	for i := range backups {
		b := &backups[i]
		switch b.Status.Phase {
		case backupv1alpha1.BackupRunning:
			status.ActiveBackups++
		case backupv1alpha1.BackupSucceeded:
			// Never moves back: pruning or deleting the newest success does not undo it.
			last := status.LastSuccessfulBackupTime
			if done := b.Status.CompletionTime; done != nil && (last == nil || done.After(last.Time)) {
				status.LastSuccessfulBackupTime = done.DeepCopy()
			}
		default:
		}
	}
}

// requeueAt wakes the policy at its next slot, and at least every registryRecheck when it names
// a Secret or ConfigMap.
func requeueAt(now, next time.Time, recheck bool) ctrl.Result {
	var after time.Duration
	if !next.IsZero() {
		after = max(next.Sub(now), time.Second)
	}
	if recheck && (after == 0 || after > registryRecheck) {
		after = registryRecheck
	}
	return ctrl.Result{RequeueAfter: after}
}

// referencesRegistryObjects: the policy names a Secret or CA ConfigMap that is not watched.
func referencesRegistryObjects(policy *backupv1alpha1.BackupPolicy) bool {
	d := policy.Spec.Dashboard
	return policy.Spec.Registry.AuthSecretName != "" || policy.Spec.Registry.CABundle != nil ||
		(d != nil && d.Enabled && d.AuthSecretName != "")
}

// reportInvalid records a Warning event when the policy becomes stalled or its problem changes,
// not at every reconcile.
func (r *BackupPolicyReconciler) reportInvalid(before, after *backupv1alpha1.BackupPolicy) {
	now := meta.FindStatusCondition(after.Status.Conditions, backupv1alpha1.ConditionStalled)
	if now == nil || now.Status != metav1.ConditionTrue {
		return
	}
	if old := meta.FindStatusCondition(before.Status.Conditions, backupv1alpha1.ConditionStalled); old != nil &&
		old.Status == metav1.ConditionTrue && old.Message == now.Message {
		return
	}
	r.Recorder.Eventf(after, nil, corev1.EventTypeWarning, eventInvalidPolicy, "Validate", "%s", now.Message)
}

// SetupWithManager registers the reconciler, its index and its watches. Status patches change
// neither generation, labels nor annotations, so they do not wake the policy again.
func (r *BackupPolicyReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.expected == nil {
		r.expected = newExpectations()
	}
	if r.intervals == nil {
		r.intervals = newIntervalCache()
	}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &backupv1alpha1.WorkspaceBackup{}, indexBackupPolicy,
		backupPolicyName); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&backupv1alpha1.BackupPolicy{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}, predicate.LabelChangedPredicate{}))).
		Watches(&dwo.DevWorkspace{}, handler.EnqueueRequestsFromMapFunc(r.policiesForWorkspace)).
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(r.policiesForNamespace)).
		Watches(&backupv1alpha1.WorkspaceBackup{}, handler.EnqueueRequestsFromMapFunc(policyOfBackup)).
		Named("backuppolicy").
		Complete(r)
}

// policiesForWorkspace maps a DevWorkspace to the policies whose selectors pick it (on an update
// the old and the new object are both mapped, so leaving a selection is seen too). Read only.
func (r *BackupPolicyReconciler) policiesForWorkspace(ctx context.Context, obj client.Object) []reconcile.Request {
	ns := &corev1.Namespace{}
	var nsLabels labels.Set
	if err := r.Get(ctx, client.ObjectKey{Name: obj.GetNamespace()}, ns); err == nil {
		nsLabels = ns.Labels
	}
	wsLabels := labels.Set(obj.GetLabels())
	return r.policiesMatching(ctx, func(s selectors) bool {
		return s.Namespace.Matches(nsLabels) && s.Workspace.Matches(wsLabels)
	})
}

// policiesForNamespace maps a Namespace to the policies whose namespaceSelector picks it. Read only.
func (r *BackupPolicyReconciler) policiesForNamespace(ctx context.Context, obj client.Object) []reconcile.Request {
	nsLabels := labels.Set(obj.GetLabels())
	return r.policiesMatching(ctx, func(s selectors) bool { return s.Namespace.Matches(nsLabels) })
}

// policiesMatching lists the cached policies and keeps those whose (valid) selectors match.
func (r *BackupPolicyReconciler) policiesMatching(ctx context.Context, match func(selectors) bool) []reconcile.Request {
	policies := &backupv1alpha1.BackupPolicyList{}
	if err := r.List(ctx, policies, client.UnsafeDisableDeepCopy); err != nil {
		logf.FromContext(ctx).Error(err, "listing BackupPolicies to map an event")
		return nil
	}
	var requests []reconcile.Request
	for i := range policies.Items {
		p := &policies.Items[i]
		sel, err := parseSelectors(p.Spec.NamespaceSelector, p.Spec.WorkspaceSelector)
		if err == nil && match(sel) {
			requests = append(requests, reconcile.Request{NamespacedName: types.NamespacedName{Name: p.Name}})
		}
	}
	return requests
}

// backupPolicyName is the value of indexBackupPolicy.
func backupPolicyName(o client.Object) []string {
	return []string{o.(*backupv1alpha1.WorkspaceBackup).Spec.PolicyName}
}

// policyOfBackup maps a WorkspaceBackup to its policy, to keep activeBackups and
// lastSuccessfulBackupTime current.
func policyOfBackup(_ context.Context, obj client.Object) []reconcile.Request {
	b, ok := obj.(*backupv1alpha1.WorkspaceBackup)
	if !ok || b.Spec.PolicyName == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: b.Spec.PolicyName}}}
}

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

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
	"github.com/dwbackup/devworkspace-backup-operator/internal/dwo"
	"github.com/dwbackup/devworkspace-backup-operator/internal/mover"
)

// indexBackupWorkspace indexes WorkspaceBackups by spec.workspaceName: a DevWorkspace, or a
// restore of it, wakes its backups.
const indexBackupWorkspace = "spec.workspaceName"

// pollNoPods is how often a Job whose pod does not appear is checked for a FailedCreate Event.
const pollNoPods = 5 * time.Second

// WorkspaceBackupReconciler runs one backup: WorkspaceBackup -> mover Job -> result.
type WorkspaceBackupReconciler struct {
	client.Client
	// APIReader reads without the cache: Secrets are never listed or watched.
	APIReader client.Reader
	Scheme    *runtime.Scheme
	Recorder  events.EventRecorder
	Options
	// expected is what this process knows that the cache may not show yet (expectations.go).
	expected *expectations
	throttle *throttle
	movers   *moverLifecycle
	// restores are the workspaces a restore of this process is writing (shared with the restore reconciler).
	restores *restoreLocks
	// metrics counts each backup once, when its final phase is written (metrics.go).
	metrics *Metrics
}

// +kubebuilder:rbac:groups=backup.dwbackup.io,resources=workspacebackups,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=backup.dwbackup.io,resources=workspacebackups/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=backup.dwbackup.io,resources=workspacebackups/finalizers,verbs=update
// +kubebuilder:rbac:groups=backup.dwbackup.io,resources=backuppolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups=workspace.devfile.io,resources=devworkspaces,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=controller.devfile.io,resources=devworkspaceoperatorconfigs,verbs=get;list
// +kubebuilder:rbac:groups="",resources=persistentvolumeclaims;namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=events,verbs=list
// +kubebuilder:rbac:groups=storage.k8s.io,resources=volumeattachments,verbs=get;list;watch
// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=get;list;watch;create;delete
// +kubebuilder:rbac:groups="",resources=secrets,verbs=create;delete;deletecollection
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get,resourceNames=dwbackup-registry-auth
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile reads the backup, decides the next step, acts, and patches status once.
func (r *WorkspaceBackupReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	backup := &backupv1alpha1.WorkspaceBackup{}
	if err := r.Get(ctx, req.NamespacedName, backup); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !backup.DeletionTimestamp.IsZero() {
		return r.finalize(ctx, backup)
	}
	if r.startNotSeenYet(backup) {
		return ctrl.Result{}, nil // the update event of the Running patch brings it back
	}
	if backup.Status.Phase.Finished() {
		r.throttle.release(backup)
		if r.expected.isCleaned(backup.UID) {
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, r.cleanUp(ctx, backup)
	}
	if isImportPending(backup) {
		return ctrl.Result{}, nil // the policy's history import completes it; it runs no Job
	}
	if done, err := r.adoptManual(ctx, backup); done || err != nil {
		return ctrl.Result{}, err
	}

	before := backup.Status.DeepCopy()
	result, err := r.advance(ctx, backup)
	if t, ok := asTerminal(err); ok {
		r.throttle.release(backup)
		r.finish(backup, backupv1alpha1.BackupFailed, t.outcome())
		result, err = ctrl.Result{}, nil
	}
	if !equality.Semantic.DeepEqual(*before, backup.Status) {
		patch := &backupv1alpha1.WorkspaceBackup{ObjectMeta: backup.ObjectMeta, Status: *before}
		stale, perr := patchStatus(ctx, r.Client, backup, patch)
		if stale || perr != nil {
			return ctrl.Result{}, errors.Join(err, perr)
		}
		if backup.Status.Phase == backupv1alpha1.BackupRunning && before.Phase != backupv1alpha1.BackupRunning {
			r.expected.expectStarted(backup.UID)
		}
		// The optimistic lock lets only one write move a backup from unfinished to final.
		if backup.Status.Phase.Finished() && !before.Phase.Finished() {
			r.metrics.backupFinished(backup)
		}
	}
	if err == nil && backup.Status.Phase.Finished() {
		err = r.cleanUp(ctx, backup)
	}
	return result, err
}

// startNotSeenYet reports a backup this process started whose cached copy is still from before
// its Running patch.
func (r *WorkspaceBackupReconciler) startNotSeenYet(b *backupv1alpha1.WorkspaceBackup) bool {
	return r.expected.startNotSeen(b.UID, b.Status.Phase == "" || b.Status.Phase == backupv1alpha1.BackupPending)
}

// adoptManual gives a backup made by a person the labels retention and the policy need, and the
// finalizer, in one write (labelBackup); it reports done when it wrote (the update triggers the
// next reconcile).
func (r *WorkspaceBackupReconciler) adoptManual(ctx context.Context, b *backupv1alpha1.WorkspaceBackup) (bool, error) {
	if !labelBackup(b, backupv1alpha1.TriggerManual, "") {
		return false, nil
	}
	return true, r.Update(ctx, b)
}

// advance moves an unfinished backup one step and records the outcome in its status; a terminal
// error ends it Failed.
func (r *WorkspaceBackupReconciler) advance(ctx context.Context, b *backupv1alpha1.WorkspaceBackup) (ctrl.Result, error) {
	policy, err := getApplicablePolicy(ctx, r.Client, r.APIReader, b.Spec.PolicyName, b.Namespace)
	if err != nil {
		return ctrl.Result{}, err
	}
	ws, err := lookupWorkspace(ctx, r.Client, r.APIReader, b.Namespace, b.Spec.WorkspaceName)
	if err != nil {
		return ctrl.Result{}, err
	}
	if b.Status.Phase == backupv1alpha1.BackupRunning {
		return r.watchJob(ctx, b, policy, ws)
	}
	return r.start(ctx, b, policy, ws)
}

// start checks the preconditions in order and creates the mover Job when all hold.
func (r *WorkspaceBackupReconciler) start(ctx context.Context, b *backupv1alpha1.WorkspaceBackup,
	policy *backupv1alpha1.BackupPolicy, ws *workspace) (ctrl.Result, error) {
	if ws == nil {
		return ctrl.Result{}, terminalf(backupv1alpha1.ReasonWorkspaceNotFound,
			"spec.workspaceName: DevWorkspace %s/%s not found", b.Namespace, b.Spec.WorkspaceName)
	}
	if !ws.Stopped() {
		// A started workspace is never backed up; the DevWorkspace watch wakes this backup when it stops.
		r.wait(b, backupv1alpha1.ReasonWorkspaceRunning, fmt.Sprintf(
			"waiting for DevWorkspace %s to stop (phase %q, spec.started %v)", ws.Name, ws.Phase, ws.Started))
		return ctrl.Result{}, nil
	}
	// A restore of this workspace owns its storage until its Job ends (exclusive.go).
	if restore, err := r.restoreInProgress(ctx, b); err != nil || restore != "" {
		if err == nil {
			r.wait(b, backupv1alpha1.ReasonWaitingForRestore, fmt.Sprintf(
				"WorkspaceRestore %s is restoring DevWorkspace %s; the backup starts when it ends", restore, ws.Name))
		}
		// The restore's end wakes this backup; the requeue is only a safety net.
		return ctrl.Result{RequeueAfter: time.Minute}, err
	}
	// The concurrency slot comes before the storage: resolving it reads DWO's configuration from the
	// API server, and thousands of backups of one slot wait here, each woken again and again.
	if !r.throttle.admit(ctx, r.Client, policy, b) {
		r.waitForSlot(b, policy)
		// A finishing backup of the policy wakes this one; the requeue is only a safety net.
		return ctrl.Result{RequeueAfter: time.Minute}, nil
	}
	st, skip, err := resolveWorkspaceStorage(ctx, r.Client, r.APIReader, r.DWONamespace, *ws)
	if err != nil || skip != "" {
		r.throttle.release(b)
		if err == nil {
			r.finish(b, backupv1alpha1.BackupSkipped, outcome{ready: true, reason: backupv1alpha1.ReasonNoWorkspaceStorage, message: skip})
		}
		return ctrl.Result{}, err
	}
	repository, tag := artifactRepository(policy.Spec.Registry.Repository, b.Namespace, ws.Name), backupTag(b)
	previous, err := r.previousDigest(ctx, b, policy, ws.ID, repository)
	if err != nil {
		r.throttle.release(b)
		return ctrl.Result{}, err
	}
	job, err := r.movers.launch(ctx, moverRun{Owner: b, Policy: policy, Workspace: *ws, Storage: st,
		JobName: childName("backup", b.Name), ReadOnly: true,
		Args: func(creds credentials) []string {
			return append(backupArgs(st.location.Path, repository, tag, taggedTime(b), ws.Name, b.Namespace, ws.ID,
				creds.SecretName != "", creds.WithCA, policy.Spec.Registry.Insecure),
				formatArgs(policy.Spec.Artifact, previous)...)
		}})
	if err != nil {
		r.throttle.release(b)
		return ctrl.Result{}, err
	}
	now := metav1.NewTime(r.Clock.Now())
	b.Status.Phase = backupv1alpha1.BackupRunning
	b.Status.JobName = job.Name
	b.Status.StartTime = &now
	b.Status.WorkspaceID = ws.ID
	b.Status.WorkspaceStoppedAt = &metav1.Time{Time: ws.StoppedAt}
	b.Status.Source = &backupv1alpha1.BackupSource{ClaimName: st.location.ClaimName, Path: st.location.Path}
	// The reference is the one the controller asked for; the digest will be the registry's.
	b.Status.Artifact = &backupv1alpha1.ArtifactStatus{Reference: repository + ":" + tag}
	record(&b.Status.Message, &b.Status.Conditions, b.Generation, outcome{reason: backupv1alpha1.ReasonJobRunning,
		message: fmt.Sprintf("mover Job %s is backing up %s/%s", job.Name, st.location.ClaimName, st.location.Path)})
	r.Recorder.Eventf(b, nil, corev1.EventTypeNormal, "BackupStarted", "Start", "%s", b.Status.Message)
	return ctrl.Result{}, nil
}

// previousDigest is, for a layered policy, the digest of the workspace's newest Succeeded backup
// of this policy (previousArtifact), whose layers the mover may reuse. It is read from the API
// server, not the cache: a backup that just succeeded must not be missed (the mover would then
// compare with latest, or an older backup, and upload more than changed).
func (r *WorkspaceBackupReconciler) previousDigest(ctx context.Context, b *backupv1alpha1.WorkspaceBackup,
	policy *backupv1alpha1.BackupPolicy, workspaceID, repository string) (string, error) {
	if policy.Spec.Artifact.Format != backupv1alpha1.ArtifactFormatLayered || workspaceID == "" {
		return "", nil
	}
	var list backupv1alpha1.WorkspaceBackupList
	// Manual backups carry no workspace-id label: select by name, then match the id in status.
	if err := r.APIReader.List(ctx, &list, client.InNamespace(b.Namespace), client.MatchingLabels{
		backupv1alpha1.LabelPolicy: policy.Name, backupv1alpha1.LabelWorkspace: childName(b.Spec.WorkspaceName)}); err != nil {
		return "", err
	}
	backups := make([]*backupv1alpha1.WorkspaceBackup, 0, len(list.Items))
	for i := range list.Items {
		backups = append(backups, &list.Items[i])
	}
	return previousArtifact(backups, repository, workspaceID), nil
}

// watchJob follows a running backup: it stops the Job when the developer needs the workspace,
// and records the outcome when the Job ends.
func (r *WorkspaceBackupReconciler) watchJob(ctx context.Context, b *backupv1alpha1.WorkspaceBackup,
	policy *backupv1alpha1.BackupPolicy, ws *workspace) (ctrl.Result, error) {
	p, err := r.movers.supervise(ctx, b, b.Spec.WorkspaceName, ws, b.Status.JobName)
	switch {
	case err != nil:
		return ctrl.Result{}, err
	case p.stopped != "":
		return ctrl.Result{}, terminalf(backupv1alpha1.ReasonWorkspaceStarted, "%s; the backup was stopped so it does not hold up the developer", p.stopped)
	case p.running:
		return ctrl.Result{RequeueAfter: p.requeue}, nil
	case p.failure != nil:
		return ctrl.Result{}, p.failure
	case !p.succeeded:
		return ctrl.Result{}, failedResult(p)
	case p.hasResult && p.result.Phase == mover.PhaseSkipped:
		r.finish(b, backupv1alpha1.BackupSkipped, outcome{ready: true, reason: p.result.Reason, message: p.result.Message})
		return ctrl.Result{}, nil
	}
	return ctrl.Result{}, r.recordArtifact(ctx, b, policy, p)
}

// recordArtifact completes a backup whose Job succeeded. The pod's result is only a cross-check
// and the source of the counts: a namespace user can create a pod that looks like the Job's with
// any termination message. The reference is the one the controller asked for, and the digest is
// what the registry says that tag points at; a tag the registry does not have fails the backup.
func (r *WorkspaceBackupReconciler) recordArtifact(ctx context.Context, b *backupv1alpha1.WorkspaceBackup,
	policy *backupv1alpha1.BackupPolicy, p jobProgress) error {
	reference := b.Status.Artifact.Reference
	desc, err := resolveArtifact(ctx, r.APIReader, r.OperatorNamespace, policy, b.Namespace, reference)
	if err = r.movers.retryOrGiveUp(b.UID, err, "reading the tag from the registry"); err != nil {
		if t, ok := asTerminal(err); ok {
			return terminalf(t.reason, "mover Job %s succeeded, but %s could not be confirmed in the registry: %s",
				p.jobName, reference, t.message)
		}
		return err
	}
	res := p.result
	artifact := &backupv1alpha1.ArtifactStatus{Reference: reference, Digest: desc.Digest.String()}
	msg := fmt.Sprintf("backed up to %s (the mover Job %s reported no readable result)", reference, p.jobName)
	if p.hasResult {
		artifact.SizeBytes, artifact.Files, artifact.Unchanged = res.SizeBytes, res.Files, res.Unchanged
		msg = fmt.Sprintf("backed up %d files (%d bytes, %d compressed) to %s", res.Files, res.Bytes, res.SizeBytes, reference)
		if res.Unchanged {
			msg = fmt.Sprintf("unchanged since the previous backup; %s points at the same artifact", reference)
		}
		if res.Digest != artifact.Digest {
			msg += fmt.Sprintf("; the mover reported digest %q, the registry has %s (recorded)", res.Digest, artifact.Digest)
		}
	}
	b.Status.Artifact = artifact
	r.finish(b, backupv1alpha1.BackupSucceeded, outcome{ready: true, reason: backupv1alpha1.ReasonSucceeded, message: msg})
	return nil
}

// waitForSlot keeps a backup waiting for a concurrency slot. A new backup stays as it is: it
// already reads as Pending (a schema default), and the thousands of backups a slot creates would
// otherwise each cost a status write for nothing (the write budget of docs/backups.md: create, Running, final). A
// backup that was Pending for another reason says that it now waits for a slot.
func (r *WorkspaceBackupReconciler) waitForSlot(b *backupv1alpha1.WorkspaceBackup, policy *backupv1alpha1.BackupPolicy) {
	if isNewBackup(b) {
		return
	}
	r.wait(b, backupv1alpha1.ReasonWaitingForConcurrencySlot, fmt.Sprintf(
		"%d backups of policy %s are running (spec.maxConcurrentBackups)", policy.Spec.MaxConcurrentBackups, policy.Name))
}

// wait keeps the backup Pending with a reason.
func (r *WorkspaceBackupReconciler) wait(b *backupv1alpha1.WorkspaceBackup, reason, message string) {
	b.Status.Phase = backupv1alpha1.BackupPending
	record(&b.Status.Message, &b.Status.Conditions, b.Generation, outcome{reason: reason, message: message})
}

// finish records a final phase with its outcome, times and an Event.
func (r *WorkspaceBackupReconciler) finish(b *backupv1alpha1.WorkspaceBackup, phase backupv1alpha1.BackupPhase, o outcome) {
	now := metav1.NewTime(r.Clock.Now())
	b.Status.Phase = phase
	b.Status.CompletionTime = &now
	if b.Status.StartTime != nil {
		b.Status.Duration = now.Sub(b.Status.StartTime.Time).Round(time.Second).String()
	}
	record(&b.Status.Message, &b.Status.Conditions, b.Generation, o)
	finishEvent(r.Recorder, b, "Backup", string(phase), phase == backupv1alpha1.BackupFailed, o)
}

// cleanUp removes what a finished backup no longer needs (moverLifecycle.cleanUp), reports it to
// Che's Dashboard (dashboard.go), then applies retention to its workspace. It is the one place every
// finished backup passes through, after its final status is written.
func (r *WorkspaceBackupReconciler) cleanUp(ctx context.Context, b *backupv1alpha1.WorkspaceBackup) error {
	if err := r.movers.cleanUp(ctx, b, b.Status.JobName, b.Status.Phase == backupv1alpha1.BackupSucceeded); err != nil {
		return err
	}
	if err := r.reportToDashboard(ctx, b); err != nil {
		return err
	}
	if err := r.applyRetention(ctx, b); err != nil {
		return err
	}
	r.expected.markCleaned(b.UID)
	return nil
}

// SetupWithManager registers the reconciler and its watches.
func (r *WorkspaceBackupReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.expected == nil {
		r.expected = newExpectations()
	}
	r.throttle = &throttle{expected: r.expected}
	if r.restores == nil {
		r.restores = newRestoreLocks()
	}
	r.movers = &moverLifecycle{client: r.Client, reader: r.APIReader, opts: r.Options}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &backupv1alpha1.WorkspaceBackup{}, indexBackupWorkspace,
		func(o client.Object) []string {
			return []string{o.(*backupv1alpha1.WorkspaceBackup).Spec.WorkspaceName}
		}); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&backupv1alpha1.WorkspaceBackup{}).
		Owns(&batchv1.Job{}).
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(podOwner(annotationBackup))).
		Watches(&dwo.DevWorkspace{}, handler.EnqueueRequestsFromMapFunc(r.backupsOfWorkspace)).
		Watches(&backupv1alpha1.WorkspaceBackup{}, handler.EnqueueRequestsFromMapFunc(r.waitingOfSamePolicy)).
		Watches(&backupv1alpha1.WorkspaceRestore{}, handler.EnqueueRequestsFromMapFunc(r.backupsAfterRestore)).
		Named("workspacebackup").
		Complete(r)
}

// backupsOfWorkspace maps a DevWorkspace to the unfinished backups it affects: its own, and with
// common storage every unfinished backup in the namespace (they share the PVC).
func (r *WorkspaceBackupReconciler) backupsOfWorkspace(ctx context.Context, obj client.Object) []ctrl.Request {
	opts := []client.ListOption{client.InNamespace(obj.GetNamespace())}
	if dw, ok := obj.(*dwo.DevWorkspace); ok {
		if st := storageTypeOf(dw); st == storagePerWorkspace || st == storageEphemeral || st == storageAsync {
			opts = append(opts, client.MatchingFields{indexBackupWorkspace: obj.GetName()})
		}
	}
	list := &backupv1alpha1.WorkspaceBackupList{}
	if err := r.List(ctx, list, opts...); err != nil {
		logf.FromContext(ctx).Error(err, "list backups of a DevWorkspace")
		return nil
	}
	return requestsFor(list.Items, func(b *backupv1alpha1.WorkspaceBackup) bool { return !b.Status.Phase.Finished() })
}

// backupsAfterRestore wakes the unfinished backups of a workspace when its restore finishes.
func (r *WorkspaceBackupReconciler) backupsAfterRestore(ctx context.Context, obj client.Object) []ctrl.Request {
	wr, ok := obj.(*backupv1alpha1.WorkspaceRestore)
	if !ok || !wr.Status.Phase.Finished() {
		return nil
	}
	list := &backupv1alpha1.WorkspaceBackupList{}
	if err := r.List(ctx, list, client.InNamespace(wr.Namespace), client.MatchingFields{indexBackupWorkspace: wr.Spec.WorkspaceName}); err != nil {
		logf.FromContext(ctx).Error(err, "list backups of a restored DevWorkspace")
		return nil
	}
	return requestsFor(list.Items, func(b *backupv1alpha1.WorkspaceBackup) bool { return !b.Status.Phase.Finished() })
}

// waitingOfSamePolicy wakes the backups waiting for a concurrency slot when one of their policy's
// backups finishes.
func (r *WorkspaceBackupReconciler) waitingOfSamePolicy(ctx context.Context, obj client.Object) []ctrl.Request {
	b, ok := obj.(*backupv1alpha1.WorkspaceBackup)
	if !ok || !b.Status.Phase.Finished() {
		return nil
	}
	return r.throttle.waiting(ctx, r.Client, b.Spec.PolicyName, r.maxConcurrent(ctx, b.Spec.PolicyName))
}

// maxConcurrent is the policy's maxConcurrentBackups from the cache (its default when the policy
// cannot be read: the woken backups then fail PolicyNotFound on their own).
func (r *WorkspaceBackupReconciler) maxConcurrent(ctx context.Context, policyName string) int {
	policy := &backupv1alpha1.BackupPolicy{}
	if err := r.Get(ctx, client.ObjectKey{Name: policyName}, policy); err != nil || policy.Spec.MaxConcurrentBackups < 1 {
		return defaultMaxConcurrentBackups
	}
	return int(policy.Spec.MaxConcurrentBackups)
}

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
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
	"github.com/dwbackup/devworkspace-backup-operator/internal/dwo"
)

// WorkspaceRestoreReconciler restores a backup into a stopped workspace's storage.
type WorkspaceRestoreReconciler struct {
	client.Client
	// APIReader reads without the cache: Secrets are never listed or watched.
	APIReader client.Reader
	Scheme    *runtime.Scheme
	Recorder  events.EventRecorder
	Options
	movers *moverLifecycle
	// restores are the workspaces a restore of this process is writing (shared with the backup reconciler).
	restores *restoreLocks
	// metrics counts each restore once, when its final phase is written (metrics.go).
	metrics *Metrics
}

// +kubebuilder:rbac:groups=backup.dwbackup.io,resources=workspacerestores,verbs=get;list;watch
// +kubebuilder:rbac:groups=backup.dwbackup.io,resources=workspacerestores/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=persistentvolumeclaims,verbs=create

// Reconcile reads the restore, decides the next step, acts, and patches status once.
func (r *WorkspaceRestoreReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	restore := &backupv1alpha1.WorkspaceRestore{}
	if err := r.Get(ctx, req.NamespacedName, restore); err != nil {
		if apierrors.IsNotFound(err) {
			r.restores.releaseAll(req.Namespace, req.Name) // deleted while it held its workspace
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if restore.Status.Phase.Finished() || !restore.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.cleanUp(ctx, restore)
	}
	before := restore.Status.DeepCopy()
	result, err := r.advance(ctx, restore)
	if t, ok := asTerminal(err); ok {
		r.finish(restore, backupv1alpha1.RestoreFailed, t.outcome())
		result, err = ctrl.Result{}, nil
	}
	if !equality.Semantic.DeepEqual(*before, restore.Status) {
		patch := &backupv1alpha1.WorkspaceRestore{ObjectMeta: restore.ObjectMeta, Status: *before}
		stale, perr := patchStatus(ctx, r.Client, restore, patch)
		if stale || perr != nil {
			return ctrl.Result{}, errors.Join(err, perr)
		}
		// The optimistic lock lets only one write move a restore from unfinished to final.
		if restore.Status.Phase.Finished() && !before.Phase.Finished() {
			r.metrics.restoreFinished(restore)
		}
	}
	if err == nil && restore.Status.Phase.Finished() {
		err = r.cleanUp(ctx, restore)
	}
	return result, err
}

// advance moves an unfinished restore one step; a terminal error ends it Failed.
func (r *WorkspaceRestoreReconciler) advance(ctx context.Context, wr *backupv1alpha1.WorkspaceRestore) (ctrl.Result, error) {
	ws, err := lookupWorkspace(ctx, r.Client, r.APIReader, wr.Namespace, wr.Spec.WorkspaceName)
	if err != nil {
		return ctrl.Result{}, err
	}
	if wr.Status.Phase == backupv1alpha1.RestoreRunning {
		return r.watchJob(ctx, wr, ws)
	}
	src, policy, err := r.resolveSource(ctx, wr)
	if err != nil {
		return ctrl.Result{}, err
	}
	if src.Digest == "" {
		// Always restored by digest: the one the registry gives the tag now, recorded before the
		// Job runs (a pod's report of what it pulled is never trusted).
		desc, err := resolveArtifact(ctx, r.APIReader, r.OperatorNamespace, policy, wr.Namespace, src.Reference)
		if err := r.movers.retryOrGiveUp(wr.UID, err, "resolving the source in the registry"); err != nil {
			return ctrl.Result{}, err
		}
		src.Digest = desc.Digest.String()
	}
	wr.Status.Source = &src
	return r.start(ctx, wr, policy, ws)
}

// resolveSource finds the artifact and the policy whose credentials pull it, or the terminal error
// (BackupNotFound, BackupNotSucceeded, PolicyNotFound, PolicyNotApplicable). A backup named by
// spec.backupName is held to the same tenancy rule as spec.artifactReference.
func (r *WorkspaceRestoreReconciler) resolveSource(ctx context.Context, wr *backupv1alpha1.WorkspaceRestore) (
	backupv1alpha1.RestoreSource, *backupv1alpha1.BackupPolicy, error) {
	src := backupv1alpha1.RestoreSource{Reference: wr.Spec.ArtifactReference}
	policyName, field := wr.Spec.PolicyName, "spec.artifactReference"
	if wr.Spec.BackupName != "" {
		b := &backupv1alpha1.WorkspaceBackup{}
		key := client.ObjectKey{Namespace: wr.Namespace, Name: wr.Spec.BackupName}
		err := r.Get(ctx, key, b)
		if err != nil || !restorable(b) {
			// These failures are terminal: confirm them with the API server, since the cache may
			// not show yet a backup that was created or finished a moment ago.
			err = r.APIReader.Get(ctx, key, b)
		}
		switch {
		case apierrors.IsNotFound(err):
			return src, nil, terminalf(backupv1alpha1.ReasonBackupNotFound,
				"spec.backupName: WorkspaceBackup %s/%s not found", wr.Namespace, wr.Spec.BackupName)
		case err != nil:
			return src, nil, fmt.Errorf("read WorkspaceBackup %s: %w", key, err)
		case !restorable(b):
			return src, nil, terminalf(backupv1alpha1.ReasonBackupNotSucceeded,
				"spec.backupName: WorkspaceBackup %s is %s, not Succeeded; only a successful backup can be restored", b.Name, b.Status.Phase)
		}
		src = backupv1alpha1.RestoreSource{Reference: b.Status.Artifact.Reference, Digest: b.Status.Artifact.Digest}
		policyName, field = b.Spec.PolicyName, "spec.backupName"
	}
	policy, err := getApplicablePolicy(ctx, r.Client, r.APIReader, policyName, wr.Namespace)
	if err != nil {
		return src, nil, err
	}
	if !referenceAllowed(src.Reference, policy, wr.Namespace) {
		return src, nil, terminalf(backupv1alpha1.ReasonPolicyNotApplicable,
			"%s: %s is not an artifact of one workspace under %s (policy %s; spec.allowCrossNamespaceRestore: %v)",
			field, src.Reference, artifactRepository(policy.Spec.Registry.Repository, wr.Namespace, ""), policy.Name,
			policy.Spec.AllowCrossNamespaceRestore)
	}
	if _, digest, ok := strings.Cut(src.Reference, "@"); ok {
		src.Digest = digest
	}
	return src, policy, nil
}

// restorable: a Succeeded backup with an artifact reference.
func restorable(b *backupv1alpha1.WorkspaceBackup) bool {
	return b.Status.Phase == backupv1alpha1.BackupSucceeded && b.Status.Artifact != nil && b.Status.Artifact.Reference != ""
}

// referenceAllowed: an artifact reference names exactly one repository segment (a workspace)
// below <repository>/<namespace>/, then a tag or a digest; with allowCrossNamespaceRestore the
// namespace segment may be another namespace. Nothing deeper, which could be another policy's
// repository, and nothing that is not a valid reference.
func referenceAllowed(reference string, policy *backupv1alpha1.BackupPolicy, namespace string) bool {
	rest, ok := strings.CutPrefix(reference, policy.Spec.Registry.Repository+"/")
	if !ok {
		return false
	}
	ns, rest, ok := strings.Cut(rest, "/")
	if !ok || (ns != namespace && !policy.Spec.AllowCrossNamespaceRestore) {
		return false
	}
	workspace := rest
	if i := strings.IndexAny(rest, ":@"); i >= 0 {
		workspace = rest[:i]
	}
	if workspace == "" || strings.Contains(workspace, "/") {
		return false
	}
	_, err := name.ParseReference(reference, name.StrictValidation)
	return err == nil
}

// pullReference is what the mover pulls: always by digest when it is known.
func pullReference(src backupv1alpha1.RestoreSource) string {
	if src.Digest == "" || strings.Contains(src.Reference, "@") {
		return src.Reference
	}
	repo := src.Reference
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo = repo[:i]
	}
	return repo + "@" + src.Digest
}

// restoreStorage is the claim a restore writes into, found as for a backup. A workspace that has
// never started has none yet: the claim is prepared as DevWorkspace Operator would make it on the
// first start (preparestorage.go), which then finds it and mounts it with the files in place.
// waiting, when not empty, says what the restore waits for.
func (r *WorkspaceRestoreReconciler) restoreStorage(ctx context.Context, wr *backupv1alpha1.WorkspaceRestore,
	ws workspace) (st resolvedStorage, waiting string, err error) {
	if !ws.HasStorage() {
		return st, "", terminalf(backupv1alpha1.ReasonNoWorkspaceStorage,
			"DevWorkspace %s uses %s storage, which keeps no files on a PVC: there is nothing to restore into", ws.Name, ws.StorageType)
	}
	if ws.ID == "" {
		return st, fmt.Sprintf("DevWorkspace %s has no status.devworkspaceId yet: DevWorkspace Operator gives every workspace "+
			"one when it first sees it, started or not, and the restore starts then (is DevWorkspace Operator running?)", ws.Name), nil
	}
	if st, err = locateClaim(ctx, r.Client, r.APIReader, r.DWONamespace, ws); err != nil {
		return st, "", err
	}
	if st.pvc == nil {
		if st.pvc, err = prepareClaim(ctx, r.Client, r.APIReader, ws, st, wr.UID); err != nil {
			return st, "", err
		}
		r.Recorder.Eventf(wr, nil, corev1.EventTypeNormal, "StoragePrepared", "Restore",
			"DevWorkspace %s has never started: created PersistentVolumeClaim %s (%s) as DevWorkspace Operator would",
			ws.Name, st.pvc.Name, st.pvc.Spec.Resources.Requests.Storage())
	}
	if st.pvc.Status.Phase != corev1.ClaimBound && st.pvc.Annotations[annotationPreparedFor] == "" {
		return st, fmt.Sprintf("PersistentVolumeClaim %s/%s is %s, not Bound; the restore starts when it is",
			ws.Namespace, st.pvc.Name, st.pvc.Status.Phase), nil
	}
	return st, "", nil
}

// start checks the workspace and storage, takes the safety backup for an overwrite, and creates
// the restore Job.
func (r *WorkspaceRestoreReconciler) start(ctx context.Context, wr *backupv1alpha1.WorkspaceRestore,
	policy *backupv1alpha1.BackupPolicy, ws *workspace) (ctrl.Result, error) {
	if ws == nil {
		return ctrl.Result{}, terminalf(backupv1alpha1.ReasonWorkspaceNotFound,
			"spec.workspaceName: DevWorkspace %s/%s not found", wr.Namespace, wr.Spec.WorkspaceName)
	}
	if !ws.Stopped() {
		// Never write into a running workspace's volume; the DevWorkspace watch wakes this restore.
		r.wait(wr, backupv1alpha1.ReasonWorkspaceRunning, fmt.Sprintf("waiting for DevWorkspace %s to stop", ws.Name))
		return ctrl.Result{}, nil
	}
	st, waiting, err := r.restoreStorage(ctx, wr, *ws)
	if err != nil {
		return ctrl.Result{}, err
	}
	if waiting != "" {
		r.wait(wr, backupv1alpha1.ReasonWaitingForWorkspaceStorage, waiting)
		return ctrl.Result{RequeueAfter: 10 * time.Second}, nil
	}
	if wr.Spec.Overwrite {
		if done, err := r.safetyBackup(ctx, wr, policy); !done || err != nil {
			return ctrl.Result{}, err
		}
	}
	// From here until it finishes, this restore owns the workspace's storage (exclusive.go).
	if holder := r.restores.acquire(wr.Namespace, wr.Spec.WorkspaceName, wr.Name); holder != "" {
		r.wait(wr, backupv1alpha1.ReasonWaitingForMover, fmt.Sprintf("WorkspaceRestore %s is restoring DevWorkspace %s", holder, ws.Name))
		return ctrl.Result{RequeueAfter: time.Minute}, nil
	}
	if other, err := otherMover(ctx, r.APIReader, wr); err != nil || other != "" {
		r.restores.release(wr.Namespace, wr.Spec.WorkspaceName, wr.Name)
		if err == nil {
			r.wait(wr, backupv1alpha1.ReasonWaitingForMover, fmt.Sprintf(
				"mover Job %s is using the storage of DevWorkspace %s; the restore starts when it ends", other, ws.Name))
		}
		// The other mover's backup or restore finishing wakes this one; look again soon anyway.
		return ctrl.Result{RequeueAfter: 10 * time.Second}, err
	}
	source := pullReference(*wr.Status.Source)
	job, err := r.movers.launch(ctx, moverRun{Owner: wr, Policy: policy, Workspace: *ws, Storage: st,
		JobName: childName("restore", wr.Name),
		Args: func(creds credentials) []string {
			return restoreArgs(st.location.Path, source, wr.Spec.Overwrite, creds.SecretName != "", creds.WithCA, policy.Spec.Registry.Insecure)
		}})
	if err != nil {
		r.restores.release(wr.Namespace, wr.Spec.WorkspaceName, wr.Name)
		return ctrl.Result{}, err
	}
	now := metav1.NewTime(r.Clock.Now())
	wr.Status.Phase = backupv1alpha1.RestoreRunning
	wr.Status.JobName = job.Name
	wr.Status.StartTime = &now
	record(&wr.Status.Message, &wr.Status.Conditions, wr.Generation, outcome{reason: backupv1alpha1.ReasonJobRunning,
		message: fmt.Sprintf("mover Job %s is restoring %s into %s/%s", job.Name, source, st.location.ClaimName, st.location.Path)})
	r.Recorder.Eventf(wr, nil, corev1.EventTypeNormal, "RestoreStarted", "Start", "%s", wr.Status.Message)
	return ctrl.Result{}, nil
}

// safetyBackup makes sure the current content is backed up before an overwrite. done is true
// once that backup Succeeded (or was Skipped because there was nothing to keep). The safety
// backup belongs to this restore: its name carries the restore's UID and it must carry the
// restore's UID label and workspace; any other backup of that name fails the restore.
func (r *WorkspaceRestoreReconciler) safetyBackup(ctx context.Context, wr *backupv1alpha1.WorkspaceRestore,
	policy *backupv1alpha1.BackupPolicy) (bool, error) {
	safetyName := childName(wr.Name, "pre-restore", shortUID(wr.UID))
	wr.Status.SafetyBackupName = safetyName
	b := &backupv1alpha1.WorkspaceBackup{}
	err := r.Get(ctx, client.ObjectKey{Namespace: wr.Namespace, Name: safetyName}, b)
	if apierrors.IsNotFound(err) {
		// No owner reference (newWorkspaceBackup): the safety backup must outlive the restore.
		b = newWorkspaceBackup(wr.Namespace, safetyName, wr.Spec.WorkspaceName, "", policy.Name, backupv1alpha1.TriggerPreRestore)
		b.Labels[backupv1alpha1.LabelRestoreUID] = string(wr.UID)
		if err := r.Create(ctx, b); err != nil && !apierrors.IsAlreadyExists(err) {
			return false, fmt.Errorf("create safety backup %s: %w", safetyName, err)
		}
		r.wait(wr, backupv1alpha1.ReasonWaitingForSafetyBackup, fmt.Sprintf("backing up the current content first (WorkspaceBackup %s)", safetyName))
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if b.Labels[backupv1alpha1.LabelRestoreUID] != string(wr.UID) || b.Spec.WorkspaceName != wr.Spec.WorkspaceName ||
		b.Labels[backupv1alpha1.LabelTrigger] != string(backupv1alpha1.TriggerPreRestore) {
		return false, terminalf(backupv1alpha1.ReasonSafetyBackupConflict,
			"WorkspaceBackup %s was not made as this restore's safety backup of DevWorkspace %s, "+
				"so nothing was overwritten; delete it or restore under another name", safetyName, wr.Spec.WorkspaceName)
	}
	switch b.Status.Phase {
	case backupv1alpha1.BackupSucceeded, backupv1alpha1.BackupSkipped:
		return true, nil
	case backupv1alpha1.BackupFailed:
		return false, terminalf(backupv1alpha1.ReasonSafetyBackupFailed,
			"the safety backup %s failed (%s), so nothing was overwritten", safetyName, b.Status.Message)
	default:
		r.wait(wr, backupv1alpha1.ReasonWaitingForSafetyBackup, fmt.Sprintf("backing up the current content first (WorkspaceBackup %s)", safetyName))
		return false, nil
	}
}

// watchJob follows a running restore: a person starting the workspace wins; otherwise the
// mover's result is recorded when the Job ends.
func (r *WorkspaceRestoreReconciler) watchJob(ctx context.Context, wr *backupv1alpha1.WorkspaceRestore, ws *workspace) (ctrl.Result, error) {
	p, err := r.movers.supervise(ctx, wr, wr.Spec.WorkspaceName, ws, wr.Status.JobName)
	switch {
	case err != nil:
		return ctrl.Result{}, err
	case p.stopped != "":
		msg := p.stopped + "; the restore was stopped, so the volume may be partly restored"
		if wr.Status.SafetyBackupName != "" {
			msg += fmt.Sprintf("; WorkspaceBackup %s holds the previous content", wr.Status.SafetyBackupName)
		}
		return ctrl.Result{}, terminalf(backupv1alpha1.ReasonWorkspaceStarted, "%s", msg)
	case p.running:
		return ctrl.Result{RequeueAfter: p.requeue}, nil
	case p.failure != nil:
		return ctrl.Result{}, p.failure
	case !p.succeeded:
		return ctrl.Result{}, failedResult(p)
	}
	// The counts come from the pod; the source digest stays the one recorded before the Job.
	msg := fmt.Sprintf("mover Job %s succeeded but its result was unreadable", p.jobName)
	if p.hasResult {
		wr.Status.Files, wr.Status.Bytes = p.result.Files, p.result.Bytes
		msg = fmt.Sprintf("restored %d files (%d bytes) from %s", p.result.Files, p.result.Bytes, pullReference(*wr.Status.Source))
	}
	r.finish(wr, backupv1alpha1.RestoreSucceeded, outcome{ready: true, reason: backupv1alpha1.ReasonSucceeded, message: msg})
	return ctrl.Result{}, nil
}

// wait keeps the restore Pending with a reason.
func (r *WorkspaceRestoreReconciler) wait(wr *backupv1alpha1.WorkspaceRestore, reason, message string) {
	wr.Status.Phase = backupv1alpha1.RestorePending
	record(&wr.Status.Message, &wr.Status.Conditions, wr.Generation, outcome{reason: reason, message: message})
}

// finish records a final phase with its outcome, completion time and an Event.
func (r *WorkspaceRestoreReconciler) finish(wr *backupv1alpha1.WorkspaceRestore, phase backupv1alpha1.RestorePhase, o outcome) {
	now := metav1.NewTime(r.Clock.Now())
	wr.Status.Phase = phase
	wr.Status.CompletionTime = &now
	record(&wr.Status.Message, &wr.Status.Conditions, wr.Generation, o)
	finishEvent(r.Recorder, wr, "Restore", string(phase), phase == backupv1alpha1.RestoreFailed, o)
}

// cleanUp removes what a finished restore no longer needs (moverLifecycle.cleanUp) and frees its
// workspace.
func (r *WorkspaceRestoreReconciler) cleanUp(ctx context.Context, wr *backupv1alpha1.WorkspaceRestore) error {
	if err := r.movers.cleanUp(ctx, wr, wr.Status.JobName, wr.Status.Phase == backupv1alpha1.RestoreSucceeded); err != nil {
		return err
	}
	r.restores.release(wr.Namespace, wr.Spec.WorkspaceName, wr.Name)
	return nil
}

// SetupWithManager registers the reconciler and its watches.
func (r *WorkspaceRestoreReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.restores == nil {
		r.restores = newRestoreLocks()
	}
	r.movers = &moverLifecycle{client: r.Client, reader: r.APIReader, opts: r.Options}
	return ctrl.NewControllerManagedBy(mgr).
		For(&backupv1alpha1.WorkspaceRestore{}).
		Owns(&batchv1.Job{}).
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(podOwner(annotationRestore))).
		Watches(&dwo.DevWorkspace{}, handler.EnqueueRequestsFromMapFunc(r.restoresOfWorkspace)).
		Watches(&backupv1alpha1.WorkspaceBackup{}, handler.EnqueueRequestsFromMapFunc(r.restoresWaitingFor)).
		Named("workspacerestore").
		Complete(r)
}

// restoresOfWorkspace maps a DevWorkspace to the unfinished restores of its namespace that target
// it or share its PVC.
func (r *WorkspaceRestoreReconciler) restoresOfWorkspace(ctx context.Context, obj client.Object) []ctrl.Request {
	list := &backupv1alpha1.WorkspaceRestoreList{}
	if err := r.List(ctx, list, client.InNamespace(obj.GetNamespace())); err != nil {
		logf.FromContext(ctx).Error(err, "list restores of a DevWorkspace")
		return nil
	}
	return requestsFor(list.Items, func(wr *backupv1alpha1.WorkspaceRestore) bool { return !wr.Status.Phase.Finished() })
}

// restoresWaitingFor maps a backup to the unfinished restores in its namespace that name it (as
// safety or source backup) or that may wait for it to leave their workspace's storage.
func (r *WorkspaceRestoreReconciler) restoresWaitingFor(ctx context.Context, obj client.Object) []ctrl.Request {
	b, ok := obj.(*backupv1alpha1.WorkspaceBackup)
	if !ok {
		return nil
	}
	list := &backupv1alpha1.WorkspaceRestoreList{}
	if err := r.List(ctx, list, client.InNamespace(b.Namespace)); err != nil {
		return nil
	}
	return requestsFor(list.Items, func(wr *backupv1alpha1.WorkspaceRestore) bool {
		return !wr.Status.Phase.Finished() && (wr.Status.SafetyBackupName == b.Name || wr.Spec.BackupName == b.Name ||
			wr.Spec.WorkspaceName == b.Spec.WorkspaceName)
	})
}

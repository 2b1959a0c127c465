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

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
	"github.com/dwbackup/devworkspace-backup-operator/internal/dwo"
	"github.com/dwbackup/devworkspace-backup-operator/internal/mover"
)

// WorkspaceRestoreReconciler restores a backup into a stopped workspace's storage.
type WorkspaceRestoreReconciler struct {
	client.Client
	// APIReader reads without the cache: Secrets are never listed or watched.
	APIReader client.Reader
	Scheme    *runtime.Scheme
	Recorder  events.EventRecorder
	Options
}

// +kubebuilder:rbac:groups=backup.dwbackup.io,resources=workspacerestores,verbs=get;list;watch
// +kubebuilder:rbac:groups=backup.dwbackup.io,resources=workspacerestores/status,verbs=get;update;patch

// Reconcile reads the restore, decides the next step, acts, and patches status once.
func (r *WorkspaceRestoreReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	restore := &backupv1alpha1.WorkspaceRestore{}
	if err := r.Get(ctx, req.NamespacedName, restore); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if restore.Status.Phase.Finished() || !restore.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.cleanUp(ctx, restore)
	}
	before := restore.Status.DeepCopy()
	result, err := r.advance(ctx, restore)
	if !equality.Semantic.DeepEqual(*before, restore.Status) {
		patch := &backupv1alpha1.WorkspaceRestore{ObjectMeta: restore.ObjectMeta, Status: *before}
		stale, perr := patchStatus(ctx, r.Client, restore, patch)
		if stale || perr != nil {
			return ctrl.Result{}, errors.Join(err, perr)
		}
	}
	if err == nil && restore.Status.Phase.Finished() {
		err = r.cleanUp(ctx, restore)
	}
	return result, err
}

// advance moves an unfinished restore one step.
func (r *WorkspaceRestoreReconciler) advance(ctx context.Context, wr *backupv1alpha1.WorkspaceRestore) (ctrl.Result, error) {
	ws, err := lookupWorkspace(ctx, r.Client, wr.Namespace, wr.Spec.WorkspaceName)
	if err != nil {
		return ctrl.Result{}, err
	}
	if wr.Status.Phase == backupv1alpha1.RestoreRunning {
		return r.watchJob(ctx, wr, ws)
	}
	src, policy, o := r.resolveSource(ctx, wr)
	if o != nil {
		r.finish(wr, backupv1alpha1.RestoreFailed, *o)
		return ctrl.Result{}, nil
	}
	wr.Status.Source = &src
	return r.start(ctx, wr, policy, ws)
}

// resolveSource finds the artifact and the policy whose credentials pull it, or the outcome that
// fails the restore (BackupNotFound, BackupNotSucceeded, PolicyNotFound, PolicyNotApplicable).
func (r *WorkspaceRestoreReconciler) resolveSource(ctx context.Context, wr *backupv1alpha1.WorkspaceRestore) (
	backupv1alpha1.RestoreSource, *backupv1alpha1.BackupPolicy, *outcome) {
	if wr.Spec.BackupName != "" {
		b := &backupv1alpha1.WorkspaceBackup{}
		key := client.ObjectKey{Namespace: wr.Namespace, Name: wr.Spec.BackupName}
		err := r.Get(ctx, key, b)
		if err != nil || !restorable(b) {
			// These failures are terminal: confirm them with the API server, since the cache may
			// not show yet a backup that was created or finished a moment ago.
			err = r.APIReader.Get(ctx, key, b)
		}
		if err != nil {
			return backupv1alpha1.RestoreSource{}, nil, &outcome{stalled: true, reason: backupv1alpha1.ReasonBackupNotFound,
				message: fmt.Sprintf("spec.backupName: WorkspaceBackup %s/%s not found", wr.Namespace, wr.Spec.BackupName)}
		}
		if !restorable(b) {
			return backupv1alpha1.RestoreSource{}, nil, &outcome{stalled: true, reason: backupv1alpha1.ReasonBackupNotSucceeded,
				message: fmt.Sprintf("spec.backupName: WorkspaceBackup %s is %s, not Succeeded; only a successful backup can be restored",
					b.Name, b.Status.Phase)}
		}
		policy, o := getApplicablePolicy(ctx, r.Client, b.Spec.PolicyName, wr.Namespace)
		if o != nil {
			return backupv1alpha1.RestoreSource{}, nil, o
		}
		return backupv1alpha1.RestoreSource{Reference: b.Status.Artifact.Reference, Digest: b.Status.Artifact.Digest}, policy, nil
	}
	policy, o := getApplicablePolicy(ctx, r.Client, wr.Spec.PolicyName, wr.Namespace)
	if o != nil {
		return backupv1alpha1.RestoreSource{}, nil, o
	}
	if !referenceAllowed(wr.Spec.ArtifactReference, policy, wr.Namespace) {
		return backupv1alpha1.RestoreSource{}, nil, &outcome{stalled: true, reason: backupv1alpha1.ReasonPolicyNotApplicable,
			message: fmt.Sprintf("spec.artifactReference must lie under %s (policy %s does not set spec.allowCrossNamespaceRestore)",
				artifactRepository(policy.Spec.Registry.Repository, wr.Namespace, ""), policy.Name)}
	}
	src := backupv1alpha1.RestoreSource{Reference: wr.Spec.ArtifactReference}
	if _, digest, ok := strings.Cut(wr.Spec.ArtifactReference, "@"); ok {
		src.Digest = digest
	}
	return src, policy, nil
}

// restorable: a Succeeded backup with an artifact reference.
func restorable(b *backupv1alpha1.WorkspaceBackup) bool {
	return b.Status.Phase == backupv1alpha1.BackupSucceeded && b.Status.Artifact != nil && b.Status.Artifact.Reference != ""
}

// referenceAllowed: an artifact must lie under <repository>/<namespace>/ unless the policy allows
// restores across namespaces, and always under the policy's repository.
func referenceAllowed(reference string, policy *backupv1alpha1.BackupPolicy, namespace string) bool {
	prefix := policy.Spec.Registry.Repository + "/"
	if !policy.Spec.AllowCrossNamespaceRestore {
		prefix += namespace + "/"
	}
	return strings.HasPrefix(reference, prefix) && !strings.Contains(strings.TrimPrefix(reference, prefix), "..")
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

// start checks the workspace and storage, takes the safety backup for an overwrite, and creates
// the restore Job.
func (r *WorkspaceRestoreReconciler) start(ctx context.Context, wr *backupv1alpha1.WorkspaceRestore,
	policy *backupv1alpha1.BackupPolicy, ws *workspace) (ctrl.Result, error) {
	if ws == nil {
		r.finish(wr, backupv1alpha1.RestoreFailed, outcome{stalled: true, reason: backupv1alpha1.ReasonWorkspaceNotFound,
			message: fmt.Sprintf("spec.workspaceName: DevWorkspace %s/%s not found", wr.Namespace, wr.Spec.WorkspaceName)})
		return ctrl.Result{}, nil
	}
	if !ws.Stopped() {
		// Never write into a running workspace's volume; the DevWorkspace watch wakes this restore.
		r.wait(wr, backupv1alpha1.ReasonWorkspaceRunning, fmt.Sprintf("waiting for DevWorkspace %s to stop", ws.Name))
		return ctrl.Result{}, nil
	}
	st, skip, err := resolveWorkspaceStorage(ctx, r.Client, r.APIReader, r.DWONamespace, *ws)
	if err != nil {
		return ctrl.Result{}, err
	}
	if skip != "" {
		r.finish(wr, backupv1alpha1.RestoreFailed, outcome{stalled: true, reason: backupv1alpha1.ReasonNoWorkspaceStorage,
			message: skip + ". A workspace that has never started has no storage yet: to restore into a new workspace, " +
				"set its attributes controller.devfile.io/restore-workspace: 'true' and " +
				"controller.devfile.io/restore-source-image: " + wr.Status.Source.Reference + " and start it (DWO restores on start)"})
		return ctrl.Result{}, nil
	}
	if wr.Spec.Overwrite {
		if done, err := r.safetyBackup(ctx, wr, policy); !done || err != nil {
			return ctrl.Result{}, err
		}
	}
	creds, err := ensureCredentials(ctx, r.Client, r.APIReader, r.OperatorNamespace, policy, wr, childName(wr.Name, "registry"))
	if err != nil {
		if cerr, ok := errors.AsType[*credentialsError](err); ok {
			r.finish(wr, backupv1alpha1.RestoreFailed, outcome{stalled: true, reason: backupv1alpha1.ReasonSecretNotFound, message: cerr.Error()})
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	node, err := attachedNode(ctx, r.Client, r.APIReader, st.pvc)
	if err != nil {
		return ctrl.Result{}, err
	}
	psc := st.dwo.PodSecurityContext
	if policy.Spec.Job.PodSecurityContext != nil {
		psc = policy.Spec.Job.PodSecurityContext
	}
	job := buildMoverJob(moverJobParams{
		Name: childName("restore", wr.Name), Namespace: wr.Namespace, Owner: wr, Image: r.MoverImage,
		Args: restoreArgs(st.location.Path, pullReference(*wr.Status.Source), wr.Spec.Overwrite,
			creds.SecretName != "", creds.WithCA, policy.Spec.Registry.Insecure),
		ClaimName: st.location.ClaimName, ReadOnly: false,
		CredentialsSecret: creds.SecretName, WithCA: creds.WithCA,
		Job: policy.Spec.Job, PodSecurityContext: psc, NodeName: node, HostNetwork: r.MoverHostNetwork,
	})
	if err := controllerutil.SetControllerReference(wr, job, r.Scheme); err != nil {
		return ctrl.Result{}, err
	}
	if err := r.Create(ctx, job); err != nil && !apierrors.IsAlreadyExists(err) {
		return ctrl.Result{}, fmt.Errorf("create mover Job %s: %w", job.Name, err)
	}
	now := metav1.NewTime(r.Clock.Now())
	wr.Status.Phase = backupv1alpha1.RestoreRunning
	wr.Status.JobName = job.Name
	wr.Status.StartTime = &now
	record(&wr.Status.Message, &wr.Status.Conditions, wr.Generation, outcome{reason: backupv1alpha1.ReasonJobRunning,
		message: fmt.Sprintf("mover Job %s is restoring %s into %s/%s", job.Name,
			pullReference(*wr.Status.Source), st.location.ClaimName, st.location.Path)})
	r.Recorder.Eventf(wr, nil, corev1.EventTypeNormal, "RestoreStarted", "Start", "%s", wr.Status.Message)
	return ctrl.Result{}, nil
}

// safetyBackup makes sure the current content is backed up before an overwrite. done is true
// once that backup Succeeded (or was Skipped because there was nothing to keep).
func (r *WorkspaceRestoreReconciler) safetyBackup(ctx context.Context, wr *backupv1alpha1.WorkspaceRestore,
	policy *backupv1alpha1.BackupPolicy) (bool, error) {
	name := childName(wr.Name, "pre-restore")
	wr.Status.SafetyBackupName = name
	b := &backupv1alpha1.WorkspaceBackup{}
	err := r.Get(ctx, client.ObjectKey{Namespace: wr.Namespace, Name: name}, b)
	if apierrors.IsNotFound(err) {
		// No owner reference: the safety backup must outlive the restore.
		b = &backupv1alpha1.WorkspaceBackup{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: wr.Namespace,
				Labels: map[string]string{
					backupv1alpha1.LabelPolicy:  policy.Name,
					backupv1alpha1.LabelTrigger: string(backupv1alpha1.TriggerPreRestore),
				},
				Finalizers: []string{backupv1alpha1.FinalizerArtifact},
			},
			Spec: backupv1alpha1.WorkspaceBackupSpec{WorkspaceName: wr.Spec.WorkspaceName, PolicyName: policy.Name},
		}
		if len(wr.Spec.WorkspaceName) <= maxNameLength {
			b.Labels[backupv1alpha1.LabelWorkspace] = wr.Spec.WorkspaceName
		}
		if err := r.Create(ctx, b); err != nil && !apierrors.IsAlreadyExists(err) {
			return false, fmt.Errorf("create safety backup %s: %w", name, err)
		}
		r.wait(wr, backupv1alpha1.ReasonWaitingForSafetyBackup, fmt.Sprintf("backing up the current content first (WorkspaceBackup %s)", name))
		return false, nil
	}
	if err != nil {
		return false, err
	}
	switch b.Status.Phase {
	case backupv1alpha1.BackupSucceeded, backupv1alpha1.BackupSkipped:
		return true, nil
	case backupv1alpha1.BackupFailed:
		r.finish(wr, backupv1alpha1.RestoreFailed, outcome{stalled: true, reason: backupv1alpha1.ReasonSafetyBackupFailed,
			message: fmt.Sprintf("the safety backup %s failed (%s), so nothing was overwritten", name, b.Status.Message)})
		return false, nil
	default:
		r.wait(wr, backupv1alpha1.ReasonWaitingForSafetyBackup, fmt.Sprintf("backing up the current content first (WorkspaceBackup %s)", name))
		return false, nil
	}
}

// watchJob follows a running restore: a person starting the workspace wins; otherwise the
// mover's result is recorded when the Job ends.
func (r *WorkspaceRestoreReconciler) watchJob(ctx context.Context, wr *backupv1alpha1.WorkspaceRestore, ws *workspace) (ctrl.Result, error) {
	p, err := superviseJob(ctx, r.Client, r.APIReader, wr.Spec.WorkspaceName, ws, wr.Namespace, wr.Status.JobName)
	switch {
	case err != nil:
		return ctrl.Result{}, err
	case p.stopped != "":
		msg := p.stopped + "; the restore was stopped, so the volume may be partly restored"
		if wr.Status.SafetyBackupName != "" {
			msg += fmt.Sprintf("; WorkspaceBackup %s holds the previous content", wr.Status.SafetyBackupName)
		}
		r.finish(wr, backupv1alpha1.RestoreFailed, outcome{stalled: true, reason: backupv1alpha1.ReasonWorkspaceStarted, message: msg})
	case p.running:
		return ctrl.Result{RequeueAfter: p.requeue}, nil
	case p.failure != nil:
		r.finish(wr, backupv1alpha1.RestoreFailed, *p.failure)
	case p.hasResult && p.result.Phase == mover.PhaseSucceeded:
		wr.Status.Files, wr.Status.Bytes = p.result.Files, p.result.Bytes
		if p.result.Digest != "" {
			wr.Status.Source.Digest = p.result.Digest
		}
		r.finish(wr, backupv1alpha1.RestoreSucceeded, outcome{ready: true, reason: backupv1alpha1.ReasonSucceeded,
			message: fmt.Sprintf("restored %d files (%d bytes) from %s", p.result.Files, p.result.Bytes, pullReference(*wr.Status.Source))})
	case p.hasResult:
		r.finish(wr, backupv1alpha1.RestoreFailed, outcome{stalled: true, reason: p.result.Reason, message: p.result.Message})
	default: // succeeded without a readable result
		r.finish(wr, backupv1alpha1.RestoreSucceeded, outcome{ready: true, reason: backupv1alpha1.ReasonSucceeded,
			message: fmt.Sprintf("mover Job %s succeeded but its result was unreadable", p.jobName)})
	}
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

// cleanUp deletes the Secret copy, and the Job after a success (a failed Job stays for logs until
// the restore is deleted, which garbage-collects it through its owner reference).
func (r *WorkspaceRestoreReconciler) cleanUp(ctx context.Context, wr *backupv1alpha1.WorkspaceRestore) error {
	if err := deleteCredentialsCopy(ctx, r.Client, wr.Namespace, childName(wr.Name, "registry")); err != nil {
		return err
	}
	if wr.Status.Phase == backupv1alpha1.RestoreSucceeded {
		return deleteJob(ctx, r.Client, wr.Namespace, wr.Status.JobName)
	}
	return nil
}

// SetupWithManager registers the reconciler and its watches.
func (r *WorkspaceRestoreReconciler) SetupWithManager(mgr ctrl.Manager) error {
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

// restoresWaitingFor maps a safety backup (or a source backup) to the restores in its namespace
// that name it.
func (r *WorkspaceRestoreReconciler) restoresWaitingFor(ctx context.Context, obj client.Object) []ctrl.Request {
	list := &backupv1alpha1.WorkspaceRestoreList{}
	if err := r.List(ctx, list, client.InNamespace(obj.GetNamespace())); err != nil {
		return nil
	}
	return requestsFor(list.Items, func(wr *backupv1alpha1.WorkspaceRestore) bool {
		return !wr.Status.Phase.Finished() && (wr.Status.SafetyBackupName == obj.GetName() || wr.Spec.BackupName == obj.GetName())
	})
}

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
package v1alpha1

// Condition types, the same on every kind. Both carry observedGeneration.
const (
	// ConditionReady is True only when the object is done and good: a policy that is valid and able
	// to run, a backup that Succeeded or was Skipped, a restore that Succeeded. Otherwise False with
	// the current reason.
	ConditionReady = "Ready"
	// ConditionStalled is True when the object cannot progress without a change by a person: an
	// invalid spec or a terminal failure.
	ConditionStalled = "Stalled"
	// ConditionHistoryImported, on a policy with spec.importHistory: True once the import of the
	// registry's history ran to its end; False with ReasonRegistryListingUnsupported,
	// ReasonNamespacesMissing or ReasonImportFailed.
	ConditionHistoryImported = "HistoryImported"
	// ConditionDashboardReady, on a policy with spec.dashboard.enabled only: True when every
	// namespace the policy backs up has the Dashboard's Secret (or none is asked for); False with
	// the reason otherwise. Backups run either way.
	ConditionDashboardReady = "DashboardReady"
)

// Reasons of the Ready and Stalled conditions. The mover reports the reasons marked "mover" in its
// result; the controllers pass them through unchanged.
const (
	// ReasonValid: the policy is valid and able to run.
	ReasonValid = "Valid"
	// ReasonSuspended: the policy is valid but spec.suspend stops new slots.
	ReasonSuspended = "Suspended"
	// ReasonInvalidSchedule: spec.schedule does not parse.
	ReasonInvalidSchedule = "InvalidSchedule"
	// ReasonInvalidTimeZone: spec.timeZone is not a known IANA zone.
	ReasonInvalidTimeZone = "InvalidTimeZone"
	// ReasonInvalidSelector: spec.namespaceSelector or spec.workspaceSelector is not a valid selector.
	ReasonInvalidSelector = "InvalidSelector"
	// ReasonSecretNotFound: the registry credentials Secret is missing.
	ReasonSecretNotFound = "SecretNotFound"
	// ReasonInvalidSecret: the registry credentials Secret is not a kubernetes.io/dockerconfigjson
	// Secret with a .dockerconfigjson key.
	ReasonInvalidSecret = "InvalidSecret"
	// ReasonCABundleNotFound: the CA ConfigMap or its key is missing.
	ReasonCABundleNotFound = "CABundleNotFound"

	// ReasonWaitingForConcurrencySlot: the policy's maxConcurrentBackups backups are running.
	ReasonWaitingForConcurrencySlot = "WaitingForConcurrencySlot"
	// ReasonWorkspaceRunning: the workspace is not stopped; a manual backup or a restore waits for it.
	ReasonWorkspaceRunning = "WorkspaceRunning"
	// ReasonWaitingForSafetyBackup: an overwrite restore waits for its pre-restore backup.
	ReasonWaitingForSafetyBackup = "WaitingForSafetyBackup"
	// ReasonJobRunning: the mover Job runs.
	ReasonJobRunning = "JobRunning"
	// ReasonSucceeded: the backup or restore finished successfully.
	ReasonSucceeded = "Succeeded"
	// ReasonPolicyNotFound: spec.policyName names no BackupPolicy.
	ReasonPolicyNotFound = "PolicyNotFound"
	// ReasonPolicyNotApplicable: the policy's namespaceSelector does not select this namespace, or an
	// artifactReference lies outside this namespace's repository.
	ReasonPolicyNotApplicable = "PolicyNotApplicable"
	// ReasonWorkspaceNotFound: spec.workspaceName names no DevWorkspace.
	ReasonWorkspaceNotFound = "WorkspaceNotFound"
	// ReasonNoWorkspaceStorage (also mover): no PVC, a PVC that is not Bound, or no directory to
	// back up or restore into.
	ReasonNoWorkspaceStorage = "NoWorkspaceStorage"
	// ReasonPodCreationFailed: the mover pod could not be created (quota, admission).
	ReasonPodCreationFailed = "PodCreationFailed"
	// ReasonWorkspaceStarted: the workspace (or one sharing its volume) started or was deleted while
	// the mover ran; the Job was stopped so the developer is never held up.
	ReasonWorkspaceStarted = "WorkspaceStarted"
	// ReasonJobFailed: the mover Job failed without a readable result.
	ReasonJobFailed = "JobFailed"
	// ReasonDeadlineExceeded: the mover Job ran longer than job.activeDeadlineSeconds.
	ReasonDeadlineExceeded = "DeadlineExceeded"
	// ReasonBackupNotFound: spec.backupName names no WorkspaceBackup.
	ReasonBackupNotFound = "BackupNotFound"
	// ReasonBackupNotSucceeded: spec.backupName names a backup that did not succeed.
	ReasonBackupNotSucceeded = "BackupNotSucceeded"
	// ReasonSafetyBackupFailed: the pre-restore backup failed, so nothing was overwritten.
	ReasonSafetyBackupFailed = "SafetyBackupFailed"
	// ReasonSafetyBackupConflict: a WorkspaceBackup holds the safety backup's name but was not made
	// for this restore and workspace; nothing was overwritten.
	ReasonSafetyBackupConflict = "SafetyBackupConflict"
	// ReasonJobConflict: a Job with the mover Job's name exists that this object did not create; it
	// is never adopted, mounted or deleted.
	ReasonJobConflict = "JobConflict"
	// ReasonJobRefused: the API server refused the mover Job or its credentials copy (an admission
	// webhook or policy, a ResourceQuota, an invalid job override), or kept failing to create it.
	ReasonJobRefused = "JobRefused"
	// ReasonWaitingForRestore: a restore of the same workspace runs; the backup starts after it.
	ReasonWaitingForRestore = "WaitingForRestore"
	// ReasonWaitingForMover: another backup or restore of the same workspace runs; the restore
	// starts after it.
	ReasonWaitingForMover = "WaitingForMover"
	// ReasonArtifactNotFound (also mover): the reference names no artifact in the registry; for a
	// backup whose Job succeeded, the unique tag is missing, so the backup is not Succeeded.

	// ReasonUnauthorized (mover): the registry refused the credentials.
	ReasonUnauthorized = "Unauthorized"
	// ReasonRegistryUnreachable (mover): the registry could not be reached or kept failing.
	ReasonRegistryUnreachable = "RegistryUnreachable"
	// ReasonUnreadableFile (mover): a file could not be read; the message names it.
	ReasonUnreadableFile = "UnreadableFile"
	// ReasonTargetNotEmpty (mover): a restore without overwrite found files in the target.
	ReasonTargetNotEmpty = "TargetNotEmpty"
	// ReasonUnsafeEntry (mover): the archive holds an entry that would write outside the target.
	ReasonUnsafeEntry = "UnsafeEntry"
	// ReasonDigestMismatch (mover): the pulled content does not match its digest.
	ReasonDigestMismatch   = "DigestMismatch"
	ReasonArtifactNotFound = "ArtifactNotFound"
	// ReasonTagExists (mover): the unique tag already points at another artifact; nothing was
	// pushed under it and latest was not moved.
	ReasonTagExists = "TagExists"

	// ReasonImported: a policy's history import ran to its end; on a WorkspaceBackup, it was
	// imported from the registry.
	ReasonImported = "Imported"
	// ReasonRegistryListingUnsupported: the registry refused to list its repositories
	// (GET /v2/_catalog) or a repository's tags, so spec.importHistory cannot find the history.
	ReasonRegistryListingUnsupported = "RegistryListingUnsupported"
	// ReasonNamespacesMissing: artifacts of namespaces that do not exist were not imported; the
	// import runs again when one of them is created.
	ReasonNamespacesMissing = "NamespacesMissing"
	// ReasonWaitingForWorkspaceStorage: the workspace to restore into has no status.devworkspaceId
	// yet (DevWorkspace Operator has not seen it), or its PVC is not Bound; the restore waits.
	ReasonWaitingForWorkspaceStorage = "WaitingForWorkspaceStorage"
	// ReasonInvalidDevfile: the DevWorkspace's template cannot be read as DWO would (a volume size
	// that is not a quantity), so its storage cannot be prepared.
	ReasonInvalidDevfile = "InvalidDevfile"
	// ReasonImportFailed: the history import failed for a reason that may pass (the registry
	// unreachable); it is retried.
	ReasonImportFailed = "ImportFailed"

	// ReasonDashboardSynced (DashboardReady): the Dashboard's Secret is in every namespace the
	// policy backs up.
	ReasonDashboardSynced = "DashboardSynced"
	// ReasonDashboardSecretConflict (DashboardReady): a devworkspace-backup-registry-auth Secret
	// that the policy did not make (DWO's, or a person's) is in the namespaces the message names;
	// it is never overwritten or deleted.
	ReasonDashboardSecretConflict = "DashboardSecretConflict"
	// ReasonDashboardPushCredential (DashboardReady): spec.dashboard.authSecretName holds the same
	// credentials as spec.registry.authSecretName; nothing is copied and earlier copies are removed.
	ReasonDashboardPushCredential = "DashboardPushCredential"
)

// Labels, annotations and finalizers the operator sets.
const (
	// LabelPolicy on a WorkspaceBackup: the policy name.
	LabelPolicy = "backup.dwbackup.io/policy"
	// LabelWorkspace on a WorkspaceBackup: the DevWorkspace name.
	LabelWorkspace = "backup.dwbackup.io/workspace"
	// LabelWorkspaceID on a WorkspaceBackup: the DevWorkspace's devworkspaceId.
	LabelWorkspaceID = "backup.dwbackup.io/workspace-id"
	// LabelTrigger on a WorkspaceBackup: Scheduled, Manual, PreRestore or Imported.
	LabelTrigger = "backup.dwbackup.io/trigger"
	// LabelRestoreUID on a pre-restore safety backup: the UID of the WorkspaceRestore it was made
	// for; a restore accepts no other safety backup.
	LabelRestoreUID = "backup.dwbackup.io/restore-uid"
	// LabelExclude set to "true" on a DevWorkspace or its Namespace opts it out of every policy.
	LabelExclude = "backup.dwbackup.io/exclude"
	// LabelManagedBy on Jobs, Pods and Secret copies: the operator's children carry it.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// ManagedByValue is the value of LabelManagedBy.
	ManagedByValue = "devworkspace-backup-operator"
	// AnnotationPruned marks a WorkspaceBackup that retention deleted; only those lose their artifact.
	AnnotationPruned = "backup.dwbackup.io/pruned"
	// AnnotationSlot on a scheduled WorkspaceBackup: its schedule slot (RFC 3339, UTC), from which
	// the artifact's unique tag is derived.
	AnnotationSlot = "backup.dwbackup.io/slot"
	// AnnotationImportHistory on a BackupPolicy: a new value runs spec.importHistory again.
	AnnotationImportHistory = "backup.dwbackup.io/import-history"
	// FinalizerArtifact guards a WorkspaceBackup's registry content.
	FinalizerArtifact = "backup.dwbackup.io/artifact"

	// DashboardSecretName is the Secret Che's Dashboard (and DWO's restore) reads registry
	// credentials from in a workspace namespace.
	DashboardSecretName = "devworkspace-backup-registry-auth"
	// AnnotationDashboardSourceHash on a Dashboard Secret copy: the SHA-256 of the source Secret's
	// type and data it was copied from.
	AnnotationDashboardSourceHash = "backup.dwbackup.io/source-hash"
	// AnnotationLastBackupSuccessful, AnnotationLastBackupFinishedAt and AnnotationLastBackupError are
	// DWO's DevWorkspace annotations that Che's Dashboard reads: "true"/"false", RFC 3339 (with
	// nanoseconds when there are any), and the failure's message (at most 1024 characters).
	AnnotationLastBackupSuccessful = "controller.devfile.io/last-backup-successful"
	AnnotationLastBackupFinishedAt = "controller.devfile.io/last-backup-finished-at"
	AnnotationLastBackupError      = "controller.devfile.io/last-backup-error"
)

// Trigger says who made a WorkspaceBackup.
type Trigger string

const (
	// TriggerScheduled: a policy's schedule slot.
	TriggerScheduled Trigger = "Scheduled"
	// TriggerManual: a person (the default for a WorkspaceBackup without the label).
	TriggerManual Trigger = "Manual"
	// TriggerPreRestore: the safety backup before an overwrite restore; never pruned automatically.
	TriggerPreRestore Trigger = "PreRestore"
	// TriggerImported: created by a policy's history import from an artifact in the registry
	// (spec.importHistory); it runs no Job.
	TriggerImported Trigger = "Imported"
)

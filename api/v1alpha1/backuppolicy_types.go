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

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// BackupPolicySpec says when the storage of which stopped workspaces is backed up, where to, and how
// much history is kept.
// +kubebuilder:validation:XValidation:rule="!has(self.dashboard) || !has(self.dashboard.enabled) || !self.dashboard.enabled || !has(self.artifact) || !has(self.artifact.format) || self.artifact.format != 'layered' || (has(self.artifact.dwoCompatibleLatest) && self.artifact.dwoCompatibleLatest)",message="spec.dashboard.enabled with spec.artifact.format layered needs spec.artifact.dwoCompatibleLatest: Che's Dashboard restores latest with DevWorkspace Operator, which reads only the dwo format"
// +kubebuilder:validation:XValidation:rule="!has(self.dashboard) || !has(self.dashboard.authSecretName) || !has(self.registry.authSecretName) || self.dashboard.authSecretName != self.registry.authSecretName",message="spec.dashboard.authSecretName must not be spec.registry.authSecretName: the Dashboard's Secret is copied into every workspace namespace, so give it a read-only credential, never the push credential"
type BackupPolicySpec struct {
	// schedule is when backups run: a 5-field cron expression ("0 2 * * *") or one of @yearly,
	// @monthly, @weekly, @daily, @hourly, evaluated in timeZone. @every and TZ=/CRON_TZ= prefixes are
	// not accepted: set timeZone instead.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('TZ=') && !self.startsWith('CRON_TZ=')",message="schedule must not start with TZ= or CRON_TZ=; set spec.timeZone instead"
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('@every')",message="schedule @every is not supported; use a 5-field cron expression"
	// +kubebuilder:validation:XValidation:rule="self.matches('^(@(yearly|monthly|weekly|daily|hourly)|[0-9A-Za-z*/,?-]+( +[0-9A-Za-z*/,?-]+){4})$')",message="schedule must be a 5-field cron expression or one of @yearly, @monthly, @weekly, @daily, @hourly"
	Schedule string `json:"schedule"`

	// timeZone is the IANA time zone the schedule and the daily/weekly retention buckets are
	// evaluated in, for example Europe/Prague. Default UTC.
	// +optional
	// +kubebuilder:default=UTC
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$`
	TimeZone string `json:"timeZone,omitempty"`

	// suspend stops new schedule slots from creating backups; running backups finish.
	// +optional
	Suspend bool `json:"suspend,omitempty"`

	// startingDeadlineSeconds is how late a schedule slot may still be processed (for example after the
	// operator was down). An older slot is skipped, never replayed. Default 3600.
	// +optional
	// +kubebuilder:default=3600
	// +kubebuilder:validation:Minimum=0
	StartingDeadlineSeconds *int64 `json:"startingDeadlineSeconds,omitempty"`

	// namespaceSelector selects the Namespaces whose workspaces this policy backs up. Empty or unset
	// selects all namespaces.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`

	// workspaceSelector selects DevWorkspaces by their labels. Empty or unset selects all.
	// +optional
	WorkspaceSelector *metav1.LabelSelector `json:"workspaceSelector,omitempty"`

	// registry is the OCI registry the backups are pushed to.
	// +required
	Registry RegistrySpec `json:"registry"`

	// retention says how many backups of each workspace are kept.
	// +optional
	// +kubebuilder:default={}
	Retention RetentionSpec `json:"retention,omitzero"`

	// maxConcurrentBackups is the most backup Jobs of this policy running at once, cluster-wide.
	// Default 5.
	// +optional
	// +kubebuilder:default=5
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	MaxConcurrentBackups int32 `json:"maxConcurrentBackups,omitempty"`

	// allowCrossNamespaceRestore lets a WorkspaceRestore that names this policy pull an artifact of
	// another namespace. By default an artifactReference must lie under <repository>/<its namespace>/.
	// +optional
	AllowCrossNamespaceRestore bool `json:"allowCrossNamespaceRestore,omitempty"`

	// job holds the knobs of the mover Jobs this policy runs.
	// +optional
	// +kubebuilder:default={}
	Job JobSpec `json:"job,omitzero"`

	// importHistory brings back the history this policy's repository holds, for example after the
	// cluster was rebuilt: for every artifact this policy wrote (its tag grammar and manifest
	// annotations) that no WorkspaceBackup records, a Succeeded WorkspaceBackup with trigger
	// Imported is created in the workspace's namespace, when that namespace exists and the policy
	// selects it. The import runs once per spec generation, again when the annotation
	// backup.dwbackup.io/import-history changes, and when a namespace it skipped appears. The
	// registry must list its catalog and tags (docs/import.md).
	// +optional
	ImportHistory bool `json:"importHistory,omitempty"`

	// dashboard makes this policy's backups visible in Che's Dashboard, as DevWorkspace Operator's
	// own backups are (docs/dashboard.md).
	// +optional
	Dashboard *DashboardSpec `json:"dashboard,omitempty"`

	// artifact chooses how backups are stored in the registry. Unset means the single-layer format
	// DevWorkspace Operator writes (docs/mover-contract.md, "Artifact" and "Layered artifacts").
	// +optional
	// +kubebuilder:default={}
	Artifact ArtifactSpec `json:"artifact,omitzero"`
}

// HistoryImportStatus is what the last history import of a policy found.
type HistoryImportStatus struct {
	// observedGeneration is the spec generation the import ran for.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// request is the value of the backup.dwbackup.io/import-history annotation the import ran for.
	// +optional
	Request string `json:"request,omitempty"`

	// completionTime is when the import last ran to its end.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`

	// imported is the number of WorkspaceBackups the import created.
	// +optional
	Imported int32 `json:"imported,omitempty"`

	// alreadyPresent is the number of this policy's artifacts that a WorkspaceBackup already records.
	// +optional
	AlreadyPresent int32 `json:"alreadyPresent,omitempty"`

	// rejected is the number of tags in this policy's grammar whose manifest is not one this policy
	// wrote for that repository (another artifact type, or annotations naming another namespace,
	// workspace or time); they are left alone.
	// +optional
	Rejected int32 `json:"rejected,omitempty"`

	// skippedRepositories is the number of workspace repositories not read: their namespace does
	// not exist, is terminating, or is not selected by spec.namespaceSelector.
	// +optional
	SkippedRepositories int32 `json:"skippedRepositories,omitempty"`

	// missingNamespaces are namespaces (at most 50) whose artifacts were skipped because the
	// namespace does not exist; the import runs again when one of them is created.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=50
	MissingNamespaces []string `json:"missingNamespaces,omitempty"`
}

// DashboardSpec is what Che's Dashboard reads about backups, kept by the operator when enabled:
// the annotations controller.devfile.io/last-backup-successful, last-backup-finished-at and
// last-backup-error on each DevWorkspace after each finished backup, and a Secret
// devworkspace-backup-registry-auth in each namespace the policy backs up.
type DashboardSpec struct {
	// enabled turns on the DevWorkspace annotations and the namespace Secrets. Turning it off (or
	// deleting the policy) removes the Secrets the operator made; the annotations stay.
	// +optional
	Enabled bool `json:"enabled,omitempty"`

	// authSecretName is a kubernetes.io/dockerconfigjson Secret in the operator's namespace holding
	// a read-only credential for the registry, copied as devworkspace-backup-registry-auth into each
	// namespace the policy backs up, where the Dashboard reads it with the developer's rights. Never
	// the push credential of spec.registry.authSecretName. Unset: no Secret (the Dashboard reads the
	// registry anonymously).
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	AuthSecretName string `json:"authSecretName,omitempty"`
}

// DashboardStatus records the Secrets the operator made for Che's Dashboard, so it removes them
// when a namespace leaves the policy or the option is turned off, without listing Secrets.
type DashboardStatus struct {
	// secretHash is the SHA-256 of the type and data of spec.dashboard.authSecretName the copies
	// were last checked against; empty while copies for newly recorded namespaces are being made.
	// +optional
	SecretHash string `json:"secretHash,omitempty"`

	// namespaces are where the policy keeps a devworkspace-backup-registry-auth Secret: each holds
	// its copy, or a Secret it did not make that DashboardReady reports. A namespace is recorded
	// before its copy is created, and its copy is removed when it leaves this list.
	// +optional
	// +listType=set
	Namespaces []string `json:"namespaces,omitempty"`
}

// ArtifactFormat is the format of the artifacts a policy writes.
// +kubebuilder:validation:Enum=dwo;layered
type ArtifactFormat string

const (
	// ArtifactFormatDWO is one layer, devworkspace-backup.tar.gz, as DevWorkspace Operator writes it:
	// every backup after a change stores and uploads the whole tree again.
	ArtifactFormatDWO ArtifactFormat = "dwo"
	// ArtifactFormatLayered is one layer per group of files: a backup uploads only the groups that
	// changed since the previous backup and reuses the other layers, so history costs what changed.
	ArtifactFormatLayered ArtifactFormat = "layered"
)

// ArtifactSpec chooses the artifact format.
// +kubebuilder:validation:XValidation:rule="!has(self.dwoCompatibleLatest) || !self.dwoCompatibleLatest || self.format == 'layered'",message="dwoCompatibleLatest needs format: layered (the dwo format's latest already is DWO's)"
type ArtifactSpec struct {
	// format is dwo (default: one layer, what DevWorkspace Operator and Che's Dashboard read) or
	// layered (layers reused from the previous backup; latest then is a layered manifest, which
	// DevWorkspace Operator's own restore cannot read unless dwoCompatibleLatest is set).
	// +optional
	// +kubebuilder:default=dwo
	Format ArtifactFormat `json:"format,omitempty"`

	// dwoCompatibleLatest, with format layered, also writes the latest tag in the dwo format (one
	// devworkspace-backup.tar.gz layer made of the layered blobs, read back from the registry), so
	// DevWorkspace Operator's restore and Che's Dashboard keep working while the unique tags hold the
	// layered history. It costs each backup a download and an upload of the whole compressed tree,
	// and the registry one more full copy (the newest).
	// +optional
	DWOCompatibleLatest bool `json:"dwoCompatibleLatest,omitempty"`
}

// RegistrySpec is where artifacts go: <repository>/<namespace>/<workspace>:<tag>.
type RegistrySpec struct {
	// repository is host[:port][/path] of the registry location, without a scheme, tag or digest,
	// for example registry.example.com/backups or 127.0.0.1:5000.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=180
	// +kubebuilder:validation:XValidation:rule="!self.contains('://')",message="repository must not contain a scheme such as https://; write host[:port][/path]"
	// +kubebuilder:validation:XValidation:rule="!self.contains('@')",message="repository must not contain a digest"
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?(/[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*)*$')",message="repository must be host[:port][/path] with a lowercase path and no tag, for example registry.example.com/backups"
	Repository string `json:"repository"`

	// authSecretName is a kubernetes.io/dockerconfigjson Secret in the operator's namespace with the
	// credentials to push and pull. Unset means anonymous access (or a namespace's own
	// dwbackup-registry-auth Secret).
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	AuthSecretName string `json:"authSecretName,omitempty"`

	// caBundle is a ConfigMap key in the operator's namespace with extra CA certificates (PEM) that
	// the registry's TLS certificate is verified against.
	// +optional
	CABundle *CABundleSource `json:"caBundle,omitempty"`

	// insecure allows plain HTTP and unverified TLS. It is never chosen implicitly.
	// +optional
	Insecure bool `json:"insecure,omitempty"`
}

// CABundleSource names a key of a ConfigMap in the operator's namespace.
type CABundleSource struct {
	// configMapName is the ConfigMap holding the CA bundle.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	ConfigMapName string `json:"configMapName"`

	// key is the ConfigMap key with the PEM certificates. Default ca.crt.
	// +optional
	// +kubebuilder:default=ca.crt
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	Key string `json:"key,omitempty"`
}

// RetentionSpec says which backups of a workspace are kept; everything else is pruned.
type RetentionSpec struct {
	// keepLast is the number of newest successful backups kept per workspace. Default 7, minimum 1:
	// the newest successful backup is never pruned.
	// +optional
	// +kubebuilder:default=7
	// +kubebuilder:validation:Minimum=1
	KeepLast int32 `json:"keepLast,omitempty"`

	// keepDaily additionally keeps the newest successful backup of each of the last keepDaily days
	// that have one, counted in the policy's time zone.
	// +optional
	// +kubebuilder:validation:Minimum=0
	KeepDaily int32 `json:"keepDaily,omitempty"`

	// keepWeekly additionally keeps the newest successful backup of each of the last keepWeekly weeks
	// that have one, counted in the policy's time zone.
	// +optional
	// +kubebuilder:validation:Minimum=0
	KeepWeekly int32 `json:"keepWeekly,omitempty"`

	// failedHistoryLimit is the number of Failed or Skipped backups kept per workspace. Default 3.
	// +optional
	// +kubebuilder:default=3
	// +kubebuilder:validation:Minimum=0
	FailedHistoryLimit *int32 `json:"failedHistoryLimit,omitempty"`

	// deleteArtifacts deletes a pruned backup's registry tag (and its manifest once nothing else
	// refers to it). A backup deleted by a person keeps its artifact. Default true.
	// +optional
	// +kubebuilder:default=true
	DeleteArtifacts *bool `json:"deleteArtifacts,omitempty"`
}

// JobSpec holds the knobs of the mover Jobs. All are optional.
type JobSpec struct {
	// backoffLimit is the number of retries of a failed mover pod. Default 2.
	// +optional
	// +kubebuilder:default=2
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10
	BackoffLimit *int32 `json:"backoffLimit,omitempty"`

	// activeDeadlineSeconds is how long a mover Job may run before it is stopped. Default 3600.
	// +optional
	// +kubebuilder:default=3600
	// +kubebuilder:validation:Minimum=1
	ActiveDeadlineSeconds *int64 `json:"activeDeadlineSeconds,omitempty"`

	// resources of the mover container. Unset means requests of 100m CPU / 64Mi memory and a 256Mi
	// memory limit.
	// +optional
	Resources *corev1.ResourceRequirements `json:"resources,omitempty"`

	// podSecurityContext of the mover pod. Unset means the workspaces' own context from DWO's
	// configuration (on Kubernetes DWO's default is runAsUser 1234, runAsGroup 0, fsGroup 1234), so
	// files are read and restored as the workspace's user. On OpenShift leave the UID to the SCC.
	// +optional
	PodSecurityContext *corev1.PodSecurityContext `json:"podSecurityContext,omitempty"`

	// nodeSelector for mover pods. A mover that must share a node with a volume already attached is
	// pinned to that node regardless.
	// +optional
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`

	// tolerations for mover pods.
	// +optional
	// +listType=atomic
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`
}

// BackupPolicyStatus is what the operator last saw and did for a policy.
type BackupPolicyStatus struct {
	// observedGeneration is the generation of the spec this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready (spec valid and able to run) and Stalled (cannot work until a person changes
	// something).
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// lastScheduleTime is the last schedule slot that was processed.
	// +optional
	LastScheduleTime *metav1.Time `json:"lastScheduleTime,omitempty"`

	// nextScheduleTime is the next schedule slot.
	// +optional
	NextScheduleTime *metav1.Time `json:"nextScheduleTime,omitempty"`

	// lastSuccessfulBackupTime is the completion time of the newest Succeeded backup of this policy.
	// +optional
	LastSuccessfulBackupTime *metav1.Time `json:"lastSuccessfulBackupTime,omitempty"`

	// workspaces is the number of workspaces the policy selects now.
	// +optional
	Workspaces int32 `json:"workspaces,omitempty"`

	// skippedWorkspaces is the number of selected workspaces with no storage to back up (ephemeral or
	// async storage).
	// +optional
	SkippedWorkspaces int32 `json:"skippedWorkspaces,omitempty"`

	// activeBackups is the number of this policy's backups that are running.
	// +optional
	ActiveBackups int32 `json:"activeBackups,omitempty"`

	// workspacesUnprotected is the number of selected workspaces with storage that stopped after
	// their newest Succeeded (or Skipped) backup of this policy, or have none, and have waited
	// longer than the schedule's expected interval (the largest gap between two slots in a week):
	// their latest changes are in no backup. The metric dwbackup_workspaces_unprotected exports it
	// (docs/metrics.md).
	// +optional
	WorkspacesUnprotected int32 `json:"workspacesUnprotected"`

	// historyImport is what the last import of spec.importHistory found.
	// +optional
	HistoryImport *HistoryImportStatus `json:"historyImport,omitempty"`

	// dashboard records the Secrets made for Che's Dashboard (spec.dashboard).
	// +optional
	Dashboard *DashboardStatus `json:"dashboard,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=bp,categories=dwbackup
// +kubebuilder:printcolumn:name="Schedule",type=string,JSONPath=`.spec.schedule`
// +kubebuilder:printcolumn:name="Suspend",type=boolean,JSONPath=`.spec.suspend`
// +kubebuilder:printcolumn:name="Last",type=date,JSONPath=`.status.lastScheduleTime`
// +kubebuilder:printcolumn:name="Next",type=string,format=date-time,JSONPath=`.status.nextScheduleTime`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Unprotected",type=integer,JSONPath=`.status.workspacesUnprotected`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 63",message="metadata.name of a BackupPolicy must be at most 63 characters (it is used as a label value)"

// BackupPolicy backs up the storage of stopped DevWorkspaces on a schedule into an OCI registry.
type BackupPolicy struct {
	metav1.TypeMeta `json:",inline"`

	// metadata is the standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitzero"`

	// spec is the policy.
	// +required
	Spec BackupPolicySpec `json:"spec"`

	// status is what the operator observed.
	// +optional
	Status BackupPolicyStatus `json:"status,omitzero"`
}

// +kubebuilder:object:root=true

// BackupPolicyList contains a list of BackupPolicy.
type BackupPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitzero"`
	Items           []BackupPolicy `json:"items"`
}

func init() {
	SchemeBuilder.Register(func(s *runtime.Scheme) error {
		s.AddKnownTypes(SchemeGroupVersion, &BackupPolicy{}, &BackupPolicyList{})
		return nil
	})
}

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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// WorkspaceRestoreSpec names the workspace to restore into and exactly one source.
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec of a WorkspaceRestore is immutable"
// +kubebuilder:validation:XValidation:rule="has(self.backupName) != has(self.artifactReference)",message="exactly one of spec.backupName and spec.artifactReference must be set"
// +kubebuilder:validation:XValidation:rule="!has(self.artifactReference) || has(self.policyName)",message="spec.policyName is required with spec.artifactReference (it gives the credentials)"
// +kubebuilder:validation:XValidation:rule="!has(self.backupName) || !has(self.policyName)",message="spec.policyName is only used with spec.artifactReference; a backupName restore uses that backup's policy"
type WorkspaceRestoreSpec struct {
	// workspaceName is the stopped DevWorkspace in this namespace to restore into. Its storage must
	// exist (the workspace has started at least once).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	WorkspaceName string `json:"workspaceName"`

	// backupName is a Succeeded WorkspaceBackup in this namespace; its artifact is restored by digest.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	BackupName string `json:"backupName,omitempty"`

	// artifactReference is an artifact under the policy's repository, host[:port]/path:tag or
	// host[:port]/path@sha256:<digest>. It must lie under <repository>/<this namespace>/ unless the
	// policy sets allowCrossNamespaceRestore.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?(/[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*)+(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[a-f0-9]{64})$')",message="artifactReference must be host[:port]/path:tag or host[:port]/path@sha256:<64 hex>, without a scheme"
	ArtifactReference string `json:"artifactReference,omitempty"`

	// policyName is the BackupPolicy whose credentials, CA and insecure setting are used to pull
	// artifactReference. Required with artifactReference.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	PolicyName string `json:"policyName,omitempty"`

	// overwrite replaces the workspace's current files after a pre-restore safety backup of them.
	// false: a non-empty target fails with TargetNotEmpty and nothing is written.
	// +optional
	Overwrite bool `json:"overwrite,omitempty"`
}

// RestorePhase is the coarse state of a WorkspaceRestore.
// +kubebuilder:validation:Enum=Pending;Running;Succeeded;Failed
type RestorePhase string

const (
	// RestorePending waits for the workspace to stop, the source, or the safety backup.
	RestorePending RestorePhase = "Pending"
	// RestoreRunning has a mover Job.
	RestoreRunning RestorePhase = "Running"
	// RestoreSucceeded wrote the artifact's files into the workspace's storage.
	RestoreSucceeded RestorePhase = "Succeeded"
	// RestoreFailed ended; the reason says why and whether anything was written.
	RestoreFailed RestorePhase = "Failed"
)

// Finished reports whether the phase is final.
func (p RestorePhase) Finished() bool {
	return p == RestoreSucceeded || p == RestoreFailed
}

// RestoreSource is the artifact that is restored.
type RestoreSource struct {
	// reference is the artifact reference as given or as recorded by the backup.
	// +optional
	Reference string `json:"reference,omitempty"`

	// digest is the manifest digest the restore pulls.
	// +optional
	Digest string `json:"digest,omitempty"`
}

// WorkspaceRestoreStatus is the progress and result of a restore.
type WorkspaceRestoreStatus struct {
	// phase is the coarse state: Pending, Running, Succeeded or Failed.
	// +optional
	Phase RestorePhase `json:"phase,omitempty"`

	// conditions: Ready (True once Succeeded) and Stalled (True on a terminal failure).
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// source is the artifact restored, always pulled by digest.
	// +optional
	Source *RestoreSource `json:"source,omitempty"`

	// safetyBackupName is the pre-restore WorkspaceBackup of the previous content, taken before an
	// overwrite.
	// +optional
	SafetyBackupName string `json:"safetyBackupName,omitempty"`

	// jobName is the mover Job.
	// +optional
	JobName string `json:"jobName,omitempty"`

	// files is the number of entries restored.
	// +optional
	Files int64 `json:"files,omitempty"`

	// bytes is the size of the file content restored.
	// +optional
	Bytes int64 `json:"bytes,omitempty"`

	// startTime is when the mover Job was created.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`

	// completionTime is when the restore reached a final phase.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`

	// message says in words what happened, naming the cause of a failure.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Message string `json:"message,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=wsr,categories=dwbackup
// +kubebuilder:printcolumn:name="Workspace",type=string,JSONPath=`.spec.workspaceName`
// +kubebuilder:printcolumn:name="Source",type=string,JSONPath=`.status.source.reference`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Files",type=integer,JSONPath=`.status.files`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// WorkspaceRestore restores a backup into a stopped workspace's storage.
type WorkspaceRestore struct {
	metav1.TypeMeta `json:",inline"`

	// metadata is the standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitzero"`

	// spec names the workspace and the source.
	// +required
	Spec WorkspaceRestoreSpec `json:"spec"`

	// status is the progress and result; a new restore reads as Pending.
	// +optional
	// +kubebuilder:default={phase: Pending}
	Status WorkspaceRestoreStatus `json:"status,omitzero"`
}

// +kubebuilder:object:root=true

// WorkspaceRestoreList contains a list of WorkspaceRestore.
type WorkspaceRestoreList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitzero"`
	Items           []WorkspaceRestore `json:"items"`
}

func init() {
	SchemeBuilder.Register(func(s *runtime.Scheme) error {
		s.AddKnownTypes(SchemeGroupVersion, &WorkspaceRestore{}, &WorkspaceRestoreList{})
		return nil
	})
}

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

// WorkspaceBackupSpec names the workspace to back up and the policy that says where and how.
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec of a WorkspaceBackup is immutable"
type WorkspaceBackupSpec struct {
	// workspaceName is a DevWorkspace in this namespace.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	WorkspaceName string `json:"workspaceName"`

	// policyName is the BackupPolicy whose registry, job knobs and retention apply.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	PolicyName string `json:"policyName"`
}

// BackupPhase is the coarse state of a WorkspaceBackup.
// +kubebuilder:validation:Enum=Pending;Running;Succeeded;Failed;Skipped
type BackupPhase string

const (
	// BackupPending waits for the workspace to stop, its storage, credentials or a concurrency slot.
	BackupPending BackupPhase = "Pending"
	// BackupRunning has a mover Job.
	BackupRunning BackupPhase = "Running"
	// BackupSucceeded pushed an artifact.
	BackupSucceeded BackupPhase = "Succeeded"
	// BackupFailed ended without an artifact; the reason says why.
	BackupFailed BackupPhase = "Failed"
	// BackupSkipped found no storage to back up.
	BackupSkipped BackupPhase = "Skipped"
)

// Finished reports whether the phase is final.
func (p BackupPhase) Finished() bool {
	return p == BackupSucceeded || p == BackupFailed || p == BackupSkipped
}

// BackupSource is the volume location that was backed up.
type BackupSource struct {
	// claimName is the PersistentVolumeClaim holding the workspace's files.
	// +optional
	ClaimName string `json:"claimName,omitempty"`

	// path is the directory inside the claim, for example projects or <workspaceId>/projects.
	// +optional
	Path string `json:"path,omitempty"`
}

// ArtifactStatus describes the pushed artifact.
type ArtifactStatus struct {
	// reference is the artifact's unique tag reference, <repository>/<namespace>/<workspace>:<tag>.
	// +optional
	Reference string `json:"reference,omitempty"`

	// digest is the manifest digest; restores always pull by digest.
	// +optional
	Digest string `json:"digest,omitempty"`

	// sizeBytes is the compressed size of the artifact's layer.
	// +optional
	SizeBytes int64 `json:"sizeBytes,omitempty"`

	// files is the number of entries in the archive.
	// +optional
	Files int64 `json:"files,omitempty"`

	// unchanged is true when the tree had not changed since the previous backup and the new tag
	// points at the previous manifest.
	// +optional
	Unchanged bool `json:"unchanged,omitempty"`
}

// WorkspaceBackupStatus is the progress and result of one backup attempt.
type WorkspaceBackupStatus struct {
	// phase is the coarse state: Pending, Running, Succeeded, Failed or Skipped.
	// +optional
	Phase BackupPhase `json:"phase,omitempty"`

	// conditions: Ready (True once Succeeded or Skipped) and Stalled (True on a terminal failure).
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// workspaceId is the DevWorkspace's status.devworkspaceId; retention groups backups by it.
	// +optional
	WorkspaceID string `json:"workspaceId,omitempty"`

	// workspaceStoppedAt is when the workspace stopped, as DWO recorded it, seen when the backup
	// started.
	// +optional
	WorkspaceStoppedAt *metav1.Time `json:"workspaceStoppedAt,omitempty"`

	// source is the claim and path that were backed up.
	// +optional
	Source *BackupSource `json:"source,omitempty"`

	// jobName is the mover Job.
	// +optional
	JobName string `json:"jobName,omitempty"`

	// artifact is the pushed artifact.
	// +optional
	Artifact *ArtifactStatus `json:"artifact,omitempty"`

	// startTime is when the mover Job was created.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`

	// completionTime is when the backup reached a final phase.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`

	// duration is completionTime - startTime, for people, for example 1m12s.
	// +optional
	Duration string `json:"duration,omitempty"`

	// message says in words what happened, naming the cause of a failure.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Message string `json:"message,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=wsb,categories=dwbackup
// +kubebuilder:printcolumn:name="Workspace",type=string,JSONPath=`.spec.workspaceName`
// +kubebuilder:printcolumn:name="Policy",type=string,JSONPath=`.spec.policyName`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Size",type=integer,format=int64,JSONPath=`.status.artifact.sizeBytes`
// +kubebuilder:printcolumn:name="Duration",type=string,JSONPath=`.status.duration`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// WorkspaceBackup is one backup attempt of one workspace. It has no owner reference: deleting a
// policy, a workspace or a namespace never deletes backup content.
type WorkspaceBackup struct {
	metav1.TypeMeta `json:",inline"`

	// metadata is the standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitzero"`

	// spec names the workspace and the policy.
	// +required
	Spec WorkspaceBackupSpec `json:"spec"`

	// status is the progress and result. A new backup reads as Pending before the controller has
	// written anything (a schema default, so the thousands of backups of one slot cost no write).
	// +optional
	// +kubebuilder:default={phase: Pending}
	Status WorkspaceBackupStatus `json:"status,omitzero"`
}

// +kubebuilder:object:root=true

// WorkspaceBackupList contains a list of WorkspaceBackup.
type WorkspaceBackupList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitzero"`
	Items           []WorkspaceBackup `json:"items"`
}

func init() {
	SchemeBuilder.Register(func(s *runtime.Scheme) error {
		s.AddKnownTypes(SchemeGroupVersion, &WorkspaceBackup{}, &WorkspaceBackupList{})
		return nil
	})
}

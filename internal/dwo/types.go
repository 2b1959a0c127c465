// Package dwo holds a minimal, read-only view of DevWorkspace Operator's DevWorkspace kind.
//
// The operator caches every DevWorkspace in the cluster. Decoding them into these small typed
// structs drops everything it does not read (the devfile's components, projects, commands...)
// while the JSON is decoded, which keeps the manager's memory flat at thousands of workspaces;
// unstructured objects would hold every field as maps until a transform ran.
//
// Never write these objects back: an update would erase every field this view does not know.
// +kubebuilder:object:generate=true
// +groupName=workspace.devfile.io
package dwo

import (
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion is DWO's served DevWorkspace version.
var GroupVersion = schema.GroupVersion{Group: "workspace.devfile.io", Version: "v1alpha2"}

// AddToScheme registers the read-only DevWorkspace view.
func AddToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &DevWorkspace{}, &DevWorkspaceList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}

// +kubebuilder:object:root=true

// DevWorkspace is the part of DWO's DevWorkspace the backup operator reads.
type DevWorkspace struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              DevWorkspaceSpec   `json:"spec,omitempty"`
	Status            DevWorkspaceStatus `json:"status,omitempty"`
}

// DevWorkspaceSpec keeps spec.started and the template's attributes.
type DevWorkspaceSpec struct {
	Started  bool                 `json:"started"`
	Template DevWorkspaceTemplate `json:"template,omitempty"`
}

// DevWorkspaceTemplate keeps only the attributes of the devfile.
type DevWorkspaceTemplate struct {
	Attributes map[string]apiextensionsv1.JSON `json:"attributes,omitempty"`
}

// DevWorkspaceStatus is DWO's status of a workspace.
type DevWorkspaceStatus struct {
	DevWorkspaceID string                  `json:"devworkspaceId,omitempty"`
	Phase          string                  `json:"phase,omitempty"`
	Message        string                  `json:"message,omitempty"`
	Conditions     []DevWorkspaceCondition `json:"conditions,omitempty"`
}

// DevWorkspaceCondition is one of DWO's conditions (Started is the one the operator reads).
type DevWorkspaceCondition struct {
	Type               string      `json:"type"`
	Status             string      `json:"status"`
	LastTransitionTime metav1.Time `json:"lastTransitionTime,omitempty"`
	Reason             string      `json:"reason,omitempty"`
	Message            string      `json:"message,omitempty"`
}

// +kubebuilder:object:root=true

// DevWorkspaceList is a list of DevWorkspaces.
type DevWorkspaceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []DevWorkspace `json:"items"`
}

package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// DevWorkspaces are read as unstructured objects: the operator needs a handful of fields and must
// not break when DWO adds others.

// DevWorkspaceGVK is DWO's DevWorkspace kind.
var DevWorkspaceGVK = schema.GroupVersionKind{Group: "workspace.devfile.io", Version: "v1alpha2", Kind: "DevWorkspace"}

// DevWorkspace attributes the operator reads (FACTS 5).
const (
	attrStorageType     = "controller.devfile.io/storage-type"
	attrDevWorkspaceCfg = "controller.devfile.io/devworkspace-config"
)

// Storage types; an absent attribute means common.
const (
	storageCommon       = "common"
	storagePerUser      = "per-user"
	storagePerWorkspace = "per-workspace"
	storageEphemeral    = "ephemeral"
	storageAsync        = "async"
)

// DevWorkspace phases the operator distinguishes.
const (
	phaseStopped = "Stopped"
)

// newDevWorkspace returns an empty DevWorkspace for Get.
func newDevWorkspace() *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(DevWorkspaceGVK)
	return u
}

// newDevWorkspaceList returns an empty DevWorkspace list for List.
func newDevWorkspaceList() *unstructured.UnstructuredList {
	l := &unstructured.UnstructuredList{}
	l.SetGroupVersionKind(DevWorkspaceGVK.GroupVersion().WithKind("DevWorkspaceList"))
	return l
}

// workspace is what the operator knows of a DevWorkspace.
type workspace struct {
	Name      string
	Namespace string
	UID       types.UID
	Labels    map[string]string
	ID        string // status.devworkspaceId
	Phase     string // status.phase
	Started   bool   // spec.started
	// StoppedAt is the lastTransitionTime of condition Started going False, else the creation time.
	StoppedAt   time.Time
	StorageType string
	// ConfigRef is the DWOC named by the devworkspace-config attribute, if any.
	ConfigRef *types.NamespacedName
	Deleting  bool
}

// Stopped reports whether DWO has stopped the workspace and nobody asked to start it.
func (w workspace) Stopped() bool {
	return w.Phase == phaseStopped && !w.Started && !w.Deleting
}

// HasStorage reports whether the storage type keeps files on a PVC the operator can back up.
func (w workspace) HasStorage() bool {
	return w.StorageType != storageEphemeral && w.StorageType != storageAsync
}

// workspaceFrom reads the fields the operator needs; missing fields read as zero values.
func workspaceFrom(u *unstructured.Unstructured) workspace {
	w := workspace{
		Name:      u.GetName(),
		Namespace: u.GetNamespace(),
		UID:       u.GetUID(),
		Labels:    u.GetLabels(),
		StoppedAt: u.GetCreationTimestamp().Time,
		Deleting:  u.GetDeletionTimestamp() != nil,
	}
	w.ID, _, _ = unstructured.NestedString(u.Object, "status", "devworkspaceId")
	w.Phase, _, _ = unstructured.NestedString(u.Object, "status", "phase")
	w.Started, _, _ = unstructured.NestedBool(u.Object, "spec", "started")
	attrs, _, _ := unstructured.NestedMap(u.Object, "spec", "template", "attributes")
	w.StorageType = storageCommon
	if s, ok := attrs[attrStorageType].(string); ok && s != "" {
		w.StorageType = s
	}
	w.ConfigRef = configRefFrom(attrs[attrDevWorkspaceCfg])
	conditions, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conditions {
		cond, ok := c.(map[string]any)
		if !ok || cond["type"] != "Started" || cond["status"] != string(metav1.ConditionFalse) {
			continue
		}
		if ts, ok := cond["lastTransitionTime"].(string); ok {
			if t, err := time.Parse(time.RFC3339, ts); err == nil {
				w.StoppedAt = t
			}
		}
	}
	return w
}

// configRefFrom reads the devworkspace-config attribute ({name, namespace}); DWO also accepts it
// JSON-encoded in a string.
func configRefFrom(v any) *types.NamespacedName {
	var ref struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	}
	switch val := v.(type) {
	case map[string]any:
		ref.Name, _ = val["name"].(string)
		ref.Namespace, _ = val["namespace"].(string)
	case string:
		if json.Unmarshal([]byte(val), &ref) != nil {
			return nil
		}
	default:
		return nil
	}
	if ref.Name == "" || ref.Namespace == "" {
		return nil
	}
	return &types.NamespacedName{Name: ref.Name, Namespace: ref.Namespace}
}

// TrimDevWorkspace is the cache transform for DevWorkspaces: it keeps metadata (without
// managedFields), spec.started, the status, and only the storage-type and devworkspace-config
// attributes of spec.template, so thousands of workspaces with large devfiles cost little memory.
func TrimDevWorkspace(obj any) (any, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return obj, nil
	}
	u.SetManagedFields(nil)
	spec := map[string]any{}
	if started, found, _ := unstructured.NestedBool(u.Object, "spec", "started"); found {
		spec["started"] = started
	}
	attrs, _, _ := unstructured.NestedMap(u.Object, "spec", "template", "attributes")
	kept := map[string]any{}
	for _, key := range []string{attrStorageType, attrDevWorkspaceCfg} {
		if v, ok := attrs[key]; ok {
			kept[key] = v
		}
	}
	if len(kept) > 0 {
		spec["template"] = map[string]any{"attributes": kept}
	}
	u.Object["spec"] = spec
	return u, nil
}

// storageTypeOf reads the storage-type attribute from a DevWorkspace spec (absent = common).
func storageTypeOf(spec map[string]any) string {
	template, _ := spec["template"].(map[string]any)
	attrs, _ := template["attributes"].(map[string]any)
	if s, ok := attrs[attrStorageType].(string); ok && s != "" {
		return s
	}
	return storageCommon
}

// lookupWorkspace reads a DevWorkspace from the cache; nil means it does not exist.
func lookupWorkspace(ctx context.Context, c client.Client, namespace, name string) (*workspace, error) {
	dw := newDevWorkspace()
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, dw); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("get DevWorkspace %s/%s: %w", namespace, name, err)
	}
	w := workspaceFrom(dw)
	return &w, nil
}

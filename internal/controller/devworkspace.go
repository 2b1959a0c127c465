package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/dwbackup/devworkspace-backup-operator/internal/dwo"
)

// DevWorkspaces are read through dwo's small typed view: the operator needs a handful of fields
// and must not break when DWO adds others.

// DevWorkspaceGVK is DWO's DevWorkspace kind.
var DevWorkspaceGVK = dwo.GroupVersion.WithKind("DevWorkspace")

// DevWorkspace attributes the operator reads (docs/architecture.md, "DevWorkspaces").
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
func workspaceFrom(dw *dwo.DevWorkspace) workspace {
	w := workspace{
		Name:        dw.Name,
		Namespace:   dw.Namespace,
		UID:         dw.UID,
		Labels:      dw.Labels,
		ID:          dw.Status.DevWorkspaceID,
		Phase:       dw.Status.Phase,
		Started:     dw.Spec.Started,
		StoppedAt:   dw.CreationTimestamp.Time,
		Deleting:    dw.DeletionTimestamp != nil,
		StorageType: storageTypeOf(dw),
	}
	if raw, ok := dw.Spec.Template.Attributes[attrDevWorkspaceCfg]; ok {
		w.ConfigRef = configRefFrom(raw.Raw)
	}
	for _, c := range dw.Status.Conditions {
		if c.Type == "Started" && c.Status == string(metav1.ConditionFalse) && !c.LastTransitionTime.IsZero() {
			w.StoppedAt = c.LastTransitionTime.Time
		}
	}
	return w
}

// storageTypeOf reads the storage-type attribute (absent = common).
func storageTypeOf(dw *dwo.DevWorkspace) string {
	var s string
	if raw, ok := dw.Spec.Template.Attributes[attrStorageType]; ok && json.Unmarshal(raw.Raw, &s) == nil && s != "" {
		return s
	}
	return storageCommon
}

// configRefFrom reads the devworkspace-config attribute ({name, namespace}); DWO also accepts it
// JSON-encoded in a string.
func configRefFrom(raw []byte) *types.NamespacedName {
	var ref struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	}
	if json.Unmarshal(raw, &ref) != nil {
		var encoded string
		if json.Unmarshal(raw, &encoded) != nil || json.Unmarshal([]byte(encoded), &ref) != nil {
			return nil
		}
	}
	if ref.Name == "" || ref.Namespace == "" {
		return nil
	}
	return &types.NamespacedName{Name: ref.Name, Namespace: ref.Namespace}
}

// TrimDevWorkspace is the cache transform for DevWorkspaces: decoding into dwo's view already
// dropped the devfile; this also drops managedFields and every attribute but storage-type and
// devworkspace-config, so thousands of workspaces cost little memory.
func TrimDevWorkspace(obj any) (any, error) {
	dw, ok := obj.(*dwo.DevWorkspace)
	if !ok {
		return obj, nil
	}
	dw.ManagedFields = nil
	kept := map[string]apiextensionsv1.JSON{}
	for _, key := range []string{attrStorageType, attrDevWorkspaceCfg} {
		if v, ok := dw.Spec.Template.Attributes[key]; ok {
			kept[key] = v
		}
	}
	dw.Spec.Template.Attributes = nil
	if len(kept) > 0 {
		dw.Spec.Template.Attributes = kept
	}
	return dw, nil
}

// lookupWorkspace reads a DevWorkspace (getConfirmed); nil means it does not exist.
func lookupWorkspace(ctx context.Context, c client.Client, reader client.Reader, namespace, name string) (*workspace, error) {
	dw := &dwo.DevWorkspace{}
	if err := getConfirmed(ctx, c, reader, client.ObjectKey{Namespace: namespace, Name: name}, dw); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("get DevWorkspace %s/%s: %w", namespace, name, err)
	}
	w := workspaceFrom(dw)
	return &w, nil
}

package controller

import (
	"context"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// dwocGVK is DWO's DevWorkspaceOperatorConfig; the CRD may be absent (then DWO's defaults apply).
var dwocGVK = schema.GroupVersionKind{Group: "controller.devfile.io", Version: "v1alpha1", Kind: "DevWorkspaceOperatorConfig"}

// globalDWOCName is the name of DWO's cluster-wide configuration object.
const globalDWOCName = "devworkspace-operator-config"

// dwoSettings are the parts of DWO's configuration a mover needs.
type dwoSettings struct {
	// PVCName is the common PVC name ("" = DWO's default claim-devworkspace).
	PVCName string
	// PodSecurityContext is the workspaces' pod security context.
	PodSecurityContext *corev1.PodSecurityContext
	// Claim is how DWO makes the PVCs it provisions (restore prepares one the same way).
	Claim dwoClaimSettings
}

// dwoClaimSettings are config.workspace.{storageClassName,storageAccessMode,defaultStorageSize}.
type dwoClaimSettings struct {
	StorageClassName *string
	AccessModes      []corev1.PersistentVolumeAccessMode
	CommonSize       resource.Quantity
	PerWorkspaceSize resource.Quantity
}

// dwoDefaultClaimSettings are DWO's defaults: the cluster's default storage class, ReadWriteOnce,
// 10Gi for the common PVC and for a per-workspace one.
func dwoDefaultClaimSettings() dwoClaimSettings {
	return dwoClaimSettings{CommonSize: resource.MustParse("10Gi"), PerWorkspaceSize: resource.MustParse("10Gi")}
}

// dwoDefaultPodSecurityContext is DWO's Kubernetes default (docs/architecture.md, "DevWorkspaces").
func dwoDefaultPodSecurityContext() *corev1.PodSecurityContext {
	return &corev1.PodSecurityContext{
		RunAsUser:    ptr.To[int64](1234),
		RunAsGroup:   ptr.To[int64](0),
		FSGroup:      ptr.To[int64](1234),
		RunAsNonRoot: ptr.To(true),
	}
}

// readDWOSettings merges the workspace's own DWOC (attribute devworkspace-config) over the global
// one, over DWO's defaults, as DWO does. Reads go to the API server: they happen once per backup.
func readDWOSettings(ctx context.Context, reader client.Reader, dwoNamespace string, ref *types.NamespacedName) (dwoSettings, error) {
	settings := dwoSettings{PodSecurityContext: dwoDefaultPodSecurityContext(), Claim: dwoDefaultClaimSettings()}
	global, err := findGlobalDWOC(ctx, reader, dwoNamespace)
	if err != nil {
		return settings, err
	}
	layers := []*unstructured.Unstructured{global}
	if ref != nil {
		own, err := getDWOC(ctx, reader, *ref)
		if err != nil {
			return settings, err
		}
		layers = append(layers, own)
	}
	for _, l := range layers {
		if l == nil {
			continue
		}
		if err := applyDWOC(&settings, l); err != nil {
			return settings, fmt.Errorf("DevWorkspaceOperatorConfig %s/%s: %w", l.GetNamespace(), l.GetName(), err)
		}
	}
	return settings, nil
}

// applyDWOC overlays config.workspace.{pvcName,podSecurityContext,storageClassName,
// storageAccessMode,defaultStorageSize} of one DWOC.
func applyDWOC(settings *dwoSettings, dwoc *unstructured.Unstructured) error {
	if name, ok, _ := unstructured.NestedString(dwoc.Object, "config", "workspace", "pvcName"); ok && name != "" {
		settings.PVCName = name
	}
	if err := applyClaimSettings(&settings.Claim, dwoc); err != nil {
		return err
	}
	raw, ok, _ := unstructured.NestedFieldNoCopy(dwoc.Object, "config", "workspace", "podSecurityContext")
	if !ok || raw == nil {
		return nil
	}
	data, err := json.Marshal(raw)
	if err != nil {
		return err
	}
	psc := &corev1.PodSecurityContext{}
	if err := json.Unmarshal(data, psc); err != nil {
		return fmt.Errorf("config.workspace.podSecurityContext: %w", err)
	}
	settings.PodSecurityContext = psc
	return nil
}

// applyClaimSettings overlays what DWO creates its PVCs with.
func applyClaimSettings(claim *dwoClaimSettings, dwoc *unstructured.Unstructured) error {
	if class, ok, _ := unstructured.NestedString(dwoc.Object, "config", "workspace", "storageClassName"); ok {
		claim.StorageClassName = &class
	}
	if modes, ok, _ := unstructured.NestedStringSlice(dwoc.Object, "config", "workspace", "storageAccessMode"); ok && len(modes) > 0 {
		claim.AccessModes = nil
		for _, m := range modes {
			claim.AccessModes = append(claim.AccessModes, corev1.PersistentVolumeAccessMode(m))
		}
	}
	for field, size := range map[string]*resource.Quantity{"common": &claim.CommonSize, "perWorkspace": &claim.PerWorkspaceSize} {
		raw, ok, _ := unstructured.NestedFieldNoCopy(dwoc.Object, "config", "workspace", "defaultStorageSize", field)
		if !ok || raw == nil {
			continue
		}
		q, err := resource.ParseQuantity(fmt.Sprint(raw))
		if err != nil {
			return fmt.Errorf("config.workspace.defaultStorageSize.%s: %w", field, err)
		}
		*size = q
	}
	return nil
}

// findGlobalDWOC reads devworkspace-operator-config from dwoNamespace, or finds it in any
// namespace when that is not set. Missing CRD or object: nil.
func findGlobalDWOC(ctx context.Context, reader client.Reader, dwoNamespace string) (*unstructured.Unstructured, error) {
	if dwoNamespace != "" {
		return getDWOC(ctx, reader, types.NamespacedName{Namespace: dwoNamespace, Name: globalDWOCName})
	}
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(dwocGVK.GroupVersion().WithKind("DevWorkspaceOperatorConfigList"))
	if err := reader.List(ctx, list); err != nil {
		if meta.IsNoMatchError(err) || apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("list DevWorkspaceOperatorConfigs: %w", err)
	}
	for i := range list.Items {
		if list.Items[i].GetName() == globalDWOCName {
			return &list.Items[i], nil
		}
	}
	return nil, nil
}

func getDWOC(ctx context.Context, reader client.Reader, key types.NamespacedName) (*unstructured.Unstructured, error) {
	dwoc := &unstructured.Unstructured{}
	dwoc.SetGroupVersionKind(dwocGVK)
	if err := reader.Get(ctx, key, dwoc); err != nil {
		if meta.IsNoMatchError(err) || apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("get DevWorkspaceOperatorConfig %s: %w", key, err)
	}
	return dwoc, nil
}

package controller

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/dwbackup/devworkspace-backup-operator/internal/dwo"
)

// resolveWorkspaceStorage finds the workspace's PVC with DWO's configuration. skip, when not
// empty, says why there is nothing to back up or restore into.
func resolveWorkspaceStorage(ctx context.Context, c client.Client, reader client.Reader, dwoNamespace string,
	ws workspace) (resolvedStorage, string, error) {
	if !ws.HasStorage() {
		return resolvedStorage{}, fmt.Sprintf("DevWorkspace %s uses %s storage, which keeps no files on a PVC", ws.Name, ws.StorageType), nil
	}
	if ws.ID == "" {
		return resolvedStorage{}, fmt.Sprintf("DevWorkspace %s has no status.devworkspaceId yet: it has never started", ws.Name), nil
	}
	st, err := locateClaim(ctx, c, reader, dwoNamespace, ws)
	if err != nil {
		return resolvedStorage{}, "", err
	}
	if st.pvc == nil {
		return resolvedStorage{}, fmt.Sprintf("PersistentVolumeClaim %s/%s of DevWorkspace %s not found", ws.Namespace, st.location.ClaimName, ws.Name), nil
	}
	if st.pvc.Status.Phase != corev1.ClaimBound {
		return resolvedStorage{}, fmt.Sprintf("PersistentVolumeClaim %s/%s is %s, not Bound", ws.Namespace, st.location.ClaimName, st.pvc.Status.Phase), nil
	}
	return st, "", nil
}

// locateClaim finds where DWO keeps the files of a workspace with an id, and reads that claim:
// st.pvc is nil when it does not exist (yet).
func locateClaim(ctx context.Context, c client.Client, reader client.Reader, dwoNamespace string, ws workspace) (resolvedStorage, error) {
	settings, err := readDWOSettings(ctx, reader, dwoNamespace, ws.ConfigRef)
	if err != nil {
		return resolvedStorage{}, err
	}
	legacyExists := false
	if settings.PVCName == "" && ws.StorageType != storagePerWorkspace {
		legacy := &corev1.PersistentVolumeClaim{}
		err := c.Get(ctx, client.ObjectKey{Namespace: ws.Namespace, Name: legacyCommonPVCName}, legacy)
		if err != nil && !apierrors.IsNotFound(err) {
			return resolvedStorage{}, err
		}
		legacyExists = err == nil
	}
	loc, _ := resolveStorage(ws, settings.PVCName, legacyExists)
	pvc := &corev1.PersistentVolumeClaim{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ws.Namespace, Name: loc.ClaimName}, pvc); err != nil {
		if !apierrors.IsNotFound(err) {
			return resolvedStorage{}, err
		}
		pvc = nil
	}
	return resolvedStorage{location: loc, pvc: pvc, dwo: settings}, nil
}

// attachedNode returns the node the claim's volume is attached to, so the mover runs there and a
// ReadWriteOnce volume never meets a Multi-Attach error: a VolumeAttachment of its PV, else a
// running pod that mounts the claim. "" means not attached.
func attachedNode(ctx context.Context, c client.Client, reader client.Reader, pvc *corev1.PersistentVolumeClaim) (string, error) {
	if pvc.Spec.VolumeName != "" {
		attachments := &storagev1.VolumeAttachmentList{}
		if err := c.List(ctx, attachments); err != nil {
			return "", fmt.Errorf("list VolumeAttachments: %w", err)
		}
		for _, va := range attachments.Items {
			pv := va.Spec.Source.PersistentVolumeName
			if pv != nil && *pv == pvc.Spec.VolumeName && va.Status.Attached {
				return va.Spec.NodeName, nil
			}
		}
	}
	// Workspace pods are not the operator's, so they are not in its cache: ask the API server.
	pods := &corev1.PodList{}
	if err := reader.List(ctx, pods, client.InNamespace(pvc.Namespace)); err != nil {
		return "", fmt.Errorf("list pods in %s: %w", pvc.Namespace, err)
	}
	for _, pod := range pods.Items {
		if pod.Spec.NodeName == "" || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
			continue
		}
		for _, v := range pod.Spec.Volumes {
			if v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == pvc.Name {
				return pod.Spec.NodeName, nil
			}
		}
	}
	return "", nil
}

// startedNeighbour names another workspace on the same (common) PVC that is starting or running:
// its pod needs the volume, so a backup of this one must give way.
func startedNeighbour(ctx context.Context, c client.Client, ws workspace) (string, error) {
	if ws.StorageType == storagePerWorkspace || !ws.HasStorage() {
		return "", nil
	}
	list := &dwo.DevWorkspaceList{}
	if err := c.List(ctx, list, client.InNamespace(ws.Namespace)); err != nil {
		return "", fmt.Errorf("list DevWorkspaces in %s: %w", ws.Namespace, err)
	}
	for i := range list.Items {
		other := workspaceFrom(&list.Items[i])
		if other.Name == ws.Name || !sharesClaim(ws, other) {
			continue
		}
		if other.Started || other.Phase == "Starting" || other.Phase == "Running" {
			return fmt.Sprintf("DevWorkspace %s, which shares the PersistentVolumeClaim, was started", other.Name), nil
		}
	}
	return "", nil
}

// workspaceStartedReason says why a running mover must stop: its workspace was started or
// deleted, or (common storage) another workspace on the same PVC started. "" means carry on.
func workspaceStartedReason(ctx context.Context, c client.Client, name string, ws *workspace) (string, error) {
	if ws == nil {
		return fmt.Sprintf("DevWorkspace %s was deleted", name), nil
	}
	if !ws.Stopped() {
		return fmt.Sprintf("DevWorkspace %s was started", ws.Name), nil
	}
	return startedNeighbour(ctx, c, *ws)
}

// resolvedStorage is a workspace's claim with what the Job needs to know about it.
type resolvedStorage struct {
	location storageLocation
	pvc      *corev1.PersistentVolumeClaim
	dwo      dwoSettings
}

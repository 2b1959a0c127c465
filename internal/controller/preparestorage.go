package controller

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
	"github.com/dwbackup/devworkspace-backup-operator/internal/dwo"
)

// A restore into a workspace that has never started (docs/restore.md, "Into a workspace that
// never started"): DevWorkspace Operator creates a workspace's PVC on its first start and never
// changes a PVC that exists (it treats PVCs as immutable and adopts one of the right name), so the
// restore creates the claim exactly as DWO would name and size it, writes the files into it, and
// DWO's first start mounts it with the files in place.

// DWO's labels on the PVCs it provisions (devworkspace-operator pkg/constants).
const (
	dwoLabelWorkspaceID = "controller.devfile.io/devworkspace_id"
	dwoLabelPVCType     = "controller.devfile.io/devworkspace_pvc_type"
	dwoPVCTypePerUser   = "per-user"
)

// annotationPreparedFor on a PVC this operator created for a restore: the restore's UID. Only
// that restore's Job mounts it before it is Bound (a WaitForFirstConsumer class binds it when the
// mover pod is scheduled).
const annotationPreparedFor = "backup.dwbackup.io/prepared-for-restore"

// devfileVolume is a volume component of a DevWorkspace's template.
type devfileVolume struct {
	Size      string
	Ephemeral bool
}

// perWorkspaceClaimSize is the size DWO gives a per-workspace PVC: the sum of the devfile's
// persistent volume sizes when all are set or when it exceeds the default, else the default.
// (DWO's per-namespace size ConfigMap is not read; an empty sum takes the default.)
func perWorkspaceClaimSize(def resource.Quantity, volumes []devfileVolume) (resource.Quantity, error) {
	allSet := true
	sum := resource.NewQuantity(0, resource.BinarySI)
	for _, v := range volumes {
		if v.Ephemeral {
			continue
		}
		if v.Size == "" {
			allSet = false
			continue
		}
		q, err := resource.ParseQuantity(v.Size)
		if err != nil {
			return def, fmt.Errorf("volume size %q: %w", v.Size, err)
		}
		sum.Add(q)
	}
	if !sum.IsZero() && (allSet || sum.Cmp(def) > 0) {
		return *sum, nil
	}
	return def, nil
}

// dwoClaim is the PVC DWO's storage provisioner creates on a workspace's first start: the name,
// size, class and access modes of its configuration and its labels; a per-workspace claim is
// controlled by its DevWorkspace (deleted with it), the common claim belongs to nobody.
func dwoClaim(ws workspace, loc storageLocation, settings dwoClaimSettings, size resource.Quantity, restoreUID types.UID) *corev1.PersistentVolumeClaim {
	modes := settings.AccessModes
	if len(modes) == 0 {
		modes = []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}
	}
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: loc.ClaimName, Namespace: ws.Namespace,
			Labels:      map[string]string{dwoLabelPVCType: dwoPVCTypePerUser},
			Annotations: map[string]string{annotationPreparedFor: string(restoreUID)}},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      modes,
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: size}},
			StorageClassName: settings.StorageClassName,
		},
	}
	if ws.StorageType == storagePerWorkspace {
		pvc.Labels = map[string]string{dwoLabelWorkspaceID: ws.ID, dwoLabelPVCType: storagePerWorkspace}
		gvk := dwo.GroupVersion.WithKind("DevWorkspace")
		// No blockOwnerDeletion: setting it needs update on devworkspaces/finalizers.
		pvc.OwnerReferences = []metav1.OwnerReference{{APIVersion: gvk.GroupVersion().String(), Kind: gvk.Kind,
			Name: ws.Name, UID: ws.UID, Controller: ptr.To(true)}}
	}
	return pvc
}

// readDevfileVolumes reads the volume components of a DevWorkspace's template from the API server
// (the cache keeps no components).
func readDevfileVolumes(ctx context.Context, reader client.Reader, namespace, name string) ([]devfileVolume, error) {
	dw := &unstructured.Unstructured{}
	dw.SetGroupVersionKind(dwo.GroupVersion.WithKind("DevWorkspace"))
	if err := reader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, dw); err != nil {
		return nil, fmt.Errorf("read DevWorkspace %s/%s: %w", namespace, name, err)
	}
	components, _, _ := unstructured.NestedSlice(dw.Object, "spec", "template", "components")
	var volumes []devfileVolume
	for _, c := range components {
		comp, _ := c.(map[string]any)
		vol, ok := comp["volume"].(map[string]any)
		if !ok {
			continue
		}
		size, _ := vol["size"].(string)
		ephemeral, _ := vol["ephemeral"].(bool)
		volumes = append(volumes, devfileVolume{Size: size, Ephemeral: ephemeral})
	}
	return volumes, nil
}

// prepareClaim creates the workspace's claim as DWO would (dwoClaim), for the restore with the
// given UID. A claim that appeared meanwhile is read and used as it is.
func prepareClaim(ctx context.Context, c client.Client, reader client.Reader, ws workspace, st resolvedStorage,
	restoreUID types.UID) (*corev1.PersistentVolumeClaim, error) {
	size := st.dwo.Claim.CommonSize
	if ws.StorageType == storagePerWorkspace {
		volumes, err := readDevfileVolumes(ctx, reader, ws.Namespace, ws.Name)
		if err != nil {
			return nil, err
		}
		if size, err = perWorkspaceClaimSize(st.dwo.Claim.PerWorkspaceSize, volumes); err != nil {
			return nil, terminalf(backupv1alpha1.ReasonInvalidDevfile, "DevWorkspace %s: %v", ws.Name, err)
		}
	}
	pvc := dwoClaim(ws, st.location, st.dwo.Claim, size, restoreUID)
	err := c.Create(ctx, pvc)
	if apierrors.IsAlreadyExists(err) {
		pvc = &corev1.PersistentVolumeClaim{}
		err = reader.Get(ctx, client.ObjectKey{Namespace: ws.Namespace, Name: st.location.ClaimName}, pvc)
	}
	if err != nil {
		return nil, fmt.Errorf("create PersistentVolumeClaim %s/%s for the restore: %w", ws.Namespace, st.location.ClaimName, err)
	}
	return pvc, nil
}

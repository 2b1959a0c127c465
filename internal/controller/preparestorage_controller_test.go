package controller

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
	"github.com/dwbackup/devworkspace-backup-operator/internal/mover"
)

// Restores into workspaces that have never started (preparestorage.go): a DevWorkspace created
// again after the cluster was lost has an id but no storage until its first start.

// claimOf reads a PVC, nil when it does not exist.
func claimOf(namespace, name string) *corev1.PersistentVolumeClaim {
	GinkgoHelper()
	pvc := &corev1.PersistentVolumeClaim{}
	if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, pvc); err != nil {
		Expect(client.IgnoreNotFound(err)).To(Succeed())
		return nil
	}
	return pvc
}

// jobClaims are the claims a mover Job mounts.
func jobClaims(volumes []corev1.Volume) []string {
	var claims []string
	for _, v := range volumes {
		if v.PersistentVolumeClaim != nil {
			claims = append(claims, v.PersistentVolumeClaim.ClaimName)
		}
	}
	return claims
}

// restoreFresh restores a digest reference into workspace name of the fixture.
func restoreFresh(f backupFixture, name string) *backupv1alpha1.WorkspaceRestore {
	GinkgoHelper()
	return newRestore(f.Namespace, backupv1alpha1.WorkspaceRestoreSpec{WorkspaceName: name, PolicyName: f.Policy.Name,
		ArtifactReference: f.Policy.Spec.Registry.Repository + "/" + f.Namespace + "/" + name + "@" + testDigest})
}

var _ = Describe("Restore into a workspace that never started", func() {
	It("waits for DevWorkspace Operator to give the workspace its id, then creates its per-workspace claim as DWO would and restores into it", func() {
		f := newBackupFixture()
		workspaceWithoutID(f.Namespace, "fresh")
		wr := restoreFresh(f, "fresh")
		got := eventuallyRestoreReason(wr, backupv1alpha1.ReasonWaitingForWorkspaceStorage)
		Expect(got.Status.Phase).To(Equal(backupv1alpha1.RestorePending))
		Expect(got.Status.Message).To(ContainSubstring("status.devworkspaceId"))

		By("DWO assigns the id, as it does for a workspace it sees, started or not")
		dw := getWorkspace(f.Namespace, "fresh")
		const id = "workspace0a1b2c3d4e5f6a7b"
		dw.Object["status"] = map[string]any{"phase": phaseStopped, "devworkspaceId": id}
		Expect(k8sClient.Status().Update(ctx, dw)).To(Succeed())

		running := eventuallyRestorePhase(wr, backupv1alpha1.RestoreRunning)
		pvc := claimOf(f.Namespace, "storage-"+id)
		Expect(pvc).NotTo(BeNil(), "the per-workspace claim DWO would create on the first start")
		Expect(pvc.Labels).To(Equal(map[string]string{dwoLabelWorkspaceID: id, dwoLabelPVCType: storagePerWorkspace}))
		Expect(pvc.Spec.AccessModes).To(Equal([]corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}))
		Expect(pvc.Spec.Resources.Requests.Storage().Cmp(resource.MustParse("10Gi"))).To(BeZero(), "DWO's default per-workspace size")
		Expect(pvc.Spec.StorageClassName).To(BeNil(), "the cluster's default class, as DWO leaves it")
		Expect(pvc.OwnerReferences).To(HaveLen(1))
		owner := pvc.OwnerReferences[0]
		Expect(owner.Kind).To(Equal("DevWorkspace"))
		Expect(owner.UID).To(Equal(dw.GetUID()), "deleted with its workspace, as DWO's own")
		Expect(ptr.Deref(owner.Controller, false)).To(BeTrue())
		Expect(pvc.Annotations).To(HaveKeyWithValue(annotationPreparedFor, string(wr.UID)))

		job := restoreJob(wr)
		Expect(jobClaims(job.Spec.Template.Spec.Volumes)).To(ConsistOf("storage-" + id))
		Expect(jobArg(job, "--target")).To(HaveSuffix("/" + projectsDir))
		Expect(running.Status.Message).To(ContainSubstring("storage-" + id))

		finishJob(job, true, &mover.Result{Phase: mover.PhaseSucceeded, Reason: mover.ReasonCompleted, Files: 3, Bytes: 10}, "")
		eventuallyRestorePhase(wr, backupv1alpha1.RestoreSucceeded)
		Expect(claimOf(f.Namespace, "storage-"+id).UID).To(Equal(pvc.UID), "the claim is left for DWO's first start")
	})

	It("sizes the per-workspace claim from the devfile's volumes and DWO's configuration, as DWO does", func() {
		f := newBackupFixture()
		createWorkspace(testWorkspace{Namespace: f.Namespace, Name: "big", StorageType: storagePerWorkspace,
			Components: []any{
				map[string]any{"name": "projects", "volume": map[string]any{"size": "12Gi"}},
				map[string]any{"name": "m2", "volume": map[string]any{"size": "3Gi"}},
				map[string]any{"name": "tmp", "volume": map[string]any{"size": "50Gi", "ephemeral": true}},
			}})
		id := workspaceOf(f.Namespace, "big").ID
		wr := restoreFresh(f, "big")
		eventuallyRestorePhase(wr, backupv1alpha1.RestoreRunning)
		Expect(claimOf(f.Namespace, "storage-"+id).Spec.Resources.Requests.Storage().String()).To(Equal("15Gi"))
	})

	It("restores <workspace id>/projects on the common claim that exists, creating nothing", func() {
		f := newBackupFixture()
		createWorkspace(testWorkspace{Namespace: f.Namespace, Name: "fresh"})
		boundPVC(f.Namespace, defaultCommonPVCName)
		id := workspaceOf(f.Namespace, "fresh").ID
		wr := restoreFresh(f, "fresh")
		eventuallyRestorePhase(wr, backupv1alpha1.RestoreRunning)
		job := restoreJob(wr)
		Expect(jobClaims(job.Spec.Template.Spec.Volumes)).To(ConsistOf(defaultCommonPVCName))
		Expect(jobArg(job, "--target")).To(HaveSuffix("/" + id + "/" + projectsDir))
		Expect(claimOf(f.Namespace, defaultCommonPVCName).Annotations).NotTo(HaveKey(annotationPreparedFor))
	})

	It("creates the common claim when no workspace of the namespace has started yet", func() {
		f := newBackupFixture()
		createWorkspace(testWorkspace{Namespace: f.Namespace, Name: "fresh", StorageType: "per-user"})
		id := workspaceOf(f.Namespace, "fresh").ID
		wr := restoreFresh(f, "fresh")
		eventuallyRestorePhase(wr, backupv1alpha1.RestoreRunning)
		pvc := claimOf(f.Namespace, defaultCommonPVCName)
		Expect(pvc).NotTo(BeNil())
		Expect(pvc.OwnerReferences).To(BeEmpty(), "the common claim is shared: DWO gives it no owner")
		Expect(pvc.Labels).To(Equal(map[string]string{dwoLabelPVCType: dwoPVCTypePerUser}))
		Expect(jobArg(restoreJob(wr), "--target")).To(HaveSuffix("/" + id + "/" + projectsDir))
	})

	It("waits for a claim that is not Bound and that it did not create", func() {
		f := newBackupFixture()
		createWorkspace(testWorkspace{Namespace: f.Namespace, Name: "fresh", StorageType: storagePerWorkspace})
		id := workspaceOf(f.Namespace, "fresh").ID
		Expect(k8sClient.Create(ctx, &corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Name: "storage-" + id, Namespace: f.Namespace},
			Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}},
		})).To(Succeed())
		wr := restoreFresh(f, "fresh")
		got := eventuallyRestoreReason(wr, backupv1alpha1.ReasonWaitingForWorkspaceStorage)
		Expect(got.Status.Message).To(ContainSubstring("not Bound"))
		Expect(jobsOf(f.Namespace)).To(BeEmpty())
	})

	It("fails a workspace whose storage keeps no files", func() {
		f := newBackupFixture()
		createWorkspace(testWorkspace{Namespace: f.Namespace, Name: "eph", StorageType: storageEphemeral})
		wr := restoreFresh(f, "eph")
		expectRestoreReason(eventuallyRestorePhase(wr, backupv1alpha1.RestoreFailed), backupv1alpha1.ReasonNoWorkspaceStorage)
		Expect(claimOf(f.Namespace, defaultCommonPVCName)).To(BeNil())
	})
})

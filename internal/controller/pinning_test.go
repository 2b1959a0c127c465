package controller

import (
	"context"
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

var _ = Describe("Node pinning", func() {
	DescribeTable("pins the mover to the node the claim is attached to",
		func(attach func(namespace string, pvc *corev1.PersistentVolumeClaim, node string)) {
			f := newBackupFixture()
			ws := stoppedWorkspace(f.Namespace, "ws")
			pvc := &corev1.PersistentVolumeClaim{}
			Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: f.Namespace, Name: "storage-" + ws.ID}, pvc)).To(Succeed())
			node := "node-" + rand.String(5)
			attach(f.Namespace, pvc, node)
			job := moverJob(manualBackup(f.Namespace, "ws", f.Policy.Name))
			terms := job.Spec.Template.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
			Expect(terms[0].MatchFields[0].Values).To(Equal([]string{node}))
		},
		Entry("a VolumeAttachment of its PV", func(_ string, pvc *corev1.PersistentVolumeClaim, node string) {
			va := &storagev1.VolumeAttachment{
				ObjectMeta: metav1.ObjectMeta{Name: "va-" + rand.String(6)},
				Spec: storagev1.VolumeAttachmentSpec{Attacher: "csi.example.com", NodeName: node,
					Source: storagev1.VolumeAttachmentSource{PersistentVolumeName: ptr.To(pvc.Spec.VolumeName)}},
			}
			Expect(k8sClient.Create(ctx, va)).To(Succeed())
			va.Status.Attached = true
			Expect(k8sClient.Status().Update(ctx, va)).To(Succeed())
			Eventually(func() bool {
				got := &storagev1.VolumeAttachment{}
				return mgrCache.Get(ctx, client.ObjectKeyFromObject(va), got) == nil && got.Status.Attached
			}).Should(BeTrue())
		}),
		Entry("a running pod that mounts it", func(namespace string, pvc *corev1.PersistentVolumeClaim, node string) {
			pod := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: "other-user-of-the-claim", Namespace: namespace},
				Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "busybox"}},
					Volumes: []corev1.Volume{{Name: "v", VolumeSource: corev1.VolumeSource{
						PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: pvc.Name}}}}},
			}
			Expect(k8sClient.Create(ctx, pod)).To(Succeed())
			pod.Status.Phase = corev1.PodRunning
			Expect(k8sClient.Status().Update(ctx, pod)).To(Succeed())
		}),
	)
})

// TestReadDWOSettings merges the workspace's own DWOC over the global one over DWO's defaults.
func TestReadDWOSettings(t *testing.T) {
	dwoc := func(namespace, name string, workspace map[string]any) *unstructured.Unstructured {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(dwocGVK)
		u.SetNamespace(namespace)
		u.SetName(name)
		u.Object["config"] = map[string]any{"workspace": workspace}
		return u
	}
	global := dwoc("dwo", globalDWOCName, map[string]any{"pvcName": "global-claim",
		"podSecurityContext": map[string]any{"runAsUser": int64(2000)}})
	own := dwoc("team", "team-config", map[string]any{"podSecurityContext": map[string]any{"runAsUser": int64(3000)}})
	c := fake.NewClientBuilder().WithScheme(scheme.Scheme).WithObjects(global, own).Build()
	ctx := context.Background()

	tests := []struct {
		name     string
		dwoNS    string
		ref      *types.NamespacedName
		wantPVC  string
		wantUser int64
	}{
		{"global found by search", "", nil, "global-claim", 2000},
		{"global in the given namespace", "dwo", nil, "global-claim", 2000},
		{"the workspace's own config wins", "dwo", &types.NamespacedName{Namespace: "team", Name: "team-config"}, "global-claim", 3000},
		{"wrong namespace: DWO's defaults", "elsewhere", nil, "", 1234},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readDWOSettings(ctx, c, tt.dwoNS, tt.ref)
			if err != nil {
				t.Fatal(err)
			}
			if got.PVCName != tt.wantPVC || *got.PodSecurityContext.RunAsUser != tt.wantUser {
				t.Fatalf("got pvc %q user %d, want %q %d", got.PVCName, *got.PodSecurityContext.RunAsUser, tt.wantPVC, tt.wantUser)
			}
		})
	}
}

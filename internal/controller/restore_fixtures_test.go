package controller

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/util/rand"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
)

// workspaceWithoutID creates a stopped per-workspace DevWorkspace whose status has a phase but no
// status.devworkspaceId: what resolveWorkspaceStorage (workspacestorage.go) calls a workspace that
// has never started. The status is written once, so the operator never sees an id (createWorkspace
// always writes one).
func workspaceWithoutID(namespace, name string) {
	GinkgoHelper()
	dw := newUnstructuredDevWorkspace()
	dw.SetName(name)
	dw.SetNamespace(namespace)
	dw.Object["spec"] = map[string]any{
		"started": false,
		"template": map[string]any{
			"attributes": map[string]any{attrStorageType: storagePerWorkspace},
			"components": []any{map[string]any{"name": "tools", "container": map[string]any{"image": "quay.io/devfile/universal-developer-image:latest"}}},
		},
	}
	Expect(k8sClient.Create(ctx, dw)).To(Succeed())
	dw.Object["status"] = map[string]any{"phase": phaseStopped}
	Expect(k8sClient.Status().Update(ctx, dw)).To(Succeed())
	got := workspaceOf(namespace, name)
	Expect(got.ID).To(BeEmpty())
	Expect(got.Stopped()).To(BeTrue())
}

// succeededBackupWithReference is finishedBackup (workspacerestore_controller_test.go) Succeeded
// with the given artifact reference, written in its one status update: the manager's cache never
// holds a restorable version with another reference, which a restore could act on.
func succeededBackupWithReference(f backupFixture, reference string) *backupv1alpha1.WorkspaceBackup {
	GinkgoHelper()
	b := manualBackup(f.Namespace, "gone-"+rand.String(4), f.Policy.Name)
	eventuallyPhase(b, backupv1alpha1.BackupFailed)
	got := getBackup(b)
	got.Status.Phase = backupv1alpha1.BackupSucceeded
	got.Status.Artifact = &backupv1alpha1.ArtifactStatus{Reference: reference, Digest: testDigest}
	Expect(k8sClient.Status().Update(ctx, got)).To(Succeed())
	return got
}

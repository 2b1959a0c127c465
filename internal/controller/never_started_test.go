package controller

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
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

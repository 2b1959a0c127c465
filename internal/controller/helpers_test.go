package controller

import (
	"fmt"
	"maps"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/dwbackup/devworkspace-backup-operator/internal/dwo"
)

// newNamespace creates a namespace with a random name and the given labels.
func newNamespace(labels map[string]string) string {
	GinkgoHelper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ns-" + rand.String(8), Labels: labels}}
	Expect(k8sClient.Create(ctx, ns)).To(Succeed())
	return ns.Name
}

// testWorkspace describes a DevWorkspace for a spec.
type testWorkspace struct {
	Namespace   string
	Name        string
	ID          string // default: workspace + 16 hex derived from the name
	StorageType string // "" = no attribute (common)
	Phase       string // default Stopped
	Started     bool
	StoppedAt   time.Time // Started=False lastTransitionTime; zero = no condition
	Labels      map[string]string
	Attributes  map[string]any // extra template attributes
	Components  []any          // extra template components (volumes)
}

// createWorkspace creates a DevWorkspace and sets its status as DWO would.
func createWorkspace(w testWorkspace) {
	GinkgoHelper()
	if w.Phase == "" {
		w.Phase = phaseStopped
	}
	if w.ID == "" {
		w.ID = fmt.Sprintf("workspace%016x", hashString(w.Namespace+"/"+w.Name))
	}
	attrs := map[string]any{}
	maps.Copy(attrs, w.Attributes)
	if w.StorageType != "" {
		attrs[attrStorageType] = w.StorageType
	}
	dw := newUnstructuredDevWorkspace()
	dw.SetName(w.Name)
	dw.SetNamespace(w.Namespace)
	dw.SetLabels(w.Labels)
	dw.Object["spec"] = map[string]any{
		"started": w.Started,
		"template": map[string]any{
			"attributes": attrs,
			"components": append([]any{map[string]any{"name": "tools", "container": map[string]any{
				"image": "quay.io/devfile/universal-developer-image:latest"}}}, w.Components...),
		},
	}
	Expect(k8sClient.Create(ctx, dw)).To(Succeed())
	setWorkspaceStatus(dw, w.ID, w.Phase, w.StoppedAt)
}

// setWorkspaceStatus writes status as DWO does: phase, id and the Started condition.
func setWorkspaceStatus(dw *unstructured.Unstructured, id, phase string, stoppedAt time.Time) {
	GinkgoHelper()
	status := map[string]any{"devworkspaceId": id, "phase": phase}
	if !stoppedAt.IsZero() {
		status["conditions"] = []any{map[string]any{
			"type": "Started", "status": "False", "message": "Workspace is stopped",
			"lastTransitionTime": stoppedAt.UTC().Format(time.RFC3339),
		}}
	}
	dw.Object["status"] = status
	Expect(k8sClient.Status().Update(ctx, dw)).To(Succeed())
}

// getWorkspace reads a DevWorkspace from the API server.
func getWorkspace(namespace, name string) *unstructured.Unstructured {
	GinkgoHelper()
	dw := newUnstructuredDevWorkspace()
	Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, dw)).To(Succeed())
	return dw
}

func hashString(s string) uint64 {
	var h uint64 = 14695981039346656037
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// newUnstructuredDevWorkspace is a DevWorkspace with every field, as DWO and people write them.
func newUnstructuredDevWorkspace() *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(DevWorkspaceGVK)
	return u
}

// workspaceOf reads a DevWorkspace from the API server as the operator sees it.
func workspaceOf(namespace, name string) workspace {
	GinkgoHelper()
	dw := &dwo.DevWorkspace{}
	Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, dw)).To(Succeed())
	return workspaceFrom(dw)
}

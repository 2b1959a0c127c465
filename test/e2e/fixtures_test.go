//go:build e2e || olm

package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
)

const (
	// labelE2E marks everything the suite creates, so the next run removes what this one left.
	labelE2E = "dwbackup.io/e2e"
	// labelRun holds the run's id: policies select only this run's namespaces.
	labelRun = "dwbackup.io/e2e-run"
	// labelGroup splits workspaces between the policies of the specs.
	labelGroup = "e2e-group"

	attrStorageType = "controller.devfile.io/storage-type"
	storagePerWS    = "per-workspace"
	storageCommon   = "common"
	storagePerUser  = "per-user"
	storageEphem    = "ephemeral"
	commonClaim     = "claim-devworkspace" // DWO's default common PVC name (docs/architecture.md, "DevWorkspaces")
	everyMinute     = "*/1 * * * *"
)

var devWorkspaceGVK = schema.GroupVersionKind{Group: "workspace.devfile.io", Version: "v1alpha2", Kind: "DevWorkspace"}

// fixtures creates the objects and files of one run. Names carry the run id, so a run never
// waits for the previous run's namespaces to go, and registry repositories never hold stale tags.
type fixtures struct {
	c       *cluster
	id      string // 6 hex characters
	dataDir string // host directory of this run's hostPath volumes
	claims  map[string]string
}

func newFixtures(c *cluster) *fixtures {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	id := hex.EncodeToString(b)
	return &fixtures{c: c, id: id, dataDir: filepath.Join(c.stateDir, "e2e", id), claims: map[string]string{}}
}

// repository is where a policy of this run puts its artifacts.
func (f *fixtures) repository(name string) string {
	return fmt.Sprintf("%s/e2e-%s/%s", f.c.registry, f.id, name)
}

// cleanPrevious deletes what earlier runs left: namespaces (and with them their WorkspaceBackups;
// a deletion that is not a prune keeps the artifacts), policies, PVs and host directories. It does
// not wait: this run's names are new.
func (f *fixtures) cleanPrevious(ctx context.Context) {
	GinkgoHelper()
	sel := labelE2E + "=true," + labelRun + "!=" + f.id
	for _, args := range [][]string{
		{"delete", "backuppolicies", "-l", sel, "--wait=false"},
		{"delete", "namespaces", "-l", sel, "--wait=false"},
		{"delete", "pv", "-l", sel, "--wait=false"},
	} {
		_, err := f.c.kubectl(ctx, args...)
		Expect(err).NotTo(HaveOccurred())
	}
	Expect(os.RemoveAll(filepath.Join(f.c.stateDir, "e2e"))).To(Succeed())
}

func (f *fixtures) labels(extra map[string]string) map[string]string {
	l := map[string]string{labelE2E: "true", labelRun: f.id}
	maps.Copy(l, extra)
	return l
}

// createNamespace creates e2e-<run>-<suffix>. hostNetwork, the only pod network of the local
// cluster, fails the baseline level, so enforce is privileged; warn and audit stay restricted
// (docs/local-cluster.md).
func (f *fixtures) createNamespace(ctx context.Context, suffix string) string {
	GinkgoHelper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: fmt.Sprintf("e2e-%s-%s", f.id, suffix),
		Labels: f.labels(map[string]string{
			"pod-security.kubernetes.io/enforce": "privileged",
			"pod-security.kubernetes.io/warn":    "restricted",
			"pod-security.kubernetes.io/audit":   "restricted",
		}),
	}}
	Expect(f.c.client.Create(ctx, ns)).To(Succeed())
	return ns.Name
}

// workspace is a DevWorkspace of the suite and where its files are on the host.
type workspace struct {
	Namespace   string
	Name        string
	ID          string
	StorageType string
	claimRoot   string // host directory of the PVC's root; "" without storage
}

func (w *workspace) String() string { return w.Namespace + "/" + w.Name }

func (w *workspace) hasStorage() bool { return w.StorageType != storageEphem }

// claimName and sourcePath resolve storage as DWO does (docs/architecture.md, "Control flow").
func (w *workspace) claimName() string {
	if w.StorageType == storagePerWS {
		return "storage-" + w.ID
	}
	return commonClaim
}

func (w *workspace) sourcePath() string {
	if w.StorageType == storagePerWS {
		return "projects"
	}
	return w.ID + "/projects"
}

// projectsDir is the workspace's /projects on the host.
func (w *workspace) projectsDir() string { return filepath.Join(w.claimRoot, w.sourcePath()) }

// createWorkspace creates a stopped DevWorkspace labelled with group, its storage (a hostPath PV
// and its PVC, shared by the workspaces of a namespace for common and per-user storage) and its
// files, written by fill into the projects directory and then given to the mover's user.
func (f *fixtures) createWorkspace(ctx context.Context, ns, name, storageType, group string,
	fill func(projects string)) *workspace {
	GinkgoHelper()
	w := &workspace{Namespace: ns, Name: name, ID: "workspace" + randomHex(8), StorageType: storageType}
	if w.hasStorage() {
		w.claimRoot = f.ensureClaim(ctx, ns, w.claimName())
		Expect(os.MkdirAll(w.projectsDir(), 0o755)).To(Succeed())
		if fill != nil {
			fill(w.projectsDir())
		}
		chownTree(w.claimRoot)
	}
	dw := &unstructured.Unstructured{}
	dw.SetGroupVersionKind(devWorkspaceGVK)
	dw.SetNamespace(ns)
	dw.SetName(name)
	dw.SetLabels(f.labels(map[string]string{labelGroup: group}))
	attributes := map[string]any{}
	if storageType != storageCommon {
		attributes[attrStorageType] = storageType // common is also what no attribute means
	}
	dw.Object["spec"] = map[string]any{
		"started": false,
		"template": map[string]any{
			"attributes": attributes,
			"components": []any{map[string]any{"name": "dev",
				"container": map[string]any{"image": "quay.io/devfile/universal-developer-image:latest"}}},
		},
	}
	Expect(f.c.client.Create(ctx, dw)).To(Succeed())
	f.markStopped(ctx, w, time.Now())
	return w
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ensureClaim creates, once per namespace and claim, a hostPath PV and a PVC bound to it by
// volumeName (binds at once: docs/local-cluster.md), and returns the PV's host directory.
func (f *fixtures) ensureClaim(ctx context.Context, ns, claim string) string {
	GinkgoHelper()
	key := ns + "/" + claim
	if dir, ok := f.claims[key]; ok {
		return dir
	}
	dir := filepath.Join(f.dataDir, ns, claim)
	Expect(os.MkdirAll(dir, 0o755)).To(Succeed())
	size := resource.MustParse("1Gi")
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: ns + "-" + claim, Labels: f.labels(nil)},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: size},
			AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{
				Path: dir, Type: ptr.To(corev1.HostPathDirectory)}},
		},
	}
	Expect(f.c.client.Create(ctx, pv)).To(Succeed())
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: claim},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: ptr.To(""),
			VolumeName:       pv.Name,
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: size}},
		},
	}
	Expect(f.c.client.Create(ctx, pvc)).To(Succeed())
	Eventually(func(g Gomega) {
		g.Expect(f.c.client.Get(ctx, client.ObjectKeyFromObject(pvc), pvc)).To(Succeed())
		g.Expect(pvc.Status.Phase).To(Equal(corev1.ClaimBound))
	}).WithTimeout(time.Minute).Should(Succeed(), "PVC %s", key)
	f.claims[key] = dir
	return dir
}

// markStopped sets the status DWO writes for a stopped workspace; a new `at` is a new stop.
func (f *fixtures) markStopped(ctx context.Context, w *workspace, at time.Time) {
	GinkgoHelper()
	f.patchStatus(ctx, w, map[string]any{
		"phase": "Stopped", "devworkspaceId": w.ID, "message": "Workspace is stopped",
		"conditions": []any{map[string]any{"type": "Started", "status": "False", "reason": "",
			"message": "Workspace is stopped", "lastTransitionTime": at.UTC().Format(time.RFC3339)}},
	})
}

func (f *fixtures) patchStatus(ctx context.Context, w *workspace, status map[string]any) {
	GinkgoHelper()
	data, err := json.Marshal(map[string]any{"status": status})
	Expect(err).NotTo(HaveOccurred())
	Expect(f.c.client.Status().Patch(ctx, f.devWorkspaceRef(w), client.RawPatch(types.MergePatchType, data))).To(Succeed())
}

// start does what a developer starting the workspace does: spec.started true (DWO then moves the
// phase to Starting, which the suite writes too).
func (f *fixtures) start(ctx context.Context, w *workspace) {
	GinkgoHelper()
	patch := client.RawPatch(types.MergePatchType, []byte(`{"spec":{"started":true}}`))
	Expect(f.c.client.Patch(ctx, f.devWorkspaceRef(w), patch)).To(Succeed())
	f.patchStatus(ctx, w, map[string]any{"phase": "Starting", "message": "Waiting for workspace deployment"})
}

func (f *fixtures) devWorkspaceRef(w *workspace) *unstructured.Unstructured {
	dw := &unstructured.Unstructured{}
	dw.SetGroupVersionKind(devWorkspaceGVK)
	dw.SetNamespace(w.Namespace)
	dw.SetName(w.Name)
	return dw
}

// createPolicy creates a policy for this run's namespaces and the workspaces of group, pushing to
// the local registry over plain HTTP (an explicit opt-in: the registry is on loopback).
func (f *fixtures) createPolicy(ctx context.Context, name, group string,
	mutate func(*backupv1alpha1.BackupPolicySpec)) *backupv1alpha1.BackupPolicy {
	GinkgoHelper()
	p := &backupv1alpha1.BackupPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("e2e-%s-%s", f.id, name), Labels: f.labels(nil)},
		Spec: backupv1alpha1.BackupPolicySpec{
			Schedule:          everyMinute,
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{labelRun: f.id}},
			WorkspaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{labelGroup: group}},
			Registry:          backupv1alpha1.RegistrySpec{Repository: f.repository(name), Insecure: true},
			Job:               backupv1alpha1.JobSpec{ActiveDeadlineSeconds: ptr.To[int64](600)},
		},
	}
	if mutate != nil {
		mutate(&p.Spec)
	}
	Expect(f.c.client.Create(ctx, p)).To(Succeed())
	return p
}

// getPolicy reads a policy.
func (f *fixtures) getPolicy(ctx context.Context, name string) *backupv1alpha1.BackupPolicy {
	GinkgoHelper()
	p := &backupv1alpha1.BackupPolicy{}
	Expect(f.c.client.Get(ctx, client.ObjectKey{Name: name}, p)).To(Succeed())
	return p
}

// waitForSlot waits until the policy processed its first slot and returns it.
func (f *fixtures) waitForSlot(ctx context.Context, policy string) time.Time {
	GinkgoHelper()
	var slot time.Time
	Eventually(func(g Gomega) {
		p := f.getPolicy(ctx, policy)
		g.Expect(p.Status.LastScheduleTime).NotTo(BeNil())
		slot = p.Status.LastScheduleTime.Time
	}).WithTimeout(3*time.Minute).WithPolling(time.Second).Should(Succeed(), "policy %s processes a slot", policy)
	return slot
}

// createBackup creates a manual WorkspaceBackup.
func (f *fixtures) createBackup(ctx context.Context, w *workspace,
	name, policy string) *backupv1alpha1.WorkspaceBackup {
	GinkgoHelper()
	b := &backupv1alpha1.WorkspaceBackup{
		ObjectMeta: metav1.ObjectMeta{Namespace: w.Namespace, Name: name},
		Spec:       backupv1alpha1.WorkspaceBackupSpec{WorkspaceName: w.Name, PolicyName: policy},
	}
	Expect(f.c.client.Create(ctx, b)).To(Succeed())
	return b
}

// policyBackups lists the WorkspaceBackups of a policy in every namespace.
func (f *fixtures) policyBackups(ctx context.Context, g Gomega, policy string) []backupv1alpha1.WorkspaceBackup {
	list := &backupv1alpha1.WorkspaceBackupList{}
	g.Expect(f.c.client.List(ctx, list, client.MatchingLabels{backupv1alpha1.LabelPolicy: policy})).To(Succeed())
	return list.Items
}

// waitForBackup waits until a backup finished and returns it.
func (f *fixtures) waitForBackup(ctx context.Context, ns, name string,
	timeout time.Duration) *backupv1alpha1.WorkspaceBackup {
	GinkgoHelper()
	b := &backupv1alpha1.WorkspaceBackup{}
	Eventually(func(g Gomega) {
		g.Expect(f.c.client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, b)).To(Succeed())
		g.Expect(b.Status.Phase.Finished()).To(BeTrue(), "phase %q: %s", b.Status.Phase, b.Status.Message)
	}).WithTimeout(timeout).Should(Succeed(), "backup %s/%s finishes", ns, name)
	return b
}

// waitForRestore waits until a restore finished and returns it.
func (f *fixtures) waitForRestore(ctx context.Context, ns, name string) *backupv1alpha1.WorkspaceRestore {
	GinkgoHelper()
	r := &backupv1alpha1.WorkspaceRestore{}
	Eventually(func(g Gomega) {
		g.Expect(f.c.client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, r)).To(Succeed())
		g.Expect(r.Status.Phase.Finished()).To(BeTrue(), "phase %q: %s", r.Status.Phase, r.Status.Message)
	}).WithTimeout(3*time.Minute).Should(Succeed(), "restore %s/%s finishes", ns, name)
	return r
}

// gone tells whether an object no longer exists.
func (f *fixtures) gone(ctx context.Context, obj client.Object) (bool, error) {
	err := f.c.client.Get(ctx, client.ObjectKeyFromObject(obj), obj)
	if apierrors.IsNotFound(err) {
		return true, nil
	}
	return false, err
}

// readyReason returns the reason of the Ready condition, or "".
func readyReason(conditions []metav1.Condition) string {
	for _, c := range conditions {
		if c.Type == backupv1alpha1.ConditionReady {
			return c.Reason
		}
	}
	return ""
}

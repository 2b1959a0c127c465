//go:build e2e

package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
	"github.com/dwbackup/devworkspace-backup-operator/internal/registry/registrytest"
	"github.com/dwbackup/devworkspace-backup-operator/internal/testenv"
)

// The day the cluster is lost (docs/restore.md, "Cluster lost"): backups are taken, the cluster
// is purged with everything in it (make local-purge: etcd, volumes, the cluster's own registry),
// a new one is brought up and the operator deployed again, the admin applies the same policy,
// the history comes back from the registry, and a developer restores a recreated workspace.
//
// The artifacts live in a registry outside the cluster, as in production: a docker-registry of
// this spec whose storage is a directory of the test process, not under the cluster's state
// directory that local-purge deletes.

// runMake runs a target of the repository's Makefile (the cluster scripts), as an admin would.
func runMake(ctx context.Context, target string) {
	GinkgoHelper()
	cmd := exec.CommandContext(ctx, "make", "-C", testenv.RepoRoot(), "--no-print-directory", target)
	cmd.Stdout, cmd.Stderr = GinkgoWriter, GinkgoWriter
	Expect(cmd.Run()).To(Succeed(), "make %s", target)
}

// writeDotfiles adds what DWO's own restore (cp -r extracted/*) loses: top-level dotfiles and
// dot-directories.
func writeDotfiles(dir string) {
	GinkgoHelper()
	writeFile(filepath.Join(dir, ".bashrc"), 0o644, []byte("export EDITOR=vi\n"))
	writeFile(filepath.Join(dir, ".config", "tool", "settings.json"), 0o600, []byte(`{"theme":"dark"}`))
	writeFile(filepath.Join(dir, ".git", "config"), 0o644, []byte("[core]\n\trepositoryformatversion = 0\n"))
	writeRandomFile(filepath.Join(dir, ".git", "objects", "pack", "pack-1.pack"), 128<<10)
}

// recreateWorkspace creates a DevWorkspace as a developer does after the cluster was rebuilt:
// never started, so it has no storage; DWO has given it a new id and reported it Stopped.
func (f *fixtures) recreateWorkspace(ctx context.Context, ns, name, storageType, group string) *workspace {
	GinkgoHelper()
	w := &workspace{Namespace: ns, Name: name, ID: "workspace" + randomHex(8), StorageType: storageType}
	dw := &unstructured.Unstructured{}
	dw.SetGroupVersionKind(devWorkspaceGVK)
	dw.SetNamespace(ns)
	dw.SetName(name)
	dw.SetLabels(f.labels(map[string]string{labelGroup: group}))
	dw.Object["spec"] = map[string]any{
		"started": false,
		"template": map[string]any{
			"attributes": map[string]any{attrStorageType: storageType},
			"components": []any{map[string]any{"name": "dev",
				"container": map[string]any{"image": "quay.io/devfile/universal-developer-image:latest"}}},
		},
	}
	Expect(f.c.client.Create(ctx, dw)).To(Succeed())
	f.markStopped(ctx, w, time.Now())
	return w
}

// provideVolume makes a hostPath PV (owned by the mover's user) pre-bound to the claim a restore
// will create: the local cluster has no dynamic provisioner, a real one would make the volume.
func (f *fixtures) provideVolume(ctx context.Context, w *workspace, size resource.Quantity) {
	GinkgoHelper()
	w.claimRoot = filepath.Join(f.dataDir, w.Namespace, w.claimName())
	Expect(os.MkdirAll(w.claimRoot, 0o755)).To(Succeed())
	chownTree(w.claimRoot)
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: w.Namespace + "-" + w.claimName(), Labels: f.labels(nil)},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: size},
			AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			ClaimRef:                      &corev1.ObjectReference{Namespace: w.Namespace, Name: w.claimName()},
			PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{
				Path: w.claimRoot, Type: ptr.To(corev1.HostPathDirectory)}},
		},
	}
	Expect(f.c.client.Create(ctx, pv)).To(Succeed())
}

var _ = Describe("The cluster is lost", Serial, func() {
	It("brings the history back from the registry and restores a recreated workspace exactly", func(ctx SpecContext) {
		external := registrytest.StartDistribution(GinkgoT())
		ns := fx.createNamespace(ctx, "lost")
		const group = "lost"
		alpha := fx.createWorkspace(ctx, ns, "alpha", storagePerWS, group, func(dir string) {
			writeSampleTree(dir, "alpha")
			writeDotfiles(dir)
		})
		beta := fx.createWorkspace(ctx, ns, "beta", storageCommon, group, func(dir string) { writeSampleTree(dir, "beta") })
		originals := map[string]map[string]entry{"alpha": snapshot(alpha.projectsDir()), "beta": snapshot(beta.projectsDir())}
		Expect(originals["alpha"]).To(HaveKey(".bashrc"))
		Expect(originals["alpha"]).To(HaveKey(".git/objects/pack/pack-1.pack"))

		// The admin's policy, as kept in git: the same object is applied to the new cluster.
		applyPolicy := func() *backupv1alpha1.BackupPolicy {
			return fx.createPolicy(ctx, "lost", group, func(s *backupv1alpha1.BackupPolicySpec) {
				s.Registry.Repository = external.Host + "/backups"
				s.Suspend = true // manual backups only: the spec decides when
				s.ImportHistory = true
			})
		}
		policy := applyPolicy()

		By("backing up both workspaces")
		taken := map[string]*backupv1alpha1.WorkspaceBackup{}
		for _, w := range []*workspace{alpha, beta} {
			b := fx.createBackup(ctx, w, w.Name+"-before-the-loss", policy.Name)
			b = fx.waitForBackup(ctx, ns, b.Name, 3*time.Minute)
			Expect(b.Status.Phase).To(Equal(backupv1alpha1.BackupSucceeded), b.Status.Message)
			taken[w.Name] = b
		}

		By("losing the cluster: make local-purge")
		rec.Stop()
		runMake(ctx, "local-purge")
		Expect(env.stateDir).NotTo(BeADirectory(), "local-purge deletes the cluster's whole state")

		By("a new cluster with the operator deployed: make local-up deploy-local")
		runMake(ctx, "local-up")
		runMake(ctx, "deploy-local")
		env = connect()
		fx.c = env
		fx.claims = map[string]string{}
		rec = startRecorder(env)
		env.waitManagers(ctx)

		By("the namespace and the same policy applied again")
		Expect(fx.createNamespace(ctx, "lost")).To(Equal(ns))
		policy = applyPolicy()

		By("the history is back: kubectl get wsb")
		Eventually(func(g Gomega) {
			p := fx.getPolicy(ctx, policy.Name)
			g.Expect(p.Status.HistoryImport).NotTo(BeNil())
			g.Expect(p.Status.HistoryImport.Imported).To(BeEquivalentTo(2))
		}).WithTimeout(2*time.Minute).Should(Succeed(), "the policy imports its history")
		imported := map[string]backupv1alpha1.WorkspaceBackup{}
		list := &backupv1alpha1.WorkspaceBackupList{}
		Expect(env.client.List(ctx, list, client.InNamespace(ns))).To(Succeed())
		for _, b := range list.Items {
			Expect(b.Status.Phase).To(Equal(backupv1alpha1.BackupSucceeded))
			Expect(b.Labels).To(HaveKeyWithValue(backupv1alpha1.LabelTrigger, string(backupv1alpha1.TriggerImported)))
			imported[b.Spec.WorkspaceName] = b
		}
		Expect(imported).To(HaveLen(2))
		for name, before := range taken {
			Expect(imported[name].Status.Artifact.Reference).To(Equal(before.Status.Artifact.Reference))
			Expect(imported[name].Status.Artifact.Digest).To(Equal(before.Status.Artifact.Digest))
			Expect(imported[name].Status.WorkspaceID).To(Equal(before.Status.WorkspaceID))
		}
		table, err := env.kubectl(ctx, "-n", ns, "get", "wsb")
		Expect(err).NotTo(HaveOccurred())
		GinkgoWriter.Printf("kubectl -n %s get wsb\n%s\n", ns, table)
		Expect(table).To(ContainSubstring(imported["alpha"].Name))
		Expect(table).To(ContainSubstring(imported["beta"].Name))
		Expect(strings.Count(table, "Succeeded")).To(Equal(2))

		By("the developer recreates alpha (never started: no storage) and restores into it")
		fresh := fx.recreateWorkspace(ctx, ns, "alpha", storagePerWS, group)
		fx.provideVolume(ctx, fresh, resource.MustParse("10Gi"))
		wr := &backupv1alpha1.WorkspaceRestore{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "alpha-after-the-loss"},
			Spec:       backupv1alpha1.WorkspaceRestoreSpec{WorkspaceName: "alpha", BackupName: imported["alpha"].Name},
		}
		Expect(env.client.Create(ctx, wr)).To(Succeed())
		done := fx.waitForRestore(ctx, ns, wr.Name)
		Expect(done.Status.Phase).To(Equal(backupv1alpha1.RestoreSucceeded), done.Status.Message)
		Expect(done.Status.Source.Digest).To(Equal(taken["alpha"].Status.Artifact.Digest))
		pvc := &corev1.PersistentVolumeClaim{}
		Expect(env.client.Get(ctx, client.ObjectKey{Namespace: ns, Name: fresh.claimName()}, pvc)).To(Succeed())
		Expect(pvc.Status.Phase).To(Equal(corev1.ClaimBound))
		Expect(pvc.OwnerReferences).To(HaveLen(1), "the claim belongs to the DevWorkspace, as DWO's own")

		By("the developer starts it and finds the files exactly as backed up, .git and dotfiles included")
		fx.start(ctx, fresh)
		Expect(snapshot(fresh.projectsDir())).To(Equal(originals["alpha"]))
	}, SpecTimeout(20*time.Minute))
})

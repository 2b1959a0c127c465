//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
)

// The specs share one cluster and build on each other's objects, so they run in order; a failed
// spec does not stop the independent ones after it (ContinueOnFailure).
var _ = Describe("The operator on a real cluster", Ordered, ContinueOnFailure, func() {
	var (
		nsA, nsB string
		// sched holds the workspaces of the scheduled policy: every storage type.
		sched []*workspace
	)

	BeforeAll(func(ctx SpecContext) {
		nsA = fx.createNamespace(ctx, "a")
		nsB = fx.createNamespace(ctx, "b")
		fill := func(seed string) func(string) { return func(dir string) { writeSampleTree(dir, seed) } }
		sched = []*workspace{
			fx.createWorkspace(ctx, nsA, "per-ws", storagePerWS, "sched", fill("a per-workspace")),
			fx.createWorkspace(ctx, nsA, "common", storageCommon, "sched", fill("a common")),
			fx.createWorkspace(ctx, nsA, "per-user", storagePerUser, "sched", fill("a per-user")),
			fx.createWorkspace(ctx, nsA, "ephemeral", storageEphem, "sched", nil),
			fx.createWorkspace(ctx, nsB, "per-ws", storagePerWS, "sched", fill("b per-workspace")),
			fx.createWorkspace(ctx, nsB, "common", storageCommon, "sched", fill("b common")),
		}
	})

	Context("on demand", func() {
		var (
			manualPolicy string
			manualWS     *workspace
			manual       *backupv1alpha1.WorkspaceBackup
		)

		It("e. runs a manual WorkspaceBackup through a real Job", func(ctx SpecContext) {
			manualWS = fx.createWorkspace(ctx, nsB, "manual", storageCommon, "manual",
				func(dir string) { writeSampleTree(dir, "manual") })
			p := fx.createPolicy(ctx, "manual", "manual", func(s *backupv1alpha1.BackupPolicySpec) {
				s.Suspend = true // only on-demand backups: suspend stops slots, not manual backups
				s.Retention.KeepLast = 5
			})
			manualPolicy = p.Name
			b := fx.createBackup(ctx, manualWS, "manual-1", manualPolicy)
			manual = fx.waitForBackup(ctx, b.Namespace, b.Name, 3*time.Minute)

			expectArtifact(ctx, manual, manualWS, fx.repository("manual"))
			expectSource(manual, manualWS)
			Expect(manual.Labels).To(And(
				HaveKeyWithValue(backupv1alpha1.LabelTrigger, string(backupv1alpha1.TriggerManual)),
				HaveKeyWithValue(backupv1alpha1.LabelPolicy, manualPolicy),
				HaveKeyWithValue(backupv1alpha1.LabelWorkspace, manualWS.Name)))
			Expect(manual.Finalizers).To(ContainElement(backupv1alpha1.FinalizerArtifact))
			wantTag := manualTag(manualPolicy, manual.CreationTimestamp.Time, manual.UID)
			Expect(tagOf(manual.Status.Artifact.Reference)).To(Equal(wantTag), "policy, UTC creation time, UID")
			Expect(manual.Status.Artifact.Unchanged).To(BeFalse())
			Expect(readyReason(manual.Status.Conditions)).To(Equal(backupv1alpha1.ReasonSucceeded))
			By("one Job, deleted once the success was recorded")
			rec.waitSeenJob(manual.UID)
			Expect(rec.JobsFor(manual.UID)).To(HaveLen(1))
			Eventually(func() (bool, error) {
				job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: manual.Namespace, Name: manual.Status.JobName}}
				return fx.gone(ctx, job)
			}).Should(BeTrue())
		}, SpecTimeout(5*time.Minute))

		It("f. restores with and without overwrite, reproducing the tree", func(ctx SpecContext) {
			Expect(manual).NotTo(BeNil(), "needs the manual backup of spec e")
			projects := manualWS.projectsDir()
			original := snapshot(projects)

			By("restoring into the emptied workspace without overwrite")
			emptyDir(projects)
			r := createRestore(ctx, manualWS, "restore-into-empty", manual.Name, false)
			r = fx.waitForRestore(ctx, r.Namespace, r.Name)
			Expect(r.Status.Phase).To(Equal(backupv1alpha1.RestoreSucceeded), r.Status.Message)
			Expect(r.Status.Source).NotTo(BeNil())
			Expect(r.Status.Source.Digest).To(Equal(manual.Status.Artifact.Digest), "restored by digest")
			Expect(r.Status.SafetyBackupName).To(BeEmpty())
			Expect(snapshot(projects)).To(Equal(original))

			By("restoring over modified files with overwrite")
			writeFile(filepath.Join(projects, "README.md"), 0o644, []byte("changed after the backup\n"))
			writeFile(filepath.Join(projects, "new/notes.txt"), 0o644, []byte("new work\n"))
			Expect(os.Remove(filepath.Join(projects, "app", ".env"))).To(Succeed())
			chownTree(projects)
			modified := snapshot(projects)
			Expect(modified).NotTo(Equal(original))
			r = createRestore(ctx, manualWS, "restore-overwrite", manual.Name, true)
			r = fx.waitForRestore(ctx, r.Namespace, r.Name)
			Expect(r.Status.Phase).To(Equal(backupv1alpha1.RestoreSucceeded), r.Status.Message)
			Expect(snapshot(projects)).To(Equal(original))

			By("the safety backup holds the content that was overwritten")
			Expect(r.Status.SafetyBackupName).NotTo(BeEmpty())
			safety := fx.waitForBackup(ctx, r.Namespace, r.Status.SafetyBackupName, time.Minute)
			Expect(safety.Status.Phase).To(Equal(backupv1alpha1.BackupSucceeded), safety.Status.Message)
			Expect(safety.Labels).To(HaveKeyWithValue(backupv1alpha1.LabelTrigger, string(backupv1alpha1.TriggerPreRestore)))
			Expect(env.pullTree(ctx, safety.Status.Artifact.Reference)).To(Equal(modified))

			By("a restore without overwrite refuses a non-empty target and writes nothing")
			r = createRestore(ctx, manualWS, "restore-not-empty", manual.Name, false)
			r = fx.waitForRestore(ctx, r.Namespace, r.Name)
			Expect(r.Status.Phase).To(Equal(backupv1alpha1.RestoreFailed))
			Expect(readyReason(r.Status.Conditions)).To(Equal(backupv1alpha1.ReasonTargetNotEmpty))
			Expect(snapshot(projects)).To(Equal(original))
		}, SpecTimeout(6*time.Minute))
	})

	It("d. aborts a backup when its workspace starts: the mover pod is gone within 10 s", func(ctx SpecContext) {
		// 4 MiB/s through a proxy: the 64 MiB of random data takes ~16 s to upload, so the
		// workspace starts while the mover is surely mid-upload.
		slow := startSlowRegistry(env.registry, 4<<20)
		DeferCleanup(slow.Close)
		w := fx.createWorkspace(ctx, nsA, "slow", storagePerWS, "slow", func(dir string) {
			writeSampleTree(dir, "slow")
			writeRandomFile(filepath.Join(dir, "big", "random.bin"), 64<<20)
		})
		p := fx.createPolicy(ctx, "slow", "slow", func(s *backupv1alpha1.BackupPolicySpec) {
			s.Suspend = true
			s.Registry.Repository = fmt.Sprintf("%s/e2e-%s/slow", slow.Host, fx.id)
		})
		b := fx.createBackup(ctx, w, "slow-1", p.Name)
		Eventually(slow.Uploaded).WithTimeout(3*time.Minute).Should(BeNumerically(">", 2<<20), "the mover is uploading")
		Expect(env.client.Get(ctx, client.ObjectKeyFromObject(b), b)).To(Succeed())
		Expect(b.Status.Phase).To(Equal(backupv1alpha1.BackupRunning))
		Expect(moverPods(ctx, w.Namespace, b.UID)).NotTo(BeEmpty())

		started := time.Now()
		fx.start(ctx, w)
		Eventually(func() int { return len(moverPods(ctx, w.Namespace, b.UID)) }).
			WithTimeout(30*time.Second).WithPolling(100*time.Millisecond).Should(BeZero(), "the mover pod goes")
		gone := time.Since(started)
		AddReportEntry("mover pod gone after the workspace started", gone.Round(10*time.Millisecond).String())
		// Product requirement ("a backup never holds up a developer", docs/architecture.md): the mover pod of
		// a workspace that starts must be gone, from the API server, within 10 s.
		Expect(gone).To(BeNumerically("<", 10*time.Second))

		b = fx.waitForBackup(ctx, b.Namespace, b.Name, time.Minute)
		Expect(b.Status.Phase).To(Equal(backupv1alpha1.BackupFailed))
		Expect(readyReason(b.Status.Conditions)).To(Equal(backupv1alpha1.ReasonWorkspaceStarted))
		Expect(slow.Uploaded()).To(BeNumerically("<", 64<<20), "the upload was cut short")
		By("latest never moved: the repository has no manifest")
		repo := fmt.Sprintf("%s/e2e-%s/slow/%s/%s", env.registry, fx.id, w.Namespace, w.Name)
		Expect(env.resolve(ctx, repo+":latest")).To(BeEmpty())
	}, SpecTimeout(6*time.Minute))

	Context("on a schedule", func() {
		var (
			schedPolicy   string
			slot1         time.Time
			first, second map[string]backupv1alpha1.WorkspaceBackup
			withStorage   []*workspace
			schedRepo     string
		)

		It("a. backs up every stopped workspace of every storage type, artifacts equal to the files", func(ctx SpecContext) {
			withStorage = slices.DeleteFunc(slices.Clone(sched), func(w *workspace) bool { return !w.hasStorage() })
			types := make([]string, 0, len(withStorage))
			for _, w := range withStorage {
				types = append(types, w.StorageType)
			}
			Expect(types).To(ContainElements(storagePerWS, storageCommon, storagePerUser))
			schedRepo = fx.repository("sched")
			p := fx.createPolicy(ctx, "sched", "sched", func(s *backupv1alpha1.BackupPolicySpec) {
				s.Retention.KeepLast = 1
			})
			schedPolicy = p.Name
			slot1 = fx.waitForSlot(ctx, schedPolicy)
			first = fx.waitForScheduled(ctx, schedPolicy, slotEqual(slot1), len(withStorage), 3*time.Minute)
			for _, w := range withStorage {
				b := first[w.String()]
				By(fmt.Sprintf("%s (%s): %s", w, w.StorageType, b.Status.Artifact.Reference))
				expectSource(&b, w)
				expectArtifact(ctx, &b, w, schedRepo)
				Expect(b.Status.WorkspaceStoppedAt).NotTo(BeNil())
			}
			By("the ephemeral workspace is counted as skipped and gets no backup")
			Eventually(func(g Gomega) {
				st := fx.getPolicy(ctx, schedPolicy).Status
				g.Expect(st.Workspaces).To(BeEquivalentTo(len(sched)))
				g.Expect(st.SkippedWorkspaces).To(BeEquivalentTo(1))
				g.Expect(st.LastSuccessfulBackupTime).NotTo(BeNil())
			}).Should(Succeed())
		}, SpecTimeout(6*time.Minute))

		It("b. shortcuts unchanged workspaces at the next slot: same digest, unchanged true", func(ctx SpecContext) {
			Expect(first).To(HaveLen(len(withStorage)), "needs spec a")
			By("stopping every workspace again without changing a file")
			for _, w := range withStorage {
				fx.markStopped(ctx, w, time.Now())
			}
			second = fx.waitForScheduled(ctx, schedPolicy, slotAfter(slot1), len(withStorage), 3*time.Minute)
			for _, w := range withStorage {
				b, prev := second[w.String()], first[w.String()]
				Expect(b.Status.Artifact.Unchanged).To(BeTrue(), "%s: %s", w, b.Status.Message)
				Expect(b.Status.Artifact.Digest).To(Equal(prev.Status.Artifact.Digest), "%s: same manifest", w)
				Expect(b.Status.Artifact.Reference).NotTo(Equal(prev.Status.Artifact.Reference), "%s: a new tag", w)
				Expect(b.Status.WorkspaceStoppedAt.After(prev.Status.WorkspaceStoppedAt.Time)).To(BeTrue())
				expectArtifact(ctx, &b, w, schedRepo)
			}
		}, SpecTimeout(6*time.Minute))

		It("c. retention prunes objects and registry tags without losing a kept backup", func(ctx SpecContext) {
			Expect(second).To(HaveLen(len(withStorage)), "needs spec b")
			By("keepLast 1: the first slot's backups are pruned")
			for _, b := range first {
				Eventually(func() (bool, error) { return fx.gone(ctx, &b) }).Should(BeTrue(), "%s/%s pruned", b.Namespace, b.Name)
			}
			By("kept backups resolve; a pruned tag whose manifest a kept backup shares stays (docs/backups.md)")
			for _, w := range withStorage {
				kept, pruned := second[w.String()], first[w.String()]
				Expect(env.client.Get(ctx, client.ObjectKeyFromObject(&kept), &kept)).To(Succeed())
				Expect(env.resolve(ctx, kept.Status.Artifact.Reference)).To(Equal(kept.Status.Artifact.Digest))
				Expect(env.resolve(ctx, pruned.Status.Artifact.Reference)).To(Equal(kept.Status.Artifact.Digest))
			}

			By("new content, a new backup: the pruned manifest no backup uses goes with all its tags")
			p := fx.getPolicy(ctx, schedPolicy)
			p.Spec.Suspend = true // no slot may interleave with the manual backup below
			Expect(env.client.Update(ctx, p)).To(Succeed())
			w := withStorage[0]
			writeFile(filepath.Join(w.projectsDir(), "README.md"), 0o644, []byte("edited in the next session\n"))
			writeFile(filepath.Join(w.projectsDir(), "app", "src", "util.go"), 0o644, []byte("package main\n"))
			chownTree(w.projectsDir())
			fx.markStopped(ctx, w, time.Now())
			b := fx.createBackup(ctx, w, "after-edit", schedPolicy)
			b = fx.waitForBackup(ctx, b.Namespace, b.Name, 3*time.Minute)
			expectArtifact(ctx, b, w, schedRepo)
			Expect(b.Status.Artifact.Unchanged).To(BeFalse())
			Expect(b.Status.Artifact.Digest).NotTo(Equal(second[w.String()].Status.Artifact.Digest))

			old := second[w.String()]
			Eventually(func() (bool, error) { return fx.gone(ctx, &old) }).Should(BeTrue(), "%s pruned", old.Name)
			repo, _ := splitRef(b.Status.Artifact.Reference)
			Eventually(func() []string { return env.tags(ctx, repo) }).
				Should(ConsistOf("latest", tagOf(b.Status.Artifact.Reference)), "the old manifest's tags are gone")
			Expect(env.resolve(ctx, old.Status.Artifact.Reference)).To(BeEmpty())
			Expect(env.resolve(ctx, first[w.String()].Status.Artifact.Reference)).To(BeEmpty())

			By("every kept backup of the policy still resolves and pulls")
			Eventually(func(g Gomega) {
				g.Expect(fx.policyBackups(ctx, g, schedPolicy)).To(HaveLen(len(withStorage)))
			}).Should(Succeed())
			for _, kept := range fx.policyBackups(ctx, Default, schedPolicy) {
				Expect(kept.Status.Phase).To(Equal(backupv1alpha1.BackupSucceeded))
				Expect(env.resolve(ctx, kept.Status.Artifact.Reference)).To(Equal(kept.Status.Artifact.Digest))
			}
		}, SpecTimeout(6*time.Minute))
	})

	It("g. a manager killed in the middle of a slot causes no duplicate and no missed backup", func(ctx SpecContext) {
		const n = 20
		nsC := fx.createNamespace(ctx, "kill")
		for i := range n {
			fx.createWorkspace(ctx, nsC, fmt.Sprintf("ws-%02d", i), storagePerWS, "kill",
				func(dir string) { writeSampleTree(dir, fmt.Sprint("kill ", i)) })
		}
		p := fx.createPolicy(ctx, "kill", "kill", func(s *backupv1alpha1.BackupPolicySpec) {
			s.MaxConcurrentBackups = 2
			s.Retention.KeepLast = 2
		})
		slot := fx.waitForSlot(ctx, p.Name)

		waitMidSlot(ctx, p.Name, slot, 2, n-4)
		killManager(ctx)

		expectSlotOnce(ctx, p.Name, fx.waitForScheduled(ctx, p.Name, slotEqual(slot), n, 6*time.Minute))
	}, SpecTimeout(12*time.Minute))

	It("h. every mover pod passes the restricted Pod Security level except host namespaces", func() {
		pods := rec.Pods()
		restores := 0
		for _, pod := range pods {
			if _, ok := pod.Annotations["backup.dwbackup.io/restore"]; ok {
				restores++
			}
			Expect(pod.Spec.HostNetwork).To(BeTrue(), "the local overlay's --mover-host-network")
			Expect(pod.Spec.AutomountServiceAccountToken).To(Equal(ptr.To(false)), "%s: no token", pod.Name)
			Expect(restrictedViolations(pod)).To(BeEmpty())
		}
		AddReportEntry("mover pods evaluated", len(pods))
		Expect(len(pods)).To(BeNumerically(">=", 30), "backup pods of every spec")
		Expect(restores).To(BeNumerically(">=", 2), "restore pods too")
	})
})

// createRestore creates a WorkspaceRestore of a backup.
func createRestore(ctx SpecContext, w *workspace, name, backup string,
	overwrite bool) *backupv1alpha1.WorkspaceRestore {
	GinkgoHelper()
	r := &backupv1alpha1.WorkspaceRestore{
		ObjectMeta: metav1.ObjectMeta{Namespace: w.Namespace, Name: name},
		Spec: backupv1alpha1.WorkspaceRestoreSpec{
			WorkspaceName: w.Name, BackupName: backup, Overwrite: overwrite,
		},
	}
	Expect(env.client.Create(ctx, r)).To(Succeed())
	return r
}

// expectSlotOnce checks the backups of one slot, one Succeeded per workspace (waitForScheduled):
// exactly one Job and one mover pod each ever created (from the recorder's watch), each artifact
// resolving to its digest, and no backup of the policy for any other slot.
func expectSlotOnce(ctx context.Context, policy string, slot map[string]backupv1alpha1.WorkspaceBackup) {
	GinkgoHelper()
	for key, b := range slot {
		Expect(rec.JobsFor(b.UID)).To(HaveLen(1), "%s: exactly one Job", key)
		Expect(rec.PodsFor(b.UID)).To(Equal(1), "%s: exactly one mover Pod", key)
		Expect(env.resolve(ctx, b.Status.Artifact.Reference)).To(Equal(b.Status.Artifact.Digest), key)
	}
	Expect(fx.policyBackups(ctx, Default, policy)).To(HaveLen(len(slot)), "no backup for any other slot")
}

package controller

import (
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
	"github.com/dwbackup/devworkspace-backup-operator/internal/mover"
)

const testDigest = "sha256:1111111111111111111111111111111111111111111111111111111111111111"

// finishedBackup makes a WorkspaceBackup with a final status, as an earlier backup left it. It
// names a workspace that does not exist, so the reconciler fails it first and never starts a Job;
// then the spec overwrites the status.
func finishedBackup(f backupFixture, phase backupv1alpha1.BackupPhase) *backupv1alpha1.WorkspaceBackup {
	GinkgoHelper()
	b := manualBackup(f.Namespace, "gone-"+rand.String(4), f.Policy.Name)
	eventuallyPhase(b, backupv1alpha1.BackupFailed)
	got := getBackup(b)
	got.Status.Phase = phase
	got.Status.Artifact = &backupv1alpha1.ArtifactStatus{
		Reference: f.Policy.Spec.Registry.Repository + "/" + f.Namespace + "/ws:20261126T020000Z", Digest: testDigest,
	}
	Expect(k8sClient.Status().Update(ctx, got)).To(Succeed())
	return got
}

func newRestore(namespace string, spec backupv1alpha1.WorkspaceRestoreSpec) *backupv1alpha1.WorkspaceRestore {
	GinkgoHelper()
	wr := &backupv1alpha1.WorkspaceRestore{ObjectMeta: metav1.ObjectMeta{Name: "restore-" + rand.String(5), Namespace: namespace}, Spec: spec}
	Expect(k8sClient.Create(ctx, wr)).To(Succeed())
	return wr
}

func eventuallyRestorePhase(wr *backupv1alpha1.WorkspaceRestore, phase backupv1alpha1.RestorePhase) *backupv1alpha1.WorkspaceRestore {
	GinkgoHelper()
	got := &backupv1alpha1.WorkspaceRestore{}
	Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(wr), got)).To(Succeed())
		g.Expect(got.Status.Phase).To(Equal(phase), "message: %s", got.Status.Message)
	}).Should(Succeed())
	return got
}

// eventuallyRestoreReason waits for a reason of the Ready condition (a new restore reads Pending at
// once through the schema default, before the controller has said why).
func eventuallyRestoreReason(wr *backupv1alpha1.WorkspaceRestore, reason string) *backupv1alpha1.WorkspaceRestore {
	GinkgoHelper()
	got := &backupv1alpha1.WorkspaceRestore{}
	Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(wr), got)).To(Succeed())
		ready := meta.FindStatusCondition(got.Status.Conditions, backupv1alpha1.ConditionReady)
		g.Expect(ready).NotTo(BeNil())
		g.Expect(ready.Reason).To(Equal(reason), "message: %s", got.Status.Message)
	}).Should(Succeed())
	return got
}

func expectRestoreReason(wr *backupv1alpha1.WorkspaceRestore, reason string) {
	GinkgoHelper()
	ready := meta.FindStatusCondition(wr.Status.Conditions, backupv1alpha1.ConditionReady)
	Expect(ready).NotTo(BeNil())
	Expect(ready.Reason).To(Equal(reason))
	Expect(ready.ObservedGeneration).To(Equal(wr.Generation))
	Expect(meta.IsStatusConditionTrue(wr.Status.Conditions, backupv1alpha1.ConditionStalled)).To(Equal(wr.Status.Phase == backupv1alpha1.RestoreFailed))
}

func restoreJob(wr *backupv1alpha1.WorkspaceRestore) *batchv1.Job {
	GinkgoHelper()
	job := &batchv1.Job{}
	Eventually(func() error {
		return k8sClient.Get(ctx, client.ObjectKey{Namespace: wr.Namespace, Name: childName("restore", wr.Name)}, job)
	}).Should(Succeed())
	return job
}

// restoreOfStoppedWorkspace restores a Succeeded backup of the stopped workspace "ws" of a new
// fixture into it.
func restoreOfStoppedWorkspace(overwrite bool) (backupFixture, *backupv1alpha1.WorkspaceRestore) {
	GinkgoHelper()
	f := newBackupFixture()
	stoppedWorkspace(f.Namespace, "ws")
	b := finishedBackup(f, backupv1alpha1.BackupSucceeded)
	return f, newRestore(f.Namespace, backupv1alpha1.WorkspaceRestoreSpec{WorkspaceName: "ws", BackupName: b.Name, Overwrite: overwrite})
}

// safetyBackupOf waits until the restore waits for its safety backup, and returns that backup.
func safetyBackupOf(wr *backupv1alpha1.WorkspaceRestore) *backupv1alpha1.WorkspaceBackup {
	GinkgoHelper()
	waiting := eventuallyRestoreReason(wr, backupv1alpha1.ReasonWaitingForSafetyBackup)
	Expect(waiting.Status.SafetyBackupName).NotTo(BeEmpty())
	return &backupv1alpha1.WorkspaceBackup{ObjectMeta: metav1.ObjectMeta{Namespace: wr.Namespace, Name: waiting.Status.SafetyBackupName}}
}

var _ = Describe("WorkspaceRestore reconciler", func() {
	It("restores a Succeeded backup by digest into the workspace's claim, read-write", func() {
		f, wr := restoreOfStoppedWorkspace(false)

		running := eventuallyRestorePhase(wr, backupv1alpha1.RestoreRunning)
		expectRestoreReason(running, backupv1alpha1.ReasonJobRunning)
		Expect(running.Status.Source.Digest).To(Equal(testDigest))
		job := restoreJob(wr)
		pod := job.Spec.Template.Spec
		cmd := strings.Join(pod.Containers[0].Command, " ")
		Expect(cmd).To(HavePrefix("/mover restore --target /workspace-storage/projects --reference " + f.Policy.Spec.Registry.Repository + "/" +
			f.Namespace + "/ws@" + testDigest))
		Expect(cmd).NotTo(ContainSubstring("--overwrite"))
		Expect(pod.Volumes[0].PersistentVolumeClaim.ReadOnly).To(BeFalse())
		Expect(pod.Containers[0].VolumeMounts[0].ReadOnly).To(BeFalse())
		Expect(*pod.AutomountServiceAccountToken).To(BeFalse())
		Expect(*pod.Containers[0].SecurityContext.ReadOnlyRootFilesystem).To(BeTrue())

		finishJob(job, true, &mover.Result{Phase: mover.PhaseSucceeded, Reason: mover.ReasonCompleted, Files: 7, Bytes: 700, Digest: testDigest}, "")
		done := eventuallyRestorePhase(wr, backupv1alpha1.RestoreSucceeded)
		expectRestoreReason(done, backupv1alpha1.ReasonSucceeded)
		Expect(done.Status.Files).To(BeEquivalentTo(7))
		Expect(done.Status.Bytes).To(BeEquivalentTo(700))
		expectJobGone(f.Namespace, job.Name)
	})

	DescribeTable("fails with the reason that names the cause",
		func(setup func(f backupFixture) backupv1alpha1.WorkspaceRestoreSpec, reason, inMessage string) {
			f := newBackupFixture()
			wr := newRestore(f.Namespace, setup(f))
			got := eventuallyRestorePhase(wr, backupv1alpha1.RestoreFailed)
			expectRestoreReason(got, reason)
			Expect(got.Status.Message).To(ContainSubstring(inMessage))
			Expect(got.Status.JobName).To(BeEmpty())
		},
		Entry("backup missing", func(f backupFixture) backupv1alpha1.WorkspaceRestoreSpec {
			stoppedWorkspace(f.Namespace, "ws")
			return backupv1alpha1.WorkspaceRestoreSpec{WorkspaceName: "ws", BackupName: "nope"}
		}, backupv1alpha1.ReasonBackupNotFound, "spec.backupName"),
		Entry("backup Failed", func(f backupFixture) backupv1alpha1.WorkspaceRestoreSpec {
			stoppedWorkspace(f.Namespace, "ws")
			return backupv1alpha1.WorkspaceRestoreSpec{WorkspaceName: "ws", BackupName: finishedBackup(f, backupv1alpha1.BackupFailed).Name}
		}, backupv1alpha1.ReasonBackupNotSucceeded, "not Succeeded"),
		Entry("another namespace's artifact", func(f backupFixture) backupv1alpha1.WorkspaceRestoreSpec {
			stoppedWorkspace(f.Namespace, "ws")
			return backupv1alpha1.WorkspaceRestoreSpec{WorkspaceName: "ws", PolicyName: f.Policy.Name,
				ArtifactReference: f.Policy.Spec.Registry.Repository + "/someone-else/ws:20261126T020000Z"}
		}, backupv1alpha1.ReasonPolicyNotApplicable, "allowCrossNamespaceRestore"),
		Entry("an artifact outside the policy's repository", func(f backupFixture) backupv1alpha1.WorkspaceRestoreSpec {
			stoppedWorkspace(f.Namespace, "ws")
			return backupv1alpha1.WorkspaceRestoreSpec{WorkspaceName: "ws", PolicyName: f.Policy.Name,
				ArtifactReference: "evil.example.com/backups/" + f.Namespace + "/ws:1"}
		}, backupv1alpha1.ReasonPolicyNotApplicable, "spec.artifactReference"),
		Entry("a backup whose artifact lies in another namespace's repository", func(f backupFixture) backupv1alpha1.WorkspaceRestoreSpec {
			stoppedWorkspace(f.Namespace, "ws")
			b := succeededBackupWithReference(f, f.Policy.Spec.Registry.Repository+"/someone-else/ws:nightly-20261126T020000Z")
			return backupv1alpha1.WorkspaceRestoreSpec{WorkspaceName: "ws", BackupName: b.Name}
		}, backupv1alpha1.ReasonPolicyNotApplicable, "spec.backupName"),
		Entry("an artifact deeper than one workspace below the namespace", func(f backupFixture) backupv1alpha1.WorkspaceRestoreSpec {
			stoppedWorkspace(f.Namespace, "ws")
			return backupv1alpha1.WorkspaceRestoreSpec{WorkspaceName: "ws", PolicyName: f.Policy.Name,
				ArtifactReference: f.Policy.Spec.Registry.Repository + "/" + f.Namespace + "/ws/other-policy@" + testDigest}
		}, backupv1alpha1.ReasonPolicyNotApplicable, "spec.artifactReference"),
		Entry("a tag the registry does not have", func(f backupFixture) backupv1alpha1.WorkspaceRestoreSpec {
			stoppedWorkspace(f.Namespace, "ws")
			return backupv1alpha1.WorkspaceRestoreSpec{WorkspaceName: "ws", PolicyName: f.Policy.Name,
				ArtifactReference: f.Policy.Spec.Registry.Repository + "/" + f.Namespace + "/ws:never-pushed"}
		}, backupv1alpha1.ReasonArtifactNotFound, "never-pushed"),
		Entry("workspace missing", func(f backupFixture) backupv1alpha1.WorkspaceRestoreSpec {
			return backupv1alpha1.WorkspaceRestoreSpec{WorkspaceName: "ghost", PolicyName: f.Policy.Name,
				ArtifactReference: f.Policy.Spec.Registry.Repository + "/" + f.Namespace + "/ghost@" + testDigest}
		}, backupv1alpha1.ReasonWorkspaceNotFound, "spec.workspaceName"),
	)

	It("allows another namespace's artifact when the policy says so", func() {
		f := newBackupFixture(func(p *backupv1alpha1.BackupPolicy) { p.Spec.AllowCrossNamespaceRestore = true })
		stoppedWorkspace(f.Namespace, "ws")
		wr := newRestore(f.Namespace, backupv1alpha1.WorkspaceRestoreSpec{WorkspaceName: "ws", PolicyName: f.Policy.Name,
			ArtifactReference: f.Policy.Spec.Registry.Repository + "/someone-else/ws@" + testDigest})
		eventuallyRestorePhase(wr, backupv1alpha1.RestoreRunning)
		Expect(restoreJob(wr).Spec.Template.Spec.Containers[0].Command).To(ContainElement(f.Policy.Spec.Registry.Repository + "/someone-else/ws@" + testDigest))
	})

	It("waits while the workspace runs and never writes into it", func() {
		f := newBackupFixture()
		stoppedWorkspace(f.Namespace, "ws")
		startWorkspace(f.Namespace, "ws")
		b := finishedBackup(f, backupv1alpha1.BackupSucceeded)
		wr := newRestore(f.Namespace, backupv1alpha1.WorkspaceRestoreSpec{WorkspaceName: "ws", BackupName: b.Name})
		waiting := eventuallyRestoreReason(wr, backupv1alpha1.ReasonWorkspaceRunning)
		expectRestoreReason(waiting, backupv1alpha1.ReasonWorkspaceRunning)
		Consistently(func() []batchv1.Job { return jobsOf(f.Namespace) }).WithTimeout(time.Second).Should(BeEmpty())
	})

	It("takes a safety backup before overwriting, and only then starts the restore", func() {
		f, wr := restoreOfStoppedWorkspace(true)

		safety := safetyBackupOf(wr)
		safetyJob := moverJob(safety)
		got := getBackup(safety)
		Expect(got.Labels).To(HaveKeyWithValue(backupv1alpha1.LabelTrigger, string(backupv1alpha1.TriggerPreRestore)))
		Expect(got.OwnerReferences).To(BeEmpty(), "the safety backup outlives the restore")
		Consistently(func() error {
			return k8sClient.Get(ctx, client.ObjectKey{Namespace: f.Namespace, Name: childName("restore", wr.Name)}, &batchv1.Job{})
		}).WithTimeout(time.Second).ShouldNot(Succeed(), "no restore Job before the safety backup is done")

		finishJob(safetyJob, true, succeededResult("r"), "")
		eventuallyPhase(safety, backupv1alpha1.BackupSucceeded)
		job := restoreJob(wr)
		Expect(job.Spec.Template.Spec.Containers[0].Command).To(ContainElement("--overwrite"))
	})

	It("fails without writing when the safety backup fails", func() {
		f, wr := restoreOfStoppedWorkspace(true)
		safety := safetyBackupOf(wr)
		finishJob(moverJob(safety), false, &mover.Result{Phase: mover.PhaseFailed, Reason: mover.ReasonUnauthorized, Message: "401"}, "")
		got := eventuallyRestorePhase(wr, backupv1alpha1.RestoreFailed)
		expectRestoreReason(got, backupv1alpha1.ReasonSafetyBackupFailed)
		Expect(jobsOf(f.Namespace)).NotTo(ContainElement(HaveField("ObjectMeta.Name", childName("restore", wr.Name))))
	})

	It("reports TargetNotEmpty from the mover", func() {
		_, wr := restoreOfStoppedWorkspace(false)
		finishJob(restoreJob(wr), false, &mover.Result{Phase: mover.PhaseFailed, Reason: mover.ReasonTargetNotEmpty,
			Message: "/workspace-storage/projects is not empty; set spec.overwrite"}, "")
		got := eventuallyRestorePhase(wr, backupv1alpha1.RestoreFailed)
		expectRestoreReason(got, backupv1alpha1.ReasonTargetNotEmpty)
	})

	It("lets a person starting the workspace win, naming the safety backup", func() {
		f, wr := restoreOfStoppedWorkspace(true)
		safety := safetyBackupOf(wr)
		finishJob(moverJob(safety), true, succeededResult("r"), "")
		job := restoreJob(wr)
		eventuallyRestorePhase(wr, backupv1alpha1.RestoreRunning)
		startWorkspace(f.Namespace, "ws")
		got := eventuallyRestorePhase(wr, backupv1alpha1.RestoreFailed)
		expectRestoreReason(got, backupv1alpha1.ReasonWorkspaceStarted)
		Expect(got.Status.Message).To(ContainSubstring("partly restored"))
		Expect(got.Status.Message).To(ContainSubstring(safety.Name))
		expectJobGone(f.Namespace, job.Name)
	})
})

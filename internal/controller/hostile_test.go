package controller

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
	"github.com/dwbackup/devworkspace-backup-operator/internal/dwo"
	"github.com/dwbackup/devworkspace-backup-operator/internal/mover"
)

// These specs play a namespace user who can create any object in their namespace, name it as
// the operator's and imitate its pods, and an admin on a bad day. Each one failed before the fix
// it guards.

// namedBackup creates a manual WorkspaceBackup with a chosen name.
func namedBackup(namespace, name, workspaceName, policyName string) *backupv1alpha1.WorkspaceBackup {
	GinkgoHelper()
	b := &backupv1alpha1.WorkspaceBackup{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec:       backupv1alpha1.WorkspaceBackupSpec{WorkspaceName: workspaceName, PolicyName: policyName},
	}
	Expect(k8sClient.Create(ctx, b)).To(Succeed())
	return b
}

// registryAuthSecret creates a dockerconfigjson Secret in the operator namespace for a policy.
func registryAuthSecret() string {
	GinkgoHelper()
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: operatorNamespace, Name: "auth-" + rand.String(6)},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{}}`)},
	}
	Expect(k8sClient.Create(ctx, s)).To(Succeed())
	return s.Name
}

// plainJob is a Job a namespace user could create under any name.
func plainJob(namespace, name string) *batchv1.Job {
	GinkgoHelper()
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers:    []corev1.Container{{Name: "c", Image: "busybox"}},
		}}},
	}
	Expect(k8sClient.Create(ctx, job)).To(Succeed())
	return job
}

// secretVolumes lists the Secrets a Job's pod mounts.
func secretVolumes(job *batchv1.Job) []string {
	var names []string
	for _, v := range job.Spec.Template.Spec.Volumes {
		if v.Secret != nil {
			names = append(names, v.Secret.SecretName)
		}
	}
	return names
}

// secretsWithOwner lists the Secrets of a namespace labelled with an owner's UID.
func secretsWithOwner(namespace string, uid types.UID) []corev1.Secret {
	GinkgoHelper()
	list := &corev1.SecretList{}
	Expect(k8sClient.List(ctx, list, client.InNamespace(namespace), client.MatchingLabels{labelOwnerUID: string(uid)})).To(Succeed())
	return list.Items
}

// restoreJobsOf lists the restore mover Jobs of a namespace.
func restoreJobsOf(namespace string) []batchv1.Job {
	GinkgoHelper()
	var out []batchv1.Job
	for _, j := range jobsOf(namespace) {
		if _, ok := j.Annotations[annotationRestore]; ok {
			out = append(out, j)
		}
	}
	return out
}

// stopWorkspace sets spec.started false as a person stopping the workspace does.
func stopWorkspace(namespace, name string) {
	GinkgoHelper()
	dw := getWorkspace(namespace, name)
	unstructuredSetStarted(dw.Object, false)
	Expect(k8sClient.Update(ctx, dw)).To(Succeed())
}

// markStoppedAt records that the workspace stopped (again) at t, and waits for the cache to see it.
func markStoppedAt(namespace, name string, t time.Time) {
	GinkgoHelper()
	setWorkspaceStatus(getWorkspace(namespace, name), workspaceOf(namespace, name).ID, phaseStopped, t)
	Eventually(func(g Gomega) time.Time {
		dw := &dwo.DevWorkspace{}
		g.Expect(mgrCache.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, dw)).To(Succeed())
		return workspaceFrom(dw).StoppedAt.UTC()
	}).Should(Equal(t.UTC()))
}

var _ = Describe("Hostile users and unlucky admins", func() {
	It("gives two policies on one repository and one slot distinct tags; pruning one never touches the other", func() {
		labels := specLabels()
		ns := newNamespace(labels)
		day := freshDay()
		fakeClock.SetTime(day.Add(time.Hour))
		stoppedWorkspace(ns, "ws")
		expectCachedPhase(ns, "ws", phaseStopped)
		shared := func(s *backupv1alpha1.BackupPolicySpec) {
			s.Registry = backupv1alpha1.RegistrySpec{Repository: suiteRegistry + "/shared-" + rand.String(5), Insecure: true}
			s.Retention = backupv1alpha1.RetentionSpec{KeepLast: 1, DeleteArtifacts: ptr.To(true)}
		}
		nightly := createPolicy(labels, shared)
		weekly := createPolicy(labels, func(s *backupv1alpha1.BackupPolicySpec) {
			shared(s)
			s.Registry.Repository = nightly.Spec.Registry.Repository
		})
		Expect(weekly.Spec.Registry.Repository).To(Equal(nightly.Spec.Registry.Repository))

		// runSlot processes a slot of both policies and completes both backups; it returns them.
		runSlot := func(slot time.Time) (*backupv1alpha1.WorkspaceBackup, *backupv1alpha1.WorkspaceBackup) {
			GinkgoHelper()
			Eventually(func(g Gomega) {
				g.Expect(policyStatus(nightly.Name)(g).LastScheduleTime).NotTo(BeNil())
				g.Expect(policyStatus(weekly.Name)(g).LastScheduleTime).NotTo(BeNil())
			}).Should(Succeed())
			fakeClock.SetTime(slot.Add(10 * time.Second))
			touchPolicy(nightly.Name)
			touchPolicy(weekly.Name)
			done := make([]*backupv1alpha1.WorkspaceBackup, 0, 2)
			for _, p := range []string{nightly.Name, weekly.Name} {
				b := &backupv1alpha1.WorkspaceBackup{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: childName("ws", p, slotSuffix(slot))}}
				job := moverJob(b)
				Expect(jobArg(job, "--tag")).To(Equal(p + "-" + slot.UTC().Format(tagTimeLayout)))
				finishJob(job, true, succeededResult(""), "")
				done = append(done, eventuallyPhase(b, backupv1alpha1.BackupSucceeded))
			}
			return done[0], done[1]
		}
		n1, w1 := runSlot(day.Add(2 * time.Hour))
		Expect(n1.Status.Artifact.Reference).NotTo(Equal(w1.Status.Artifact.Reference))
		Expect(n1.Status.Artifact.Digest).NotTo(Equal(w1.Status.Artifact.Digest))

		// The next slot: the workspace stopped again, so both back it up and each prunes its own first backup.
		markStoppedAt(ns, "ws", day.Add(3*time.Hour))
		fakeClock.SetTime(day.Add(4 * time.Hour))
		n2, w2 := runSlot(day.Add(26 * time.Hour))
		expectGone(n1)
		expectGone(w1)
		Eventually(func() bool { return resolvable(n1.Status.Artifact.Reference) }).Should(BeFalse())
		Eventually(func() bool { return resolvable(w1.Status.Artifact.Reference) }).Should(BeFalse())
		Expect(resolvable(n2.Status.Artifact.Reference)).To(BeTrue(), "the nightly's kept tag")
		Expect(resolvable(w2.Status.Artifact.Reference)).To(BeTrue(), "the weekly's kept tag")
	})

	It("fails a backup whose Job an admission policy refuses, with the API's message, and frees its slot", func() {
		f := newBackupFixture(func(p *backupv1alpha1.BackupPolicy) { p.Spec.MaxConcurrentBackups = 1 })
		denied := f.Namespace
		ns := &corev1.Namespace{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Name: denied}, ns)).To(Succeed())
		allowed := newNamespace(ns.Labels) // selected by the same policy, not by the admission policy
		ns.Labels["deny-jobs"] = "true"
		Expect(k8sClient.Update(ctx, ns)).To(Succeed())
		vap := &admissionv1.ValidatingAdmissionPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "deny-jobs-" + rand.String(5)},
			Spec: admissionv1.ValidatingAdmissionPolicySpec{
				FailurePolicy: ptr.To(admissionv1.Fail),
				MatchConstraints: &admissionv1.MatchResources{ResourceRules: []admissionv1.NamedRuleWithOperations{{
					RuleWithOperations: admissionv1.RuleWithOperations{
						Operations: []admissionv1.OperationType{admissionv1.Create},
						Rule:       admissionv1.Rule{APIGroups: []string{"batch"}, APIVersions: []string{"v1"}, Resources: []string{"jobs"}},
					},
				}}},
				Validations: []admissionv1.Validation{{Expression: "false", Message: "Jobs are not allowed in this namespace by the cluster admin"}},
			},
		}
		Expect(k8sClient.Create(ctx, vap)).To(Succeed())
		binding := &admissionv1.ValidatingAdmissionPolicyBinding{
			ObjectMeta: metav1.ObjectMeta{Name: vap.Name},
			Spec: admissionv1.ValidatingAdmissionPolicyBindingSpec{
				PolicyName:        vap.Name,
				ValidationActions: []admissionv1.ValidationAction{admissionv1.Deny},
				MatchResources: &admissionv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
					MatchLabels: map[string]string{"deny-jobs": "true"}}},
			},
		}
		Expect(k8sClient.Create(ctx, binding)).To(Succeed())
		DeferCleanup(func() {
			Expect(k8sClient.Delete(ctx, binding)).To(Succeed())
			Expect(k8sClient.Delete(ctx, vap)).To(Succeed())
		})
		// The API server applies a new admission policy within a moment: wait until it refuses.
		Eventually(func() error {
			job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{GenerateName: "probe-", Namespace: denied},
				Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
					Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}}}
			return k8sClient.Create(ctx, job, client.DryRunAll)
		}).ShouldNot(Succeed())

		stoppedWorkspace(denied, "ws")
		stoppedWorkspace(allowed, "ws")
		refused := manualBackup(denied, "ws", f.Policy.Name)
		got := eventuallyPhase(refused, backupv1alpha1.BackupFailed)
		expectReason(got, backupv1alpha1.ReasonJobRefused, true)
		Expect(got.Status.Message).To(ContainSubstring("Jobs are not allowed in this namespace by the cluster admin"))
		Expect(jobsOf(denied)).To(BeEmpty())
		Expect(secretsWithOwner(denied, got.UID)).To(BeEmpty(), "no credentials copy is left behind")

		// With maxConcurrentBackups 1, this backup runs only if the refused one gave its slot back.
		other := manualBackup(allowed, "ws", f.Policy.Name)
		finishJob(moverJob(other), true, succeededResult(""), "")
		eventuallyPhase(other, backupv1alpha1.BackupSucceeded)
	})

	It("never mounts or deletes the namespace's own Secret when a backup is named docker", func() {
		f := newBackupFixture(func(p *backupv1alpha1.BackupPolicy) { p.Spec.Registry.AuthSecretName = registryAuthSecret() })
		stoppedWorkspace(f.Namespace, "ws")
		own := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: f.Namespace, Name: "docker-registry"},
			Type: corev1.SecretTypeDockerConfigJson, Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{"mine":{}}}`)}}
		Expect(k8sClient.Create(ctx, own)).To(Succeed())

		b := namedBackup(f.Namespace, "docker", "ws", f.Policy.Name)
		running := eventuallyPhase(b, backupv1alpha1.BackupRunning)
		job := moverJob(b)
		Expect(secretVolumes(job)).To(HaveLen(1))
		Expect(secretVolumes(job)).NotTo(ContainElement("docker-registry"))
		Expect(secretsWithOwner(f.Namespace, running.UID)).To(HaveLen(1))

		finishJob(job, true, succeededResult(""), "")
		eventuallyPhase(b, backupv1alpha1.BackupSucceeded)
		Eventually(func() []corev1.Secret { return secretsWithOwner(f.Namespace, running.UID) }).Should(BeEmpty())
		still := &corev1.Secret{}
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(own), still)).To(Succeed())
		Expect(still.UID).To(Equal(own.UID))
	})

	It("never adopts a Job it did not create under the mover Job's name", func() {
		f := newBackupFixture()
		stoppedWorkspace(f.Namespace, "ws")
		theirs := plainJob(f.Namespace, childName("backup", "pre"))
		b := namedBackup(f.Namespace, "pre", "ws", f.Policy.Name)
		got := eventuallyPhase(b, backupv1alpha1.BackupFailed)
		expectReason(got, backupv1alpha1.ReasonJobConflict, true)
		Expect(got.Status.JobName).To(BeEmpty(), "never adopted: the backup never ran with their Job")
		Expect(got.Status.StartTime).To(BeNil())
		Expect(secretsWithOwner(f.Namespace, got.UID)).To(BeEmpty(), "no credentials copy is left for their Job to mount")
		Consistently(func(g Gomega) types.UID {
			job := &batchv1.Job{}
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(theirs), job)).To(Succeed())
			g.Expect(job.DeletionTimestamp).To(BeNil())
			return job.UID
		}).WithTimeout(time.Second).Should(Equal(theirs.UID), "their Job is left alone")
	})

	It("records the digest the registry has, whatever a pod that looks like the mover's says", func() {
		f := newBackupFixture()
		stoppedWorkspace(f.Namespace, "ws")
		b := manualBackup(f.Namespace, "ws", f.Policy.Name)
		running := eventuallyPhase(b, backupv1alpha1.BackupRunning)
		repo, tag := splitReference(running.Status.Artifact.Reference)
		pushed := pushTree(repo, tag, GinkgoT().TempDir())

		forged := succeededResult("evil.example.com/elsewhere:x")
		forged.Digest = "sha256:" + sha256Hex("forged")
		finishJobAsIs(moverJob(b), true, forged, "")
		done := eventuallyPhase(b, backupv1alpha1.BackupSucceeded)
		Expect(done.Status.Artifact.Digest).To(Equal(pushed.Digest))
		Expect(done.Status.Artifact.Reference).To(Equal(running.Status.Artifact.Reference))
	})

	It("fails a backup whose Job succeeded when the registry has no artifact under its tag, and retention never counts it", func() {
		f := newBackupFixture(func(p *backupv1alpha1.BackupPolicy) {
			p.Spec.Retention = backupv1alpha1.RetentionSpec{KeepLast: 1, DeleteArtifacts: ptr.To(true)}
		})
		stoppedWorkspace(f.Namespace, "ws")
		kept := runManualBackup(f, "")
		fakeClock.Step(time.Minute)
		b := manualBackup(f.Namespace, "ws", f.Policy.Name)
		finishJobAsIs(moverJob(b), true, nil, "")
		got := eventuallyPhase(b, backupv1alpha1.BackupFailed)
		expectReason(got, backupv1alpha1.ReasonArtifactNotFound, true)
		Expect(got.Status.Artifact.Digest).To(BeEmpty())
		Consistently(func() backupv1alpha1.BackupPhase { return getBackup(kept).Status.Phase }).
			WithTimeout(time.Second).Should(Equal(backupv1alpha1.BackupSucceeded), "the good backup is kept")
		Expect(resolvable(kept.Status.Artifact.Reference)).To(BeTrue())
	})

	DescribeTable("stops the Job on every terminal path",
		func(endIt func(f backupFixture), reason string) {
			f := newBackupFixture()
			stoppedWorkspace(f.Namespace, "ws")
			b := manualBackup(f.Namespace, "ws", f.Policy.Name)
			eventuallyPhase(b, backupv1alpha1.BackupRunning)
			job := moverJob(b)
			endIt(f)
			got := eventuallyPhase(b, backupv1alpha1.BackupFailed)
			expectReason(got, reason, true)
			expectJobGone(f.Namespace, job.Name)
		},
		Entry("the policy is deleted", func(f backupFixture) {
			Expect(k8sClient.Delete(ctx, f.Policy)).To(Succeed())
		}, backupv1alpha1.ReasonPolicyNotFound),
		Entry("the namespace is no longer selected", func(f backupFixture) {
			ns := &corev1.Namespace{}
			Expect(k8sClient.Get(ctx, client.ObjectKey{Name: f.Namespace}, ns)).To(Succeed())
			ns.Labels = map[string]string{"moved": "elsewhere"}
			Expect(k8sClient.Update(ctx, ns)).To(Succeed())
		}, backupv1alpha1.ReasonPolicyNotApplicable),
	)

	It("keeps the artifact when a namespace user marks a kept backup pruned and deletes it", func() {
		f := newBackupFixture(func(p *backupv1alpha1.BackupPolicy) {
			p.Spec.Retention = backupv1alpha1.RetentionSpec{KeepLast: 5, DeleteArtifacts: ptr.To(true)}
		})
		stoppedWorkspace(f.Namespace, "ws")
		b := runManualBackup(f, "")
		patch := client.MergeFrom(b.DeepCopy())
		b.Annotations = map[string]string{backupv1alpha1.AnnotationPruned: "2026-11-26T00:00:00Z"}
		Expect(k8sClient.Patch(ctx, b, patch)).To(Succeed())
		Expect(k8sClient.Delete(ctx, b)).To(Succeed())
		expectGone(b)
		Expect(resolvable(b.Status.Artifact.Reference)).To(BeTrue())
	})

	It("starts no backup of a workspace while its restore runs, and starts it after", func() {
		f, wr := restoreOfStoppedWorkspace(false)
		eventuallyRestorePhase(wr, backupv1alpha1.RestoreRunning)
		job := restoreJob(wr)
		b := manualBackup(f.Namespace, "ws", f.Policy.Name)
		Eventually(func() string { return readyReason(getBackup(b).Status.Conditions) }).Should(Equal(backupv1alpha1.ReasonWaitingForRestore))
		Expect(jobsOf(f.Namespace)).To(HaveLen(1))
		finishJob(job, true, &mover.Result{Phase: mover.PhaseSucceeded, Reason: mover.ReasonCompleted, Files: 1}, "")
		eventuallyRestorePhase(wr, backupv1alpha1.RestoreSucceeded)
		moverJob(b)
	})

	It("starts no restore while a backup of the workspace runs, and starts it after", func() {
		f := newBackupFixture()
		stoppedWorkspace(f.Namespace, "ws")
		b := manualBackup(f.Namespace, "ws", f.Policy.Name)
		job := moverJob(b)
		source := finishedBackup(f, backupv1alpha1.BackupSucceeded)
		wr := newRestore(f.Namespace, backupv1alpha1.WorkspaceRestoreSpec{WorkspaceName: "ws", BackupName: source.Name})
		eventuallyRestoreReason(wr, backupv1alpha1.ReasonWaitingForMover)
		Expect(jobsOf(f.Namespace)).To(HaveLen(1))
		finishJob(job, true, succeededResult(""), "")
		eventuallyPhase(b, backupv1alpha1.BackupSucceeded)
		restoreJob(wr)
	})

	It("takes a new safety backup for a restore re-applied under an old name", func() {
		f, wr := restoreOfStoppedWorkspace(true)
		first := safetyBackupOf(wr)
		finishJob(moverJob(first), true, succeededResult(""), "")
		job := restoreJob(wr)
		finishJob(job, true, &mover.Result{Phase: mover.PhaseSucceeded, Reason: mover.ReasonCompleted}, "")
		eventuallyRestorePhase(wr, backupv1alpha1.RestoreSucceeded)
		Expect(k8sClient.Delete(ctx, wr)).To(Succeed())
		Eventually(func() error {
			return k8sClient.Get(ctx, client.ObjectKeyFromObject(wr), &backupv1alpha1.WorkspaceRestore{})
		}).ShouldNot(Succeed())
		expectJobGone(f.Namespace, job.Name)

		again := &backupv1alpha1.WorkspaceRestore{ObjectMeta: metav1.ObjectMeta{Namespace: f.Namespace, Name: wr.Name},
			Spec: backupv1alpha1.WorkspaceRestoreSpec{WorkspaceName: "ws", BackupName: wr.Spec.BackupName, Overwrite: true}}
		Expect(k8sClient.Create(ctx, again)).To(Succeed())
		second := safetyBackupOf(again)
		Expect(second.Name).NotTo(Equal(first.Name))
		Consistently(func() []batchv1.Job { return restoreJobsOf(f.Namespace) }).WithTimeout(time.Second).Should(BeEmpty(),
			"no restore Job before its own safety backup is done")
	})

	It("fails an overwrite restore, writing nothing, when the safety backup's name holds another workspace's backup", func() {
		f := newBackupFixture()
		stoppedWorkspace(f.Namespace, "ws")
		startWorkspace(f.Namespace, "ws")
		source := finishedBackup(f, backupv1alpha1.BackupSucceeded)
		wr := newRestore(f.Namespace, backupv1alpha1.WorkspaceRestoreSpec{WorkspaceName: "ws", BackupName: source.Name, Overwrite: true})
		waiting := eventuallyRestoreReason(wr, backupv1alpha1.ReasonWorkspaceRunning)
		// A backup of another workspace under the name this restore's safety backup will have.
		named := namedBackup(f.Namespace, childName(wr.Name, "pre-restore", shortUID(waiting.UID)), "other", f.Policy.Name)
		eventuallyPhase(named, backupv1alpha1.BackupFailed)
		got := getBackup(named)
		got.Status.Phase = backupv1alpha1.BackupSucceeded
		Expect(k8sClient.Status().Update(ctx, got)).To(Succeed())

		stopWorkspace(f.Namespace, "ws")
		failed := eventuallyRestorePhase(wr, backupv1alpha1.RestoreFailed)
		expectRestoreReason(failed, backupv1alpha1.ReasonSafetyBackupConflict)
		Expect(restoreJobsOf(f.Namespace)).To(BeEmpty())
	})
})

package controller

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
	"github.com/dwbackup/devworkspace-backup-operator/internal/dwo"
)

// The policy reconciler specs assert only what the policy controller does: which WorkspaceBackups
// exist (names, labels, annotation) and the policy's status. The backup reconciler runs beside it
// and may move the backups on; their phases are not asserted here.

var _ = Describe("BackupPolicy reconciler", func() {
	var (
		labels    map[string]string
		ns        string
		day       time.Time
		stoppedAt time.Time
	)

	BeforeEach(func() {
		labels = specLabels()
		ns = newNamespace(labels)
		day = freshDay()
		stoppedAt = day.Add(-6 * time.Hour)
		// 01:00: the policies below run daily at 02:00 UTC, so yesterday's slot is long past.
		fakeClock.SetTime(day.Add(time.Hour))
	})

	// slotName is the deterministic backup name of a workspace at a slot.
	slotName := func(workspaceName, policyName string, slot time.Time) string {
		return childName(workspaceName, policyName, slotSuffix(slot))
	}

	It("creates one backup per stopped workspace at a due slot, skips what it must, and never twice", func() {
		quietNs := newNamespace(withLabel(labels, backupv1alpha1.LabelExclude, "true"))
		createWorkspace(testWorkspace{Namespace: ns, Name: "alpha", StoppedAt: stoppedAt})
		createWorkspace(testWorkspace{Namespace: ns, Name: "beta", StorageType: storagePerWorkspace, StoppedAt: stoppedAt})
		createWorkspace(testWorkspace{Namespace: ns, Name: "eph", StorageType: storageEphemeral, StoppedAt: stoppedAt})
		createWorkspace(testWorkspace{Namespace: ns, Name: "async", StorageType: storageAsync, StoppedAt: stoppedAt})
		createWorkspace(testWorkspace{Namespace: ns, Name: "busy", Phase: "Running", Started: true})
		createWorkspace(testWorkspace{Namespace: ns, Name: "starting", Phase: "Starting", Started: true})
		createWorkspace(testWorkspace{Namespace: ns, Name: "broken", Phase: "Failed", StoppedAt: stoppedAt})
		createWorkspace(testWorkspace{Namespace: ns, Name: "quiet", StoppedAt: stoppedAt,
			Labels: map[string]string{backupv1alpha1.LabelExclude: "true"}})
		createWorkspace(testWorkspace{Namespace: quietNs, Name: "hidden", StoppedAt: stoppedAt})
		for _, name := range []string{"alpha", "beta", "eph", "async", "quiet"} {
			expectCachedPhase(ns, name, phaseStopped)
		}
		expectCachedPhase(ns, "busy", "Running")
		expectCachedPhase(ns, "starting", "Starting")
		expectCachedPhase(ns, "broken", "Failed")

		policy := createPolicy(labels)

		By("skipping yesterday's slot, missed by more than startingDeadlineSeconds")
		Eventually(func(g Gomega) {
			st := policyStatus(policy.Name)(g)
			g.Expect(timeOf(st.LastScheduleTime)).To(Equal(day.Add(-22 * time.Hour)))
			g.Expect(timeOf(st.NextScheduleTime)).To(Equal(day.Add(2 * time.Hour)))
			g.Expect(st.Workspaces).To(BeEquivalentTo(7)) // all but quiet and hidden
			g.Expect(st.SkippedWorkspaces).To(BeEquivalentTo(2))
			g.Expect(st.ActiveBackups).To(BeZero())
			g.Expect(st.ObservedGeneration).To(Equal(policy.Generation))
			g.Expect(meta.IsStatusConditionTrue(st.Conditions, backupv1alpha1.ConditionReady)).To(BeTrue())
			g.Expect(meta.IsStatusConditionFalse(st.Conditions, backupv1alpha1.ConditionStalled)).To(BeTrue())
		}).Should(Succeed())
		Expect(backupNames(ns)).To(BeEmpty())

		By("processing the 02:00 slot once it is due")
		slot := day.Add(2 * time.Hour)
		fakeClock.SetTime(slot.Add(30 * time.Second))
		touchPolicy(policy.Name)
		Eventually(func(g Gomega) {
			st := policyStatus(policy.Name)(g)
			g.Expect(timeOf(st.LastScheduleTime)).To(Equal(slot))
			g.Expect(timeOf(st.NextScheduleTime)).To(Equal(slot.Add(24 * time.Hour)))
		}).Should(Succeed())
		alpha, beta := slotName("alpha", policy.Name, slot), slotName("beta", policy.Name, slot)
		Expect(backupNames(ns)).To(ConsistOf(alpha, beta))
		Expect(backupNames(quietNs)).To(BeEmpty())

		b := &backupv1alpha1.WorkspaceBackup{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: alpha}, b)).To(Succeed())
		Expect(b.Labels).To(Equal(map[string]string{
			backupv1alpha1.LabelPolicy:      policy.Name,
			backupv1alpha1.LabelWorkspace:   "alpha",
			backupv1alpha1.LabelWorkspaceID: workspaceOf(ns, "alpha").ID,
			backupv1alpha1.LabelTrigger:     string(backupv1alpha1.TriggerScheduled),
		}))
		Expect(b.Annotations).To(HaveKeyWithValue(backupv1alpha1.AnnotationSlot, slot.Format(time.RFC3339)))
		Expect(b.Finalizers).To(ContainElement(backupv1alpha1.FinalizerArtifact))
		Expect(b.OwnerReferences).To(BeEmpty())
		Expect(b.Spec).To(Equal(backupv1alpha1.WorkspaceBackupSpec{WorkspaceName: "alpha", PolicyName: policy.Name}))

		By("reconciling again, by the manager and by a restarted instance: nothing new")
		touchPolicy(policy.Name)
		reconcileOnce(restartedReconciler(), policy.Name)
		Expect(backupNames(ns)).To(ConsistOf(alpha, beta))
		Expect(timeOf(getPolicy(policy.Name).Status.LastScheduleTime)).To(Equal(slot))
	})

	It("neither duplicates nor misses a backup when restarted between creating backups and recording the slot", func() {
		createWorkspace(testWorkspace{Namespace: ns, Name: "alpha", StoppedAt: stoppedAt})
		createWorkspace(testWorkspace{Namespace: ns, Name: "beta", StoppedAt: stoppedAt})
		expectCachedPhase(ns, "alpha", phaseStopped)
		expectCachedPhase(ns, "beta", phaseStopped)
		policy := createPolicy(labels)
		before := day.Add(-22 * time.Hour)
		Eventually(func(g Gomega) time.Time {
			return timeOf(policyStatus(policy.Name)(g).LastScheduleTime)
		}).Should(Equal(before))

		By("a crashed run had created alpha's backup for the slot, then died before patching the status")
		slot := day.Add(2 * time.Hour)
		crashed := scheduledBackup(policy.Name, workspaceOf(ns, "alpha"), slot)
		Expect(k8sClient.Create(ctx, crashed)).To(Succeed())
		// It even failed already, so alpha is due again at this slot: the create meets AlreadyExists.
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(crashed), crashed)).To(Succeed())
			crashed.Status.Phase = backupv1alpha1.BackupFailed
			g.Expect(k8sClient.Status().Update(ctx, crashed)).To(Succeed())
		}).Should(Succeed())
		fakeClock.SetTime(slot.Add(time.Minute))
		touchPolicy(policy.Name)
		Eventually(func(g Gomega) time.Time {
			return timeOf(policyStatus(policy.Name)(g).LastScheduleTime)
		}).Should(Equal(slot))
		alpha, beta := slotName("alpha", policy.Name, slot), slotName("beta", policy.Name, slot)
		Expect(backupNames(ns)).To(ConsistOf(alpha, beta))
		b := &backupv1alpha1.WorkspaceBackup{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: alpha}, b)).To(Succeed())
		Expect(b.UID).To(Equal(crashed.UID), "the crashed run's backup is adopted, not replaced")

		By("the status patch was lost after both backups were made: a restarted instance re-processes the slot")
		p := getPolicy(policy.Name)
		patch := client.MergeFrom(p.DeepCopy())
		p.Status.LastScheduleTime = &metav1.Time{Time: before}
		Expect(k8sClient.Status().Patch(ctx, p, patch)).To(Succeed())
		reconcileOnce(restartedReconciler(), policy.Name)
		Expect(timeOf(getPolicy(policy.Name).Status.LastScheduleTime)).To(Equal(slot))
		Expect(backupNames(ns)).To(ConsistOf(alpha, beta))
	})

	It("gives each of two policies selecting one workspace a backup of its own", func() {
		createWorkspace(testWorkspace{Namespace: ns, Name: "shared", StoppedAt: stoppedAt})
		expectCachedPhase(ns, "shared", phaseStopped)
		first, second := createPolicy(labels), createPolicy(labels)
		Eventually(func(g Gomega) {
			g.Expect(policyStatus(first.Name)(g).LastScheduleTime).NotTo(BeNil())
			g.Expect(policyStatus(second.Name)(g).LastScheduleTime).NotTo(BeNil())
		}).Should(Succeed())
		slot := day.Add(2 * time.Hour)
		fakeClock.SetTime(slot.Add(10 * time.Second))
		touchPolicy(first.Name)
		touchPolicy(second.Name)
		Eventually(func(g Gomega) {
			g.Expect(timeOf(policyStatus(first.Name)(g).LastScheduleTime)).To(Equal(slot))
			g.Expect(timeOf(policyStatus(second.Name)(g).LastScheduleTime)).To(Equal(slot))
		}).Should(Succeed())
		Expect(backupNames(ns)).To(ConsistOf(slotName("shared", first.Name, slot), slotName("shared", second.Name, slot)))
	})

	It("keeps workspaces, skippedWorkspaces and lastSuccessfulBackupTime current as things change", func() {
		policy := createPolicy(labels)
		Eventually(func(g Gomega) {
			g.Expect(policyStatus(policy.Name)(g).Conditions).NotTo(BeEmpty())
		}).Should(Succeed())

		By("a new workspace is counted without touching the policy")
		createWorkspace(testWorkspace{Namespace: ns, Name: "alpha", StoppedAt: stoppedAt})
		createWorkspace(testWorkspace{Namespace: ns, Name: "eph", StorageType: storageEphemeral, StoppedAt: stoppedAt})
		Eventually(func(g Gomega) {
			st := policyStatus(policy.Name)(g)
			g.Expect(st.Workspaces).To(BeEquivalentTo(2))
			g.Expect(st.SkippedWorkspaces).To(BeEquivalentTo(1))
		}).Should(Succeed())

		By("opting the namespace out is seen through the Namespace watch")
		nsObj := &corev1.Namespace{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Name: ns}, nsObj)).To(Succeed())
		patch := client.MergeFrom(nsObj.DeepCopy())
		nsObj.Labels = withLabel(nsObj.Labels, backupv1alpha1.LabelExclude, "true")
		Expect(k8sClient.Patch(ctx, nsObj, patch)).To(Succeed())
		Eventually(func(g Gomega) int32 { return policyStatus(policy.Name)(g).Workspaces }).Should(BeZero())

		By("a Succeeded backup of the policy sets lastSuccessfulBackupTime")
		done := metav1.NewTime(day.Add(-time.Hour))
		manual := &backupv1alpha1.WorkspaceBackup{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "manual-" + rand.String(5),
				Labels: map[string]string{backupv1alpha1.LabelPolicy: policy.Name}},
			Spec: backupv1alpha1.WorkspaceBackupSpec{WorkspaceName: "alpha", PolicyName: policy.Name},
		}
		Expect(k8sClient.Create(ctx, manual)).To(Succeed())
		// The backup reconciler works on it too: retry on conflicts.
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(manual), manual)).To(Succeed())
			manual.Status = backupv1alpha1.WorkspaceBackupStatus{Phase: backupv1alpha1.BackupSucceeded,
				StartTime: &done, CompletionTime: &done}
			g.Expect(k8sClient.Status().Update(ctx, manual)).To(Succeed())
		}).Should(Succeed())
		Eventually(func(g Gomega) time.Time {
			return timeOf(policyStatus(policy.Name)(g).LastSuccessfulBackupTime)
		}).Should(Equal(done.UTC()))
	})

	It("creates nothing while suspended and catches up the latest slot within the deadline on resume", func() {
		createWorkspace(testWorkspace{Namespace: ns, Name: "alpha", StoppedAt: stoppedAt})
		expectCachedPhase(ns, "alpha", phaseStopped)
		policy := createPolicy(labels, func(s *backupv1alpha1.BackupPolicySpec) { s.Suspend = true })
		Eventually(func(g Gomega) {
			st := policyStatus(policy.Name)(g)
			ready := meta.FindStatusCondition(st.Conditions, backupv1alpha1.ConditionReady)
			g.Expect(ready).NotTo(BeNil())
			g.Expect(ready.Status).To(Equal(metav1.ConditionTrue))
			g.Expect(ready.Reason).To(Equal(backupv1alpha1.ReasonSuspended))
			g.Expect(st.NextScheduleTime).To(BeNil())
			g.Expect(st.Workspaces).To(BeEquivalentTo(1))
		}).Should(Succeed())

		slot := day.Add(2 * time.Hour)
		fakeClock.SetTime(slot.Add(10 * time.Minute))
		touchPolicy(policy.Name)
		Eventually(func(g Gomega) int32 { return policyStatus(policy.Name)(g).Workspaces }).Should(BeEquivalentTo(1))
		Expect(backupNames(ns)).To(BeEmpty())
		Expect(getPolicy(policy.Name).Status.LastScheduleTime).To(BeNil())

		p := getPolicy(policy.Name)
		patch := client.MergeFrom(p.DeepCopy())
		p.Spec.Suspend = false
		Expect(k8sClient.Patch(ctx, p, patch)).To(Succeed())
		Eventually(func(g Gomega) time.Time {
			return timeOf(policyStatus(policy.Name)(g).LastScheduleTime)
		}).Should(Equal(slot))
		Expect(backupNames(ns)).To(ConsistOf(slotName("alpha", policy.Name, slot)))
	})

	It("caches DevWorkspaces trimmed: no managedFields, no components, only the attributes it reads", func() {
		createWorkspace(testWorkspace{Namespace: ns, Name: "big", StorageType: storagePerWorkspace, StoppedAt: stoppedAt,
			Attributes: map[string]any{
				attrDevWorkspaceCfg:       map[string]any{"name": "custom-config", "namespace": "dwo"},
				"dw.metadata.annotations": map[string]any{"che.eclipse.org/devfile": "a large devfile"},
			}})
		Expect(getWorkspace(ns, "big").GetManagedFields()).NotTo(BeEmpty(), "the API server keeps managedFields")
		expectCachedPhase(ns, "big", phaseStopped)

		// The manager decodes DevWorkspaces into dwo's view (components and the rest of the devfile
		// are never held) and the transform keeps only the attributes it reads.
		dw := &dwo.DevWorkspace{}
		Expect(mgrCache.Get(ctx, client.ObjectKey{Namespace: ns, Name: "big"}, dw)).To(Succeed())
		Expect(dw.ManagedFields).To(BeEmpty())
		Expect(dw.Spec.Started).To(BeFalse())
		Expect(dw.Spec.Template.Attributes).To(HaveLen(2))
		Expect(string(dw.Spec.Template.Attributes[attrStorageType].Raw)).To(Equal(`"` + storagePerWorkspace + `"`))
		Expect(dw.Spec.Template.Attributes).To(HaveKey(attrDevWorkspaceCfg))
		Expect(dw.Spec.Template.Attributes).NotTo(HaveKey("dw.metadata.annotations"))
		w := workspaceFrom(dw)
		Expect(w.Phase).To(Equal(phaseStopped))
		Expect(w.StoppedAt).To(BeTemporally("==", stoppedAt)) // the same instant; the decoded time is in Local
		Expect(w.StorageType).To(Equal(storagePerWorkspace))
	})

	Describe("reports an invalid policy as Ready=False, Stalled=True with the field named", func() {
		expectStalled := func(name, reason, field string) {
			GinkgoHelper()
			Eventually(func(g Gomega) {
				st := policyStatus(name)(g)
				ready := meta.FindStatusCondition(st.Conditions, backupv1alpha1.ConditionReady)
				stalledCond := meta.FindStatusCondition(st.Conditions, backupv1alpha1.ConditionStalled)
				g.Expect(ready).NotTo(BeNil())
				g.Expect(stalledCond).NotTo(BeNil())
				g.Expect(ready.Status).To(Equal(metav1.ConditionFalse))
				g.Expect(stalledCond.Status).To(Equal(metav1.ConditionTrue))
				g.Expect(stalledCond.Reason).To(Equal(reason))
				g.Expect(stalledCond.Message).To(HavePrefix(field + ": "))
				g.Expect(stalledCond.ObservedGeneration).To(Equal(getPolicy(name).Generation))
				g.Expect(st.NextScheduleTime).To(BeNil())
			}).Should(Succeed())
		}

		DescribeTable("and schedules nothing",
			func(reason, field string, mutate func(*backupv1alpha1.BackupPolicySpec)) {
				createWorkspace(testWorkspace{Namespace: ns, Name: "alpha", StoppedAt: stoppedAt})
				policy := createPolicy(labels, mutate)
				expectStalled(policy.Name, reason, field)
				fakeClock.SetTime(day.Add(2*time.Hour + time.Minute))
				touchPolicy(policy.Name)
				expectStalled(policy.Name, reason, field)
				Expect(backupNames(ns)).To(BeEmpty())
			},
			Entry("cron out of range", backupv1alpha1.ReasonInvalidSchedule, "spec.schedule",
				func(s *backupv1alpha1.BackupPolicySpec) { s.Schedule = "61 2 * * *" }),
			Entry("cron that never fires", backupv1alpha1.ReasonInvalidSchedule, "spec.schedule",
				func(s *backupv1alpha1.BackupPolicySpec) { s.Schedule = "0 0 30 2 *" }),
			Entry("unknown time zone", backupv1alpha1.ReasonInvalidTimeZone, "spec.timeZone",
				func(s *backupv1alpha1.BackupPolicySpec) { s.TimeZone = "Mars/Olympus_Mons" }),
			Entry("invalid workspace selector", backupv1alpha1.ReasonInvalidSelector, "spec.workspaceSelector",
				func(s *backupv1alpha1.BackupPolicySpec) {
					s.WorkspaceSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
						{Key: "tier", Operator: "Near", Values: []string{"gold"}}}}
				}),
			Entry("missing registry Secret", backupv1alpha1.ReasonSecretNotFound, "spec.registry.authSecretName",
				func(s *backupv1alpha1.BackupPolicySpec) { s.Registry.AuthSecretName = "missing-" + rand.String(5) }),
			Entry("missing CA ConfigMap", backupv1alpha1.ReasonCABundleNotFound, "spec.registry.caBundle.configMapName",
				func(s *backupv1alpha1.BackupPolicySpec) {
					s.Registry.CABundle = &backupv1alpha1.CABundleSource{ConfigMapName: "missing-" + rand.String(5)}
				}),
		)

		It("names a registry Secret of the wrong type, and turns Ready once it is fixed", func() {
			secret := &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Namespace: operatorNamespace, Name: "auth-" + rand.String(6)},
				Type:       corev1.SecretTypeOpaque,
				Data:       map[string][]byte{"password": []byte("x")},
			}
			Expect(k8sClient.Create(ctx, secret)).To(Succeed())
			DeferCleanup(func() { Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, secret))).To(Succeed()) })
			policy := createPolicy(labels, func(s *backupv1alpha1.BackupPolicySpec) { s.Registry.AuthSecretName = secret.Name })
			expectStalled(policy.Name, backupv1alpha1.ReasonInvalidSecret, "spec.registry.authSecretName")

			// Secrets are not watched: the fix is seen at the periodic re-check, or here at a touch.
			Expect(k8sClient.Delete(ctx, secret)).To(Succeed())
			secret = &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Namespace: operatorNamespace, Name: secret.Name},
				Type:       corev1.SecretTypeDockerConfigJson,
				Data:       map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{}}`)},
			}
			Expect(k8sClient.Create(ctx, secret)).To(Succeed())
			touchPolicy(policy.Name)
			Eventually(func(g Gomega) {
				st := policyStatus(policy.Name)(g)
				g.Expect(meta.IsStatusConditionTrue(st.Conditions, backupv1alpha1.ConditionReady)).To(BeTrue())
				g.Expect(meta.IsStatusConditionFalse(st.Conditions, backupv1alpha1.ConditionStalled)).To(BeTrue())
				g.Expect(st.NextScheduleTime).NotTo(BeNil())
			}).Should(Succeed())
		})
	})
})

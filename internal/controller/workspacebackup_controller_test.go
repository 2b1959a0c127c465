package controller

import (
	"slices"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
	"github.com/dwbackup/devworkspace-backup-operator/internal/mover"
)

var _ = Describe("WorkspaceBackup reconciler", func() {
	It("backs up a stopped workspace: Job, result, clean-up", func() {
		f := newBackupFixture()
		ws := stoppedWorkspace(f.Namespace, "my-ws")
		b := manualBackup(f.Namespace, "my-ws", f.Policy.Name)

		running := eventuallyPhase(b, backupv1alpha1.BackupRunning)
		expectReason(running, backupv1alpha1.ReasonJobRunning, false)
		Expect(running.Labels).To(HaveKeyWithValue(backupv1alpha1.LabelTrigger, "Manual"))
		Expect(running.Labels).To(HaveKeyWithValue(backupv1alpha1.LabelPolicy, f.Policy.Name))
		Expect(running.Finalizers).To(ContainElement(backupv1alpha1.FinalizerArtifact))
		Expect(running.OwnerReferences).To(BeEmpty())
		Expect(running.Status.WorkspaceID).To(Equal(ws.ID))
		Expect(running.Status.WorkspaceStoppedAt.Time).To(BeTemporally("==", ws.StoppedAt))
		Expect(running.Status.Source).To(Equal(&backupv1alpha1.BackupSource{ClaimName: "storage-" + ws.ID, Path: "projects"}))
		Expect(running.Status.StartTime).NotTo(BeNil())

		job := moverJob(b)
		Expect(running.Status.JobName).To(Equal(job.Name))
		Expect(metav1.IsControlledBy(job, running)).To(BeTrue())
		cmd := strings.Join(job.Spec.Template.Spec.Containers[0].Command, " ")
		Expect(cmd).To(HavePrefix("/mover backup --source /workspace-storage/projects"))
		Expect(cmd).To(ContainSubstring("--repository " + f.Policy.Spec.Registry.Repository + "/" + f.Namespace + "/my-ws"))
		Expect(cmd).To(MatchRegexp(`--tag ` + f.Policy.Name + `-\d{8}T\d{6}Z-[0-9a-f]{6}`))
		Expect(job.Spec.Template.Spec.Containers[0].Image).To(Equal(testOpts.MoverImage))
		Expect(*job.Spec.Template.Spec.SecurityContext.RunAsUser).To(BeEquivalentTo(1234), "DWO's default user")

		result := succeededResult(running.Status.Artifact.Reference)
		finishJob(job, true, result, "")
		done := eventuallyPhase(b, backupv1alpha1.BackupSucceeded)
		expectReason(done, backupv1alpha1.ReasonSucceeded, false)
		Expect(done.Status.Artifact.Digest).To(Equal(result.Digest))
		Expect(done.Status.Artifact.SizeBytes).To(BeEquivalentTo(1234))
		Expect(done.Status.Artifact.Files).To(BeEquivalentTo(42))
		Expect(done.Status.CompletionTime).NotTo(BeNil())
		Expect(done.Status.Duration).NotTo(BeEmpty())
		expectJobGone(f.Namespace, job.Name)
	})

	DescribeTable("storage resolution for every storage type",
		func(storageType string, claim func(id string) string, path func(id string) string, extra func(ns string) map[string]any) {
			f := newBackupFixture()
			w := testWorkspace{Namespace: f.Namespace, Name: "ws", StorageType: storageType, StoppedAt: time.Now().Add(-time.Hour)}
			if extra != nil {
				w.Attributes = extra(f.Namespace)
			}
			createWorkspace(w)
			id := workspaceOf(f.Namespace, "ws").ID
			boundPVC(f.Namespace, claim(id))
			b := manualBackup(f.Namespace, "ws", f.Policy.Name)
			running := eventuallyPhase(b, backupv1alpha1.BackupRunning)
			Expect(running.Status.Source.ClaimName).To(Equal(claim(id)))
			Expect(running.Status.Source.Path).To(Equal(path(id)))
			job := moverJob(b)
			vol := job.Spec.Template.Spec.Volumes[0].PersistentVolumeClaim
			Expect(vol.ClaimName).To(Equal(claim(id)))
			Expect(vol.ReadOnly).To(BeTrue())
			Expect(job.Spec.Template.Spec.Containers[0].VolumeMounts[0].SubPath).To(BeEmpty())
		},
		Entry("per-workspace", storagePerWorkspace,
			func(id string) string { return "storage-" + id }, func(string) string { return "projects" }, nil),
		Entry("common (no attribute)", "",
			func(string) string { return "claim-devworkspace" }, func(id string) string { return id + "/projects" }, nil),
		Entry("per-user", storagePerUser,
			func(string) string { return "claim-devworkspace" }, func(id string) string { return id + "/projects" }, nil),
		Entry("legacy claim-che-workspace", storageCommon,
			func(string) string { return "claim-che-workspace" }, func(id string) string { return id + "/projects" }, nil),
		Entry("a DWOC-configured PVC name and security context", storageCommon,
			func(string) string { return "team-claim" }, func(id string) string { return id + "/projects" },
			func(ns string) map[string]any {
				dwoc := &unstructured.Unstructured{}
				dwoc.SetGroupVersionKind(dwocGVK)
				dwoc.SetName("team-config")
				dwoc.SetNamespace(ns)
				dwoc.Object["config"] = map[string]any{"workspace": map[string]any{
					"pvcName": "team-claim", "podSecurityContext": map[string]any{"runAsUser": int64(4242), "fsGroup": int64(4242)},
				}}
				Expect(k8sClient.Create(ctx, dwoc)).To(Succeed())
				return map[string]any{attrDevWorkspaceCfg: map[string]any{"name": "team-config", "namespace": ns}}
			}),
	)

	It("uses the DWOC's pod security context", func() {
		f := newBackupFixture()
		dwoc := &unstructured.Unstructured{}
		dwoc.SetGroupVersionKind(dwocGVK)
		dwoc.SetName("cfg")
		dwoc.SetNamespace(f.Namespace)
		dwoc.Object["config"] = map[string]any{"workspace": map[string]any{
			"podSecurityContext": map[string]any{"runAsUser": int64(4242), "runAsGroup": int64(4242), "fsGroup": int64(4242)},
		}}
		Expect(k8sClient.Create(ctx, dwoc)).To(Succeed())
		createWorkspace(testWorkspace{Namespace: f.Namespace, Name: "ws", StorageType: storagePerWorkspace, StoppedAt: time.Now(),
			Attributes: map[string]any{attrDevWorkspaceCfg: map[string]any{"name": "cfg", "namespace": f.Namespace}}})
		boundPVC(f.Namespace, "storage-"+workspaceOf(f.Namespace, "ws").ID)
		job := moverJob(manualBackup(f.Namespace, "ws", f.Policy.Name))
		sc := job.Spec.Template.Spec.SecurityContext
		Expect(*sc.RunAsUser).To(BeEquivalentTo(4242))
		Expect(*sc.RunAsNonRoot).To(BeTrue())
		Expect(sc.SeccompProfile.Type).To(Equal(corev1.SeccompProfileTypeRuntimeDefault))
	})

	DescribeTable("fails or skips with the reason that names the cause",
		func(setup func(f backupFixture) *backupv1alpha1.WorkspaceBackup, phase backupv1alpha1.BackupPhase, reason, inMessage string) {
			f := newBackupFixture()
			b := setup(f)
			got := eventuallyPhase(b, phase)
			expectReason(got, reason, phase == backupv1alpha1.BackupFailed)
			Expect(got.Status.Message).To(ContainSubstring(inMessage))
			Expect(got.Status.JobName).To(BeEmpty(), "no Job for a backup that cannot start")
		},
		Entry("policy missing", func(f backupFixture) *backupv1alpha1.WorkspaceBackup {
			stoppedWorkspace(f.Namespace, "ws")
			return manualBackup(f.Namespace, "ws", "no-such-policy")
		}, backupv1alpha1.BackupFailed, backupv1alpha1.ReasonPolicyNotFound, "spec.policyName"),
		Entry("policy does not select the namespace", func(f backupFixture) *backupv1alpha1.WorkspaceBackup {
			other := newBackupFixture()
			stoppedWorkspace(f.Namespace, "ws")
			return manualBackup(f.Namespace, "ws", other.Policy.Name)
		}, backupv1alpha1.BackupFailed, backupv1alpha1.ReasonPolicyNotApplicable, "namespaceSelector"),
		Entry("workspace missing", func(f backupFixture) *backupv1alpha1.WorkspaceBackup {
			return manualBackup(f.Namespace, "ghost", f.Policy.Name)
		}, backupv1alpha1.BackupFailed, backupv1alpha1.ReasonWorkspaceNotFound, "spec.workspaceName"),
		Entry("no PVC", func(f backupFixture) *backupv1alpha1.WorkspaceBackup {
			createWorkspace(testWorkspace{Namespace: f.Namespace, Name: "ws", StorageType: storagePerWorkspace, StoppedAt: time.Now()})
			return manualBackup(f.Namespace, "ws", f.Policy.Name)
		}, backupv1alpha1.BackupSkipped, backupv1alpha1.ReasonNoWorkspaceStorage, "not found"),
		Entry("PVC not Bound", func(f backupFixture) *backupv1alpha1.WorkspaceBackup {
			createWorkspace(testWorkspace{Namespace: f.Namespace, Name: "ws", StorageType: storagePerWorkspace, StoppedAt: time.Now()})
			pvc := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: f.Namespace,
				Name: "storage-" + workspaceOf(f.Namespace, "ws").ID}}
			pvc.Spec.AccessModes = []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}
			pvc.Spec.Resources.Requests = corev1.ResourceList{corev1.ResourceStorage: *ptr.To(resourceQuantity("1Gi"))}
			Expect(k8sClient.Create(ctx, pvc)).To(Succeed())
			return manualBackup(f.Namespace, "ws", f.Policy.Name)
		}, backupv1alpha1.BackupSkipped, backupv1alpha1.ReasonNoWorkspaceStorage, "not Bound"),
		Entry("ephemeral storage", func(f backupFixture) *backupv1alpha1.WorkspaceBackup {
			createWorkspace(testWorkspace{Namespace: f.Namespace, Name: "ws", StorageType: storageEphemeral, StoppedAt: time.Now()})
			return manualBackup(f.Namespace, "ws", f.Policy.Name)
		}, backupv1alpha1.BackupSkipped, backupv1alpha1.ReasonNoWorkspaceStorage, "ephemeral"),
		Entry("registry Secret missing", func(f backupFixture) *backupv1alpha1.WorkspaceBackup {
			p := newBackupFixture(func(p *backupv1alpha1.BackupPolicy) {
				p.Spec.Registry.AuthSecretName = "missing-auth"
				p.Spec.NamespaceSelector = nil // applies to f's namespace too; suspended, so it creates nothing
			}).Policy
			stoppedWorkspace(f.Namespace, "ws")
			return manualBackup(f.Namespace, "ws", p.Name)
		}, backupv1alpha1.BackupFailed, backupv1alpha1.ReasonSecretNotFound, "spec.registry.authSecretName"),
	)

	It("makes a manual backup wait while the workspace runs, then runs it when it stops", func() {
		f := newBackupFixture()
		stoppedWorkspace(f.Namespace, "ws")
		startWorkspace(f.Namespace, "ws")
		b := manualBackup(f.Namespace, "ws", f.Policy.Name)
		// A new backup reads Pending at once (schema default); wait for the controller's reason.
		Eventually(func() string {
			ready := meta.FindStatusCondition(getBackup(b).Status.Conditions, backupv1alpha1.ConditionReady)
			if ready == nil {
				return ""
			}
			return ready.Reason
		}).Should(Equal(backupv1alpha1.ReasonWorkspaceRunning))
		expectReason(getBackup(b), backupv1alpha1.ReasonWorkspaceRunning, false)
		Consistently(func() []batchv1.Job { return jobsOf(f.Namespace) }).WithTimeout(time.Second).Should(BeEmpty())

		dw := getWorkspace(f.Namespace, "ws")
		unstructuredSetStarted(dw.Object, false)
		Expect(k8sClient.Update(ctx, dw)).To(Succeed())
		eventuallyPhase(b, backupv1alpha1.BackupRunning)
	})

	DescribeTable("stops the Job at once when the workspace can no longer be backed up",
		func(setup func(ns string), interrupt func(ns string), message string) {
			f := newBackupFixture()
			setup(f.Namespace)
			b := manualBackup(f.Namespace, "ws", f.Policy.Name)
			job := moverJob(b)
			interrupt(f.Namespace)
			got := eventuallyPhase(b, backupv1alpha1.BackupFailed)
			expectReason(got, backupv1alpha1.ReasonWorkspaceStarted, true)
			Expect(got.Status.Message).To(ContainSubstring(message))
			expectJobGone(f.Namespace, job.Name)
		},
		Entry("the workspace is started",
			func(ns string) { stoppedWorkspace(ns, "ws") },
			func(ns string) { startWorkspace(ns, "ws") }, "was started"),
		Entry("the workspace is deleted",
			func(ns string) { stoppedWorkspace(ns, "ws") },
			func(ns string) { Expect(k8sClient.Delete(ctx, getWorkspace(ns, "ws"))).To(Succeed()) }, "deleted"),
		Entry("another workspace on the same common PVC starts",
			func(ns string) {
				createWorkspace(testWorkspace{Namespace: ns, Name: "ws", StoppedAt: time.Now()})
				createWorkspace(testWorkspace{Namespace: ns, Name: "neighbour", StoppedAt: time.Now()})
				boundPVC(ns, defaultCommonPVCName)
			},
			func(ns string) { startWorkspace(ns, "neighbour") }, "neighbour"),
	)

	It("fails at once with PodCreationFailed when the pod cannot be created", func() {
		f := newBackupFixture()
		stoppedWorkspace(f.Namespace, "ws")
		b := manualBackup(f.Namespace, "ws", f.Policy.Name)
		job := moverJob(b)
		// What the Job controller records when a quota or admission refuses the pod.
		Expect(k8sClient.Create(ctx, &corev1.Event{
			ObjectMeta:     metav1.ObjectMeta{Name: job.Name + ".failedcreate", Namespace: f.Namespace},
			InvolvedObject: corev1.ObjectReference{Kind: "Job", APIVersion: "batch/v1", Name: job.Name, Namespace: f.Namespace, UID: job.UID},
			Reason:         "FailedCreate", Type: corev1.EventTypeWarning,
			Message: `Error creating: pods "x" is forbidden: exceeded quota: compute, requested: memory=256Mi`,
		})).To(Succeed())
		got := eventuallyPhase(b, backupv1alpha1.BackupFailed)
		expectReason(got, backupv1alpha1.ReasonPodCreationFailed, true)
		Expect(got.Status.Message).To(ContainSubstring("exceeded quota"))
	})

	DescribeTable("records the mover's result",
		func(succeeded bool, result *mover.Result, raw string, phase backupv1alpha1.BackupPhase, reason string) {
			f := newBackupFixture()
			stoppedWorkspace(f.Namespace, "ws")
			b := manualBackup(f.Namespace, "ws", f.Policy.Name)
			job := moverJob(b)
			finishJob(job, succeeded, result, raw)
			got := eventuallyPhase(b, phase)
			expectReason(got, reason, phase == backupv1alpha1.BackupFailed)
			if phase == backupv1alpha1.BackupFailed {
				Expect(getJobOrNil(f.Namespace, job.Name)).NotTo(BeNil(), "a failed Job stays for kubectl logs")
			}
		},
		Entry("mover reason passed through", false,
			&mover.Result{Phase: mover.PhaseFailed, Reason: mover.ReasonUnauthorized, Message: "401 from registry"}, "",
			backupv1alpha1.BackupFailed, backupv1alpha1.ReasonUnauthorized),
		Entry("missing source is Skipped", true,
			&mover.Result{Phase: mover.PhaseSkipped, Reason: mover.ReasonNoWorkspaceStorage, Message: "no /workspace-storage/projects"}, "",
			backupv1alpha1.BackupSkipped, backupv1alpha1.ReasonNoWorkspaceStorage),
		Entry("no termination message after success", true, nil, "",
			backupv1alpha1.BackupSucceeded, backupv1alpha1.ReasonSucceeded),
		Entry("a message cut at 4 KiB", true, nil, `{"phase":"Succeeded","message":"`+strings.Repeat("x", 4090),
			backupv1alpha1.BackupSucceeded, backupv1alpha1.ReasonSucceeded),
		Entry("failed Job without a result", false, nil, "",
			backupv1alpha1.BackupFailed, backupv1alpha1.ReasonJobFailed),
	)

	It("copies the policy's credentials and CA for the backup and deletes the copy when the Job ends", func() {
		authName := "auth-" + strings.ToLower(randomSuffix())
		caName := "ca-" + strings.ToLower(randomSuffix())
		Expect(k8sClient.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: authName, Namespace: operatorNamespace},
			Type:       corev1.SecretTypeDockerConfigJson,
			Data:       map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{"registry.example.com":{"auth":"dTpw"}}}`)},
		})).To(Succeed())
		Expect(k8sClient.Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: caName, Namespace: operatorNamespace},
			Data:       map[string]string{"ca.crt": testCAPEM()},
		})).To(Succeed())
		f := newBackupFixture(func(p *backupv1alpha1.BackupPolicy) {
			p.Spec.Registry.AuthSecretName = authName
			p.Spec.Registry.CABundle = &backupv1alpha1.CABundleSource{ConfigMapName: caName, Key: "ca.crt"}
		})
		stoppedWorkspace(f.Namespace, "ws")
		b := manualBackup(f.Namespace, "ws", f.Policy.Name)
		job := moverJob(b)
		vol := job.Spec.Template.Spec.Volumes[2].Secret
		// The API server names the copy, so no Secret of the namespace can be taken for it.
		Expect(vol.SecretName).To(HavePrefix(childName(b.Name, "registry") + "-"))
		copyKey := client.ObjectKey{Namespace: f.Namespace, Name: vol.SecretName}
		secret := &corev1.Secret{}
		Expect(k8sClient.Get(ctx, copyKey, secret)).To(Succeed())
		Expect(secret.Labels).To(HaveKeyWithValue(labelOwnerUID, string(getBackup(b).UID)))
		Expect(secret.Data).To(HaveKey(corev1.DockerConfigJsonKey))
		Expect(secret.Data).To(HaveKeyWithValue("ca.crt", []byte(testCAPEM())))
		Expect(metav1.IsControlledBy(secret, getBackup(b))).To(BeTrue())
		Expect(vol.Items).To(ConsistOf(corev1.KeyToPath{Key: ".dockerconfigjson", Path: "config.json"}, corev1.KeyToPath{Key: "ca.crt", Path: "ca.crt"}))
		Expect(job.Spec.Template.Spec.Containers[0].Command).To(ContainElements("--auth-dir", "--ca-file"))

		finishJob(job, true, succeededResult("r"), "")
		eventuallyPhase(b, backupv1alpha1.BackupSucceeded)
		Eventually(func() bool {
			return client.IgnoreNotFound(k8sClient.Get(ctx, copyKey, &corev1.Secret{})) == nil &&
				k8sClient.Get(ctx, copyKey, &corev1.Secret{}) != nil
		}).Should(BeTrue(), "the Secret copy is deleted")
	})

	It("prefers the namespace's own dwbackup-registry-auth and copies nothing", func() {
		f := newBackupFixture(func(p *backupv1alpha1.BackupPolicy) { p.Spec.Registry.AuthSecretName = "not-needed" })
		Expect(k8sClient.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: namespaceAuthSecretName, Namespace: f.Namespace},
			Type:       corev1.SecretTypeDockerConfigJson,
			Data:       map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{}}`)},
		})).To(Succeed())
		stoppedWorkspace(f.Namespace, "ws")
		b := manualBackup(f.Namespace, "ws", f.Policy.Name)
		job := moverJob(b)
		Expect(job.Spec.Template.Spec.Volumes[2].Secret.SecretName).To(Equal(namespaceAuthSecretName))
		err := k8sClient.Get(ctx, client.ObjectKey{Namespace: f.Namespace, Name: childName(b.Name, "registry")}, &corev1.Secret{})
		Expect(client.IgnoreNotFound(err)).To(Succeed())
		Expect(err).To(HaveOccurred(), "no copy when the namespace has its own Secret")
	})

	It("adopts its Job after a restart lost the Running status (no second Job)", func() {
		f := newBackupFixture()
		stoppedWorkspace(f.Namespace, "ws")
		b := manualBackup(f.Namespace, "ws", f.Policy.Name)
		eventuallyPhase(b, backupv1alpha1.BackupRunning)
		job := moverJob(b)
		// The status patch of a crashed manager never landed: the backup looks new again.
		got := getBackup(b)
		got.Status = backupv1alpha1.WorkspaceBackupStatus{}
		Expect(k8sClient.Status().Update(ctx, got)).To(Succeed())
		running := eventuallyPhase(b, backupv1alpha1.BackupRunning)
		Expect(running.Status.JobName).To(Equal(job.Name))
		jobs := jobsOf(f.Namespace)
		Expect(jobs).To(HaveLen(1))
		Expect(jobs[0].UID).To(Equal(job.UID))
	})

	It("stops a running Job when its WorkspaceBackup is deleted, and releases the finalizer", func() {
		f := newBackupFixture()
		stoppedWorkspace(f.Namespace, "ws")
		b := manualBackup(f.Namespace, "ws", f.Policy.Name)
		job := moverJob(b)
		eventuallyPhase(b, backupv1alpha1.BackupRunning)
		Expect(k8sClient.Delete(ctx, getBackup(b))).To(Succeed())
		expectJobGone(f.Namespace, job.Name)
		Eventually(func() error {
			return k8sClient.Get(ctx, client.ObjectKeyFromObject(b), &backupv1alpha1.WorkspaceBackup{})
		}).
			Should(Satisfy(func(err error) bool { return err != nil && client.IgnoreNotFound(err) == nil }))
	})

	It("emits Events for start and end", func() {
		f := newBackupFixture()
		stoppedWorkspace(f.Namespace, "ws")
		b := manualBackup(f.Namespace, "ws", f.Policy.Name)
		finishJob(moverJob(b), true, succeededResult("r"), "")
		eventuallyPhase(b, backupv1alpha1.BackupSucceeded)
		Eventually(func() []string { return eventReasons(f.Namespace) }).Should(ContainElements("BackupStarted", "BackupSucceeded"))
	})
})

func jobsOf(namespace string) []batchv1.Job {
	list := &batchv1.JobList{}
	Expect(k8sClient.List(ctx, list, client.InNamespace(namespace))).To(Succeed())
	return list.Items
}

func getJobOrNil(namespace, name string) *batchv1.Job {
	job := &batchv1.Job{}
	if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, job); err != nil {
		return nil
	}
	return job
}

func eventReasons(namespace string) []string {
	list := &eventsv1List{}
	Expect(k8sClient.List(ctx, &list.EventList, client.InNamespace(namespace))).To(Succeed())
	var reasons []string
	for _, e := range list.Items {
		if !slices.Contains(reasons, e.Reason) {
			reasons = append(reasons, e.Reason)
		}
	}
	return reasons
}

var _ = Describe("WorkspaceBackup reconciler with a layered policy", func() {
	It("passes --format layered, the previous backup's digest and --dwo-compatible-latest to the mover", func() {
		f := newBackupFixture(func(p *backupv1alpha1.BackupPolicy) {
			p.Spec.Artifact = backupv1alpha1.ArtifactSpec{Format: backupv1alpha1.ArtifactFormatLayered, DWOCompatibleLatest: true}
		})
		stoppedWorkspace(f.Namespace, "my-ws")
		first := manualBackup(f.Namespace, "my-ws", f.Policy.Name)
		running := eventuallyPhase(first, backupv1alpha1.BackupRunning)
		job := moverJob(first)
		Expect(jobArg(job, "--format")).To(Equal("layered"))
		Expect(job.Spec.Template.Spec.Containers[0].Command).To(ContainElement("--dwo-compatible-latest"))
		Expect(jobArg(job, "--previous")).To(BeEmpty(), "a first backup has nothing to reuse")
		finishJob(job, true, succeededResult(running.Status.Artifact.Reference), "")
		done := eventuallyPhase(first, backupv1alpha1.BackupSucceeded)

		second := manualBackup(f.Namespace, "my-ws", f.Policy.Name)
		eventuallyPhase(second, backupv1alpha1.BackupRunning)
		Expect(jobArg(moverJob(second), "--previous")).To(Equal(done.Status.Artifact.Digest))
	})
})

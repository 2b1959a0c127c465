package controller

import (
	"os"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
	"github.com/dwbackup/devworkspace-backup-operator/internal/dashboardtest"
	"github.com/dwbackup/devworkspace-backup-operator/internal/mover"
	"github.com/dwbackup/devworkspace-backup-operator/internal/registry"
	"github.com/dwbackup/devworkspace-backup-operator/internal/registry/registrytest"
)

// withDashboard turns spec.dashboard on with a Secret name ("" = none).
func withDashboard(secretName string) func(*backupv1alpha1.BackupPolicy) {
	return func(p *backupv1alpha1.BackupPolicy) {
		p.Spec.Dashboard = &backupv1alpha1.DashboardSpec{Enabled: true, AuthSecretName: secretName}
	}
}

// dockerConfigSecret creates a dockerconfigjson Secret in the operator namespace with auths for host.
func dockerConfigSecret(user string) *corev1.Secret {
	GinkgoHelper()
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: operatorNamespace, Name: "dash-" + rand.String(6)},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{"registry.example.com":{"auth":"` + user + `"}}}`)},
	}
	Expect(k8sClient.Create(ctx, s)).To(Succeed())
	DeferCleanup(func() { Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, s))).To(Succeed()) })
	return s
}

// registryUserSecret creates a dockerconfigjson Secret in the operator namespace for one user of host.
func registryUserSecret(host, user, password string) *corev1.Secret {
	GinkgoHelper()
	auth := strings.TrimPrefix(dashboardtest.BasicAuth(user, password), "Basic ")
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: operatorNamespace, Name: user + "-" + rand.String(6)},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{"` + host + `":{"auth":"` + auth + `"}}}`)},
	}
	Expect(k8sClient.Create(ctx, s)).To(Succeed())
	return s
}

// dashboardSecret reads the Secret the Dashboard reads in namespace (nil when there is none).
func dashboardSecret(g Gomega, namespace string) *corev1.Secret {
	s := &corev1.Secret{}
	err := k8sClient.Get(ctx, client.ObjectKey{Namespace: namespace, Name: backupv1alpha1.DashboardSecretName}, s)
	if apierrors.IsNotFound(err) {
		return nil
	}
	g.Expect(err).NotTo(HaveOccurred())
	return s
}

// dashboardReady is the DashboardReady condition of a policy (nil when absent).
func dashboardReady(g Gomega, name string) *metav1.Condition {
	p := &backupv1alpha1.BackupPolicy{}
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Name: name}, p)).To(Succeed())
	return meta.FindStatusCondition(p.Status.Conditions, backupv1alpha1.ConditionDashboardReady)
}

// expectDashboardReady waits for DashboardReady with status and reason, and returns its message.
func expectDashboardReady(name string, status metav1.ConditionStatus, reason string) string {
	GinkgoHelper()
	var msg string
	Eventually(func(g Gomega) {
		c := dashboardReady(g, name)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Status).To(Equal(status), c.Message)
		g.Expect(c.Reason).To(Equal(reason), c.Message)
		msg = c.Message
	}).Should(Succeed())
	return msg
}

// setPolicyDashboard changes a policy's spec.dashboard.
func setPolicyDashboard(name string, d *backupv1alpha1.DashboardSpec) {
	GinkgoHelper()
	p := getPolicy(name)
	p.Spec.Dashboard = d
	Expect(k8sClient.Update(ctx, p)).To(Succeed())
}

var _ = Describe("Che Dashboard", func() {
	Context("the DevWorkspace annotations", func() {
		It("reports every finished backup as DWO does, and a later failure after a success", func() {
			f := newBackupFixture(withDashboard(""))
			stoppedWorkspace(f.Namespace, "my-ws")
			b := manualBackup(f.Namespace, "my-ws", f.Policy.Name)
			eventuallyPhase(b, backupv1alpha1.BackupRunning)
			finishJob(moverJob(b), true, succeededResult(getBackup(b).Status.Artifact.Reference), "")
			done := eventuallyPhase(b, backupv1alpha1.BackupSucceeded)
			want := done.Status.CompletionTime.UTC().Format(time.RFC3339Nano)
			Eventually(func() map[string]string { return getWorkspace(f.Namespace, "my-ws").GetAnnotations() }).Should(And(
				HaveKeyWithValue(backupv1alpha1.AnnotationLastBackupSuccessful, "true"),
				HaveKeyWithValue(backupv1alpha1.AnnotationLastBackupFinishedAt, want),
				Not(HaveKey(backupv1alpha1.AnnotationLastBackupError))))

			// The next backup fails one second later or more: the annotations say so, with the cause.
			fakeClock.Step(2 * time.Second)
			failing := manualBackup(f.Namespace, "my-ws", f.Policy.Name)
			eventuallyPhase(failing, backupv1alpha1.BackupRunning)
			finishJob(moverJob(failing), false, &mover.Result{Phase: mover.PhaseFailed, Reason: backupv1alpha1.ReasonUnauthorized,
				Message: "the registry refused the credentials"}, "")
			failed := eventuallyPhase(failing, backupv1alpha1.BackupFailed)
			Eventually(func() map[string]string { return getWorkspace(f.Namespace, "my-ws").GetAnnotations() }).Should(And(
				HaveKeyWithValue(backupv1alpha1.AnnotationLastBackupSuccessful, "false"),
				HaveKeyWithValue(backupv1alpha1.AnnotationLastBackupFinishedAt, failed.Status.CompletionTime.UTC().Format(time.RFC3339Nano)),
				HaveKeyWithValue(backupv1alpha1.AnnotationLastBackupError, And(ContainSubstring(failing.Name),
					ContainSubstring(backupv1alpha1.ReasonUnauthorized), ContainSubstring("refused the credentials")))))
		})

		It("writes nothing for a policy without the option, or for a skipped backup", func() {
			f := newBackupFixture()
			stoppedWorkspace(f.Namespace, "my-ws")
			b := manualBackup(f.Namespace, "my-ws", f.Policy.Name)
			eventuallyPhase(b, backupv1alpha1.BackupRunning)
			finishJob(moverJob(b), true, succeededResult(getBackup(b).Status.Artifact.Reference), "")
			eventuallyPhase(b, backupv1alpha1.BackupSucceeded)

			g := newBackupFixture(withDashboard(""))
			createWorkspace(testWorkspace{Namespace: g.Namespace, Name: "eph", StorageType: storageEphemeral, StoppedAt: time.Now()})
			skipped := manualBackup(g.Namespace, "eph", g.Policy.Name)
			eventuallyPhase(skipped, backupv1alpha1.BackupSkipped)

			// A marker backup finishing after both shows the reconciler got past them.
			stoppedWorkspace(g.Namespace, "marker")
			m := manualBackup(g.Namespace, "marker", g.Policy.Name)
			eventuallyPhase(m, backupv1alpha1.BackupRunning)
			finishJob(moverJob(m), true, succeededResult(getBackup(m).Status.Artifact.Reference), "")
			Eventually(func() map[string]string { return getWorkspace(g.Namespace, "marker").GetAnnotations() }).
				Should(HaveKey(backupv1alpha1.AnnotationLastBackupSuccessful))
			Expect(getWorkspace(f.Namespace, "my-ws").GetAnnotations()).NotTo(HaveKey(backupv1alpha1.AnnotationLastBackupSuccessful))
			Expect(getWorkspace(g.Namespace, "eph").GetAnnotations()).NotTo(HaveKey(backupv1alpha1.AnnotationLastBackupSuccessful))
		})
	})

	It("shows our backup through the reads the Dashboard makes, against a registry with TLS and passwords", func() {
		ca := registrytest.NewCA(GinkgoT())
		reg := registrytest.StartDistributionWith(GinkgoT(), registrytest.DistributionOptions{
			TLS: ca, Users: map[string]string{"pusher": "push-pw", "reader": "read-pw"}})
		push, read := registryUserSecret(reg.Host, "pusher", "push-pw"), registryUserSecret(reg.Host, "reader", "read-pw")
		caMap := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: operatorNamespace, Name: "ca-" + rand.String(6)},
			Data: map[string]string{"ca.crt": string(ca.CertPEM)}}
		Expect(k8sClient.Create(ctx, caMap)).To(Succeed())
		registryPath := reg.Host + "/org/backups" // DWOC config.workspace.backupCronJob.registry.path
		f := newBackupFixture(withDashboard(read.Name), func(p *backupv1alpha1.BackupPolicy) {
			p.Spec.Registry = backupv1alpha1.RegistrySpec{Repository: registryPath, AuthSecretName: push.Name,
				CABundle: &backupv1alpha1.CABundleSource{ConfigMapName: caMap.Name, Key: "ca.crt"}}
		})
		stoppedWorkspace(f.Namespace, "my-ws")
		b := manualBackup(f.Namespace, "my-ws", f.Policy.Name)
		repo, tag := splitReference(eventuallyPhase(b, backupv1alpha1.BackupRunning).Status.Artifact.Reference)
		dir := GinkgoT().TempDir()
		Expect(os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n"), 0o600)).To(Succeed())
		res := mover.Backup(ctx, mover.BackupOptions{Source: dir, Repository: repo, Tag: tag, Workspace: "my-ws",
			Namespace: f.Namespace, Registry: registry.Options{DockerConfigJSON: push.Data[corev1.DockerConfigJsonKey], CAPEM: ca.CertPEM}})
		Expect(res.Phase).To(Equal(mover.PhaseSucceeded), res.Message)
		finishJobAsIs(moverJob(b), true, &res, "")
		done := eventuallyPhase(b, backupv1alpha1.BackupSucceeded)

		var view dashboardtest.View
		Eventually(func(g Gomega) {
			var err error
			view, err = dashboardtest.Read(ctx, k8sClient, ca.CertPEM, registryPath, f.Namespace, "my-ws")
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(view.Authorization).To(Equal(dashboardtest.BasicAuth("reader", "read-pw")), "the Secret's credentials")
			g.Expect(view.Annotations).To(HaveKeyWithValue(backupv1alpha1.AnnotationLastBackupSuccessful, "true"))
		}).Should(Succeed())
		Expect(view.CatalogStatus).To(Equal(200))
		Expect(view.Workspaces).To(ConsistOf("my-ws"), "the catalog under <path>/<namespace>/")
		Expect(view.Annotations).To(HaveKeyWithValue(backupv1alpha1.AnnotationLastBackupFinishedAt,
			done.Status.CompletionTime.UTC().Format(time.RFC3339Nano)))
		manifest, status, err := dashboardtest.Get(ctx, ca.CertPEM,
			"https://"+reg.Host+"/v2/org/backups/"+f.Namespace+"/my-ws/manifests/latest", view.Authorization)
		Expect(err).NotTo(HaveOccurred())
		Expect(status).To(Equal(200), string(manifest))
		Expect("sha256:"+sha256Hex(string(manifest))).To(Equal(done.Status.Artifact.Digest), "latest is this backup")
		_, status, err = dashboardtest.Get(ctx, ca.CertPEM, "https://"+reg.Host+"/v2/_catalog?n=1000", "")
		Expect(err).NotTo(HaveOccurred())
		Expect(status).To(Equal(401), "without the Secret the Dashboard sees nothing")
	})

	Context("the namespace Secret", func() {
		It("copies the read-only credential, follows its changes and removes it when the namespace leaves", func() {
			source := dockerConfigSecret("cmVhZGVyOnB3")
			f := newBackupFixture(withDashboard(source.Name))
			stoppedWorkspace(f.Namespace, "my-ws")

			var copied *corev1.Secret
			Eventually(func(g Gomega) {
				copied = dashboardSecret(g, f.Namespace)
				g.Expect(copied).NotTo(BeNil())
			}).Should(Succeed())
			Expect(copied.Type).To(Equal(corev1.SecretTypeDockerConfigJson))
			Expect(copied.Data).To(Equal(source.Data))
			Expect(copied.Labels).To(HaveKeyWithValue(labelOwnerUID, string(f.Policy.UID)))
			Expect(copied.Labels).To(HaveKeyWithValue(labelDWOWatchSecret, "true"), "DWO's restore reads only Secrets with this label")
			// Deleting the policy garbage-collects it.
			Expect(copied.OwnerReferences).To(ConsistOf(HaveField("UID", f.Policy.UID)))
			Expect(*copied.OwnerReferences[0].Controller).To(BeTrue())
			expectDashboardReady(f.Policy.Name, metav1.ConditionTrue, backupv1alpha1.ReasonDashboardSynced)
			Expect(getPolicy(f.Policy.Name).Status.Dashboard.Namespaces).To(Equal([]string{f.Namespace}))
			Expect(getPolicy(f.Policy.Name).Status.Conditions).To(ContainElement(And(
				HaveField("Type", backupv1alpha1.ConditionReady), HaveField("Status", metav1.ConditionTrue))))

			// The source changes: the next reconcile (at the latest registryRecheck later) updates the copy.
			source.Data[corev1.DockerConfigJsonKey] = []byte(`{"auths":{"registry.example.com":{"auth":"bmV3OnB3"}}}`)
			Expect(k8sClient.Update(ctx, source)).To(Succeed())
			touchPolicy(f.Policy.Name)
			Eventually(func(g Gomega) []byte {
				return dashboardSecret(g, f.Namespace).Data[corev1.DockerConfigJsonKey]
			}).Should(Equal(source.Data[corev1.DockerConfigJsonKey]))

			// The namespace leaves the policy: its copy goes, and the status forgets it.
			ns := &corev1.Namespace{}
			Expect(k8sClient.Get(ctx, client.ObjectKey{Name: f.Namespace}, ns)).To(Succeed())
			ns.Labels["fixture"] = "elsewhere"
			Expect(k8sClient.Update(ctx, ns)).To(Succeed())
			Eventually(func(g Gomega) *corev1.Secret { return dashboardSecret(g, f.Namespace) }).Should(BeNil())
			Eventually(func() *backupv1alpha1.DashboardStatus { return getPolicy(f.Policy.Name).Status.Dashboard }).Should(BeNil())
		})

		It("removes its copies and the condition when the option is turned off", func() {
			source := dockerConfigSecret("cmVhZGVyOnB3")
			f := newBackupFixture(withDashboard(source.Name))
			stoppedWorkspace(f.Namespace, "my-ws")
			Eventually(func(g Gomega) *corev1.Secret { return dashboardSecret(g, f.Namespace) }).ShouldNot(BeNil())

			setPolicyDashboard(f.Policy.Name, &backupv1alpha1.DashboardSpec{Enabled: false, AuthSecretName: source.Name})
			Eventually(func(g Gomega) *corev1.Secret { return dashboardSecret(g, f.Namespace) }).Should(BeNil())
			Eventually(func(g Gomega) *metav1.Condition { return dashboardReady(g, f.Policy.Name) }).Should(BeNil())
			Expect(getPolicy(f.Policy.Name).Status.Dashboard).To(BeNil())
		})

		It("never touches a Secret of that name it did not make, and names its namespace", func() {
			source := dockerConfigSecret("cmVhZGVyOnB3")
			label := "fixture-" + rand.String(8)
			mine, dwos, impostor := newNamespace(map[string]string{"fixture": label}), newNamespace(map[string]string{"fixture": label}),
				newNamespace(map[string]string{"fixture": label})
			// DWO's own copy, and a namespace user's Secret dressed as ours with another policy's UID.
			foreign := map[string]*corev1.Secret{
				dwos: {ObjectMeta: metav1.ObjectMeta{Name: backupv1alpha1.DashboardSecretName, Namespace: dwos,
					Labels: map[string]string{labelDWOWatchSecret: "true"}},
					Type: corev1.SecretTypeDockerConfigJson, Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{"dwo":{}}}`)}},
				impostor: {ObjectMeta: metav1.ObjectMeta{Name: backupv1alpha1.DashboardSecretName, Namespace: impostor,
					Labels: map[string]string{labelOwnerUID: "6c1b7f3e-0000-4000-8000-000000000000", backupv1alpha1.LabelManagedBy: backupv1alpha1.ManagedByValue}},
					Type: corev1.SecretTypeDockerConfigJson, Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{"mine":{}}}`)}},
			}
			for _, s := range foreign {
				Expect(k8sClient.Create(ctx, s)).To(Succeed())
			}
			for _, ns := range []string{mine, dwos, impostor} {
				stoppedWorkspace(ns, "ws")
			}
			p := createPolicy(map[string]string{"fixture": label}, func(s *backupv1alpha1.BackupPolicySpec) {
				s.Suspend = true
				s.Dashboard = &backupv1alpha1.DashboardSpec{Enabled: true, AuthSecretName: source.Name}
			})

			msg := expectDashboardReady(p.Name, metav1.ConditionFalse, backupv1alpha1.ReasonDashboardSecretConflict)
			Expect(msg).To(ContainSubstring(dwos))
			Expect(msg).To(ContainSubstring(impostor))
			Expect(msg).NotTo(ContainSubstring(mine))
			Eventually(func(g Gomega) *corev1.Secret { return dashboardSecret(g, mine) }).ShouldNot(BeNil())
			Expect(getPolicy(p.Name).Status.Dashboard.Namespaces).To(ConsistOf(mine, dwos, impostor))
			// Backups still run: Ready is about the policy, DashboardReady about the Dashboard.
			Expect(getPolicy(p.Name).Status.Conditions).To(ContainElement(And(
				HaveField("Type", backupv1alpha1.ConditionReady), HaveField("Status", metav1.ConditionTrue))))

			// Turning the option off removes only the policy's own copy.
			setPolicyDashboard(p.Name, nil)
			Eventually(func(g Gomega) *corev1.Secret { return dashboardSecret(g, mine) }).Should(BeNil())
			for ns, s := range foreign {
				got := dashboardSecret(Default, ns)
				Expect(got).NotTo(BeNil(), "the Secret in %s was deleted", ns)
				Expect(got.Data).To(Equal(s.Data), "the Secret in %s was changed", ns)
				Expect(got.UID).To(Equal(s.UID))
			}
		})

		It("leaves alone a Secret that carries the policy's UID label but is not owned by the policy", func() {
			source := dockerConfigSecret("cmVhZGVyOnB3")
			f := newBackupFixture(withDashboard(source.Name), func(p *backupv1alpha1.BackupPolicy) { p.Spec.Dashboard.Enabled = false })
			// A namespace user copies the policy's UID (it is no secret) into a label of their own Secret.
			planted := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: backupv1alpha1.DashboardSecretName, Namespace: f.Namespace,
				Labels: map[string]string{labelOwnerUID: string(f.Policy.UID), backupv1alpha1.LabelManagedBy: backupv1alpha1.ManagedByValue}},
				Type: corev1.SecretTypeDockerConfigJson, Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{"planted":{}}}`)}}
			Expect(k8sClient.Create(ctx, planted)).To(Succeed())
			stoppedWorkspace(f.Namespace, "ws")
			setPolicyDashboard(f.Policy.Name, &backupv1alpha1.DashboardSpec{Enabled: true, AuthSecretName: source.Name})

			Expect(expectDashboardReady(f.Policy.Name, metav1.ConditionFalse, backupv1alpha1.ReasonDashboardSecretConflict)).
				To(ContainSubstring(f.Namespace))
			got := dashboardSecret(Default, f.Namespace)
			Expect(got.Data).To(Equal(planted.Data))
			Expect(got.OwnerReferences).To(BeEmpty())

			// Turning the option off deletes by label: the planted Secret carries the policy's labels,
			// so a person who forged them in their own namespace loses it there; nothing else is touched.
			setPolicyDashboard(f.Policy.Name, nil)
			Eventually(func() *backupv1alpha1.DashboardStatus { return getPolicy(f.Policy.Name).Status.Dashboard }).Should(BeNil())
		})

		It("refuses the push credential under another name, and removes earlier copies", func() {
			push := dockerConfigSecret("cHVzaGVyOnB3")
			readOnly := dockerConfigSecret("cmVhZGVyOnB3")
			f := newBackupFixture(withDashboard(readOnly.Name), func(p *backupv1alpha1.BackupPolicy) {
				p.Spec.Registry.AuthSecretName = push.Name
			})
			stoppedWorkspace(f.Namespace, "ws")
			Eventually(func(g Gomega) *corev1.Secret { return dashboardSecret(g, f.Namespace) }).ShouldNot(BeNil())

			// The admin puts the push credential into the Dashboard's Secret.
			readOnly.Data = push.Data
			Expect(k8sClient.Update(ctx, readOnly)).To(Succeed())
			touchPolicy(f.Policy.Name)
			Expect(expectDashboardReady(f.Policy.Name, metav1.ConditionFalse, backupv1alpha1.ReasonDashboardPushCredential)).
				To(ContainSubstring("spec.dashboard.authSecretName"))
			Eventually(func(g Gomega) *corev1.Secret { return dashboardSecret(g, f.Namespace) }).Should(BeNil())
		})

		DescribeTable("reports a missing or invalid source on DashboardReady only, keeping backups going",
			func(mutate func(*corev1.Secret) *corev1.Secret, reason string) {
				name := "missing-" + rand.String(6)
				if mutate != nil {
					s := mutate(&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: operatorNamespace, Name: name}})
					Expect(k8sClient.Create(ctx, s)).To(Succeed())
				}
				f := newBackupFixture(withDashboard(name))
				stoppedWorkspace(f.Namespace, "ws")
				Expect(expectDashboardReady(f.Policy.Name, metav1.ConditionFalse, reason)).To(ContainSubstring("spec.dashboard.authSecretName"))
				Expect(getPolicy(f.Policy.Name).Status.Conditions).To(ContainElement(And(
					HaveField("Type", backupv1alpha1.ConditionReady), HaveField("Status", metav1.ConditionTrue))))
				Consistently(func(g Gomega) *corev1.Secret { return dashboardSecret(g, f.Namespace) }, "300ms").Should(BeNil())
			},
			Entry("not found", nil, backupv1alpha1.ReasonSecretNotFound),
			Entry("an Opaque Secret", func(s *corev1.Secret) *corev1.Secret {
				s.Type = corev1.SecretTypeOpaque
				s.Data = map[string][]byte{"token": []byte("x")}
				return s
			}, backupv1alpha1.ReasonInvalidSecret),
		)

		It("keeps the other namespaces' copies when one namespace refuses the Secret", func() {
			source := dockerConfigSecret("cmVhZGVyOnB3")
			label := "fixture-" + rand.String(8)
			// The refusing namespace sorts first, so a loop that stopped there would never reach the other.
			refusing, accepting := "a-"+rand.String(8), "z-"+rand.String(8)
			for ns, l := range map[string]map[string]string{refusing: {"fixture": label, "deny-secrets": label}, accepting: {"fixture": label}} {
				Expect(k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: l}})).To(Succeed())
			}
			vap := &admissionv1.ValidatingAdmissionPolicy{
				ObjectMeta: metav1.ObjectMeta{Name: "deny-secrets-" + rand.String(5)},
				Spec: admissionv1.ValidatingAdmissionPolicySpec{
					FailurePolicy: ptr.To(admissionv1.Fail),
					MatchConstraints: &admissionv1.MatchResources{ResourceRules: []admissionv1.NamedRuleWithOperations{{
						RuleWithOperations: admissionv1.RuleWithOperations{
							Operations: []admissionv1.OperationType{admissionv1.Create},
							Rule:       admissionv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"secrets"}},
						},
					}}},
					Validations: []admissionv1.Validation{{Expression: "false", Message: "no Secrets here"}},
				},
			}
			Expect(k8sClient.Create(ctx, vap)).To(Succeed())
			binding := &admissionv1.ValidatingAdmissionPolicyBinding{
				ObjectMeta: metav1.ObjectMeta{Name: vap.Name},
				Spec: admissionv1.ValidatingAdmissionPolicyBindingSpec{PolicyName: vap.Name,
					ValidationActions: []admissionv1.ValidationAction{admissionv1.Deny},
					MatchResources: &admissionv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
						MatchLabels: map[string]string{"deny-secrets": label}}}},
			}
			Expect(k8sClient.Create(ctx, binding)).To(Succeed())
			DeferCleanup(func() {
				Expect(k8sClient.Delete(ctx, binding)).To(Succeed())
				Expect(k8sClient.Delete(ctx, vap)).To(Succeed())
			})
			Eventually(func() error {
				probe := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{GenerateName: "probe-", Namespace: refusing}}
				return k8sClient.Create(ctx, probe, client.DryRunAll)
			}).ShouldNot(Succeed())
			stoppedWorkspace(refusing, "ws")
			stoppedWorkspace(accepting, "ws")
			p := createPolicy(map[string]string{"fixture": label}, func(s *backupv1alpha1.BackupPolicySpec) {
				s.Suspend = true
				s.Dashboard = &backupv1alpha1.DashboardSpec{Enabled: true, AuthSecretName: source.Name}
			})
			Eventually(func(g Gomega) *corev1.Secret { return dashboardSecret(g, accepting) }).ShouldNot(BeNil())
			Expect(dashboardSecret(Default, refusing)).To(BeNil())
			// Both stay recorded, so the refused one is retried and removed if it ever gets a copy.
			Expect(getPolicy(p.Name).Status.Dashboard.Namespaces).To(ConsistOf(refusing, accepting))
		})

		It("notices a copy deleted by hand when the source changes", func() {
			source := dockerConfigSecret("cmVhZGVyOnB3")
			f := newBackupFixture(withDashboard(source.Name))
			stoppedWorkspace(f.Namespace, "ws")
			var copied *corev1.Secret
			Eventually(func(g Gomega) { copied = dashboardSecret(g, f.Namespace); g.Expect(copied).NotTo(BeNil()) }).Should(Succeed())
			Expect(k8sClient.Delete(ctx, copied, client.Preconditions{UID: ptr.To(copied.UID)})).To(Succeed())

			source.Data["quay-api-token"] = []byte("token")
			Expect(k8sClient.Update(ctx, source)).To(Succeed())
			touchPolicy(f.Policy.Name)
			Eventually(func(g Gomega) map[string][]byte {
				s := dashboardSecret(g, f.Namespace)
				g.Expect(s).NotTo(BeNil())
				return s.Data
			}).Should(HaveKeyWithValue("quay-api-token", []byte("token")))
		})
	})
})

//go:build e2e

package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
	"github.com/dwbackup/devworkspace-backup-operator/internal/dashboardtest"
	"github.com/dwbackup/devworkspace-backup-operator/internal/registry/registrytest"
)

// impersonating is a client that acts as user with only the rights RBAC gives that user.
func impersonating(user string) client.Client {
	GinkgoHelper()
	cfg := rest.CopyConfig(env.restConfig)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	c, err := client.New(cfg, client.Options{Scheme: env.client.Scheme()})
	Expect(err).NotTo(HaveOccurred())
	return c
}

// bindUser gives user a ClusterRole in namespace through a RoleBinding, as Che gives a developer
// their namespace.
func bindUser(ctx context.Context, namespace, user, clusterRole string) {
	GinkgoHelper()
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: user + "-" + clusterRole},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: clusterRole},
	}
	Expect(env.client.Create(ctx, rb)).To(Succeed())
}

// allowDevWorkspaces grants user what Che grants a developer on DevWorkspaces in namespace (the
// local cluster's DevWorkspace CRD fixture aggregates into no built-in role).
func allowDevWorkspaces(ctx context.Context, namespace, user string) {
	GinkgoHelper()
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "devworkspaces-" + user},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{devWorkspaceGVK.Group}, Resources: []string{"devworkspaces"},
			Verbs: []string{"get", "list", "watch"}}},
	}
	Expect(env.client.Create(ctx, role)).To(Succeed())
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
	}
	Expect(env.client.Create(ctx, rb)).To(Succeed())
}

// operatorObject creates obj in the operator namespace and deletes it when the spec ends.
func operatorObject(ctx context.Context, obj client.Object) {
	GinkgoHelper()
	obj.SetNamespace(env.operatorNamespace)
	obj.SetLabels(fx.labels(nil))
	Expect(env.client.Create(ctx, obj)).To(Succeed())
	DeferCleanup(func(ctx SpecContext) { Expect(client.IgnoreNotFound(env.client.Delete(ctx, obj))).To(Succeed()) })
}

// dockerConfig is a .dockerconfigjson for one registry host.
func dockerConfig(host, user, password string) []byte {
	auth := strings.TrimPrefix(dashboardtest.BasicAuth(user, password), "Basic ")
	return []byte(fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, host, auth))
}

var _ = Describe("Che Dashboard", func() {
	It("finds our backups and their status with the reads the Dashboard makes", func(ctx SpecContext) {
		By("a registry with TLS and passwords: the operator pushes as pusher, the Dashboard reads as reader")
		ca := registrytest.NewCA(GinkgoT())
		reg := registrytest.StartDistributionWith(GinkgoT(), registrytest.DistributionOptions{
			TLS: ca, Users: map[string]string{"pusher": "push-" + fx.id, "reader": "read-" + fx.id}})
		pushSecret, readSecret, caMap := "e2e-"+fx.id+"-push", "e2e-"+fx.id+"-dashboard", "e2e-"+fx.id+"-ca"
		users := map[string][2]string{pushSecret: {"pusher", "push-" + fx.id}, readSecret: {"reader", "read-" + fx.id}}
		for name, user := range users {
			operatorObject(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name},
				Type: corev1.SecretTypeDockerConfigJson,
				Data: map[string][]byte{corev1.DockerConfigJsonKey: dockerConfig(reg.Host, user[0], user[1])}})
		}
		operatorObject(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: caMap},
			Data: map[string]string{"ca.crt": string(ca.CertPEM)}})

		ns := fx.createNamespace(ctx, "dash")
		developer := "developer-" + fx.id
		bindUser(ctx, ns, developer, "edit")
		allowDevWorkspaces(ctx, ns, developer)
		fill := func(seed string) func(string) { return func(dir string) { writeSampleTree(dir, seed) } }
		good := fx.createWorkspace(ctx, ns, "good", storagePerWS, "dash", fill("dashboard"))
		broken := fx.createWorkspace(ctx, ns, "broken", storagePerWS, "dash", fill("broken"))
		unreadable := filepath.Join(broken.projectsDir(), "secret.key")
		writeFile(unreadable, 0o644, []byte("no one may read this\n"))
		chownTree(broken.claimRoot)
		Expect(os.Chmod(unreadable, 0)).To(Succeed())

		registryPath := reg.Host + "/e2e-" + fx.id + "/dash" // DWOC config.workspace.backupCronJob.registry.path
		p := fx.createPolicy(ctx, "dash", "dash", func(s *backupv1alpha1.BackupPolicySpec) {
			s.Suspend = true
			s.Registry = backupv1alpha1.RegistrySpec{Repository: registryPath, AuthSecretName: pushSecret,
				CABundle: &backupv1alpha1.CABundleSource{ConfigMapName: caMap, Key: "ca.crt"}}
			s.Dashboard = &backupv1alpha1.DashboardSpec{Enabled: true, AuthSecretName: readSecret}
		})
		dev := impersonating(developer)

		By("before any backup: the Secret is there, the catalog has nothing, the workspace reads as never backed up")
		secretKey := client.ObjectKey{Namespace: ns, Name: backupv1alpha1.DashboardSecretName}
		Eventually(func() error { return dev.Get(ctx, secretKey, &corev1.Secret{}) }).Should(Succeed())
		before, err := dashboardtest.Read(ctx, dev, ca.CertPEM, registryPath, ns, good.Name)
		Expect(err).NotTo(HaveOccurred())
		Expect(before.Authorization).To(Equal(dashboardtest.BasicAuth("reader", "read-"+fx.id)))
		Expect(before.CatalogStatus).To(Equal(http.StatusOK))
		Expect(before.Workspaces).To(BeEmpty())
		Expect(before.Annotations).NotTo(HaveKey(backupv1alpha1.AnnotationLastBackupSuccessful))

		By("a backup that succeeds and one that fails")
		ok := fx.waitForBackup(ctx, ns, fx.createBackup(ctx, good, "good-1", p.Name).Name, 3*time.Minute)
		Expect(ok.Status.Phase).To(Equal(backupv1alpha1.BackupSucceeded), ok.Status.Message)
		bad := fx.waitForBackup(ctx, ns, fx.createBackup(ctx, broken, "broken-1", p.Name).Name, 3*time.Minute)
		Expect(bad.Status.Phase).To(Equal(backupv1alpha1.BackupFailed))
		Expect(readyReason(bad.Status.Conditions)).To(Equal(backupv1alpha1.ReasonUnreadableFile))

		var view, brokenView dashboardtest.View
		Eventually(func(g Gomega) {
			var err error
			view, err = dashboardtest.Read(ctx, dev, ca.CertPEM, registryPath, ns, good.Name)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(view.Annotations).To(HaveKey(backupv1alpha1.AnnotationLastBackupSuccessful))
			brokenView, err = dashboardtest.Read(ctx, dev, ca.CertPEM, registryPath, ns, broken.Name)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(brokenView.Annotations).To(HaveKey(backupv1alpha1.AnnotationLastBackupSuccessful))
		}).Should(Succeed())
		AddReportEntry("Dashboard view of "+good.Name,
			fmt.Sprintf("catalog %d %v; annotations %v", view.CatalogStatus, view.Workspaces, view.Annotations))
		AddReportEntry("Dashboard view of "+broken.Name, fmt.Sprintf("annotations %v", brokenView.Annotations))

		By("the catalog lists the workspace that has a backup, under <path>/<namespace>/")
		Expect(view.CatalogStatus).To(Equal(http.StatusOK))
		Expect(view.Workspaces).To(ConsistOf(good.Name))

		By("its status: successful, finished when the backup completed (RFC 3339, as DWO writes it)")
		Expect(view.Annotations).To(HaveKeyWithValue(backupv1alpha1.AnnotationLastBackupSuccessful, "true"))
		finished, err := time.Parse(time.RFC3339Nano, view.Annotations[backupv1alpha1.AnnotationLastBackupFinishedAt])
		Expect(err).NotTo(HaveOccurred())
		Expect(finished).To(BeTemporally("==", ok.Status.CompletionTime.Time))
		Expect(view.Annotations).NotTo(HaveKey(backupv1alpha1.AnnotationLastBackupError))

		By("the failed one: not successful, with the cause as the Dashboard shows it")
		Expect(brokenView.Annotations).To(HaveKeyWithValue(backupv1alpha1.AnnotationLastBackupSuccessful, "false"))
		Expect(brokenView.Annotations).To(HaveKeyWithValue(backupv1alpha1.AnnotationLastBackupError,
			And(ContainSubstring(backupv1alpha1.ReasonUnreadableFile), ContainSubstring("secret.key"))))

		By("<registry.path>/<namespace>/<workspace>:latest, what the Dashboard's restore pulls, is the backup")
		manifestURL := fmt.Sprintf("https://%s/v2/e2e-%s/dash/%s/%s/manifests/latest", reg.Host, fx.id, ns, good.Name)
		body, status, err := dashboardtest.Get(ctx, ca.CertPEM, manifestURL, view.Authorization)
		Expect(err).NotTo(HaveOccurred())
		Expect(status).To(Equal(http.StatusOK), string(body))
		Expect(string(body)).To(ContainSubstring(dwoArtifactType))
		Expect(digestOf(body)).To(Equal(ok.Status.Artifact.Digest))

		By("without the Secret's credentials the registry answers 401: the Dashboard needs the copy")
		_, status, err = dashboardtest.Get(ctx, ca.CertPEM, "https://"+reg.Host+"/v2/_catalog?n=1000", "")
		Expect(err).NotTo(HaveOccurred())
		Expect(status).To(Equal(http.StatusUnauthorized))

		By("the option turned off: the copy goes; the policy deleted: garbage collection takes a new copy")
		patch := client.RawPatch(types.MergePatchType, []byte(`{"spec":{"dashboard":{"enabled":false}}}`))
		Expect(env.client.Patch(ctx, p, patch)).To(Succeed())
		noSecret := func() bool { return apierrors.IsNotFound(env.client.Get(ctx, secretKey, &corev1.Secret{})) }
		Eventually(noSecret).Should(BeTrue())
		patch = client.RawPatch(types.MergePatchType, []byte(`{"spec":{"dashboard":{"enabled":true}}}`))
		Expect(env.client.Patch(ctx, p, patch)).To(Succeed())
		Eventually(func() error { return env.client.Get(ctx, secretKey, &corev1.Secret{}) }).Should(Succeed())
		Expect(env.client.Delete(ctx, p)).To(Succeed())
		Eventually(noSecret).Should(BeTrue())
	}, SpecTimeout(8*time.Minute))
})

// digestOf is the sha256 digest of a manifest's bytes.
func digestOf(manifest []byte) string {
	sum := sha256.Sum256(manifest)
	return "sha256:" + hex.EncodeToString(sum[:])
}

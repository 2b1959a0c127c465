package v1alpha1_test

import (
	"os"
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
	"github.com/dwbackup/devworkspace-backup-operator/internal/testenv"
)

// The roles config/rbac gives namespace users, as the API server enforces them for users bound to
// them in one namespace. envtest runs no aggregation controller, so the roles are bound directly;
// that they aggregate into view and edit is checked by TestUserRolesAggregate
// (internal/controller/rbac_test.go) and on a real cluster by test/e2e/rbac_test.go.
var _ = Describe("namespace users' roles", func() {
	// asUser is a client with only the rights RBAC gives user.
	asUser := func(user string) client.Client {
		c := rest.CopyConfig(cfg)
		c.Impersonate = rest.ImpersonationConfig{UserName: user}
		cl, err := client.New(c, client.Options{Scheme: scheme.Scheme})
		Expect(err).NotTo(HaveOccurred())
		return cl
	}
	// bind creates the ClusterRoles of files and binds them to user in namespace.
	bind := func(namespace, user string, files ...string) {
		for _, file := range files {
			data, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "rbac", file))
			Expect(err).NotTo(HaveOccurred())
			role := &rbacv1.ClusterRole{}
			Expect(yaml.Unmarshal(data, role)).To(Succeed())
			role.Name = namespace + "-" + role.Name
			Expect(client.IgnoreAlreadyExists(k8sClient.Create(ctx, role))).To(Succeed())
			Expect(k8sClient.Create(ctx, &rbacv1.RoleBinding{
				ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: user + "-" + role.Name},
				Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
			})).To(Succeed())
		}
	}

	It("lets an editor create and delete, a viewer read, and neither update or write status", func() {
		ns := uniqueName("roles")
		Expect(k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
		bind(ns, "editor", "workspacebackup_viewer_role.yaml", "workspacerestore_viewer_role.yaml",
			"workspacebackup_editor_role.yaml", "workspacerestore_editor_role.yaml")
		bind(ns, "viewer", "workspacebackup_viewer_role.yaml", "workspacerestore_viewer_role.yaml")
		editor, viewer := asUser("editor"), asUser("viewer")
		backup := func(name string) *backupv1alpha1.WorkspaceBackup {
			return &backupv1alpha1.WorkspaceBackup{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
				Spec: backupv1alpha1.WorkspaceBackupSpec{WorkspaceName: "ws", PolicyName: "nightly"}}
		}

		// RBAC takes effect within a moment of the binding.
		Eventually(func() error { return editor.Create(ctx, backup("mine")) }).Should(Succeed())
		Expect(editor.Create(ctx, &backupv1alpha1.WorkspaceRestore{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "r"},
			Spec: backupv1alpha1.WorkspaceRestoreSpec{WorkspaceName: "ws", BackupName: "mine"}})).To(Succeed())
		Eventually(func() error { return viewer.List(ctx, &backupv1alpha1.WorkspaceBackupList{}, client.InNamespace(ns)) }).Should(Succeed())
		Expect(viewer.List(ctx, &backupv1alpha1.WorkspaceRestoreList{}, client.InNamespace(ns))).To(Succeed())

		mine := &backupv1alpha1.WorkspaceBackup{}
		Expect(viewer.Get(ctx, client.ObjectKey{Namespace: ns, Name: "mine"}, mine)).To(Succeed())
		forged := mine.DeepCopy()
		forged.Status.Phase = backupv1alpha1.BackupSucceeded
		forged.Status.Artifact = &backupv1alpha1.ArtifactStatus{Reference: "elsewhere.example.com/other/ws:latest"}
		Expect(apierrors.IsForbidden(editor.Status().Update(ctx, forged))).To(BeTrue(), "the editor wrote status")
		relabelled := mine.DeepCopy()
		relabelled.Labels = map[string]string{backupv1alpha1.LabelTrigger: string(backupv1alpha1.TriggerPreRestore)}
		Expect(apierrors.IsForbidden(editor.Update(ctx, relabelled))).To(BeTrue(), "the editor updated a backup")
		Expect(apierrors.IsForbidden(editor.Patch(ctx, relabelled, client.MergeFrom(mine)))).To(BeTrue(), "the editor patched a backup")
		Expect(apierrors.IsForbidden(viewer.Create(ctx, backup("theirs")))).To(BeTrue(), "the viewer created a backup")
		Expect(apierrors.IsForbidden(viewer.Delete(ctx, mine))).To(BeTrue(), "the viewer deleted a backup")
		for _, c := range []client.Client{editor, viewer} {
			Expect(apierrors.IsForbidden(c.List(ctx, &backupv1alpha1.BackupPolicyList{}))).To(BeTrue(), "a user listed policies")
			Expect(apierrors.IsForbidden(c.List(ctx, &backupv1alpha1.WorkspaceBackupList{}, client.InNamespace(testNamespace)))).
				To(BeTrue(), "a user read another namespace")
		}
		Expect(editor.Delete(ctx, mine)).To(Succeed())
	})
})

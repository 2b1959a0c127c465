//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
)

// canI asks the API server whether user may do verb on resource in namespace (kubectl auth can-i).
func canI(ctx context.Context, user, namespace, verb, resource string, extra ...string) string {
	args := append([]string{"auth", "can-i", verb, resource, "--as", user}, extra...)
	if namespace != "" {
		args = append(args, "-n", namespace)
	}
	out, _ := env.kubectl(ctx, args...) // "no" exits 1
	lines := strings.Fields(out)        // the answer comes last, after any warning
	if len(lines) == 0 {
		return ""
	}
	return lines[len(lines)-1]
}

var _ = Describe("Namespace users with Kubernetes' built-in roles", func() {
	It("edit can list, create and delete backups and restores, view can list them; neither writes status",
		func(ctx SpecContext) {
			ns := fx.createNamespace(ctx, "rbac")
			editor, viewer := "editor-"+fx.id, "viewer-"+fx.id
			bindUser(ctx, ns, editor, "edit")
			bindUser(ctx, ns, viewer, "view")

			type check struct {
				user, verb, resource string
				extra                []string
				want                 string
			}
			checks := make([]check, 0, 32)
			for _, res := range []string{"workspacebackups", "workspacerestores"} {
				for _, verb := range []string{"get", "list", "watch"} {
					checks = append(checks, check{editor, verb, res, nil, "yes"}, check{viewer, verb, res, nil, "yes"})
				}
				for _, verb := range []string{"create", "delete"} {
					checks = append(checks, check{editor, verb, res, nil, "yes"}, check{viewer, verb, res, nil, "no"})
				}
				for _, verb := range []string{"update", "patch"} {
					checks = append(checks, check{editor, verb, res, nil, "no"}, check{viewer, verb, res, nil, "no"})
					checks = append(checks, check{editor, verb, res, []string{"--subresource=status"}, "no"})
				}
			}
			By("kubectl auth can-i, once the aggregation controller has folded our roles into edit and view")
			Eventually(func(g Gomega) {
				for _, c := range checks {
					g.Expect(canI(ctx, c.user, ns, c.verb, c.resource, c.extra...)).To(Equal(c.want),
						"%s %s %s %s", c.user, c.verb, c.resource, strings.Join(c.extra, " "))
				}
			}).WithTimeout(time.Minute).Should(Succeed())
			for _, user := range []string{editor, viewer} {
				Expect(canI(ctx, user, "", "list", "backuppolicies")).To(Equal("no"), "%s lists policies", user)
				Expect(canI(ctx, user, "default", "list", "workspacebackups")).To(Equal("no"), "%s outside their namespace", user)
			}

			By("the editor asks for a backup with kubectl, as a developer does")
			w := fx.createWorkspace(ctx, ns, "mine", storagePerWS, "rbac", func(dir string) { writeSampleTree(dir, "rbac") })
			p := fx.createPolicy(ctx, "rbac", "rbac", func(s *backupv1alpha1.BackupPolicySpec) { s.Suspend = true })
			manifest := fmt.Sprintf("apiVersion: %s\nkind: WorkspaceBackup\nmetadata: {name: by-editor, namespace: %s}\n"+
				"spec: {workspaceName: %s, policyName: %s}\n", backupv1alpha1.GroupVersion, ns, w.Name, p.Name)
			file := filepath.Join(GinkgoT().TempDir(), "backup.yaml")
			Expect(os.WriteFile(file, []byte(manifest), 0o600)).To(Succeed())
			out, err := env.kubectl(ctx, "create", "-f", file, "--as", editor)
			Expect(err).NotTo(HaveOccurred(), out)
			b := fx.waitForBackup(ctx, ns, "by-editor", 3*time.Minute)
			Expect(b.Status.Phase).To(Equal(backupv1alpha1.BackupSucceeded), b.Status.Message)

			By("the viewer sees it with kubectl get wsb")
			out, err = env.kubectl(ctx, "get", "wsb", "-n", ns, "--as", viewer)
			Expect(err).NotTo(HaveOccurred(), out)
			Expect(out).To(ContainSubstring("by-editor"))
			Expect(out).To(ContainSubstring("Succeeded"))
			AddReportEntry("kubectl get wsb as a namespace viewer", out)

			By("real writes the roles must refuse")
			editorClient, viewerClient := impersonating(editor), impersonating(viewer)
			forged := b.DeepCopy()
			forged.Status.Message = "forged by the editor"
			forged.Status.Artifact.Reference = "elsewhere.example.com/other-namespace/ws:latest"
			Expect(apierrors.IsForbidden(editorClient.Status().Update(ctx, forged))).To(BeTrue(), "the editor wrote status")
			labelled := b.DeepCopy()
			labelled.Labels[backupv1alpha1.LabelTrigger] = string(backupv1alpha1.TriggerPreRestore) // would escape retention
			Expect(apierrors.IsForbidden(editorClient.Update(ctx, labelled))).To(BeTrue(), "the editor updated the backup")
			viewerBackup := &backupv1alpha1.WorkspaceBackup{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "by-viewer"},
				Spec: backupv1alpha1.WorkspaceBackupSpec{WorkspaceName: w.Name, PolicyName: p.Name}}
			Expect(apierrors.IsForbidden(viewerClient.Create(ctx, viewerBackup))).To(BeTrue(), "the viewer created a backup")
			Expect(apierrors.IsForbidden(viewerClient.Delete(ctx, b))).To(BeTrue(), "the viewer deleted a backup")
			restore := &backupv1alpha1.WorkspaceRestore{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "by-viewer"},
				Spec: backupv1alpha1.WorkspaceRestoreSpec{WorkspaceName: w.Name, BackupName: b.Name}}
			Expect(apierrors.IsForbidden(viewerClient.Create(ctx, restore))).To(BeTrue(), "the viewer created a restore")
			Expect(apierrors.IsForbidden(viewerClient.List(ctx, &backupv1alpha1.BackupPolicyList{}))).To(BeTrue(),
				"the viewer listed policies")

			By("the editor deletes their backup; the artifact stays in the registry")
			Expect(editorClient.Delete(ctx, b)).To(Succeed())
			Eventually(func() (bool, error) { return fx.gone(ctx, b) }).Should(BeTrue())
			Expect(env.resolve(ctx, b.Status.Artifact.Reference)).To(Equal(b.Status.Artifact.Digest))
			stored := &backupv1alpha1.WorkspaceBackupList{}
			Expect(env.client.List(ctx, stored, client.InNamespace(ns))).To(Succeed())
			Expect(stored.Items).To(BeEmpty())
		}, SpecTimeout(6*time.Minute))
})

package controller

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
	"github.com/dwbackup/devworkspace-backup-operator/internal/mover"
	"github.com/dwbackup/devworkspace-backup-operator/internal/registry"
	"github.com/dwbackup/devworkspace-backup-operator/internal/registry/registrytest"
)

// The history import (historyimport_step.go): the registry is what a lost cluster left behind;
// each spec has a registry of its own, so its catalog holds only that spec's artifacts.

// pushArtifact backs up a small tree as the mover of a backup Job would: repository
// <repo>/<namespace>/<workspace>, the tag, and the manifest annotations (namespace, workspace,
// workspace id) the mover writes. annotatedNamespace, when set, is what the annotations claim.
func pushArtifact(repo, namespace, workspace, workspaceID, tag, annotatedNamespace string) mover.Result {
	GinkgoHelper()
	dir := GinkgoT().TempDir()
	Expect(os.WriteFile(filepath.Join(dir, "README.md"), []byte(tag), 0o644)).To(Succeed())
	if annotatedNamespace == "" {
		annotatedNamespace = namespace
	}
	res := mover.Backup(context.Background(), mover.BackupOptions{
		Source: dir, Repository: artifactRepository(repo, namespace, workspace), Tag: tag,
		Workspace: workspace, Namespace: annotatedNamespace, WorkspaceID: workspaceID,
		Registry: registry.Options{Insecure: true},
	})
	Expect(res.Phase).To(Equal(mover.PhaseSucceeded), res.Message)
	return res
}

// importPolicy creates a suspended policy named name importing history from repo into the
// namespaces with nsLabels, and deletes it when the spec ends.
func importPolicy(name string, nsLabels map[string]string, repo string, mutate ...func(*backupv1alpha1.BackupPolicySpec)) *backupv1alpha1.BackupPolicy {
	GinkgoHelper()
	p := &backupv1alpha1.BackupPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: backupv1alpha1.BackupPolicySpec{
			Schedule: "0 2 * * *", Suspend: true, ImportHistory: true,
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: nsLabels},
			Registry:          backupv1alpha1.RegistrySpec{Repository: repo, Insecure: true},
		},
	}
	for _, m := range mutate {
		m(&p.Spec)
	}
	Expect(k8sClient.Create(ctx, p)).To(Succeed())
	DeferCleanup(func() { Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, p))).To(Succeed()) })
	return p
}

// importedBackups lists a namespace's WorkspaceBackups of a policy.
func policyBackupsIn(namespace, policy string) []backupv1alpha1.WorkspaceBackup {
	GinkgoHelper()
	list := &backupv1alpha1.WorkspaceBackupList{}
	Expect(k8sClient.List(ctx, list, client.InNamespace(namespace), client.MatchingLabels{backupv1alpha1.LabelPolicy: policy})).To(Succeed())
	return list.Items
}

// historyImported waits for the HistoryImported condition of the policy's current generation
// and annotation, and returns the status.
func historyImported(name string) backupv1alpha1.BackupPolicyStatus {
	GinkgoHelper()
	var status backupv1alpha1.BackupPolicyStatus
	Eventually(func(g Gomega) {
		p := getPolicy(name)
		h := p.Status.HistoryImport
		g.Expect(h).NotTo(BeNil())
		g.Expect(h.ObservedGeneration).To(Equal(p.Generation))
		g.Expect(h.Request).To(Equal(p.Annotations[backupv1alpha1.AnnotationImportHistory]))
		g.Expect(meta.FindStatusCondition(p.Status.Conditions, backupv1alpha1.ConditionHistoryImported)).NotTo(BeNil())
		status = p.Status
	}).Should(Succeed())
	return status
}

// requestImport sets the import-history annotation, as an admin re-running the import does.
func requestImport(name, value string) {
	GinkgoHelper()
	p := getPolicy(name)
	patch := client.MergeFrom(p.DeepCopy())
	p.Annotations = withLabel(p.Annotations, backupv1alpha1.AnnotationImportHistory, value)
	Expect(k8sClient.Patch(ctx, p, patch)).To(Succeed())
}

var _ = Describe("History import", func() {
	It("imports each of the policy's artifacts once, as Succeeded Imported backups, and leaves everything else alone", func() {
		reg := registrytest.NewInProcess(GinkgoT(), nil)
		repo := reg.Host + "/backups"
		nsLabels := specLabels()
		ns := newNamespace(nsLabels)
		missingNS := "gone-" + rand.String(8)
		policyName := "nightly-" + rand.String(6)
		id := "workspace0123456789abcdef"
		slot1 := time.Date(2026, 11, 20, 2, 0, 0, 0, time.UTC)
		slot2 := slot1.Add(24 * time.Hour)
		manual := slot2.Add(7*time.Hour + 30*time.Minute + 5*time.Second)
		ownTags := map[string]mover.Result{
			"ws-a:" + artifactTag(policyName, slot1, ""):        pushArtifact(repo, ns, "ws-a", id, artifactTag(policyName, slot1, ""), ""),
			"ws-a:" + artifactTag(policyName, slot2, ""):        pushArtifact(repo, ns, "ws-a", id, artifactTag(policyName, slot2, ""), ""),
			"ws-a:" + artifactTag(policyName, manual, "abcdef"): pushArtifact(repo, ns, "ws-a", id, artifactTag(policyName, manual, "abcdef"), ""),
			"ws-b:" + artifactTag(policyName, slot2, ""):        pushArtifact(repo, ns, "ws-b", "workspacefedcba9876543210", artifactTag(policyName, slot2, ""), ""),
		}
		// Not the policy's: another policy's tag, and one whose annotations claim another namespace.
		pushArtifact(repo, ns, "ws-a", id, artifactTag(policyName+"-weekly", slot2, ""), "")
		pushArtifact(repo, ns, "ws-b", id, artifactTag(policyName, slot2.Add(time.Hour), ""), "victim-namespace")
		// A namespace the new cluster does not have yet.
		pushArtifact(repo, missingNS, "ws-c", id, artifactTag(policyName, slot1, ""), "")
		// A deeper repository (another policy's repository below ours) is not read.
		pushArtifact(repo+"/team", ns, "ws-d", id, artifactTag(policyName, slot1, ""), "")

		pushReads := reg.Count(http.MethodGet, "/manifests/") // the mover reads manifests while it pushes
		p := importPolicy(policyName, nsLabels, repo, func(s *backupv1alpha1.BackupPolicySpec) {
			s.Retention.KeepLast = 10
		})
		status := historyImported(p.Name)
		h := status.HistoryImport
		Expect(h.Imported).To(BeEquivalentTo(4))
		Expect(h.Rejected).To(BeEquivalentTo(1), "the tag whose annotations name another namespace")
		Expect(h.MissingNamespaces).To(Equal([]string{missingNS}))
		cond := meta.FindStatusCondition(status.Conditions, backupv1alpha1.ConditionHistoryImported)
		Expect(cond.Status).To(Equal(metav1.ConditionFalse))
		Expect(cond.Reason).To(Equal(backupv1alpha1.ReasonNamespacesMissing))
		Expect(cond.Message).To(ContainSubstring(missingNS))
		Expect(meta.IsStatusConditionTrue(status.Conditions, backupv1alpha1.ConditionReady)).To(BeTrue(), "the import never holds up the policy")

		backups := policyBackupsIn(ns, p.Name)
		Expect(backups).To(HaveLen(4))
		for _, b := range backups {
			Expect(b.Status.Phase).To(Equal(backupv1alpha1.BackupSucceeded), b.Name)
			Expect(b.Labels).To(HaveKeyWithValue(backupv1alpha1.LabelTrigger, string(backupv1alpha1.TriggerImported)))
			Expect(b.Labels).To(HaveKeyWithValue(backupv1alpha1.LabelWorkspace, b.Spec.WorkspaceName))
			Expect(b.Labels).To(HaveKeyWithValue(backupv1alpha1.LabelWorkspaceID, b.Status.WorkspaceID))
			Expect(controllerutil.ContainsFinalizer(&b, backupv1alpha1.FinalizerArtifact)).To(BeTrue())
			Expect(b.OwnerReferences).To(BeEmpty())
			expectReason(&b, backupv1alpha1.ReasonImported, false)
			repoTag := strings.TrimPrefix(b.Status.Artifact.Reference, repo+"/"+ns+"/")
			pushed, ok := ownTags[repoTag]
			Expect(ok).To(BeTrue(), "imported %s, which is not one of the policy's tags", b.Status.Artifact.Reference)
			Expect(b.Status.Artifact.Digest).To(Equal(pushed.Digest))
			Expect(b.Status.Artifact.SizeBytes).To(Equal(pushed.SizeBytes))
			Expect(b.Status.Artifact.Files).To(Equal(pushed.Files))
			at, _, _ := ownTag(policyName, tagOfReference(b.Status.Artifact.Reference))
			Expect(timeOf(b.Status.StartTime)).To(Equal(at), "the backup's time is its tag's")
			Expect(timeOf(b.Status.CompletionTime)).To(Equal(at))
		}
		Expect(backupNames(ns)).To(ContainElement(childName("ws-a", policyName, slotSuffix(slot1))),
			"a scheduled tag's backup has the scheduled backup's name")
		// Bounded: one catalog page, one tag list per repository of an existing namespace, one
		// manifest read per tag of the policy.
		Expect(reg.Count(http.MethodGet, "/_catalog")).To(Equal(1))
		Expect(reg.Count(http.MethodGet, "/tags/list")).To(Equal(2))
		Expect(reg.Count(http.MethodGet, "/manifests/") - pushReads).To(Equal(5))

		By("a second import creates nothing and reads only the tag it rejected before")
		requestImport(p.Name, "again")
		h = historyImported(p.Name).HistoryImport
		Expect(h.Imported).To(BeZero())
		Expect(h.AlreadyPresent).To(BeEquivalentTo(4))
		Expect(policyBackupsIn(ns, p.Name)).To(HaveLen(4))
		Expect(reg.Count(http.MethodGet, "/manifests/") - pushReads).To(Equal(6))

		By("the missing namespace appears: its history follows")
		Expect(k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: missingNS, Labels: nsLabels}})).To(Succeed())
		Eventually(func(g Gomega) {
			h := getPolicy(p.Name).Status.HistoryImport
			g.Expect(h.MissingNamespaces).To(BeEmpty())
			g.Expect(h.Imported).To(BeEquivalentTo(1))
		}).Should(Succeed())
		Expect(policyBackupsIn(missingNS, p.Name)).To(HaveLen(1))
		Expect(meta.IsStatusConditionTrue(getPolicy(p.Name).Status.Conditions, backupv1alpha1.ConditionHistoryImported)).To(BeTrue())
	})

	It("applies retention to imported backups as to any other, deleting the pruned tags", func() {
		reg := registrytest.NewInProcess(GinkgoT(), nil)
		repo := reg.Host + "/backups"
		nsLabels := specLabels()
		ns := newNamespace(nsLabels)
		id := "workspace00000000000000aa"
		first := time.Date(2026, 11, 10, 2, 0, 0, 0, time.UTC)
		policyName := "nightly-" + rand.String(6)
		refs := make([]string, 0, 4)
		for day := range 4 {
			tag := artifactTag(policyName, first.Add(time.Duration(day)*24*time.Hour), "")
			pushArtifact(repo, ns, "ws", id, tag, "")
			refs = append(refs, artifactRepository(repo, ns, "ws")+":"+tag)
		}
		p := importPolicy(policyName, nsLabels, repo, func(s *backupv1alpha1.BackupPolicySpec) { s.Retention.KeepLast = 2 })
		Expect(historyImported(p.Name).HistoryImport.Imported).To(BeEquivalentTo(4))
		Eventually(func() []string {
			var kept []string
			for _, b := range policyBackupsIn(ns, p.Name) {
				if b.DeletionTimestamp.IsZero() {
					kept = append(kept, b.Status.Artifact.Reference)
				}
			}
			return kept
		}).Should(ConsistOf(refs[2], refs[3]), "keepLast 2 keeps the two newest")
		Eventually(func() bool { return resolvable(refs[0]) || resolvable(refs[1]) }).Should(BeFalse(),
			"the pruned imported backups' tags are deleted (deleteArtifacts)")
		Expect(resolvable(refs[2]) && resolvable(refs[3])).To(BeTrue())
	})

	It("reports a registry that does not list its catalog on the policy, and imports nothing", func() {
		reg := registrytest.NewInProcess(GinkgoT(), func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if strings.HasSuffix(r.URL.Path, "/_catalog") {
					http.Error(w, `{"errors":[{"code":"UNSUPPORTED","message":"catalog listing is disabled"}]}`, http.StatusNotFound)
					return
				}
				h.ServeHTTP(w, r)
			})
		})
		nsLabels := specLabels()
		ns := newNamespace(nsLabels)
		policyName := "nightly-" + rand.String(6)
		pushArtifact(reg.Host+"/backups", ns, "ws", "workspace00000000000000bb", artifactTag(policyName, time.Now().UTC().Truncate(time.Hour), ""), "")
		p := importPolicy(policyName, nsLabels, reg.Host+"/backups")
		status := historyImported(p.Name)
		cond := meta.FindStatusCondition(status.Conditions, backupv1alpha1.ConditionHistoryImported)
		Expect(cond.Status).To(Equal(metav1.ConditionFalse))
		Expect(cond.Reason).To(Equal(backupv1alpha1.ReasonRegistryListingUnsupported))
		Expect(cond.Message).To(ContainSubstring("spec.importHistory"))
		Expect(cond.Message).To(ContainSubstring("/v2/_catalog"))
		Expect(meta.IsStatusConditionTrue(status.Conditions, backupv1alpha1.ConditionReady)).To(BeTrue())
		Expect(policyBackupsIn(ns, p.Name)).To(BeEmpty())
	})

	It("completes an imported backup that an earlier run created but could not record", func() {
		reg := registrytest.NewInProcess(GinkgoT(), nil)
		repo := reg.Host + "/backups"
		nsLabels := specLabels()
		ns := newNamespace(nsLabels)
		policyName := "nightly-" + rand.String(6)
		slot := time.Date(2026, 11, 20, 2, 0, 0, 0, time.UTC)
		pushed := pushArtifact(repo, ns, "ws", "workspace00000000000000cc", artifactTag(policyName, slot, ""), "")
		// What a run that stopped between the create and the status left: Pending, no finalizer yet.
		left := &backupv1alpha1.WorkspaceBackup{
			ObjectMeta: metav1.ObjectMeta{Name: importedName("ws", policyName, slot, ""), Namespace: ns,
				Labels: map[string]string{backupv1alpha1.LabelTrigger: string(backupv1alpha1.TriggerImported)}},
			Spec: backupv1alpha1.WorkspaceBackupSpec{WorkspaceName: "ws", PolicyName: policyName},
		}
		Expect(k8sClient.Create(ctx, left)).To(Succeed())
		p := importPolicy(policyName, nsLabels, repo)
		Expect(historyImported(p.Name).HistoryImport.Imported).To(BeEquivalentTo(1))
		got := getBackup(left)
		Expect(got.UID).To(Equal(left.UID))
		Expect(got.Status.Phase).To(Equal(backupv1alpha1.BackupSucceeded))
		Expect(got.Status.Artifact.Digest).To(Equal(pushed.Digest))
		Expect(controllerutil.ContainsFinalizer(got, backupv1alpha1.FinalizerArtifact)).To(BeTrue())
		Expect(got.Labels).To(HaveKeyWithValue(backupv1alpha1.LabelWorkspaceID, "workspace00000000000000cc"))
	})

	It("never runs a Job for a backup labelled Imported that the import did not complete", func() {
		f := newBackupFixture()
		stoppedWorkspace(f.Namespace, "ws")
		b := &backupv1alpha1.WorkspaceBackup{
			ObjectMeta: metav1.ObjectMeta{Name: "ws-forged-" + rand.String(5), Namespace: f.Namespace,
				Labels: map[string]string{backupv1alpha1.LabelTrigger: string(backupv1alpha1.TriggerImported)}},
			Spec: backupv1alpha1.WorkspaceBackupSpec{WorkspaceName: "ws", PolicyName: f.Policy.Name},
		}
		Expect(k8sClient.Create(ctx, b)).To(Succeed())
		// Without the guard its Job appears within a second or two (a manual backup of a stopped
		// workspace); three seconds of nothing is the absence this spec can observe.
		Consistently(func(g Gomega) {
			g.Expect(jobsOf(f.Namespace)).To(BeEmpty())
			g.Expect(getBackup(b).Status.Phase).To(Or(BeEmpty(), Equal(backupv1alpha1.BackupPending)))
		}).WithTimeout(3 * time.Second).Should(Succeed())
	})
})

// tagOfReference is the tag of repo:tag.
func tagOfReference(ref string) string {
	_, tag := splitReference(ref)
	return tag
}

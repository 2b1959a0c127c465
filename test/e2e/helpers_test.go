//go:build e2e || olm

package e2e

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/pod-security-admission/api"
	psapolicy "k8s.io/pod-security-admission/policy"
	"sigs.k8s.io/controller-runtime/pkg/client"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
)

// scheduledBackups returns the policy's scheduled backups whose slot matches inSlot, by
// namespace/workspace; it fails when a workspace has two.
func (f *fixtures) scheduledBackups(ctx context.Context, g Gomega, policy string,
	inSlot func(time.Time) bool) map[string]backupv1alpha1.WorkspaceBackup {
	out := map[string]backupv1alpha1.WorkspaceBackup{}
	for _, b := range f.policyBackups(ctx, g, policy) {
		if b.Labels[backupv1alpha1.LabelTrigger] != string(backupv1alpha1.TriggerScheduled) {
			continue
		}
		slot, err := time.Parse(time.RFC3339, b.Annotations[backupv1alpha1.AnnotationSlot])
		g.Expect(err).NotTo(HaveOccurred(), "slot annotation of %s/%s", b.Namespace, b.Name)
		if !inSlot(slot) {
			continue
		}
		key := b.Namespace + "/" + b.Spec.WorkspaceName
		g.Expect(out).NotTo(HaveKey(key), "a second backup of %s (%s)", key, b.Name)
		out[key] = b
	}
	return out
}

// waitForScheduled waits until the policy has exactly n scheduled backups in the slots inSlot
// accepts, one per workspace, all Succeeded. A backup that ends any other way stops the wait.
func (f *fixtures) waitForScheduled(ctx context.Context, policy string, inSlot func(time.Time) bool, n int,
	timeout time.Duration) map[string]backupv1alpha1.WorkspaceBackup {
	GinkgoHelper()
	var backups map[string]backupv1alpha1.WorkspaceBackup
	Eventually(func(g Gomega) {
		backups = f.scheduledBackups(ctx, g, policy, inSlot)
		for _, b := range backups {
			if b.Status.Phase.Finished() && b.Status.Phase != backupv1alpha1.BackupSucceeded {
				StopTrying("backup " + b.Namespace + "/" + b.Name + " ended " + string(b.Status.Phase) +
					": " + b.Status.Message).Now()
			}
		}
		g.Expect(backups).To(HaveLen(n))
		for _, b := range backups {
			g.Expect(b.Status.Phase).To(Equal(backupv1alpha1.BackupSucceeded), "%s/%s", b.Namespace, b.Name)
		}
	}).WithTimeout(timeout).WithPolling(time.Second).Should(Succeed(), "%d backups of policy %s succeed", n, policy)
	return backups
}

// waitMidSlot waits until at least succeeded backups of the policy's slot have Succeeded and one
// runs; it gives up when more than most have Succeeded (the slot would end before the fault).
func waitMidSlot(ctx context.Context, policy string, slot time.Time, succeeded, most int) {
	GinkgoHelper()
	By("waiting until backups of the slot have succeeded and others run")
	Eventually(func(g Gomega) {
		phases := map[backupv1alpha1.BackupPhase]int{}
		for _, b := range fx.scheduledBackups(ctx, g, policy, slotEqual(slot)) {
			phases[b.Status.Phase]++
		}
		if phases[backupv1alpha1.BackupSucceeded] > most {
			StopTrying("the slot was nearly done before the fault").Now()
		}
		g.Expect(phases[backupv1alpha1.BackupSucceeded]).To(BeNumerically(">=", succeeded))
		g.Expect(phases[backupv1alpha1.BackupRunning]).To(BeNumerically(">=", 1))
	}).WithTimeout(3 * time.Minute).WithPolling(200 * time.Millisecond).Should(Succeed())
}

func slotEqual(slot time.Time) func(time.Time) bool {
	return func(t time.Time) bool { return t.Equal(slot) }
}

func slotAfter(after time.Time) func(time.Time) bool {
	return func(t time.Time) bool { return t.After(after) }
}

// expectArtifact checks a Succeeded backup's artifact the way a user would: it lies in
// <repository>/<namespace>/<workspace>, its tag resolves to the recorded digest, it carries DWO's
// artifact type and annotations, `latest` points at it (the newest backup), and `oras pull` +
// `tar -xzf` gives back exactly the workspace's files.
func expectArtifact(ctx context.Context, b *backupv1alpha1.WorkspaceBackup, w *workspace, repository string) {
	GinkgoHelper()
	Expect(b.Status.Phase).To(Equal(backupv1alpha1.BackupSucceeded), b.Status.Message)
	Expect(b.Status.Artifact).NotTo(BeNil())
	ref, digest := b.Status.Artifact.Reference, b.Status.Artifact.Digest
	repo, tag := splitRef(ref)
	Expect(repo).To(Equal(repository + "/" + w.Namespace + "/" + w.Name))
	Expect(tag).NotTo(BeEmpty())
	Expect(tag).NotTo(Equal("latest"))
	Expect(env.resolve(ctx, ref)).To(Equal(digest), "%s resolves to the recorded digest", ref)
	Expect(env.resolve(ctx, repo+":latest")).To(Equal(digest), "latest points at the newest backup")
	m := env.manifest(ctx, ref)
	Expect(m).To(HaveKeyWithValue("artifactType", dwoArtifactType))
	Expect(m).To(HaveKeyWithValue("annotations", And(
		HaveKeyWithValue("devworkspace.name", w.Name),
		HaveKeyWithValue("devworkspace.namespace", w.Namespace))))
	Expect(env.pullTree(ctx, ref)).To(Equal(snapshot(w.projectsDir())), "oras pull + tar -xzf of %s equals the files", ref)
}

// expectSource checks that the backup read the PVC and path DWO uses for the workspace.
func expectSource(b *backupv1alpha1.WorkspaceBackup, w *workspace) {
	GinkgoHelper()
	Expect(b.Status.WorkspaceID).To(Equal(w.ID))
	Expect(b.Status.Source).To(Equal(&backupv1alpha1.BackupSource{ClaimName: w.claimName(), Path: w.sourcePath()}))
}

// moverPods lists (from the API server, not a cache) the pods of an owner's mover Jobs,
// terminating ones included.
func moverPods(ctx context.Context, ns string, owner types.UID) []corev1.Pod {
	GinkgoHelper()
	pods := &corev1.PodList{}
	Expect(env.client.List(ctx, pods, client.InNamespace(ns),
		client.MatchingLabels{labelOwnerUID: string(owner)})).To(Succeed())
	return pods.Items
}

// leaseName is the Lease the manager replicas compete for (cmd/leader.go).
const leaseName = "devworkspace-backup-operator.dwbackup.io"

// leaderLease reads the manager replicas' Lease from the API server.
func leaderLease(ctx context.Context, g Gomega) *coordinationv1.Lease {
	lease := &coordinationv1.Lease{}
	g.Expect(env.client.Get(ctx, client.ObjectKey{Namespace: env.operatorNamespace, Name: leaseName}, lease)).
		To(Succeed())
	return lease
}

// holderPod is the pod name of a holderIdentity, "<pod name>_<random>" (cmd/leader.go).
func holderPod(identity string) string {
	name, _, _ := strings.Cut(identity, "_")
	return name
}

// managerPods lists the manager replicas' pods that are not being deleted.
func managerPods(ctx context.Context, g Gomega) []corev1.Pod {
	pods := &corev1.PodList{}
	g.Expect(env.client.List(ctx, pods, client.InNamespace(env.operatorNamespace),
		client.MatchingLabels{"control-plane": "controller-manager"})).To(Succeed())
	return slices.DeleteFunc(pods.Items, func(p corev1.Pod) bool { return p.DeletionTimestamp != nil })
}

// managerPod returns the pod of the elected manager, the one that reconciles: the Lease's holder.
func managerPod(ctx context.Context, g Gomega) *corev1.Pod {
	lease := leaderLease(ctx, g)
	g.Expect(lease.Spec.HolderIdentity).NotTo(BeNil(), "the Lease has a holder")
	leader := holderPod(*lease.Spec.HolderIdentity)
	for _, p := range managerPods(ctx, g) {
		if p.Name == leader {
			return &p
		}
	}
	g.Expect(leader).To(BeEmpty(), "the Lease's holder is a live manager pod")
	return nil
}

// managersReady checks that every manager Deployment has its pod Ready and that one of them leads.
func managersReady(ctx context.Context, g Gomega) {
	pods := managerPods(ctx, g)
	g.Expect(pods).To(HaveLen(len(env.operatorDeployments)), "one pod per manager Deployment")
	for _, p := range pods {
		g.Expect(podReady(&p)).To(BeTrue(), "pod %s Ready", p.Name)
	}
	managerPod(ctx, g)
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// killManager deletes the elected manager's pod at once, as a node failure or an OOM kill would
// end it, and waits until its replacement is Ready and a live replica leads.
func killManager(ctx context.Context) {
	GinkgoHelper()
	old := managerPod(ctx, Default)
	By("killing the leader's pod " + old.Name)
	_, err := env.kubectl(ctx, "-n", old.Namespace, "delete", "pod", old.Name, "--grace-period=0", "--force")
	Expect(err).NotTo(HaveOccurred())
	Eventually(func(g Gomega) {
		for _, p := range managerPods(ctx, g) {
			g.Expect(p.UID).NotTo(Equal(old.UID))
		}
		managersReady(ctx, g)
	}).WithTimeout(3*time.Minute).WithPolling(time.Second).
		Should(Succeed(), "the manager replicas are Ready and one leads")
}

// podCgroup is a pod's cgroup directory in a hierarchy (cgroup v1, cgroupfs driver:
// /sys/fs/cgroup/<hierarchy>/kubepods/<qos>/pod<uid>).
func podCgroup(pod *corev1.Pod, hierarchy string) string {
	GinkgoHelper()
	var dir string
	_ = filepath.WalkDir(filepath.Join("/sys/fs/cgroup", hierarchy), func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() && strings.HasSuffix(p, "pod"+string(pod.UID)) {
			dir = p
			return filepath.SkipAll
		}
		return nil
	})
	Expect(dir).NotTo(BeEmpty(), "the %s cgroup of pod %s", hierarchy, pod.Name)
	return dir
}

// restrictedViolations runs a pod through the Pod Security Admission evaluator at the restricted
// level (latest version) and returns every failed check except the host-namespaces one that the
// local cluster's hostNetwork needs (docs/local-cluster.md); that one must name hostNetwork only.
func restrictedViolations(pod *corev1.Pod) []string {
	GinkgoHelper()
	evaluator, err := psapolicy.NewEvaluator(psapolicy.DefaultChecks(), nil)
	Expect(err).NotTo(HaveOccurred())
	var out []string
	level := api.LevelVersion{Level: api.LevelRestricted, Version: api.LatestVersion()}
	for _, r := range evaluator.EvaluatePod(level, &pod.ObjectMeta, &pod.Spec) {
		if r.Allowed || (r.ForbiddenReason == "host namespaces" && r.ForbiddenDetail == "hostNetwork=true") {
			continue
		}
		out = append(out, pod.Namespace+"/"+pod.Name+": "+r.ForbiddenReason+": "+r.ForbiddenDetail)
	}
	return out
}

// tagOf returns the tag of repository:tag.
func tagOf(ref string) string {
	_, tag := splitRef(ref)
	return tag
}

// manualTag is the unique tag of a manual backup (docs/mover-contract.md, "Tag grammar"): its
// policy, its UTC creation time and 6 hex characters of its UID.
func manualTag(policy string, created time.Time, uid types.UID) string {
	return policy + "-" + created.UTC().Format("20060102T150405Z") + "-" + strings.ReplaceAll(string(uid), "-", "")[:6]
}

//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
	"github.com/dwbackup/devworkspace-backup-operator/internal/registry"
	"github.com/dwbackup/devworkspace-backup-operator/internal/registry/registrytest"
	"github.com/dwbackup/devworkspace-backup-operator/internal/testenv"
)

// Faults on the real data path (docs/reliability.md): each spec takes a good backup, breaks
// something under the next one, and checks that the broken backup ends Failed with a reason (its
// Job retried within backoffLimit), that `latest` still names the good backup, that the backup
// after the repair Succeeds, and that no mover pod is left.
var _ = Describe("Faults on the data path", Ordered, ContinueOnFailure, func() {
	var ns string

	BeforeAll(func(ctx SpecContext) {
		ns = fx.createNamespace(ctx, "faults")
	})

	// faultPolicy is a suspended policy (manual backups only) with one retry per Job.
	faultPolicy := func(ctx context.Context, name, host string, mutate func(*backupv1alpha1.BackupPolicySpec)) string {
		GinkgoHelper()
		p := fx.createPolicy(ctx, name, name, func(s *backupv1alpha1.BackupPolicySpec) {
			s.Suspend = true
			s.Registry.Repository = fmt.Sprintf("%s/e2e-%s/%s", host, fx.id, name)
			s.Job.BackoffLimit = ptr.To[int32](1)
			if mutate != nil {
				mutate(s)
			}
		})
		return p.Name
	}
	repositoryOf := func(host, name string, w *workspace) string {
		return fmt.Sprintf("%s/e2e-%s/%s/%s/%s", host, fx.id, name, w.Namespace, w.Name)
	}
	succeeded := func(ctx context.Context, w *workspace, name, policy string) *backupv1alpha1.WorkspaceBackup {
		GinkgoHelper()
		b := fx.createBackup(ctx, w, name, policy)
		b = fx.waitForBackup(ctx, w.Namespace, b.Name, 3*time.Minute)
		Expect(b.Status.Phase).To(Equal(backupv1alpha1.BackupSucceeded), b.Status.Message)
		return b
	}
	// withGoodBackup creates a workspace holding a sample tree, its policy on host and a first,
	// Succeeded backup.
	withGoodBackup := func(ctx context.Context, name, host string,
		mutate func(*backupv1alpha1.BackupPolicySpec)) (*workspace, string, *backupv1alpha1.WorkspaceBackup) {
		GinkgoHelper()
		w := fx.createWorkspace(ctx, ns, name, storagePerWS, name, func(dir string) { writeSampleTree(dir, name) })
		policy := faultPolicy(ctx, name, host, mutate)
		return w, policy, succeeded(ctx, w, name+"-good", policy)
	}
	// addRandom adds size incompressible bytes to a workspace's files.
	addRandom := func(w *workspace, size int64) {
		GinkgoHelper()
		writeRandomFile(filepath.Join(w.projectsDir(), "big.bin"), size)
		chownTree(w.projectsDir())
	}
	failedWith := func(ctx context.Context, b *backupv1alpha1.WorkspaceBackup, reasons ...string) {
		GinkgoHelper()
		b = fx.waitForBackup(ctx, b.Namespace, b.Name, 4*time.Minute)
		Expect(b.Status.Phase).To(Equal(backupv1alpha1.BackupFailed))
		Expect(readyReason(b.Status.Conditions)).To(BeElementOf(reasons), b.Status.Message)
		AddReportEntry("backup "+b.Name, readyReason(b.Status.Conditions)+": "+b.Status.Message)
		expectNothingRunning(ctx, b)
	}

	It("i. registry stopped mid-upload: RegistryUnreachable, latest kept, next backup Succeeds", func(ctx SpecContext) {
		reg := registrytest.StartDistribution(GinkgoT())
		slow := startSlowRegistry(reg.Host, 4<<20)
		DeferCleanup(slow.Close)
		w, policy, good := withGoodBackup(ctx, "regstop", slow.Host, nil)

		By("a 32 MiB change, uploaded at 4 MiB/s; the registry is killed once 2 MiB went through")
		addRandom(w, 32<<20)
		before := slow.Uploaded()
		cut := fx.createBackup(ctx, w, "regstop-cut", policy)
		Eventually(slow.Uploaded).WithTimeout(3*time.Minute).
			Should(BeNumerically(">", before+2<<20), "the mover is uploading")
		reg.Kill()
		failedWith(ctx, cut, string(registry.ReasonRegistryUnreachable))

		By("the registry is back with its storage: latest is the good backup, the next one Succeeds")
		reg.Start(GinkgoT())
		repo := repositoryOf(slow.Host, "regstop", w)
		Expect(env.resolve(ctx, repo+":latest")).To(Equal(good.Status.Artifact.Digest))
		next := succeeded(ctx, w, "regstop-next", policy)
		Expect(env.resolve(ctx, repo+":latest")).To(Equal(next.Status.Artifact.Digest))
		expectNothingRunning(ctx, next)
	}, SpecTimeout(10*time.Minute))

	It("j. credentials rotated: Unauthorized, then the rotated Secret works with no restart", func(ctx SpecContext) {
		reg := registrytest.StartDistributionWith(GinkgoT(),
			registrytest.DistributionOptions{Users: map[string]string{"e2e": "first"}})
		secret := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("e2e-%s-rotated", fx.id), Namespace: env.operatorNamespace},
			Type:       corev1.SecretTypeDockerConfigJson,
			Data:       map[string][]byte{corev1.DockerConfigJsonKey: dockerConfig(reg.Host, "e2e", "first")},
		}
		Expect(env.client.Create(ctx, secret)).To(Succeed())
		DeferCleanup(func(ctx SpecContext) {
			Expect(client.IgnoreNotFound(env.client.Delete(ctx, secret))).To(Succeed())
		})
		manager := managerPod(ctx, Default)
		w, policy, good := withGoodBackup(ctx, "rotated", reg.Host, func(s *backupv1alpha1.BackupPolicySpec) {
			s.Registry.AuthSecretName = secret.Name
		})

		By("the registry's password is changed; the Secret still holds the old one")
		reg.SetUsers(GinkgoT(), map[string]string{"e2e": "second"})
		writeFile(filepath.Join(w.projectsDir(), "after-rotation.txt"), 0o644, []byte("new work\n"))
		chownTree(w.projectsDir())
		failedWith(ctx, fx.createBackup(ctx, w, "rotated-401", policy), string(registry.ReasonUnauthorized))
		repo := repositoryOf(reg.Host, "rotated", w)
		rotated := dockerConfig(reg.Host, "e2e", "second")
		Expect(resolveWith(ctx, repo+":latest", rotated)).To(Equal(good.Status.Artifact.Digest))

		By("the Secret is rotated too: the next backup uses it, with the same manager pod")
		secret.Data[corev1.DockerConfigJsonKey] = rotated
		Expect(env.client.Update(ctx, secret)).To(Succeed())
		next := succeeded(ctx, w, "rotated-next", policy)
		Expect(resolveWith(ctx, repo+":latest", rotated)).To(Equal(next.Status.Artifact.Digest))
		Expect(managerPod(ctx, Default).UID).To(Equal(manager.UID), "the manager was not restarted")
		expectNothingRunning(ctx, next)
	}, SpecTimeout(10*time.Minute))

	It("k. registry out of disk: fails with its error, latest kept, Succeeds once there is room", func(ctx SpecContext) {
		reg := registrytest.StartDistribution(GinkgoT())
		By("the registry's storage is an 8 MiB tmpfs")
		Expect(os.MkdirAll(reg.Root, 0o755)).To(Succeed())
		mustRun(ctx, "mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", reg.Root)
		DeferCleanup(func(ctx SpecContext) { _, _ = command(ctx, "umount", "-l", reg.Root) })
		w, policy, good := withGoodBackup(ctx, "fulldisk", reg.Host, nil)

		By("16 MiB of incompressible data do not fit")
		addRandom(w, 16<<20)
		failedWith(ctx, fx.createBackup(ctx, w, "fulldisk-full", policy),
			string(registry.ReasonRegistryError), string(registry.ReasonRegistryUnreachable))
		repo := repositoryOf(reg.Host, "fulldisk", w)
		Expect(env.resolve(ctx, repo+":latest")).To(Equal(good.Status.Artifact.Digest))

		By("the administrator grows the filesystem to 64 MiB: the next backup Succeeds")
		mustRun(ctx, "mount", "-o", "remount,size=64m", reg.Root)
		next := succeeded(ctx, w, "fulldisk-next", policy)
		Expect(env.resolve(ctx, repo+":latest")).To(Equal(next.Status.Artifact.Digest))
		expectNothingRunning(ctx, next)
	}, SpecTimeout(10*time.Minute))

	// interrupted backs up 48 MiB at 4 MiB/s, disrupts the node once the mover is uploading, and
	// checks that the backup ends with latest consistent with it, and that the next one Succeeds.
	interrupted := func(ctx context.Context, name string, disrupt func()) {
		GinkgoHelper()
		slow := startSlowRegistry(env.registry, 4<<20)
		DeferCleanup(slow.Close)
		w := fx.createWorkspace(ctx, ns, name, storagePerWS, name, func(dir string) {
			writeSampleTree(dir, name)
			writeRandomFile(filepath.Join(dir, "big.bin"), 48<<20)
		})
		policy := faultPolicy(ctx, name, slow.Host, nil)
		b := fx.createBackup(ctx, w, name+"-cut", policy)
		Eventually(slow.Uploaded).WithTimeout(3*time.Minute).Should(BeNumerically(">", 2<<20), "the mover is uploading")
		disrupt()

		b = fx.waitForBackup(ctx, b.Namespace, b.Name, 5*time.Minute)
		AddReportEntry("backup "+b.Name, string(b.Status.Phase)+" "+readyReason(b.Status.Conditions)+": "+b.Status.Message)
		expectNothingRunning(ctx, b)
		repo := repositoryOf(slow.Host, name, w)
		if b.Status.Phase == backupv1alpha1.BackupSucceeded {
			Expect(env.resolve(ctx, repo+":latest")).To(Equal(b.Status.Artifact.Digest))
		} else {
			Expect(readyReason(b.Status.Conditions)).NotTo(BeEmpty())
			Expect(env.resolve(ctx, repo+":latest")).To(BeEmpty(), "a failed first backup moved no latest")
		}
		writeFile(filepath.Join(w.projectsDir(), "later.txt"), 0o644, []byte("later\n"))
		chownTree(w.projectsDir())
		next := succeeded(ctx, w, name+"-next", policy)
		Expect(env.resolve(ctx, repo+":latest")).To(Equal(next.Status.Artifact.Digest))
		expectNothingRunning(ctx, next)
	}

	It("l. kubelet killed and restarted during a backup: it ends, the next one Succeeds", func(ctx SpecContext) {
		interrupted(ctx, "kubelet", func() {
			By("SIGKILL to the kubelet, then hack/local-cluster/up.sh starts it again")
			pid := componentPID("kubelet")
			Expect(syscall.Kill(pid, syscall.SIGKILL)).To(Succeed())
			Eventually(func() error { return syscall.Kill(pid, 0) }).Should(HaveOccurred(), "kubelet %d is gone", pid)
			clusterScript(ctx, "up.sh")
		})
	}, SpecTimeout(12*time.Minute))

	It("m. the cluster stopped and started during a backup: it ends, the next one Succeeds", func(ctx SpecContext) {
		interrupted(ctx, "restart", func() {
			By("hack/local-cluster/down.sh (state kept), then up.sh")
			clusterScript(ctx, "down.sh")
			clusterScript(ctx, "up.sh")
			Eventually(func(g Gomega) { managersReady(ctx, g) }).
				WithTimeout(3*time.Minute).WithPolling(time.Second).Should(Succeed(), "the managers are Ready again, one leads")
		})
	}, SpecTimeout(15*time.Minute))
})

// expectNothingRunning checks that a finished backup left no mover pod that is not finished and
// no Job still active.
func expectNothingRunning(ctx context.Context, b *backupv1alpha1.WorkspaceBackup) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		for _, p := range moverPods(ctx, b.Namespace, b.UID) {
			g.Expect(p.Status.Phase).To(BeElementOf(corev1.PodSucceeded, corev1.PodFailed), "pod %s", p.Name)
		}
		if b.Status.JobName == "" {
			return
		}
		job := &batchv1.Job{}
		err := env.client.Get(ctx, client.ObjectKey{Namespace: b.Namespace, Name: b.Status.JobName}, job)
		if apierrors.IsNotFound(err) {
			return
		}
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(job.Status.Active).To(BeZero(), "Job %s is still active", job.Name)
	}).WithTimeout(time.Minute).Should(Succeed(), "nothing of backup %s is left running", b.Name)
}

// resolveWith returns the digest ref points at, reading the registry with the given credentials.
func resolveWith(ctx context.Context, ref string, dockerConfigJSON []byte) string {
	GinkgoHelper()
	c, err := registry.New(registry.Options{DockerConfigJSON: dockerConfigJSON, Insecure: true})
	Expect(err).NotTo(HaveOccurred())
	d, err := c.Resolve(ctx, ref)
	Expect(err).NotTo(HaveOccurred())
	return d.Digest.String()
}

func mustRun(ctx context.Context, bin string, args ...string) {
	GinkgoHelper()
	out, err := command(ctx, bin, args...)
	Expect(err).NotTo(HaveOccurred(), out)
}

// componentPID reads the PID hack/local-cluster recorded for a component.
func componentPID(name string) int {
	GinkgoHelper()
	data, err := os.ReadFile(filepath.Join(env.stateDir, "pids", name+".pid"))
	Expect(err).NotTo(HaveOccurred())
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	Expect(err).NotTo(HaveOccurred())
	return pid
}

// clusterScript runs a script of hack/local-cluster on this cluster: up.sh starts what is not
// running and waits until the node is Ready, down.sh stops everything and keeps the state.
func clusterScript(ctx context.Context, script string) {
	GinkgoHelper()
	cmd := exec.CommandContext(ctx, filepath.Join(testenv.RepoRoot(), "hack", "local-cluster", script))
	cmd.Env = append(os.Environ(), "LOCAL_CLUSTER_DIR="+env.stateDir, "LOCAL_CLUSTER_SKIP_SELF_TEST=1")
	out, err := cmd.CombinedOutput()
	Expect(err).NotTo(HaveOccurred(), string(out))
}

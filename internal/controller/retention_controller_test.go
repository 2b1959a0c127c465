package controller

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"time"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
	"github.com/dwbackup/devworkspace-backup-operator/internal/mover"
	"github.com/dwbackup/devworkspace-backup-operator/internal/registry"
	"github.com/dwbackup/devworkspace-backup-operator/internal/registry/registrytest"
)

// inProcessRegistry serves go-containerregistry's registry on 127.0.0.1 for one spec.
func inProcessRegistry() string {
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	DeferCleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// pushTree backs up a directory with the real mover, as a mover Job would.
func pushTree(repository, tag, dir string) mover.Result {
	GinkgoHelper()
	res := mover.Backup(context.Background(), mover.BackupOptions{
		Source: dir, Repository: repository, Tag: tag, Workspace: "ws", Namespace: "ns",
		Registry: registry.Options{Insecure: true},
	})
	Expect(res.Phase).To(Equal(mover.PhaseSucceeded), res.Message)
	return res
}

func resolvable(ref string) bool {
	GinkgoHelper()
	reg, err := registry.New(registry.Options{Insecure: true, Retry: registry.Backoff{Attempts: 1}})
	Expect(err).NotTo(HaveOccurred())
	_, err = reg.Resolve(ctx, ref)
	if err != nil {
		Expect(registry.ReasonOf(err)).To(Equal(registry.ReasonNotFound))
	}
	return err == nil
}

// runManualBackup runs a manual backup of workspace "ws" to Succeeded: the real mover backs up dir
// under the tag the controller chose (a generated tree when dir is "").
func runManualBackup(f backupFixture, dir string) *backupv1alpha1.WorkspaceBackup {
	GinkgoHelper()
	fakeClock.Step(time.Minute) // each backup starts at its own time, as in real life
	b := manualBackup(f.Namespace, "ws", f.Policy.Name)
	res := succeededResult("")
	if dir != "" {
		repo, tag := splitReference(eventuallyPhase(b, backupv1alpha1.BackupRunning).Status.Artifact.Reference)
		pushed := pushTree(repo, tag, dir)
		res = &pushed
	}
	finishJob(moverJob(b), true, res, "")
	return eventuallyPhase(b, backupv1alpha1.BackupSucceeded)
}

func expectGone(b *backupv1alpha1.WorkspaceBackup) {
	GinkgoHelper()
	Eventually(func() bool {
		err := k8sClient.Get(ctx, client.ObjectKeyFromObject(b), &backupv1alpha1.WorkspaceBackup{})
		return err != nil && client.IgnoreNotFound(err) == nil
	}).Should(BeTrue(), "backup %s still exists", b.Name)
}

var _ = Describe("Throttle", func() {
	It("never runs more than maxConcurrentBackups Jobs, and finishes all 20", func() {
		f := newBackupFixture(func(p *backupv1alpha1.BackupPolicy) { p.Spec.MaxConcurrentBackups = 3 })
		backups := make([]*backupv1alpha1.WorkspaceBackup, 0, 20)
		for i := range 20 {
			name := fmt.Sprintf("ws-%02d", i)
			stoppedWorkspace(f.Namespace, name)
			backups = append(backups, manualBackup(f.Namespace, name, f.Policy.Name))
		}
		unfinishedJobs := func() []batchv1.Job {
			var out []batchv1.Job
			for _, j := range jobsOf(f.Namespace) {
				if s, _ := jobStateOf(&j); s == jobActive && j.DeletionTimestamp.IsZero() {
					out = append(out, j)
				}
			}
			return out
		}
		succeeded := func() int {
			n := 0
			for _, b := range backups {
				if getBackup(b).Status.Phase == backupv1alpha1.BackupSucceeded {
					n++
				}
			}
			return n
		}
		for round := 0; succeeded() < 20; round++ {
			Expect(round).To(BeNumerically("<", 20), "the backups stopped making progress")
			// Wait until the throttle has filled the free slots (or all remaining are running).
			Eventually(func() int { return len(unfinishedJobs()) }).Should(BeNumerically(">=", min(3, 20-succeeded())))
			jobs := unfinishedJobs()
			Expect(len(jobs)).To(BeNumerically("<=", 3), "more than maxConcurrentBackups Jobs at once")
			running := 0
			for _, b := range backups {
				if getBackup(b).Status.Phase == backupv1alpha1.BackupRunning {
					running++
				}
			}
			Expect(running).To(BeNumerically("<=", 3), "more than maxConcurrentBackups Running backups")
			// All running Jobs finish in the same second.
			for i := range jobs {
				finishJob(&jobs[i], true, succeededResult("r"), "")
			}
			Consistently(func() int { return len(unfinishedJobs()) }).WithTimeout(300 * time.Millisecond).Should(BeNumerically("<=", 3))
		}
	})
})

var _ = Describe("Retention and the artifact finalizer", func() {
	DescribeTable("prunes beyond keepLast and deletes the pruned artifact, never a kept one",
		func(startRegistry func() string) {
			host := startRegistry()
			f := newBackupFixture(func(p *backupv1alpha1.BackupPolicy) {
				p.Spec.Registry = backupv1alpha1.RegistrySpec{Repository: host + "/backups", Insecure: true}
				p.Spec.Retention = backupv1alpha1.RetentionSpec{KeepLast: 1, DeleteArtifacts: ptr.To(true), FailedHistoryLimit: ptr.To[int32](1)}
			})
			stoppedWorkspace(f.Namespace, "ws")
			repo := host + "/backups/" + f.Namespace + "/ws"
			dir := GinkgoT().TempDir()
			Expect(os.WriteFile(filepath.Join(dir, "a.txt"), []byte("a"), 0o644)).To(Succeed())

			// Shared manifest: the second backup is unchanged, its tag points at the same manifest.
			first := runManualBackup(f, dir)
			second := runManualBackup(f, dir)
			Expect(second.Status.Artifact.Digest).To(Equal(first.Status.Artifact.Digest))
			expectGone(first)
			Expect(resolvable(second.Status.Artifact.Reference)).To(BeTrue(), "the kept backup shares the manifest and stays restorable")
			Expect(resolvable(repo + ":latest")).To(BeTrue())

			// A changed tree: the older, now unreferenced manifest goes when its backup is pruned.
			Expect(os.WriteFile(filepath.Join(dir, "b.txt"), []byte("b"), 0o644)).To(Succeed())
			third := runManualBackup(f, dir)
			Expect(third.Status.Artifact.Digest).NotTo(Equal(second.Status.Artifact.Digest))
			expectGone(second)
			Eventually(func() bool { return resolvable(second.Status.Artifact.Reference) }).Should(BeFalse(), "the pruned artifact is deleted")
			Expect(resolvable(third.Status.Artifact.Reference)).To(BeTrue())
			Expect(resolvable(repo + ":latest")).To(BeTrue())
		},
		Entry("a registry with tag deletion (in-process)", inProcessRegistry),
		Entry("distribution 2.x, digest deletion only (Debian's docker-registry)", func() string {
			return registrytest.StartDistribution(GinkgoT()).Host
		}),
	)

	It("keeps the artifact when a person deletes a backup", func() {
		host := inProcessRegistry()
		f := newBackupFixture(func(p *backupv1alpha1.BackupPolicy) {
			p.Spec.Registry = backupv1alpha1.RegistrySpec{Repository: host + "/backups", Insecure: true}
			p.Spec.Retention = backupv1alpha1.RetentionSpec{KeepLast: 5, DeleteArtifacts: ptr.To(true)}
		})
		stoppedWorkspace(f.Namespace, "ws")
		b := runManualBackup(f, GinkgoT().TempDir())
		Expect(k8sClient.Delete(ctx, b)).To(Succeed())
		expectGone(b)
		Expect(resolvable(b.Status.Artifact.Reference)).To(BeTrue())
	})

	It("gives up on a registry that keeps failing deletes after bounded retries and releases the backup with a Warning", func() {
		reg := registrytest.NewInProcess(GinkgoT(), func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodDelete {
					http.Error(w, "storage offline", http.StatusServiceUnavailable)
					return
				}
				h.ServeHTTP(w, r)
			})
		})
		f := newBackupFixture(func(p *backupv1alpha1.BackupPolicy) {
			p.Spec.Registry = backupv1alpha1.RegistrySpec{Repository: reg.Host + "/backups", Insecure: true}
			p.Spec.Retention = backupv1alpha1.RetentionSpec{KeepLast: 1, DeleteArtifacts: ptr.To(true)}
		})
		stoppedWorkspace(f.Namespace, "ws")
		first := runManualBackup(f, "")
		runManualBackup(f, "")
		expectGone(first)
		Eventually(func() []string { return eventReasons(f.Namespace) }).Should(ContainElement("ArtifactDeleteFailed"))
	})

	It("reads the digest from the registry when the mover's result is missing", func() {
		host := inProcessRegistry()
		f := newBackupFixture(func(p *backupv1alpha1.BackupPolicy) {
			p.Spec.Registry = backupv1alpha1.RegistrySpec{Repository: host + "/backups", Insecure: true}
		})
		stoppedWorkspace(f.Namespace, "ws")
		b := manualBackup(f.Namespace, "ws", f.Policy.Name)
		running := eventuallyPhase(b, backupv1alpha1.BackupRunning)
		repo, tag := splitReference(running.Status.Artifact.Reference)
		pushed := pushTree(repo, tag, GinkgoT().TempDir()) // what the mover did before its result was lost
		finishJob(moverJob(b), true, nil, "")
		done := eventuallyPhase(b, backupv1alpha1.BackupSucceeded)
		Expect(done.Status.Artifact.Digest).To(Equal(pushed.Digest))
	})

	It("never prunes the pre-restore safety backup", func() {
		f := newBackupFixture(func(p *backupv1alpha1.BackupPolicy) {
			p.Spec.Retention = backupv1alpha1.RetentionSpec{KeepLast: 1, DeleteArtifacts: ptr.To(false)}
		})
		stoppedWorkspace(f.Namespace, "ws")
		safety := &backupv1alpha1.WorkspaceBackup{
			ObjectMeta: metav1.ObjectMeta{Name: "safety", Namespace: f.Namespace,
				Labels: map[string]string{backupv1alpha1.LabelTrigger: string(backupv1alpha1.TriggerPreRestore), backupv1alpha1.LabelPolicy: f.Policy.Name}},
			Spec: backupv1alpha1.WorkspaceBackupSpec{WorkspaceName: "ws", PolicyName: f.Policy.Name},
		}
		Expect(k8sClient.Create(ctx, safety)).To(Succeed())
		finishJob(moverJob(safety), true, succeededResult("r1"), "")
		eventuallyPhase(safety, backupv1alpha1.BackupSucceeded)
		runManualBackup(f, "")
		last := runManualBackup(f, "")
		Consistently(func() error {
			return k8sClient.Get(ctx, client.ObjectKeyFromObject(safety), &backupv1alpha1.WorkspaceBackup{})
		}).
			WithTimeout(time.Second).Should(Succeed())
		Expect(getBackup(last).Status.Phase).To(Equal(backupv1alpha1.BackupSucceeded))
	})
})

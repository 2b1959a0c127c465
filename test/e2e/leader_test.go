//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
)

// client-go's leader elector waits between two tries a retry period plus a random jitter of up to
// 1.2 periods (wait.JitterUntil with leaderelection.JitterFactor).
const retryJitter = 1.2

// The two manager replicas of config/local (two Deployments, one Lease). The leader dies without a
// chance to release its Lease (SIGKILL, then its pod force-deleted, on a cordoned node so that its
// replacement cannot start): the standby replica alone can take over, and only once the Lease
// expired.
var _ = Describe("Two manager replicas", func() {
	It("n. the leader killed mid-slot: the other replica takes over within the lease duration, "+
		"no duplicate, no missed workspace", func(ctx SpecContext) {
		const n = 6
		Eventually(func(g Gomega) { managersReady(ctx, g) }).WithTimeout(3*time.Minute).
			Should(Succeed(), "two manager replicas Ready, one leads")
		ns := fx.createNamespace(ctx, "leader")
		for i := range n {
			fx.createWorkspace(ctx, ns, fmt.Sprintf("ws-%02d", i), storagePerWS, "leader",
				func(dir string) { writeSampleTree(dir, fmt.Sprint("leader ", i)) })
		}
		p := fx.createPolicy(ctx, "leader", "leader", func(s *backupv1alpha1.BackupPolicySpec) {
			s.MaxConcurrentBackups = 1 // the slot outlasts the takeover
			s.Retention.KeepLast = 2
		})
		slot := fx.waitForSlot(ctx, p.Name)
		waitMidSlot(ctx, p.Name, slot, 1, n-3)

		leader := managerPod(ctx, Default)
		var standby *corev1.Pod
		for _, pod := range managerPods(ctx, Default) {
			if pod.Name != leader.Name {
				standby = &pod
			}
		}
		Expect(standby).NotTo(BeNil(), "a second replica beside the leader %s", leader.Name)
		before := leaderLease(ctx, Default)
		oldHolder := *before.Spec.HolderIdentity
		leaseDuration := time.Duration(*before.Spec.LeaseDurationSeconds) * time.Second
		retry := retryPeriod(leader)

		By("cordoning node " + leader.Spec.NodeName + ": the leader's replacement cannot start")
		_, err := env.kubectl(ctx, "cordon", leader.Spec.NodeName)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func(ctx SpecContext) {
			_, err := env.kubectl(ctx, "uncordon", leader.Spec.NodeName)
			Expect(err).NotTo(HaveOccurred())
		})

		By("SIGKILL to the leader's manager process, then its pod force-deleted")
		pids := containerPIDs(leader, "manager")
		for _, pid := range pids {
			Expect(syscall.Kill(pid, syscall.SIGKILL)).To(Succeed())
		}
		killed := time.Now()
		for _, pid := range pids {
			Eventually(func() error { return syscall.Kill(pid, 0) }).Should(HaveOccurred(), "process %d is gone", pid)
		}
		dead := leaderLease(ctx, Default)
		Expect(*dead.Spec.HolderIdentity).To(Equal(oldHolder), "nobody takes a Lease that has not expired")
		lastRenew := dead.Spec.RenewTime.Time // no renewal after the kill
		_, err = env.kubectl(ctx, "-n", leader.Namespace, "delete", "pod", leader.Name, "--grace-period=0", "--force")
		Expect(err).NotTo(HaveOccurred())

		By("the standby replica acquires the Lease")
		after := before
		Eventually(func(g Gomega) {
			after = leaderLease(ctx, g)
			g.Expect(*after.Spec.HolderIdentity).NotTo(Equal(oldHolder))
		}).WithTimeout(2 * (leaseDuration + time.Minute)).WithPolling(100 * time.Millisecond).Should(Succeed())
		Expect(holderPod(*after.Spec.HolderIdentity)).To(Equal(standby.Name), "the standby replica holds the Lease")
		Expect(*after.Spec.LeaseTransitions).To(Equal(*before.Spec.LeaseTransitions+1), "one leader change")
		acquired := after.Spec.AcquireTime.Time
		takeover, expired := acquired.Sub(killed), acquired.Sub(lastRenew)
		AddReportEntry("leader takeover", fmt.Sprintf("kill to acquisition %.1f s, last renewal to acquisition %.1f s "+
			"(lease duration %s, retry period %s)", takeover.Seconds(), expired.Seconds(), leaseDuration, retry))
		// The standby counts the lease duration from when it saw the last renewal, at its next
		// try (one jittered retry period at most), and acquires at its first try after that.
		Expect(expired).To(BeNumerically(">=", leaseDuration), "acquired only once the Lease expired")
		Expect(takeover).To(BeNumerically("<=", leaseDuration+2*time.Duration((1+retryJitter)*float64(retry))+time.Second),
			"acquired within the lease duration, two jittered retry periods and a second of API latency")

		_, err = env.kubectl(ctx, "uncordon", leader.Spec.NodeName)
		Expect(err).NotTo(HaveOccurred())
		expectSlotOnce(ctx, p.Name, fx.waitForScheduled(ctx, p.Name, slotEqual(slot), n, 4*time.Minute))
		Eventually(func(g Gomega) { managersReady(ctx, g) }).WithTimeout(3*time.Minute).
			Should(Succeed(), "the leader's replacement is Ready")
	}, SpecTimeout(8*time.Minute))
})

// retryPeriod is the manager's --leader-elect-retry-period: the last one in the pod's arguments,
// else the flag's default (cmd/leader.go).
func retryPeriod(pod *corev1.Pod) time.Duration {
	GinkgoHelper()
	period := 2 * time.Second
	for _, arg := range pod.Spec.Containers[0].Args {
		if v, ok := strings.CutPrefix(arg, "--leader-elect-retry-period="); ok {
			d, err := time.ParseDuration(v)
			Expect(err).NotTo(HaveOccurred(), arg)
			period = d
		}
	}
	return period
}

// containerPIDs lists the host PIDs of a running container of the pod, from its cgroup (cgroup v1,
// cgroupfs driver: <pod cgroup>/<container ID>/cgroup.procs).
func containerPIDs(pod *corev1.Pod, container string) []int {
	GinkgoHelper()
	var id string
	for _, s := range pod.Status.ContainerStatuses {
		if s.Name == container {
			_, id, _ = strings.Cut(s.ContainerID, "://")
		}
	}
	Expect(id).NotTo(BeEmpty(), "container %s of pod %s runs", container, pod.Name)
	data, err := os.ReadFile(filepath.Join(podCgroup(pod, "memory"), id, "cgroup.procs"))
	Expect(err).NotTo(HaveOccurred())
	var pids []int //nolint:prealloc // a container has one process or a few
	for f := range strings.FieldsSeq(string(data)) {
		pid, err := strconv.Atoi(f)
		Expect(err).NotTo(HaveOccurred())
		pids = append(pids, pid)
	}
	Expect(pids).NotTo(BeEmpty(), "processes of container %s", id)
	return pids
}

/*
Copyright 2026.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package leader_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	. "github.com/onsi/gomega"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
	"github.com/dwbackup/devworkspace-backup-operator/internal/controller"
	"github.com/dwbackup/devworkspace-backup-operator/internal/leader"
	"github.com/dwbackup/devworkspace-backup-operator/internal/testenv"
)

// TestOnlyTheLeaderReconciles runs the manager as cmd/main.go wires it (Flags.Apply, SetupAll) against a
// real API server while another replica holds the Lease: it warms its caches up but reconciles
// nothing and exports no cache-derived series until that replica releases the Lease; then it takes
// over under its pod's name, and releases the Lease when it stops.
func TestOnlyTheLeaderReconciles(t *testing.T) {
	g := NewWithT(t)
	env, cfg, err := testenv.Start()
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = env.Stop() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	scheme := runtime.NewScheme()
	g.Expect(clientgoscheme.AddToScheme(scheme)).To(Succeed())
	g.Expect(controller.AddToScheme(scheme)).To(Succeed())
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	g.Expect(err).NotTo(HaveOccurred())

	const ns = "dwbackup-system"
	g.Expect(c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	now := metav1.NewMicroTime(time.Now())
	other := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: leader.ElectionID, Namespace: ns},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("other-replica_1"), LeaseDurationSeconds: ptr.To[int32](3600),
			AcquireTime: &now, RenewTime: &now},
	}
	g.Expect(c.Create(ctx, other)).To(Succeed())

	t.Setenv("POD_NAME", "manager-7d9f-x2x4q")
	flags := leader.Flags{Enabled: true, LeaseDuration: 4 * time.Second, RenewDeadline: 3 * time.Second,
		RetryPeriod: 500 * time.Millisecond}
	logs := &logLines{}
	opts := ctrl.Options{
		Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
		Cache: controller.CacheOptions(), Client: controller.ClientOptions(),
		Logger: funcr.New(logs.add, funcr.Options{}),
	}
	g.Expect(flags.Apply(&opts, cfg, ns)).To(Succeed())
	mgr, err := ctrl.NewManager(cfg, opts)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(controller.SetupAll(mgr, controller.Options{OperatorNamespace: ns, MoverImage: "mover:test",
		Clock: clock.RealClock{}})).To(Succeed())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	g.Expect(mgr.GetCache().WaitForCacheSync(ctx)).To(BeTrue())

	policy := &backupv1alpha1.BackupPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "nightly"},
		Spec: backupv1alpha1.BackupPolicySpec{
			Schedule:          "0 2 * * *",
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"backup": "yes"}},
			Registry:          backupv1alpha1.RegistrySpec{Repository: "registry.example.com/backups"},
		},
	}
	g.Expect(c.Create(ctx, policy)).To(Succeed())
	observed := func() int64 {
		p := &backupv1alpha1.BackupPolicy{}
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(policy), p)).To(Succeed())
		return p.Status.ObservedGeneration
	}
	elected := func() bool {
		select {
		case <-mgr.Elected():
			return true
		default:
			return false
		}
	}

	// Not elected, the replica still warms its controllers' caches up (it takes over at once).
	for _, name := range []string{"backuppolicy", "workspacebackup", "workspacerestore"} {
		g.Eventually(logs.count).WithArguments("Starting EventSource", `"controller"="`+name+`"`).
			WithTimeout(30*time.Second).
			Should(BeNumerically(">", 0), "the %s controller's watches start before the election", name)
	}
	// A reconcile takes milliseconds once the cache is synced; this replica must make none.
	g.Consistently(func(g Gomega) {
		g.Expect(elected()).To(BeFalse(), "elected while another replica holds the Lease")
		g.Expect(observed()).To(BeZero(), "a replica that does not lead reconciled the policy")
		g.Expect(policySeries(g)).To(BeZero(), "a replica that does not lead exports the cache-derived series")
	}).WithTimeout(3 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())

	// The other replica releases the Lease, as a leader stopped by SIGTERM does.
	g.Expect(c.Get(ctx, client.ObjectKeyFromObject(other), other)).To(Succeed())
	other.Spec.HolderIdentity = ptr.To("")
	other.Spec.LeaseDurationSeconds = ptr.To[int32](1)
	g.Expect(c.Update(ctx, other)).To(Succeed())

	g.Eventually(elected).WithTimeout(30 * time.Second).Should(BeTrue())
	g.Eventually(observed).WithTimeout(30*time.Second).Should(Equal(int64(1)), "the leader reconciles the policy")
	g.Eventually(policySeries).WithTimeout(30*time.Second).Should(Equal(1), "the leader exports the policy's series")
	g.Expect(c.Get(ctx, client.ObjectKeyFromObject(other), other)).To(Succeed())
	g.Expect(*other.Spec.HolderIdentity).To(HavePrefix("manager-7d9f-x2x4q_"), "the Lease names the leader's pod")

	// Stopped (SIGTERM), the leader releases the Lease at once (LeaderElectionReleaseOnCancel).
	cancel()
	g.Eventually(done).WithTimeout(time.Minute).Should(Receive(BeNil()))
	g.Expect(c.Get(context.Background(), client.ObjectKeyFromObject(other), other)).To(Succeed())
	g.Expect(*other.Spec.HolderIdentity).To(BeEmpty(), "the stopped leader released the Lease")
}

// logLines keeps the manager's log lines.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) add(prefix, args string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, prefix+" "+args)
}

// count counts the lines holding every one of parts.
func (l *logLines) count(parts ...string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range l.lines {
		if !slices.ContainsFunc(parts, func(p string) bool { return !strings.Contains(line, p) }) {
			n++
		}
	}
	return n
}

// policySeries counts the dwbackup_policy_expected_interval_seconds series the manager exports.
func policySeries(g Gomega) int {
	families, err := metrics.Registry.Gather()
	g.Expect(err).NotTo(HaveOccurred())
	for _, f := range families {
		if strings.HasPrefix(f.GetName(), "dwbackup_policy_expected_interval_seconds") {
			return len(f.GetMetric())
		}
	}
	return 0
}

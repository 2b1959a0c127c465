package controller

import (
	"context"
	"maps"
	"strconv"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
	"github.com/dwbackup/devworkspace-backup-operator/internal/dwo"
)

// Policies are cluster-scoped and every spec shares one API server, so each spec's policies select
// only namespaces carrying a label unique to that spec.

// specLabels is a namespace label unique to one spec.
func specLabels() map[string]string {
	return map[string]string{"test.dwbackup.io/spec": rand.String(10)}
}

// withLabel returns a copy of l with one more label.
func withLabel(l map[string]string, key, value string) map[string]string {
	out := map[string]string{key: value}
	maps.Copy(out, l)
	out[key] = value
	return out
}

// freshDay moves the shared fake clock forward (never back) to a UTC midnight a day or more after
// both the fake and the real time, and returns it. Policies are created with the API server's
// (real) creation time, so their first slots around the returned day are known in advance.
func freshDay() time.Time {
	base := fakeClock.Now()
	if now := time.Now(); now.After(base) {
		base = now
	}
	day := base.UTC().Truncate(24 * time.Hour).Add(48 * time.Hour)
	fakeClock.SetTime(day)
	return day
}

// createPolicy creates a policy selecting the namespaces with nsLabels (daily at 02:00 UTC unless
// changed) and deletes it when the spec ends.
func createPolicy(nsLabels map[string]string, mutate ...func(*backupv1alpha1.BackupPolicySpec)) *backupv1alpha1.BackupPolicy {
	GinkgoHelper()
	p := &backupv1alpha1.BackupPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "bp-" + rand.String(8)},
		Spec: backupv1alpha1.BackupPolicySpec{
			Schedule:          "0 2 * * *",
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: nsLabels},
			Registry:          backupv1alpha1.RegistrySpec{Repository: "registry.example.com/backups"},
		},
	}
	for _, m := range mutate {
		m(&p.Spec)
	}
	Expect(k8sClient.Create(ctx, p)).To(Succeed())
	DeferCleanup(func() { Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, p))).To(Succeed()) })
	return p
}

// getPolicy reads a policy from the API server.
func getPolicy(name string) *backupv1alpha1.BackupPolicy {
	GinkgoHelper()
	p := &backupv1alpha1.BackupPolicy{}
	Expect(k8sClient.Get(ctx, client.ObjectKey{Name: name}, p)).To(Succeed())
	return p
}

// touchPolicy changes an annotation, which wakes the policy's reconciler (the workqueue waits in
// real time, so specs step the fake clock and then touch instead of waiting for RequeueAfter).
func touchPolicy(name string) {
	GinkgoHelper()
	p := getPolicy(name)
	patch := client.MergeFrom(p.DeepCopy())
	p.Annotations = withLabel(p.Annotations, "test.dwbackup.io/touch", strconv.FormatInt(time.Now().UnixNano(), 10))
	Expect(k8sClient.Patch(ctx, p, patch)).To(Succeed())
}

// policyStatus is a Gomega-friendly getter of a policy's status.
func policyStatus(name string) func(Gomega) backupv1alpha1.BackupPolicyStatus {
	return func(g Gomega) backupv1alpha1.BackupPolicyStatus {
		p := &backupv1alpha1.BackupPolicy{}
		g.Expect(k8sClient.Get(ctx, client.ObjectKey{Name: name}, p)).To(Succeed())
		return p.Status
	}
}

// timeOf reads a *metav1.Time as time.Time in UTC (zero when nil).
func timeOf(t *metav1.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// backupNames lists the names of the WorkspaceBackups in a namespace.
func backupNames(namespace string) []string {
	GinkgoHelper()
	list := &backupv1alpha1.WorkspaceBackupList{}
	Expect(k8sClient.List(ctx, list, client.InNamespace(namespace))).To(Succeed())
	names := make([]string, 0, len(list.Items))
	for _, b := range list.Items {
		names = append(names, b.Name)
	}
	return names
}

// expectCachedPhase waits until the manager's cache holds a DevWorkspace with its status, so a
// reconcile at the next slot sees it.
func expectCachedPhase(namespace, name, phase string) {
	GinkgoHelper()
	Eventually(func(g Gomega) string {
		dw := &dwo.DevWorkspace{}
		g.Expect(mgrCache.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, dw)).To(Succeed())
		return workspaceFrom(dw).Phase
	}).Should(Equal(phase))
}

// restartedReconciler is a second policy reconciler with a cache of its own, started now: what a
// new manager sees after a crash or a leader change. Its cache stops when the spec ends.
func restartedReconciler() *BackupPolicyReconciler {
	GinkgoHelper()
	cacheCtx, stop := context.WithCancel(ctx)
	DeferCleanup(stop)
	c, err := cache.New(cfg, cache.Options{Scheme: scheme.Scheme, ByObject: CacheOptions().ByObject})
	Expect(err).NotTo(HaveOccurred())
	Expect(c.IndexField(cacheCtx, &backupv1alpha1.WorkspaceBackup{}, indexBackupPolicy, backupPolicyName)).To(Succeed())
	go func() {
		defer GinkgoRecover()
		Expect(c.Start(cacheCtx)).To(Succeed())
	}()
	Expect(c.WaitForCacheSync(cacheCtx)).To(BeTrue())
	opts := ClientOptions()
	opts.Scheme = scheme.Scheme
	opts.Cache.Reader = c
	cl, err := client.New(cfg, opts)
	Expect(err).NotTo(HaveOccurred())
	return &BackupPolicyReconciler{Client: cl, APIReader: k8sClient, Scheme: scheme.Scheme,
		Recorder: &events.FakeRecorder{}, Options: testOpts, expected: newExpectations()}
}

// reconcileOnce runs a reconciler directly on a policy.
func reconcileOnce(r *BackupPolicyReconciler, name string) {
	GinkgoHelper()
	_, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKey{Name: name}})
	Expect(err).NotTo(HaveOccurred())
}

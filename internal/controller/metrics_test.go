package controller

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
)

// scrape gathers the dwbackup_ samples of a registry, as `name{label="value",...}` -> value
// (histograms as name_count and name_sum), the way Prometheus sees them.
func scrape(g prometheus.Gatherer) map[string]float64 {
	GinkgoHelper()
	families, err := g.Gather()
	Expect(err).NotTo(HaveOccurred())
	out := map[string]float64{}
	for _, f := range families {
		if !strings.HasPrefix(f.GetName(), "dwbackup_") {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := labelString(m.GetLabel())
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				out[f.GetName()+labels] = m.GetCounter().GetValue()
			case dto.MetricType_HISTOGRAM:
				out[f.GetName()+"_count"+labels] = float64(m.GetHistogram().GetSampleCount())
				out[f.GetName()+"_sum"+labels] = m.GetHistogram().GetSampleSum()
			default:
				out[f.GetName()+labels] = m.GetGauge().GetValue()
			}
		}
	}
	return out
}

func labelString(pairs []*dto.LabelPair) string {
	parts := make([]string, 0, len(pairs))
	for _, p := range pairs {
		parts = append(parts, fmt.Sprintf("%s=%q", p.GetName(), p.GetValue()))
	}
	slices.Sort(parts)
	return "{" + strings.Join(parts, ",") + "}"
}

// seriesOf keeps the samples whose labels name namespace (one spec's own series).
func seriesOf(samples map[string]float64, namespace string) map[string]float64 {
	out := map[string]float64{}
	for k, v := range samples {
		if strings.Contains(k, fmt.Sprintf("namespace=%q", namespace)) {
			out[k] = v
		}
	}
	return out
}

// wsLabels are the labels of one workspace's series.
func wsLabels(namespace, workspace, policy string) string {
	return fmt.Sprintf("{namespace=%q,policy=%q,workspace=%q}", namespace, policy, workspace)
}

var _ = Describe("Metrics", func() {
	It("export a workspace's newest backup, count it once, rebuild it after a restart and drop it with the workspace", func() {
		f := newBackupFixture()
		stoppedWorkspace(f.Namespace, "ws")
		labels := wsLabels(f.Namespace, "ws", f.Policy.Name)

		failed := manualBackup(f.Namespace, "ws", f.Policy.Name)
		eventuallyPhase(failed, backupv1alpha1.BackupRunning)
		finishJob(moverJob(failed), false, nil, "")
		eventuallyPhase(failed, backupv1alpha1.BackupFailed)
		Eventually(func() map[string]float64 { return seriesOf(scrape(metrics.Registry), f.Namespace) }).Should(Equal(map[string]float64{
			"dwbackup_backup_last_status" + labels: 0, // no success yet: no time, no size
		}))

		fakeClock.Step(time.Minute) // the next backup finishes later
		b := manualBackup(f.Namespace, "ws", f.Policy.Name)
		running := eventuallyPhase(b, backupv1alpha1.BackupRunning)
		finishJob(moverJob(b), true, succeededResult(running.Status.Artifact.Reference), "")
		done := eventuallyPhase(b, backupv1alpha1.BackupSucceeded)
		want := map[string]float64{
			"dwbackup_backup_last_status" + labels:                    1,
			"dwbackup_backup_last_success_timestamp_seconds" + labels: float64(done.Status.CompletionTime.Unix()),
			"dwbackup_backup_size_bytes" + labels:                     1234,
		}
		Eventually(func() map[string]float64 { return seriesOf(scrape(metrics.Registry), f.Namespace) }).Should(Equal(want))

		// Counted once each, however many reconciles followed (the policy is new: no earlier counts).
		policy := fmt.Sprintf("policy=%q", f.Policy.Name)
		samples := scrape(metrics.Registry)
		Expect(samples).To(HaveKeyWithValue(`dwbackup_backups_total{phase="Succeeded",`+policy+`,reason="Succeeded"}`, 1.0))
		Expect(samples).To(HaveKeyWithValue(`dwbackup_backups_total{phase="Failed",`+policy+`,reason="JobFailed"}`, 1.0))
		Expect(samples).To(HaveKeyWithValue(`dwbackup_backup_duration_seconds_count{`+policy+`}`, 2.0))
		Expect(samples).To(HaveKeyWithValue(`dwbackup_policy_expected_interval_seconds{`+policy+`}`, (24 * time.Hour).Seconds()))

		By("a restarted manager: a new cache, nothing remembered, the same series once it leads")
		reg := prometheus.NewRegistry()
		restarted := NewMetrics(restartedReconciler().Client, nil, fakeClock)
		reg.MustRegister(restarted)
		Expect(seriesOf(scrape(reg), f.Namespace)).To(BeEmpty(), "a replica that does not lead exports no workspace series")
		gateCtx, stopGate := context.WithCancel(ctx)
		DeferCleanup(stopGate)
		go func() { _ = restarted.LeaderGate().Start(gateCtx) }()
		Eventually(func() map[string]float64 { return seriesOf(scrape(reg), f.Namespace) }).Should(Equal(want))
		stopGate()
		Eventually(func() map[string]float64 { return seriesOf(scrape(reg), f.Namespace) }).Should(BeEmpty())

		By("the workspace deleted: its series go, its backups stay")
		Expect(k8sClient.Delete(ctx, getWorkspace(f.Namespace, "ws"))).To(Succeed())
		Eventually(func() map[string]float64 { return seriesOf(scrape(metrics.Registry), f.Namespace) }).Should(BeEmpty())
		Expect(getBackup(b).Status.Phase).To(Equal(backupv1alpha1.BackupSucceeded))
	})

	It("drop a workspace's series when its backups are gone", func() {
		f := newBackupFixture()
		stoppedWorkspace(f.Namespace, "ws")
		b := manualBackup(f.Namespace, "ws", f.Policy.Name)
		eventuallyPhase(b, backupv1alpha1.BackupRunning)
		finishJob(moverJob(b), false, nil, "")
		eventuallyPhase(b, backupv1alpha1.BackupFailed)
		Eventually(func() map[string]float64 { return seriesOf(scrape(metrics.Registry), f.Namespace) }).
			Should(HaveKey("dwbackup_backup_last_status" + wsLabels(f.Namespace, "ws", f.Policy.Name)))
		Expect(k8sClient.Delete(ctx, b)).To(Succeed())
		Eventually(func() map[string]float64 { return seriesOf(scrape(metrics.Registry), f.Namespace) }).Should(BeEmpty())
	})

	It("count a finished restore once, by phase and reason", func() {
		f := newBackupFixture()
		key := `dwbackup_restores_total{phase="Failed",reason="BackupNotFound"}`
		before := scrape(metrics.Registry)[key]
		wr := newRestore(f.Namespace, backupv1alpha1.WorkspaceRestoreSpec{WorkspaceName: "ws", BackupName: "missing"})
		eventuallyRestorePhase(wr, backupv1alpha1.RestoreFailed)
		Eventually(func() float64 { return scrape(metrics.Registry)[key] }).Should(Equal(before + 1))
	})

	It("count the workspaces unprotected longer than the expected interval, in the status and the metric", func() {
		nsLabels := specLabels()
		ns := newNamespace(nsLabels)
		// Suspended: no slot creates backups, and none is needed to be unprotected.
		p := createPolicy(nsLabels, func(s *backupv1alpha1.BackupPolicySpec) { s.Suspend = true })
		now := fakeClock.Now()
		for name, stopped := range map[string]time.Duration{"old": 25 * time.Hour, "recent": time.Hour} {
			createWorkspace(testWorkspace{Namespace: ns, Name: name, StorageType: storagePerWorkspace, StoppedAt: now.Add(-stopped)})
		}
		createWorkspace(testWorkspace{Namespace: ns, Name: "running", StorageType: storagePerWorkspace, Phase: "Running", Started: true})
		createWorkspace(testWorkspace{Namespace: ns, Name: "ephemeral", StorageType: storageEphemeral, StoppedAt: now.Add(-48 * time.Hour)})
		touchPolicy(p.Name)
		Eventually(func(g Gomega) int32 { return policyStatus(p.Name)(g).WorkspacesUnprotected }).Should(BeEquivalentTo(1))
		Eventually(func() map[string]float64 { return scrape(metrics.Registry) }).Should(
			HaveKeyWithValue(fmt.Sprintf("dwbackup_workspaces_unprotected{policy=%q}", p.Name), 1.0))

		By("the reconciler looks again when the recent one crosses the line, and counts it then")
		r := restartedReconciler()
		Eventually(func(g Gomega) {
			res, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKey{Name: p.Name}})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(res.RequeueAfter).To(Equal(23 * time.Hour))
		}).Should(Succeed())
		fakeClock.Step(23*time.Hour + time.Second)
		touchPolicy(p.Name)
		Eventually(func(g Gomega) int32 { return policyStatus(p.Name)(g).WorkspacesUnprotected }).Should(BeEquivalentTo(2))
	})
})

//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
)

// loadWorkspaces and loadConcurrency are the load spec's size: one slot of this many stopped
// workspaces with real volumes, at most loadConcurrency mover Jobs at a time.
const (
	loadWorkspaces  = 200
	loadConcurrency = 10
	loadNamespaces  = 10
)

// The load spec is labelled "load": `make test-load` runs it alone; `make test-e2e` leaves it out
// (hack/local-cluster/e2e.sh filters the label), since it takes several minutes.
var _ = Describe("Load", Label("load"), Ordered, func() {
	It("backs up 200 stopped workspaces with real volumes at one slot, 10 at a time", func(ctx SpecContext) {
		workspaces := make([]*workspace, 0, loadWorkspaces)
		for i := range loadNamespaces {
			ns := fx.createNamespace(ctx, fmt.Sprintf("load-%02d", i))
			for j := range loadWorkspaces / loadNamespaces {
				name := fmt.Sprintf("ws-%02d", j)
				workspaces = append(workspaces, fx.createWorkspace(ctx, ns, name, storagePerWS, "load",
					func(dir string) { writeSampleTree(dir, ns+"/"+name) }))
			}
		}
		policy := fx.createPolicy(ctx, "load", "load", func(s *backupv1alpha1.BackupPolicySpec) {
			s.MaxConcurrentBackups = loadConcurrency
		})
		resetManagerPeakMemory(ctx)
		requestsBefore := managerRequests(ctx)
		peak := startPodSampler(ctx)
		DeferCleanup(peak.stop)

		slot := fx.waitForSlot(ctx, policy.Name)
		backups := fx.waitForScheduled(ctx, policy.Name, slotEqual(slot), len(workspaces), 20*time.Minute)
		peak.stop()
		requests := managerRequests(ctx) - requestsBefore

		var first, last time.Time
		for _, b := range backups {
			if first.IsZero() || b.Status.StartTime.Time.Before(first) {
				first = b.Status.StartTime.Time
			}
			if b.Status.CompletionTime.After(last) {
				last = b.Status.CompletionTime.Time
			}
		}
		minutes := last.Sub(slot).Minutes()
		report := map[string]string{
			"backups":                             strconv.Itoa(len(backups)),
			"slot to last Succeeded":              last.Sub(slot).Round(time.Second).String(),
			"backups per minute":                  fmt.Sprintf("%.1f", float64(len(backups))/minutes),
			"peak mover pods (1 s sampling)":      strconv.Itoa(peak.max()),
			"manager API requests per backup":     fmt.Sprintf("%.1f", float64(requests)/float64(len(backups))),
			"manager peak memory (cgroup, MiB)":   fmt.Sprintf("%.1f", float64(managerPeakMemory(ctx))/(1<<20)),
			"first backup started after the slot": first.Sub(slot).Round(time.Second).String(),
		}
		for k, v := range report {
			AddReportEntry(k, v)
			GinkgoWriter.Printf("load: %-40s %s\n", k, v)
		}
		Expect(peak.max()).To(BeNumerically("<=", loadConcurrency), "the throttle holds")
	}, SpecTimeout(40*time.Minute))
})

// podSampler counts the unfinished mover pods every second and keeps the peak.
type podSampler struct {
	mu     sync.Mutex
	peak   int
	cancel context.CancelFunc
	done   chan struct{}
}

func startPodSampler(ctx context.Context) *podSampler {
	ctx, cancel := context.WithCancel(ctx)
	s := &podSampler{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for ctx.Err() == nil {
			pods := &corev1.PodList{}
			if err := env.client.List(ctx, pods, client.HasLabels{labelOwnerUID}); err == nil {
				n := 0
				for _, p := range pods.Items {
					if p.Status.Phase == corev1.PodPending || p.Status.Phase == corev1.PodRunning {
						n++
					}
				}
				s.mu.Lock()
				s.peak = max(s.peak, n)
				s.mu.Unlock()
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}()
	return s
}

func (s *podSampler) stop() { s.cancel(); <-s.done }

func (s *podSampler) max() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak
}

// managerRequests is the API server's count of requests dispatched for the flow schema
// "service-accounts": the manager is the only client of this cluster that authenticates with a
// service account outside kube-system (mover pods have no token; the suite is an admin).
func managerRequests(ctx context.Context) int64 {
	GinkgoHelper()
	out, err := env.kubectl(ctx, "get", "--raw", "/metrics")
	Expect(err).NotTo(HaveOccurred())
	var total float64
	for line := range strings.SplitSeq(out, "\n") {
		if strings.HasPrefix(line, "apiserver_flowcontrol_dispatched_requests_total{") &&
			strings.Contains(line, `flow_schema="service-accounts"`) {
			fields := strings.Fields(line)
			v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
			Expect(err).NotTo(HaveOccurred())
			total += v
		}
	}
	return int64(total)
}

// managerCgroup is the memory cgroup directory of the elected manager's pod.
func managerCgroup(ctx context.Context) string {
	GinkgoHelper()
	return podCgroup(managerPod(ctx, Default), "memory")
}

func resetManagerPeakMemory(ctx context.Context) {
	GinkgoHelper()
	Expect(os.WriteFile(filepath.Join(managerCgroup(ctx), "memory.max_usage_in_bytes"), []byte("0"), 0o644)).To(Succeed())
}

func managerPeakMemory(ctx context.Context) int64 {
	GinkgoHelper()
	data, err := os.ReadFile(filepath.Join(managerCgroup(ctx), "memory.max_usage_in_bytes"))
	Expect(err).NotTo(HaveOccurred())
	v, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	Expect(err).NotTo(HaveOccurred())
	return v
}

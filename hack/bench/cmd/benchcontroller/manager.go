package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
)

// maxConcurrentBackups is the policy's throttle (the API default): it bounds the Jobs, so Job
// creation spends little of the manager's QPS while the slot's WorkspaceBackups are created.
const maxConcurrentBackups = 5

// managerResult is what the manager run measured.
type managerResult struct {
	slot, first, last time.Time // the slot, the first and the last WorkspaceBackup seen created
	created           int
	createEnd         time.Time // end of the creation phase (writes before it are "creation")
	drained           int
	drainSeconds      float64
	finished          []string // namespace/name of the backups that reached Succeeded
	mem               memStats
	metrics           scrapeStats
}

// runManager runs the manager binary against envtest at the baseline's QPS, lets one policy slot
// create the WorkspaceBackups, then takes c.drain of them to Succeeded.
func runManager(ctx context.Context, cp *controlPlane, pop population, c config, work string) (managerResult, error) {
	var res managerResult
	if err := setupOperatorNamespace(ctx, cp); err != nil {
		return res, err
	}
	proc, err := startManager(cp, c, work)
	if err != nil {
		return res, err
	}
	defer proc.stop()
	if err := waitForCaches(ctx, cp.admin, len(pop.namespaces)*10); err != nil {
		return res, fmt.Errorf("waiting for the manager's caches: %w", err)
	}
	tr, err := watchBackups(ctx, cp.admin, policyName)
	if err != nil {
		return res, err
	}
	defer tr.stop()
	if err := createPolicy(ctx, cp, policyName, false, maxConcurrentBackups); err != nil {
		return res, err
	}
	if err := measureSlot(ctx, tr, len(pop.stopped), &res); err != nil {
		return res, err
	}
	if err := drain(ctx, cp.admin, tr, min(c.drain, len(pop.stopped)), &res); err != nil {
		return res, err
	}
	time.Sleep(2 * time.Second) // let the last finishes' clean-up writes land before stopping
	res.metrics = proc.scraper.finish()
	res.mem = proc.memory()
	return res, nil
}

// setupOperatorNamespace creates POD_NAMESPACE and the policy's registry Secret, so every backup
// gets its own credentials copy as in a cluster without per-namespace dwbackup-registry-auth.
func setupOperatorNamespace(ctx context.Context, cp *controlPlane) error {
	if err := cp.admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: cp.operatorNS}}); err != nil {
		return err
	}
	return cp.admin.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: cp.registrySecret, Namespace: cp.operatorNS},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(
			`{"auths":{"127.0.0.1":{"auth":"YmVuY2g6YmVuY2g="}}}`)},
	})
}

// createPolicy creates a policy whose every-minute schedule has its first slot at the next full
// minute (slots count from creation). A suspended one serves as a readiness probe.
func createPolicy(ctx context.Context, cp *controlPlane, name string, suspend bool, concurrency int32) error {
	p := &backupv1alpha1.BackupPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: backupv1alpha1.BackupPolicySpec{
			Schedule: "* * * * *", Suspend: suspend, MaxConcurrentBackups: concurrency,
			Registry: backupv1alpha1.RegistrySpec{Repository: cp.registryHost + "/backups", AuthSecretName: cp.registrySecret,
				Insecure: true},
		},
	}
	if err := cp.admin.Create(ctx, p); err != nil {
		return fmt.Errorf("create BackupPolicy %s: %w", name, err)
	}
	if !suspend {
		logf("policy %s created at %s; its first slot is the next full minute",
			name, p.CreationTimestamp.UTC().Format(time.RFC3339))
	}
	return nil
}

// waitForCaches creates a suspended probe policy and waits until its status counts every
// DevWorkspace: then the manager's informers are synced and its reconcilers run, so the measured
// slot does not include start-up. The probe is deleted before the measured policy exists.
func waitForCaches(ctx context.Context, c client.Client, workspaces int) error {
	const probe = "bench-probe"
	p := &backupv1alpha1.BackupPolicy{ObjectMeta: metav1.ObjectMeta{Name: probe}, Spec: backupv1alpha1.BackupPolicySpec{
		Schedule: "0 0 1 1 *", Suspend: true,
		Registry: backupv1alpha1.RegistrySpec{Repository: "127.0.0.1:1/probe", Insecure: true}}}
	if err := c.Create(ctx, p); err != nil {
		return err
	}
	start := time.Now()
	err := poll(ctx, 5*time.Minute, func() (bool, error) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(p), p); err != nil {
			return false, err
		}
		return int(p.Status.Workspaces) == workspaces, nil
	})
	if err != nil {
		return err
	}
	logf("manager ready: its policy reconciler sees %d DevWorkspaces (%.1f s after the probe)", workspaces,
		time.Since(start).Seconds())
	return c.Delete(ctx, p)
}

// measureSlot waits for the slot's WorkspaceBackups, then for the throttle's Running backups,
// then ends the creation phase once the manager's writes have settled.
func measureSlot(ctx context.Context, tr *tracker, want int, res *managerResult) error {
	err := poll(ctx, 10*time.Minute, func() (bool, error) {
		s := tr.snapshot()
		return s.created >= want, s.err
	})
	if err != nil {
		return fmt.Errorf("waiting for %d WorkspaceBackups: %w", want, err)
	}
	s := tr.snapshot()
	res.slot, res.first, res.last, res.created = s.slot, s.first, s.last, s.created
	logf("%d WorkspaceBackups created, %.2f s after the slot", s.created, s.last.Sub(s.slot).Seconds())
	err = poll(ctx, 2*time.Minute, func() (bool, error) {
		s := tr.snapshot()
		return s.running >= min(maxConcurrentBackups, want), s.err
	})
	if err != nil {
		return fmt.Errorf("waiting for %d Running backups: %w", maxConcurrentBackups, err)
	}
	time.Sleep(3 * time.Second)
	res.createEnd = time.Now()
	return nil
}

// managerProcess is the manager subprocess, its memory sampler and the scraper of its metrics.
type managerProcess struct {
	cmd     *exec.Cmd
	log     io.Closer
	sampler *sampler
	scraper *scraper
}

// startManager runs the manager as in a cluster, with the benchmark's client-side QPS and its
// own user (so the audit log tells its writes apart), without a probe listener, and with its
// metrics on a loopback port (plain HTTP: the bench scrapes it every scrapeInterval).
func startManager(cp *controlPlane, c config, work string) (*managerProcess, error) {
	metricsAddr, err := freeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	out := io.WriteCloser(os.Stderr)
	if !c.verbose {
		// Appended to: the chaos run restarts the manager many times.
		f, err := os.OpenFile(filepath.Join(work, "manager.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return nil, err
		}
		out = f
	}
	cmd := exec.Command(c.manager, "--kubeconfig", cp.managerConfig,
		"--mover-image", "registry.example.com/dwbackup/operator:bench",
		"--metrics-bind-address="+metricsAddr, "--metrics-secure=false", "--health-probe-bind-address=0",
		"--kube-api-qps", strconv.FormatFloat(c.qps, 'f', -1, 64), "--kube-api-burst", strconv.Itoa(c.burst))
	// GOMEMLIMIT as config/manager/manager.yaml deploys the manager.
	cmd.Env = append(os.Environ(), "POD_NAMESPACE="+cp.operatorNS, "GOMEMLIMIT="+c.goMemLimit)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", c.manager, err)
	}
	logf("manager started (pid %d, QPS %g, burst %d)", cmd.Process.Pid, c.qps, c.burst)
	p := &managerProcess{cmd: cmd, sampler: startSampler(cmd.Process.Pid), scraper: startScraper(metricsAddr)}
	if out != os.Stderr {
		p.log = out
	}
	return p, nil
}

// memory reads the manager's peak RSS and CPU time while it still runs.
func (p *managerProcess) memory() memStats {
	return p.sampler.finish()
}

// stop ends the manager with SIGTERM as the kubelet would, and kills it if it lingers.
func (p *managerProcess) stop() {
	p.scraper.stop()
	p.sampler.finish()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
	if p.log != nil {
		_ = p.log.Close()
	}
}

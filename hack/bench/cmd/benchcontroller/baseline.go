package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
)

// policyName is the benchmark's BackupPolicy; the baseline's objects carry it too.
const policyName = "bench"

// baselineWorkers is the plain client's concurrency: enough that request latency never limits
// it, so its time is what the client-side QPS allows (the best a client at that QPS can do).
const baselineWorkers = 8

// baselineResult is the plain client's time for the slot's creates.
type baselineResult struct {
	objects int
	seconds float64
}

// scheduledBackup is the WorkspaceBackup the policy creates for one workspace at one slot
// (internal/controller scheduledBackup): same name pattern, labels, annotation and finalizer.
func scheduledBackup(ws stoppedWorkspace, slot time.Time) *backupv1alpha1.WorkspaceBackup {
	return &backupv1alpha1.WorkspaceBackup{
		ObjectMeta: metav1.ObjectMeta{
			Name:      strings.Join([]string{ws.Name, policyName, slot.UTC().Format("200601021504")}, "-"),
			Namespace: ws.Namespace,
			Labels: map[string]string{
				backupv1alpha1.LabelPolicy:      policyName,
				backupv1alpha1.LabelWorkspace:   ws.Name,
				backupv1alpha1.LabelWorkspaceID: ws.ID,
				backupv1alpha1.LabelTrigger:     string(backupv1alpha1.TriggerScheduled),
			},
			Annotations: map[string]string{backupv1alpha1.AnnotationSlot: slot.UTC().Format(time.RFC3339)},
			Finalizers:  []string{backupv1alpha1.FinalizerArtifact},
		},
		Spec: backupv1alpha1.WorkspaceBackupSpec{WorkspaceName: ws.Name, PolicyName: policyName},
	}
}

// runBaseline times a plain controller-runtime client at the manager's QPS and burst creating
// the slot's WorkspaceBackups, then removes them (unthrottled, not measured) before the manager
// starts.
func runBaseline(ctx context.Context, cp *controlPlane, pop population, c config) (baselineResult, error) {
	plain, err := client.New(cp.throttledConfig(c.qps, c.burst), client.Options{Scheme: scheme.Scheme})
	if err != nil {
		return baselineResult{}, err
	}
	slot := time.Now().UTC().Truncate(time.Minute).Add(-24 * time.Hour)
	logf("baseline: a plain client at QPS %g, burst %d creates %d WorkspaceBackups", c.qps, c.burst, len(pop.stopped))
	start := time.Now()
	err = forEach(ctx, baselineWorkers, pop.stopped, func(ctx context.Context, ws stoppedWorkspace) error {
		return plain.Create(ctx, scheduledBackup(ws, slot))
	})
	if err != nil {
		return baselineResult{}, err
	}
	res := baselineResult{objects: len(pop.stopped), seconds: time.Since(start).Seconds()}
	logf("baseline: %d creates in %.2f s", res.objects, res.seconds)
	return res, removeBackups(ctx, cp.admin, pop, slot)
}

// removeBackups drops the finalizer (no manager runs yet to release it) and deletes each backup,
// then waits until the API server lists none.
func removeBackups(ctx context.Context, c client.Client, pop population, slot time.Time) error {
	release := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`))
	err := forEach(ctx, 32, pop.stopped, func(ctx context.Context, ws stoppedWorkspace) error {
		b := scheduledBackup(ws, slot)
		if err := c.Patch(ctx, b, release); err != nil {
			return err
		}
		return client.IgnoreNotFound(c.Delete(ctx, b))
	})
	if err != nil {
		return err
	}
	return poll(ctx, time.Minute, func() (bool, error) {
		list := &backupv1alpha1.WorkspaceBackupList{}
		if err := c.List(ctx, list, client.Limit(1)); err != nil {
			return false, err
		}
		return len(list.Items) == 0, nil
	})
}

// poll calls cond every 200 ms until it reports true, fails, or timeout passes.
func poll(ctx context.Context, timeout time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil || ok {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s", timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

package controller

import (
	"fmt"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
	"github.com/dwbackup/devworkspace-backup-operator/internal/dwo"
)

// eventReporter is the name on the operator's Events.
const eventReporter = "devworkspace-backup-operator"

// childLabels mark every Job, Pod and Secret copy the operator makes, so the cache holds only those.
func childLabels() map[string]string {
	return map[string]string{backupv1alpha1.LabelManagedBy: backupv1alpha1.ManagedByValue}
}

// CacheOptions keeps the manager's memory flat at thousands of workspaces: DevWorkspaces are
// trimmed to the fields the operator reads, and only the operator's own Jobs and Pods are cached.
func CacheOptions() cache.Options {
	own := labels.SelectorFromSet(childLabels())
	return cache.Options{
		ByObject: map[client.Object]cache.ByObject{
			&dwo.DevWorkspace{}: {Transform: TrimDevWorkspace},
			&batchv1.Job{}:      {Label: own},
			&corev1.Pod{}:       {Label: own},
		},
	}
}

// ClientOptions makes the client read Secrets and ConfigMaps straight from the API server, so no
// informer lists or watches them.
func ClientOptions() client.Options {
	return client.Options{Cache: &client.CacheOptions{
		DisableFor: []client.Object{&corev1.Secret{}, &corev1.ConfigMap{}},
	}}
}

// AddToScheme registers what the manager reads and writes: the backup API and dwo's read-only
// DevWorkspace view.
func AddToScheme(s *runtime.Scheme) error {
	if err := backupv1alpha1.AddToScheme(s); err != nil {
		return err
	}
	return dwo.AddToScheme(s)
}

// SetupAll registers the three reconcilers (each with the field indexes it uses) with the manager,
// and the operator's metrics with controller-runtime's registry (served on the manager's metrics
// endpoint; the cache-derived series only while this replica leads).
func SetupAll(mgr ctrl.Manager, opts Options) error {
	c, reader := mgr.GetClient(), mgr.GetAPIReader()
	recorder := mgr.GetEventRecorder(eventReporter)
	restores := newRestoreLocks() // shared: backups wait for the restores of their workspace
	expected := newExpectations()
	intervals := newIntervalCache() // shared: the policy reconciler and the metrics ask for the same schedules
	m := NewMetrics(c, intervals, opts.Clock)
	if err := metrics.Registry.Register(m); err != nil {
		return fmt.Errorf("registering the metrics: %w", err)
	}
	if err := mgr.Add(m.LeaderGate()); err != nil {
		return fmt.Errorf("metrics leader gate: %w", err)
	}
	if err := (&BackupPolicyReconciler{Client: c, APIReader: reader, Scheme: mgr.GetScheme(),
		Recorder: recorder, Options: opts, expected: expected, intervals: intervals}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("backuppolicy controller: %w", err)
	}
	if err := (&WorkspaceBackupReconciler{Client: c, APIReader: reader, Scheme: mgr.GetScheme(),
		Recorder: recorder, Options: opts, restores: restores, expected: expected, metrics: m}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("workspacebackup controller: %w", err)
	}
	if err := (&WorkspaceRestoreReconciler{Client: c, APIReader: reader, Scheme: mgr.GetScheme(),
		Recorder: recorder, Options: opts, restores: restores, metrics: m}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("workspacerestore controller: %w", err)
	}
	return nil
}

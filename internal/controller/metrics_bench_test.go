package controller

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
	"github.com/dwbackup/devworkspace-backup-operator/internal/dwo"
)

// listsReader serves fixed lists, as the informer cache does with UnsafeDisableDeepCopy (no copy).
type listsReader struct {
	client.Reader
	policies   []backupv1alpha1.BackupPolicy
	workspaces []dwo.DevWorkspace
	backups    []backupv1alpha1.WorkspaceBackup
}

func (r listsReader) List(_ context.Context, list client.ObjectList, _ ...client.ListOption) error {
	switch l := list.(type) {
	case *backupv1alpha1.BackupPolicyList:
		l.Items = r.policies
	case *dwo.DevWorkspaceList:
		l.Items = r.workspaces
	case *backupv1alpha1.WorkspaceBackupList:
		l.Items = r.backups
	default:
		return fmt.Errorf("unexpected list %T", list)
	}
	return nil
}

// BenchmarkCollect10k is one scrape of the cache-derived series at the scale of docs/metrics.md,
// "Cardinality": 10,000 workspaces in 1,000 namespaces, one nightly policy, three finished backups
// each (two Succeeded, the newest Failed). Run: go test ./internal/controller/ -run '^$' -bench Collect10k -benchmem
func BenchmarkCollect10k(b *testing.B) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	r := listsReader{policies: []backupv1alpha1.BackupPolicy{{ObjectMeta: metav1.ObjectMeta{Name: "nightly"},
		Spec: backupv1alpha1.BackupPolicySpec{Schedule: "0 2 * * *"}}}}
	for i := range 10_000 {
		ns, name, id := fmt.Sprintf("user-%04d", i/10), fmt.Sprintf("ws-%d", i%10), fmt.Sprintf("workspace%016x", i)
		dw := dwo.DevWorkspace{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
		dw.Status.DevWorkspaceID = id
		r.workspaces = append(r.workspaces, dw)
		for j, phase := range []backupv1alpha1.BackupPhase{backupv1alpha1.BackupSucceeded, backupv1alpha1.BackupSucceeded, backupv1alpha1.BackupFailed} {
			done := metav1.NewTime(now.Add(time.Duration(j-3) * 24 * time.Hour))
			r.backups = append(r.backups, backupv1alpha1.WorkspaceBackup{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("%s-%d", name, j),
					Labels: map[string]string{backupv1alpha1.LabelWorkspaceID: id}},
				Spec: backupv1alpha1.WorkspaceBackupSpec{WorkspaceName: name, PolicyName: "nightly"},
				Status: backupv1alpha1.WorkspaceBackupStatus{Phase: phase, CompletionTime: &done,
					Artifact: &backupv1alpha1.ArtifactStatus{SizeBytes: 1 << 20}},
			})
		}
	}
	m := NewMetrics(r, newIntervalCache(), clocktesting.NewFakeClock(now))
	m.state.leading.Store(true)
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	b.ReportAllocs()
	var series int
	for b.Loop() {
		families, err := reg.Gather()
		if err != nil {
			b.Fatal(err)
		}
		series = 0
		for _, f := range families {
			series += len(f.GetMetric())
		}
	}
	b.ReportMetric(float64(series), "series")
	if series != 30_002 {
		b.Fatalf("%d series, want 30,002 (3 per workspace, 2 for the policy)", series)
	}
}

package controller

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
)

func historyBackup(name string, phase backupv1alpha1.BackupPhase, at time.Time, trigger backupv1alpha1.Trigger) *backupv1alpha1.WorkspaceBackup {
	return &backupv1alpha1.WorkspaceBackup{
		ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(at),
			Labels: map[string]string{backupv1alpha1.LabelTrigger: string(trigger)}},
		Status: backupv1alpha1.WorkspaceBackupStatus{Phase: phase, StartTime: &metav1.Time{Time: at}},
	}
}

func names(bs []*backupv1alpha1.WorkspaceBackup) []string {
	out := make([]string, 0, len(bs))
	for _, b := range bs {
		out = append(out, b.Name)
	}
	slices.Sort(out)
	return out
}

// thirtyOverTenDays: three backups a day (02:00, 10:00, 18:00 UTC) from Nov 17 to Nov 26; the
// 10:00 one fails every other day, and the 18:00 one of Nov 20 is skipped.
func thirtyOverTenDays() []*backupv1alpha1.WorkspaceBackup {
	var out []*backupv1alpha1.WorkspaceBackup
	for day := 17; day <= 26; day++ {
		for _, hour := range []int{2, 10, 18} {
			at := time.Date(2026, 11, day, hour, 0, 0, 0, time.UTC)
			phase := backupv1alpha1.BackupSucceeded
			if hour == 10 && day%2 == 0 {
				phase = backupv1alpha1.BackupFailed
			}
			if hour == 18 && day == 20 {
				phase = backupv1alpha1.BackupSkipped
			}
			out = append(out, historyBackup(fmt.Sprintf("d%02d-h%02d", day, hour), phase, at, backupv1alpha1.TriggerScheduled))
		}
	}
	return out
}

func TestToPrune(t *testing.T) {
	prague, _ := time.LoadLocation("Europe/Prague")
	all := thirtyOverTenDays()
	kept := func(prune []*backupv1alpha1.WorkspaceBackup) []string {
		var k []string
		for _, b := range all {
			if !slices.Contains(prune, b) {
				k = append(k, b.Name)
			}
		}
		slices.Sort(k)
		return k
	}
	tests := []struct {
		name      string
		retention backupv1alpha1.RetentionSpec
		loc       *time.Location
		wantKept  []string
	}{
		{"keepLast 3, 2 failed", backupv1alpha1.RetentionSpec{KeepLast: 3, FailedHistoryLimit: ptr.To[int32](2)}, time.UTC,
			[]string{"d24-h10", "d25-h18", "d26-h02", "d26-h10", "d26-h18"}},
		{"keepLast 1, daily 4, no failed", backupv1alpha1.RetentionSpec{KeepLast: 1, KeepDaily: 4, FailedHistoryLimit: ptr.To[int32](0)}, time.UTC,
			[]string{"d23-h18", "d24-h18", "d25-h18", "d26-h18"}},
		{"weekly 2 spans the ISO week of Nov 23", backupv1alpha1.RetentionSpec{KeepLast: 1, KeepWeekly: 2, FailedHistoryLimit: ptr.To[int32](0)}, time.UTC,
			[]string{"d22-h18", "d26-h18"}},
		// In Prague (UTC+1) 02:00 and 18:00 UTC fall on the same local day; at UTC-10, 02:00 UTC on
		// the 26th is still the 25th, so it is that day's newest.
		{"daily in a time zone", backupv1alpha1.RetentionSpec{KeepLast: 1, KeepDaily: 2, FailedHistoryLimit: ptr.To[int32](0)},
			time.FixedZone("UTC-10", -10*3600), []string{"d26-h02", "d26-h18"}},
		{"daily in Prague", backupv1alpha1.RetentionSpec{KeepLast: 1, KeepDaily: 2, FailedHistoryLimit: ptr.To[int32](0)}, prague,
			[]string{"d25-h18", "d26-h18"}},
		{"keepLast 0 still keeps the newest success", backupv1alpha1.RetentionSpec{KeepLast: 0, FailedHistoryLimit: ptr.To[int32](0)}, time.UTC,
			[]string{"d26-h18"}},
		{"default failed history of 3", backupv1alpha1.RetentionSpec{KeepLast: 1}, time.UTC,
			[]string{"d22-h10", "d24-h10", "d26-h10", "d26-h18"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := kept(toPrune(all, tt.retention, tt.loc))
			if !slices.Equal(got, tt.wantKept) {
				t.Fatalf("kept %v, want %v", got, tt.wantKept)
			}
		})
	}
}

func TestToPruneExemptions(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 2, 0, 0, 0, time.UTC)
	safety := historyBackup("safety", backupv1alpha1.BackupSucceeded, t0.Add(-48*time.Hour), backupv1alpha1.TriggerPreRestore)
	running := historyBackup("running", backupv1alpha1.BackupRunning, t0.Add(-72*time.Hour), backupv1alpha1.TriggerScheduled)
	old := historyBackup("old", backupv1alpha1.BackupSucceeded, t0.Add(-24*time.Hour), backupv1alpha1.TriggerManual)
	newest := historyBackup("newest", backupv1alpha1.BackupSucceeded, t0, backupv1alpha1.TriggerScheduled)
	newerFailure := historyBackup("failure", backupv1alpha1.BackupFailed, t0.Add(time.Hour), backupv1alpha1.TriggerScheduled)
	got := names(toPrune([]*backupv1alpha1.WorkspaceBackup{safety, running, old, newest, newerFailure},
		backupv1alpha1.RetentionSpec{KeepLast: 1, FailedHistoryLimit: ptr.To[int32](0)}, time.UTC))
	if !slices.Equal(got, []string{"failure", "old"}) {
		t.Fatalf("pruned %v, want [failure old]: safety and unfinished backups and the newest success stay", got)
	}
}

// TestRetainPolicy prunes per namespace and workspace id: a workspace recreated with the same
// name (a new id) keeps its own newest backup, and each pruned backup is marked, then deleted.
func TestRetainPolicy(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := backupv1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 26, 2, 0, 0, 0, time.UTC)
	mk := func(ns, name, id string, age time.Duration) *backupv1alpha1.WorkspaceBackup {
		b := historyBackup(name, backupv1alpha1.BackupSucceeded, t0.Add(-age), backupv1alpha1.TriggerScheduled)
		b.Namespace = ns
		b.Finalizers = []string{backupv1alpha1.FinalizerArtifact}
		b.Status.WorkspaceID = id
		return b
	}
	objs := []*backupv1alpha1.WorkspaceBackup{
		mk("a", "old-ws-1", "id-old", 48*time.Hour), mk("a", "old-ws-2", "id-old", 24*time.Hour),
		mk("a", "new-ws-1", "id-new", 2*time.Hour), mk("a", "new-ws-2", "id-new", time.Hour),
		mk("b", "other-ns-1", "id-old", 3*time.Hour),
	}
	builder := fake.NewClientBuilder().WithScheme(scheme).WithStatusSubresource(&backupv1alpha1.WorkspaceBackup{})
	for _, o := range objs {
		builder = builder.WithObjects(o)
	}
	c := builder.Build()
	policy := &backupv1alpha1.BackupPolicy{Spec: backupv1alpha1.BackupPolicySpec{TimeZone: "UTC",
		Retention: backupv1alpha1.RetentionSpec{KeepLast: 1}}}
	list := make([]backupv1alpha1.WorkspaceBackup, 0, len(objs))
	for _, o := range objs {
		list = append(list, *o)
	}
	if err := retainPolicy(context.Background(), c, t0, policy, list); err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		got := &backupv1alpha1.WorkspaceBackup{}
		if err := c.Get(context.Background(), client.ObjectKeyFromObject(o), got); err != nil {
			t.Fatal(err)
		}
		wantPruned := o.Name == "old-ws-1" || o.Name == "new-ws-1"
		pruned := got.Annotations[backupv1alpha1.AnnotationPruned] != "" && !got.DeletionTimestamp.IsZero()
		if pruned != wantPruned {
			t.Errorf("%s/%s: pruned=%v, want %v", o.Namespace, o.Name, pruned, wantPruned)
		}
	}
}

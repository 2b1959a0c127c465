package controller

import (
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
)

func TestExpectedInterval(t *testing.T) {
	prague := mustZone(t, "Europe/Prague")
	tests := []struct {
		name     string
		schedule string
		loc      *time.Location
		from     string
		want     time.Duration
	}{
		{name: "every minute", schedule: "* * * * *", from: "2026-11-26T10:00:30Z", want: time.Minute},
		{name: "hourly", schedule: "@hourly", from: "2026-11-26T10:30:00Z", want: time.Hour},
		{name: "twice a day, unevenly", schedule: "0 2,8 * * *", from: "2026-11-26T00:00:00Z", want: 18 * time.Hour},
		{name: "nightly", schedule: "0 2 * * *", from: "2026-11-26T00:00:00Z", want: 24 * time.Hour},
		// The weekend is the largest gap wherever the week starts: a Monday never looks stale.
		{name: "weekdays only, from a Thursday", schedule: "0 2 * * 1-5", from: "2026-11-26T00:00:00Z", want: 72 * time.Hour},
		{name: "weekdays only, from a Monday after the slot", schedule: "0 2 * * 1-5", from: "2026-11-30T03:00:00Z", want: 72 * time.Hour},
		{name: "weekly", schedule: "@weekly", from: "2026-11-26T00:00:00Z", want: 7 * 24 * time.Hour},
		{name: "monthly: the one gap starting within the week", schedule: "0 2 1 * *", from: "2026-11-26T00:00:00Z",
			want: 31 * 24 * time.Hour},
		// 02:30 does not happen in Prague on 2027-03-28: that night has no slot, and the gap is two
		// nights of a 23-hour day: 47 h.
		{name: "nightly at 02:30 across the spring change", schedule: "30 2 * * *", loc: prague, from: "2027-03-25T00:00:00Z",
			want: 47 * time.Hour},
		// Clocks go back on 2026-10-25: 02:30 happens twice (1 h apart), and the day is 25 h long.
		{name: "nightly at 03:00 across the autumn change", schedule: "0 3 * * *", loc: prague, from: "2026-10-22T00:00:00Z",
			want: 25 * time.Hour},
		{name: "nightly at 03:00 in a week without change", schedule: "0 3 * * *", loc: prague, from: "2026-11-26T00:00:00Z",
			want: 24 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustSchedule(t, tt.schedule)
			loc := tt.loc
			if loc == nil {
				loc = time.UTC
			}
			if got := expectedInterval(s.Schedule, loc, utc(tt.from)); got != tt.want {
				t.Errorf("expectedInterval(%q, %s, %s) = %s, want %s", tt.schedule, loc, tt.from, got, tt.want)
			}
		})
	}
}

func TestUnprotectedAt(t *testing.T) {
	now := utc("2026-11-26T12:00:00Z")
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	tests := []struct {
		name      string
		exposed   []time.Time
		interval  time.Duration
		wantCount int32
		wantNext  time.Time
	}{
		{name: "none exposed", interval: time.Hour},
		{name: "stopped just now: not yet", exposed: []time.Time{now}, interval: time.Hour, wantNext: now.Add(time.Hour)},
		{name: "exactly one interval: not yet", exposed: []time.Time{ago(time.Hour)}, interval: time.Hour, wantNext: now},
		{name: "longer than one interval", exposed: []time.Time{ago(time.Hour + time.Second)}, interval: time.Hour, wantCount: 1},
		{name: "mixed: counts the old ones, wakes at the earliest crossing",
			exposed:  []time.Time{ago(3 * time.Hour), ago(10 * time.Minute), ago(50 * time.Minute), ago(2 * time.Hour)},
			interval: time.Hour, wantCount: 2, wantNext: now.Add(10 * time.Minute)},
		{name: "weekend gap: a Friday stop is fine on Sunday", exposed: []time.Time{ago(48 * time.Hour)},
			interval: 72 * time.Hour, wantNext: now.Add(24 * time.Hour)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			count, next := unprotectedAt(tt.exposed, tt.interval, now)
			if count != tt.wantCount || !next.Equal(tt.wantNext) {
				t.Errorf("unprotectedAt = %d, %s; want %d, %s", count, next, tt.wantCount, tt.wantNext)
			}
		})
	}
}

// finished is a backup of ns/ws under policy, finished in phase at minute min of the day.
func finished(name, ws, policy, id string, phase backupv1alpha1.BackupPhase, minute int, size int64) backupv1alpha1.WorkspaceBackup {
	done := metav1.NewTime(utc("2026-11-26T00:00:00Z").Add(time.Duration(minute) * time.Minute))
	b := backupv1alpha1.WorkspaceBackup{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns",
			Labels: map[string]string{backupv1alpha1.LabelWorkspaceID: id}},
		Spec:   backupv1alpha1.WorkspaceBackupSpec{WorkspaceName: ws, PolicyName: policy},
		Status: backupv1alpha1.WorkspaceBackupStatus{Phase: phase, CompletionTime: &done},
	}
	if phase == backupv1alpha1.BackupSucceeded {
		b.Status.Artifact = &backupv1alpha1.ArtifactStatus{SizeBytes: size}
	}
	return b
}

// created sets a backup's creation time to second s of the day.
func created(b backupv1alpha1.WorkspaceBackup, s int) backupv1alpha1.WorkspaceBackup {
	b.CreationTimestamp = metav1.NewTime(utc("2026-11-26T00:00:00Z").Add(time.Duration(s) * time.Second))
	return b
}

func TestWorkspaceStates(t *testing.T) {
	ok, failed, skipped := backupv1alpha1.BackupSucceeded, backupv1alpha1.BackupFailed, backupv1alpha1.BackupSkipped
	ids := map[workspaceName]string{{Namespace: "ns", Name: "a"}: "id-a", {Namespace: "ns", Name: "b"}: "id-b"}
	policies := map[string]bool{"nightly": true, "hourly": true}
	at := func(minute int) time.Time {
		return utc("2026-11-26T00:00:00Z").Add(time.Duration(minute) * time.Minute)
	}
	running := finished("r", "a", "nightly", "id-a", backupv1alpha1.BackupRunning, 50, 0)
	running.Status.CompletionTime = nil
	deleting := finished("d", "a", "nightly", "id-a", failed, 60, 0)
	deleting.DeletionTimestamp = &metav1.Time{Time: at(61)}
	tests := []struct {
		name    string
		backups []backupv1alpha1.WorkspaceBackup
		want    []workspaceState
	}{
		{name: "no backups, no series"},
		{name: "newest success",
			backups: []backupv1alpha1.WorkspaceBackup{finished("1", "a", "nightly", "id-a", ok, 1, 100), finished("2", "a", "nightly", "id-a", ok, 2, 200)},
			want:    []workspaceState{{Namespace: "ns", Workspace: "a", Policy: "nightly", LastSucceeded: true, LastSuccess: at(2), SizeBytes: 200}}},
		{name: "failed after a success: status 0, the success stays",
			backups: []backupv1alpha1.WorkspaceBackup{finished("1", "a", "nightly", "id-a", ok, 1, 100), finished("2", "a", "nightly", "id-a", failed, 2, 0)},
			want:    []workspaceState{{Namespace: "ns", Workspace: "a", Policy: "nightly", LastSuccess: at(1), SizeBytes: 100}}},
		{name: "finished in the same second: the later created is newer",
			backups: []backupv1alpha1.WorkspaceBackup{created(finished("z-old", "a", "nightly", "id-a", ok, 1, 100), 0), created(finished("a-new", "a", "nightly", "id-a", failed, 1, 0), 1)},
			want:    []workspaceState{{Namespace: "ns", Workspace: "a", Policy: "nightly", LastSuccess: at(1), SizeBytes: 100}}},
		{name: "order of the list does not matter",
			backups: []backupv1alpha1.WorkspaceBackup{finished("2", "a", "nightly", "id-a", failed, 2, 0), finished("1", "a", "nightly", "id-a", ok, 1, 100)},
			want:    []workspaceState{{Namespace: "ns", Workspace: "a", Policy: "nightly", LastSuccess: at(1), SizeBytes: 100}}},
		{name: "only failures: status 0, no success time",
			backups: []backupv1alpha1.WorkspaceBackup{finished("1", "a", "nightly", "id-a", failed, 1, 0)},
			want:    []workspaceState{{Namespace: "ns", Workspace: "a", Policy: "nightly"}}},
		{name: "skipped after a failure: nothing to back up is not a failure",
			backups: []backupv1alpha1.WorkspaceBackup{finished("1", "a", "nightly", "id-a", failed, 1, 0), finished("2", "a", "nightly", "id-a", skipped, 2, 0)},
			want:    []workspaceState{{Namespace: "ns", Workspace: "a", Policy: "nightly", LastSucceeded: true}}},
		{name: "unfinished and deleting backups do not count",
			backups: []backupv1alpha1.WorkspaceBackup{finished("1", "a", "nightly", "id-a", ok, 1, 100), running, deleting},
			want:    []workspaceState{{Namespace: "ns", Workspace: "a", Policy: "nightly", LastSucceeded: true, LastSuccess: at(1), SizeBytes: 100}}},
		{name: "one series per workspace and policy, sorted",
			backups: []backupv1alpha1.WorkspaceBackup{finished("1", "b", "nightly", "id-b", ok, 1, 1), finished("2", "a", "nightly", "id-a", ok, 2, 2),
				finished("3", "a", "hourly", "id-a", failed, 3, 0)},
			want: []workspaceState{{Namespace: "ns", Workspace: "a", Policy: "hourly"},
				{Namespace: "ns", Workspace: "a", Policy: "nightly", LastSucceeded: true, LastSuccess: at(2), SizeBytes: 2},
				{Namespace: "ns", Workspace: "b", Policy: "nightly", LastSucceeded: true, LastSuccess: at(1), SizeBytes: 1}}},
		{name: "workspace gone, policy gone, or workspace recreated (new id): no series",
			backups: []backupv1alpha1.WorkspaceBackup{finished("1", "gone", "nightly", "id-x", ok, 1, 1), finished("2", "a", "deleted", "id-a", ok, 2, 2),
				finished("3", "b", "nightly", "id-old", failed, 3, 0)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := workspaceStates(tt.backups, ids, policies)
			if len(got) != len(tt.want) {
				t.Fatalf("workspaceStates = %+v, want %+v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("series %d = %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestReasonLabels(t *testing.T) {
	var r reasonLabels
	for i := range maxReasonLabels {
		if got, want := r.label(fmt.Sprintf("Reason%d", i)), fmt.Sprintf("Reason%d", i); got != want {
			t.Fatalf("label(%q) = %q, want it kept", want, got)
		}
	}
	if got := r.label("Forged"); got != "Other" {
		t.Errorf("a new reason past the bound = %q, want Other", got)
	}
	if got := r.label("Reason3"); got != "Reason3" {
		t.Errorf("a reason seen before the bound = %q, want it kept", got)
	}
}

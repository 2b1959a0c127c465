package controller

import (
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
)

func TestFormatArgs(t *testing.T) {
	for _, c := range []struct {
		name     string
		artifact backupv1alpha1.ArtifactSpec
		previous string
		want     []string
	}{
		{"unset is the dwo format: the mover's default", backupv1alpha1.ArtifactSpec{}, "sha256:aa", nil},
		{"dwo", backupv1alpha1.ArtifactSpec{Format: backupv1alpha1.ArtifactFormatDWO}, "sha256:aa", nil},
		{"layered, first backup", backupv1alpha1.ArtifactSpec{Format: backupv1alpha1.ArtifactFormatLayered}, "",
			[]string{"--format", "layered"}},
		{"layered with a previous backup", backupv1alpha1.ArtifactSpec{Format: backupv1alpha1.ArtifactFormatLayered}, "sha256:aa",
			[]string{"--format", "layered", "--previous", "sha256:aa"}},
		{"layered with a DWO-compatible latest",
			backupv1alpha1.ArtifactSpec{Format: backupv1alpha1.ArtifactFormatLayered, DWOCompatibleLatest: true}, "sha256:aa",
			[]string{"--format", "layered", "--previous", "sha256:aa", "--dwo-compatible-latest"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := formatArgs(c.artifact, c.previous); !slices.Equal(got, c.want) {
				t.Fatalf("formatArgs = %q, want %q", got, c.want)
			}
		})
	}
}

func TestPreviousArtifact(t *testing.T) {
	const repo = "reg.example.com/backups/ns/ws"
	at := func(name string, hour int, phase backupv1alpha1.BackupPhase, ref, digest string) *backupv1alpha1.WorkspaceBackup {
		start := metav1.NewTime(time.Date(2026, 11, 26, hour, 0, 0, 0, time.UTC))
		b := &backupv1alpha1.WorkspaceBackup{ObjectMeta: metav1.ObjectMeta{Name: name}}
		b.Status.Phase, b.Status.StartTime, b.Status.WorkspaceID = phase, &start, "workspace01"
		if ref != "" {
			b.Status.Artifact = &backupv1alpha1.ArtifactStatus{Reference: ref, Digest: digest}
		}
		return b
	}
	ok1 := at("a", 1, backupv1alpha1.BackupSucceeded, repo+":t1", "sha256:01")
	ok2 := at("b", 2, backupv1alpha1.BackupSucceeded, repo+":t2", "sha256:02")
	failed := at("c", 3, backupv1alpha1.BackupFailed, repo+":t3", "sha256:03")
	otherRepo := at("d", 4, backupv1alpha1.BackupSucceeded, "reg.example.com/old/ns/ws:t4", "sha256:04")
	noDigest := at("e", 5, backupv1alpha1.BackupSucceeded, repo+":t5", "")
	recreated := at("f", 6, backupv1alpha1.BackupSucceeded, repo+":t6", "sha256:06")
	recreated.Status.WorkspaceID = "workspace02" // a workspace recreated with the same name
	for _, c := range []struct {
		name    string
		backups []*backupv1alpha1.WorkspaceBackup
		want    string
	}{
		{"none", nil, ""},
		{"the newest Succeeded", []*backupv1alpha1.WorkspaceBackup{ok1, ok2}, "sha256:02"},
		{"in any order", []*backupv1alpha1.WorkspaceBackup{ok2, ok1}, "sha256:02"},
		{"failed, other repository and no digest are skipped",
			[]*backupv1alpha1.WorkspaceBackup{ok1, failed, otherRepo, noDigest, recreated}, "sha256:01"},
		{"only unusable ones", []*backupv1alpha1.WorkspaceBackup{failed, otherRepo}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := previousArtifact(c.backups, repo, "workspace01"); got != c.want {
				t.Fatalf("previousArtifact = %q, want %q", got, c.want)
			}
		})
	}
}

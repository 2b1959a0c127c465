package controller

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
)

// retentionGroup is the key backups are kept per: the policy and the workspace id, so a
// recreated workspace with the same name never prunes the old one's backups.
func retentionGroup(b *backupv1alpha1.WorkspaceBackup) string {
	if b.Status.WorkspaceID != "" {
		return b.Status.WorkspaceID
	}
	if id := b.Labels[backupv1alpha1.LabelWorkspaceID]; id != "" {
		return id
	}
	return "name:" + b.Spec.WorkspaceName
}

// toPrune returns the finished backups of one retention group that the policy does not keep:
// the newest keepLast Succeeded, plus the newest Succeeded of each of the last keepDaily days and
// keepWeekly weeks that have one (in loc), plus the newest failedHistoryLimit Failed or Skipped.
// Pre-restore safety backups and unfinished backups are never pruned, nor is the newest
// Succeeded backup whatever the spec says.
func toPrune(backups []*backupv1alpha1.WorkspaceBackup, r backupv1alpha1.RetentionSpec, loc *time.Location) []*backupv1alpha1.WorkspaceBackup {
	var succeeded, failed []*backupv1alpha1.WorkspaceBackup
	for _, b := range backups {
		if backupv1alpha1.Trigger(b.Labels[backupv1alpha1.LabelTrigger]) == backupv1alpha1.TriggerPreRestore {
			continue
		}
		switch b.Status.Phase {
		case backupv1alpha1.BackupSucceeded:
			succeeded = append(succeeded, b)
		case backupv1alpha1.BackupFailed, backupv1alpha1.BackupSkipped:
			failed = append(failed, b)
		default: // unfinished
		}
	}
	slices.SortFunc(succeeded, newestFirst)
	slices.SortFunc(failed, newestFirst)

	keep := map[*backupv1alpha1.WorkspaceBackup]bool{}
	for i, b := range succeeded {
		if i < max(int(r.KeepLast), 1) {
			keep[b] = true
		}
	}
	keepNewestPerBucket(succeeded, int(r.KeepDaily), keep, func(t time.Time) string { return t.In(loc).Format(time.DateOnly) })
	keepNewestPerBucket(succeeded, int(r.KeepWeekly), keep, func(t time.Time) string {
		y, w := t.In(loc).ISOWeek()
		return fmt.Sprintf("%d-W%02d", y, w)
	})
	failedLimit := 3
	if r.FailedHistoryLimit != nil {
		failedLimit = int(*r.FailedHistoryLimit)
	}
	for i, b := range failed {
		if i < failedLimit {
			keep[b] = true
		}
	}

	var prune []*backupv1alpha1.WorkspaceBackup
	for _, b := range slices.Concat(succeeded, failed) {
		if !keep[b] {
			prune = append(prune, b)
		}
	}
	return prune
}

// keepNewestPerBucket keeps the newest backup of each of the newest n buckets that have one.
func keepNewestPerBucket(newestFirstBackups []*backupv1alpha1.WorkspaceBackup, n int, keep map[*backupv1alpha1.WorkspaceBackup]bool,
	bucket func(time.Time) string) {
	seen := map[string]bool{}
	for _, b := range newestFirstBackups {
		if len(seen) >= n {
			return
		}
		key := bucket(backupTime(b))
		if !seen[key] {
			seen[key] = true
			keep[b] = true
		}
	}
}

// backupTime is when a backup's content was taken: its start, else its creation.
func backupTime(b *backupv1alpha1.WorkspaceBackup) time.Time {
	if b.Status.StartTime != nil {
		return b.Status.StartTime.Time
	}
	return b.CreationTimestamp.Time
}

func newestFirst(a, b *backupv1alpha1.WorkspaceBackup) int {
	return cmp.Or(backupTime(b).Compare(backupTime(a)), cmp.Compare(b.Name, a.Name))
}

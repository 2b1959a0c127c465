package controller

import (
	"cmp"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
)

// Selection: which workspaces a slot backs up (docs/architecture.md, "Control flow"). Everything here is pure: the reconciler
// reads namespaces, workspaces and backups from the cache and passes them in.

// selectors are a policy's parsed namespaceSelector and workspaceSelector.
type selectors struct {
	Namespace labels.Selector
	Workspace labels.Selector
}

// namespaceInfo is what selection needs of a Namespace.
type namespaceInfo struct {
	Labels      map[string]string
	Terminating bool
}

// workspaceKey identifies one workspace across its life: a DevWorkspace deleted and recreated
// under the same name has a new id and so a history of its own.
type workspaceKey struct {
	Namespace string
	Name      string
	ID        string
}

// backupHistory is what one policy's backups say about one workspace.
type backupHistory struct {
	// Unfinished: a backup of this policy is still Pending or Running.
	Unfinished bool
	// CoveredUntil is the latest workspaceStoppedAt of a Succeeded or Skipped backup: a stop at or
	// before it is already backed up.
	CoveredUntil time.Time
}

// selection is the outcome of selecting a policy's workspaces at one moment.
type selection struct {
	// Selected counts the workspaces both selectors pick and nobody opted out (status.workspaces).
	Selected int32
	// NoStorage counts the selected workspaces with ephemeral or async storage
	// (status.skippedWorkspaces): they get no WorkspaceBackup.
	NoStorage int32
	// Due are the workspaces to back up at a slot, sorted by namespace and name.
	Due []workspace
	// ExposedSince are the stop times of the selected workspaces with storage that stopped after
	// their newest Succeeded or Skipped backup (or have none), in flight or not: what they hold
	// now is in no backup (unprotectedAt counts those waiting too long).
	ExposedSince []time.Time
	// Namespaces hold at least one selected workspace with storage: the policy backs them up
	// (the namespaces that get the Dashboard's Secret, dashboard.go).
	Namespaces map[string]bool
}

// historyOf groups one policy's backups by workspace. A backup that is being deleted no longer
// counts. An unfinished backup whose workspace id is not known yet (a manual backup not started)
// is filed under an empty id, which blocks every workspace of that name.
func historyOf(backups []backupv1alpha1.WorkspaceBackup) map[workspaceKey]backupHistory {
	history := map[workspaceKey]backupHistory{}
	for i := range backups {
		b := &backups[i]
		if b.DeletionTimestamp != nil {
			continue
		}
		key := workspaceKey{Namespace: b.Namespace, Name: b.Spec.WorkspaceName, ID: backupWorkspaceID(b)}
		h := history[key]
		switch b.Status.Phase {
		case backupv1alpha1.BackupSucceeded, backupv1alpha1.BackupSkipped:
			// A backup that never recorded the stop time covers what stopped before it was created.
			covered := b.CreationTimestamp.Time
			if b.Status.WorkspaceStoppedAt != nil {
				covered = b.Status.WorkspaceStoppedAt.Time
			}
			if covered.After(h.CoveredUntil) {
				h.CoveredUntil = covered
			}
		case backupv1alpha1.BackupFailed:
			// A failed attempt neither blocks nor covers: the next slot retries.
		default: // empty (not picked up yet), Pending, Running
			h.Unfinished = true
		}
		history[key] = h
	}
	return history
}

// backupWorkspaceID is the id of the workspace a backup belongs to: its label, set at creation,
// else what the backup reconciler recorded.
func backupWorkspaceID(b *backupv1alpha1.WorkspaceBackup) string {
	if id := b.Labels[backupv1alpha1.LabelWorkspaceID]; id != "" {
		return id
	}
	return b.Status.WorkspaceID
}

// selectWorkspaces applies the selection rules of docs/policy.md to workspaces, given the
// namespaces (by name) and this policy's backup history.
func selectWorkspaces(sel selectors, namespaces map[string]namespaceInfo, workspaces []workspace,
	history map[workspaceKey]backupHistory) selection {
	var out selection
	for _, ws := range workspaces {
		ns, ok := namespaces[ws.Namespace]
		if !ok || ns.Terminating || ws.Deleting {
			continue
		}
		if !sel.Namespace.Matches(labels.Set(ns.Labels)) || !sel.Workspace.Matches(labels.Set(ws.Labels)) {
			continue
		}
		if excluded(ns.Labels) || excluded(ws.Labels) {
			continue
		}
		out.Selected++
		if !ws.HasStorage() {
			out.NoStorage++
			continue
		}
		if ws.Stopped() && !covered(ws, history) {
			out.ExposedSince = append(out.ExposedSince, ws.StoppedAt)
		}
		if out.Namespaces == nil {
			out.Namespaces = map[string]bool{}
		}
		out.Namespaces[ws.Namespace] = true
		if needsBackup(ws, history) {
			out.Due = append(out.Due, ws)
		}
	}
	slices.SortFunc(out.Due, func(a, b workspace) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return out
}

// needsBackup: stopped, nothing of this policy in flight for it, and stopped again since the
// newest backup that covered it. A failed last attempt covers nothing, so it is retried.
func needsBackup(ws workspace, history map[workspaceKey]backupHistory) bool {
	if !ws.Stopped() {
		return false
	}
	h := history[workspaceKey{Namespace: ws.Namespace, Name: ws.Name, ID: ws.ID}]
	unknownID := history[workspaceKey{Namespace: ws.Namespace, Name: ws.Name}]
	if h.Unfinished || unknownID.Unfinished {
		return false
	}
	return !covered(ws, history)
}

// covered: a Succeeded or Skipped backup of this policy recorded the workspace's current stop.
func covered(ws workspace, history map[workspaceKey]backupHistory) bool {
	h := history[workspaceKey{Namespace: ws.Namespace, Name: ws.Name, ID: ws.ID}]
	return !h.CoveredUntil.IsZero() && !ws.StoppedAt.After(h.CoveredUntil)
}

// unprotectedAt counts the exposed workspaces (selection.ExposedSince) stopped longer than
// interval before now, and returns when the next one crosses that line (zero if none will): the
// policy reconciler looks again then, so the count is never older than that.
func unprotectedAt(exposedSince []time.Time, interval time.Duration, now time.Time) (int32, time.Time) {
	var count int32
	var next time.Time
	for _, stopped := range exposedSince {
		crosses := stopped.Add(interval)
		switch {
		case now.Sub(stopped) > interval:
			count++
		case next.IsZero() || crosses.Before(next):
			next = crosses
		}
	}
	return count, next
}

// excluded reports the opt-out label on a DevWorkspace or Namespace.
func excluded(l map[string]string) bool {
	return l[backupv1alpha1.LabelExclude] == "true"
}

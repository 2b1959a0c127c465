package controller

import (
	"cmp"
	"slices"
	"time"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
)

// What the backups say about each workspace now, for the per-workspace metrics (metrics.go).
// Pure: the collector reads the cache and passes the lists in.

// workspaceName is a DevWorkspace's namespace and name.
type workspaceName struct{ Namespace, Name string }

// workspaceState is one workspace under one policy, as its finished backups describe it.
type workspaceState struct {
	Namespace, Workspace, Policy string
	// LastSucceeded: the newest finished backup Succeeded, or was Skipped (nothing to back up).
	LastSucceeded bool
	// LastSuccess is the completion time of the newest Succeeded backup; zero if none.
	LastSuccess time.Time
	// SizeBytes is the compressed size of that backup's artifact.
	SizeBytes int64
}

// workspaceStates summarizes finished backups per (namespace, workspace, policy). Only backups of
// a workspace that exists now, with the same devworkspaceId (a workspace deleted and created
// again under its name starts afresh), and of a policy that exists count: a series goes away with
// its workspace, its policy or its last finished backup. Backups being deleted do not count. The
// result is sorted by namespace, workspace and policy.
func workspaceStates(backups []backupv1alpha1.WorkspaceBackup, workspaceIDs map[workspaceName]string,
	policies map[string]bool) []workspaceState {
	type key struct{ namespace, workspace, policy string }
	type newest struct {
		finished, success *backupv1alpha1.WorkspaceBackup
	}
	byKey := map[key]newest{}
	for i := range backups {
		b := &backups[i]
		if !b.Status.Phase.Finished() || b.Status.CompletionTime == nil || b.DeletionTimestamp != nil || !policies[b.Spec.PolicyName] {
			continue
		}
		id, exists := workspaceIDs[workspaceName{Namespace: b.Namespace, Name: b.Spec.WorkspaceName}]
		if !exists || backupWorkspaceID(b) != id {
			continue
		}
		k := key{b.Namespace, b.Spec.WorkspaceName, b.Spec.PolicyName}
		n := byKey[k]
		if newer(b, n.finished) {
			n.finished = b
		}
		if b.Status.Phase == backupv1alpha1.BackupSucceeded && newer(b, n.success) {
			n.success = b
		}
		byKey[k] = n
	}
	out := make([]workspaceState, 0, len(byKey))
	for k, n := range byKey {
		s := workspaceState{Namespace: k.namespace, Workspace: k.workspace, Policy: k.policy,
			LastSucceeded: n.finished.Status.Phase != backupv1alpha1.BackupFailed}
		if n.success != nil {
			s.LastSuccess = n.success.Status.CompletionTime.Time
			if a := n.success.Status.Artifact; a != nil {
				s.SizeBytes = a.SizeBytes
			}
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b workspaceState) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Workspace, b.Workspace), cmp.Compare(a.Policy, b.Policy))
	})
	return out
}

// newer: b finished after than (nil: nothing yet). Times have whole seconds: within one second
// the later created is newer, then the greater name, so the choice does not depend on the order
// of the list.
func newer(b, than *backupv1alpha1.WorkspaceBackup) bool {
	if than == nil {
		return true
	}
	if t, u := b.Status.CompletionTime.Time, than.Status.CompletionTime.Time; !t.Equal(u) {
		return t.After(u)
	}
	if t, u := b.CreationTimestamp.Time, than.CreationTimestamp.Time; !t.Equal(u) {
		return t.After(u)
	}
	return b.Name > than.Name
}

package controller

import (
	"context"
	"fmt"
	"strings"
	"sync"

	batchv1 "k8s.io/api/batch/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
)

// A restore writes the workspace's storage, so it never runs beside another mover of the same
// workspace: while a restore's Job is unfinished no backup or other restore of that workspace
// starts, and a restore waits for the movers already running. Backups of different workspaces on
// one common claim only read it and run together. Two checks make this hold:
//   - restores, which are rare, look at the live mover Jobs of the workspace (API server, not the
//     cache) before they launch, and hold a lock of this process from then until they finish;
//   - backups, which are many, look at that lock and at the cached Running restores (the lock is
//     lost on restart, the Running status is not).

// restoreLocks are the workspaces (namespace/name) whose restore is launching or running in this
// process, with the name of that restore.
type restoreLocks struct {
	mu   sync.Mutex
	held map[string]string
}

func newRestoreLocks() *restoreLocks { return &restoreLocks{held: map[string]string{}} }

func lockKey(namespace, name string) string { return namespace + "/" + name }

// acquire takes the workspace for restore; it returns the holder when another restore has it.
func (l *restoreLocks) acquire(namespace, workspace, restore string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	key := lockKey(namespace, workspace)
	if holder, ok := l.held[key]; ok && holder != restore {
		return holder
	}
	l.held[key] = restore
	return ""
}

// release frees the workspace if restore holds it.
func (l *restoreLocks) release(namespace, workspace, restore string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	key := lockKey(namespace, workspace)
	if l.held[key] == restore {
		delete(l.held, key)
	}
}

// releaseAll frees every workspace of namespace that restore holds (the restore is gone).
func (l *restoreLocks) releaseAll(namespace, restore string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for key, holder := range l.held {
		if holder == restore && strings.HasPrefix(key, namespace+"/") {
			delete(l.held, key)
		}
	}
}

func (l *restoreLocks) holder(namespace, workspace string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.held[lockKey(namespace, workspace)]
}

// restoreInProgress names the restore of b's workspace that owns its storage, or "".
func (r *WorkspaceBackupReconciler) restoreInProgress(ctx context.Context, b *backupv1alpha1.WorkspaceBackup) (string, error) {
	if holder := r.restores.holder(b.Namespace, b.Spec.WorkspaceName); holder != "" {
		// The restore's final status can reach this reconciler before the restore reconciler
		// frees its lock: a finished or deleted holder holds nothing.
		wr := &backupv1alpha1.WorkspaceRestore{}
		err := r.Get(ctx, client.ObjectKey{Namespace: b.Namespace, Name: holder}, wr)
		if client.IgnoreNotFound(err) != nil {
			return "", err
		}
		if err == nil && !wr.Status.Phase.Finished() {
			return holder, nil
		}
	}
	list := &backupv1alpha1.WorkspaceRestoreList{}
	if err := r.List(ctx, list, client.InNamespace(b.Namespace)); err != nil {
		return "", fmt.Errorf("list restores of namespace %s: %w", b.Namespace, err)
	}
	for i := range list.Items {
		wr := &list.Items[i]
		if wr.Spec.WorkspaceName == b.Spec.WorkspaceName && wr.Status.Phase == backupv1alpha1.RestoreRunning {
			return wr.Name, nil
		}
	}
	return "", nil
}

// otherMover names an unfinished mover Job of wr's workspace that wr did not create, read from
// the API server so a Job created a moment ago counts.
func otherMover(ctx context.Context, reader client.Reader, wr *backupv1alpha1.WorkspaceRestore) (string, error) {
	jobs := &batchv1.JobList{}
	labels := childLabels()
	labels[backupv1alpha1.LabelWorkspace] = childName(wr.Spec.WorkspaceName)
	if err := reader.List(ctx, jobs, client.InNamespace(wr.Namespace), client.MatchingLabels(labels)); err != nil {
		return "", fmt.Errorf("list mover Jobs of DevWorkspace %s/%s: %w", wr.Namespace, wr.Spec.WorkspaceName, err)
	}
	for i := range jobs.Items {
		job := &jobs.Items[i]
		// A Job being deleted still counts: its pod may run for its grace period.
		if state, _ := jobStateOf(job); state == jobActive && !ownedBy(job, wr) {
			return job.Name, nil
		}
	}
	return "", nil
}

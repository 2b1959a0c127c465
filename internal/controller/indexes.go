package controller

import (
	"context"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
)

// Field indexes on the cached objects.
const (
	// indexBackupWorkspace: WorkspaceBackup by spec.workspaceName (DevWorkspace -> its backups).
	indexBackupWorkspace = "spec.workspaceName"
)

func setupIndexes(mgr ctrl.Manager) error {
	ctx := context.Background()
	return mgr.GetFieldIndexer().IndexField(ctx, &backupv1alpha1.WorkspaceBackup{}, indexBackupWorkspace, func(o client.Object) []string {
		return []string{o.(*backupv1alpha1.WorkspaceBackup).Spec.WorkspaceName}
	})
}

package controller

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
)

// The one place that builds WorkspaceBackups: scheduled (backuppolicy_controller.go), pre-restore
// safety backups (workspacerestore_controller.go) and the labels of manual ones a person created
// (workspacebackup_controller.go) follow one labelling rule.

// newWorkspaceBackup is a WorkspaceBackup of one workspace for one policy, labelled and with its
// finalizer set, with no owner reference (deleting a policy, a workspace or a restore never
// deletes backup content) and no status (it reads Pending).
func newWorkspaceBackup(namespace, name, workspaceName, workspaceID, policyName string,
	trigger backupv1alpha1.Trigger) *backupv1alpha1.WorkspaceBackup {
	b := &backupv1alpha1.WorkspaceBackup{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec:       backupv1alpha1.WorkspaceBackupSpec{WorkspaceName: workspaceName, PolicyName: policyName},
	}
	labelBackup(b, trigger, workspaceID)
	return b
}

// labelBackup applies the labelling rule: the policy, the workspace (hashed to a label value's 63
// characters when longer), its id when known, the trigger (a trigger already set is kept), and the
// finalizer. It reports whether anything changed.
func labelBackup(b *backupv1alpha1.WorkspaceBackup, trigger backupv1alpha1.Trigger, workspaceID string) bool {
	want := map[string]string{
		backupv1alpha1.LabelPolicy:    b.Spec.PolicyName,
		backupv1alpha1.LabelWorkspace: childName(b.Spec.WorkspaceName), // a label value holds at most 63 characters
	}
	if workspaceID != "" {
		want[backupv1alpha1.LabelWorkspaceID] = workspaceID
	}
	if _, ok := b.Labels[backupv1alpha1.LabelTrigger]; !ok {
		want[backupv1alpha1.LabelTrigger] = string(trigger)
	}
	changed := false
	for k, v := range want {
		if b.Labels[k] != v {
			if b.Labels == nil {
				b.Labels = map[string]string{}
			}
			b.Labels[k], changed = v, true
		}
	}
	return controllerutil.AddFinalizer(b, backupv1alpha1.FinalizerArtifact) || changed
}

package controller

import (
	"cmp"
	"context"
	"slices"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
)

// defaultMaxConcurrentBackups is the API default of spec.maxConcurrentBackups.
const defaultMaxConcurrentBackups = 5

// throttle decides, in one place, whether a backup may start: at most maxConcurrentBackups
// Running backups per policy. The cache can lag behind the backups this process has just
// started, so admissions are remembered (expectations) until the cache shows the backup Running
// or finished; the cache can never cause over-admission.
type throttle struct {
	// expected holds the admissions the cache may not show yet (expectations.admitted).
	expected *expectations
}

// admit reports whether b may start now, and if so counts it against its policy. Waiting backups
// are served in order: manual and pre-restore first, then oldest first.
func (t *throttle) admit(ctx context.Context, c client.Client, policy *backupv1alpha1.BackupPolicy, b *backupv1alpha1.WorkspaceBackup) bool {
	// Read only: no deep copy of the policy's (thousands of) backups at every admission.
	list := &backupv1alpha1.WorkspaceBackupList{}
	if err := c.List(ctx, list, client.MatchingLabels{backupv1alpha1.LabelPolicy: policy.Name}, client.UnsafeDisableDeepCopy); err != nil {
		logf.FromContext(ctx).Error(err, "list backups of policy for the throttle", "policy", policy.Name)
		return false
	}
	t.expected.mu.Lock()
	defer t.expected.mu.Unlock()
	expected := t.expected.admitted[policy.Name]
	running := 0
	var queue []*backupv1alpha1.WorkspaceBackup
	for i := range list.Items {
		item := &list.Items[i]
		switch {
		case item.Status.Phase == backupv1alpha1.BackupRunning:
			running++
			delete(expected, item.UID) // the cache has caught up
		case item.Status.Phase.Finished():
			delete(expected, item.UID)
		case expected[item.UID]:
			running++ // started by us, cache not there yet
		case item.UID != b.UID && waitsForSlot(item):
			queue = append(queue, item)
		}
	}
	if expected[b.UID] {
		return true // already admitted (a retry after a failed status patch)
	}
	free := int(policy.Spec.MaxConcurrentBackups) - running
	ahead := 0
	for _, other := range queue {
		if servedBefore(other, b) {
			ahead++
		}
	}
	if free <= ahead {
		return false
	}
	if expected == nil {
		expected = map[types.UID]bool{}
		t.expected.admitted[policy.Name] = expected
	}
	expected[b.UID] = true
	return true
}

// release undoes an admission whose Job was not created.
func (t *throttle) release(b *backupv1alpha1.WorkspaceBackup) {
	t.expected.mu.Lock()
	defer t.expected.mu.Unlock()
	delete(t.expected.admitted[b.Spec.PolicyName], b.UID)
}

// waiting lists the first limit backups of a policy waiting for a slot, in the order they are
// served, to wake them when a slot frees up. Only those can start: waking all of them (thousands
// after a slot) would reconcile every one at every finished backup for nothing. limit is the
// policy's maxConcurrentBackups, more than the slots a finish frees, so a woken backup that does
// not take its slot (its workspace started) does not stall the queue; the requeue of waiting
// backups is the safety net.
func (t *throttle) waiting(ctx context.Context, c client.Client, policyName string, limit int) []ctrl.Request {
	list := &backupv1alpha1.WorkspaceBackupList{}
	if err := c.List(ctx, list, client.MatchingLabels{backupv1alpha1.LabelPolicy: policyName}, client.UnsafeDisableDeepCopy); err != nil {
		return nil
	}
	var queue []*backupv1alpha1.WorkspaceBackup
	for i := range list.Items {
		if waitsForSlot(&list.Items[i]) {
			queue = append(queue, &list.Items[i])
		}
	}
	slices.SortFunc(queue, compareQueue)
	reqs := make([]ctrl.Request, 0, min(limit, len(queue)))
	for _, b := range queue[:min(limit, len(queue))] {
		reqs = append(reqs, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(b)})
	}
	return reqs
}

// waitsForSlot: a new backup, or one that was told to wait for a concurrency slot.
func waitsForSlot(b *backupv1alpha1.WorkspaceBackup) bool {
	if isNewBackup(b) {
		return true
	}
	if b.Status.Phase != backupv1alpha1.BackupPending {
		return false
	}
	ready := meta.FindStatusCondition(b.Status.Conditions, backupv1alpha1.ConditionReady)
	return ready != nil && ready.Reason == backupv1alpha1.ReasonWaitingForConcurrencySlot
}

// isNewBackup: no reconciler has written its status yet (the schema defaults the phase to
// Pending, older objects may have none).
func isNewBackup(b *backupv1alpha1.WorkspaceBackup) bool {
	return len(b.Status.Conditions) == 0 && (b.Status.Phase == "" || b.Status.Phase == backupv1alpha1.BackupPending)
}

// servedBefore orders waiting backups: manual and pre-restore before scheduled, then by age.
func servedBefore(a, b *backupv1alpha1.WorkspaceBackup) bool {
	return compareQueue(a, b) < 0
}

// compareQueue runs for every waiting backup at every admission, and the backups of one slot
// share their creation second: the tie-break compares namespace and name without concatenating
// them (that allocated two strings per comparison).
func compareQueue(a, b *backupv1alpha1.WorkspaceBackup) int {
	return cmp.Or(
		cmp.Compare(triggerRank(a), triggerRank(b)),
		a.CreationTimestamp.Compare(b.CreationTimestamp.Time),
		cmp.Compare(a.Namespace, b.Namespace),
		cmp.Compare(a.Name, b.Name),
	)
}

func triggerRank(b *backupv1alpha1.WorkspaceBackup) int {
	if backupv1alpha1.Trigger(b.Labels[backupv1alpha1.LabelTrigger]) == backupv1alpha1.TriggerScheduled {
		return 1
	}
	return 0
}

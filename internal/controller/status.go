package controller

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
)

// outcome is the state of an object as the Ready and Stalled conditions express it.
type outcome struct {
	ready   bool   // done and good
	stalled bool   // cannot progress without a person
	reason  string // a constant from api/v1alpha1
	message string
}

// record writes an outcome into the message and conditions a status has besides its phase.
func record(message *string, conditions *[]metav1.Condition, generation int64, o outcome) {
	*message = o.message
	setConditions(conditions, generation, o)
}

// finishEvent tells what a finished backup or restore came to: the Event reason is the kind
// and phase (BackupSucceeded, RestoreFailed, ...), a Warning when it failed.
func finishEvent(recorder events.EventRecorder, obj runtime.Object, kind, phase string, failed bool, o outcome) {
	eventType := corev1.EventTypeNormal
	if failed {
		eventType = corev1.EventTypeWarning
	}
	recorder.Eventf(obj, nil, eventType, kind+phase, "Finish", "%s: %s", o.reason, o.message)
}

// setConditions writes Ready and Stalled for an outcome, both with the observed generation.
// Stalled is always present so `kubectl wait --for=condition=Stalled=false` works.
func setConditions(conditions *[]metav1.Condition, generation int64, o outcome) {
	ready := metav1.ConditionFalse
	if o.ready {
		ready = metav1.ConditionTrue
	}
	meta.SetStatusCondition(conditions, metav1.Condition{
		Type: backupv1alpha1.ConditionReady, Status: ready, Reason: o.reason, Message: o.message,
		ObservedGeneration: generation,
	})
	stalled := metav1.Condition{
		Type: backupv1alpha1.ConditionStalled, Status: metav1.ConditionFalse, Reason: o.reason,
		Message: "", ObservedGeneration: generation,
	}
	if o.stalled {
		stalled.Status = metav1.ConditionTrue
		stalled.Message = o.message
	}
	meta.SetStatusCondition(conditions, stalled)
}

// patchStatus writes the status change of obj against before, with optimistic locking: a
// decision taken on a stale cached copy (for example the cache not showing our own last patch yet)
// must never overwrite a newer status, such as a final phase. stale reports such a conflict: then
// nothing was written, and the update event of the newer version wakes the reconciler again.
func patchStatus(ctx context.Context, c client.Client, obj, before client.Object) (stale bool, err error) {
	err = c.Status().Patch(ctx, obj, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
	switch {
	case apierrors.IsConflict(err):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("patch status: %w", err)
	}
	return false, nil
}

// requestsFor turns the items keep selects into reconcile requests (for watch mapping functions).
func requestsFor[T any, P interface {
	*T
	client.Object
}](items []T, keep func(P) bool) []ctrl.Request {
	var reqs []ctrl.Request
	for i := range items {
		if item := P(&items[i]); keep(item) {
			reqs = append(reqs, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(item)})
		}
	}
	return reqs
}

// readyReason is the reason of the Ready condition: a constant of api/v1alpha1 or a mover reason.
func readyReason(conditions []metav1.Condition) string {
	if c := meta.FindStatusCondition(conditions, backupv1alpha1.ConditionReady); c != nil {
		return c.Reason
	}
	return ""
}

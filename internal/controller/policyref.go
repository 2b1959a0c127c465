package controller

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
)

// getApplicablePolicy returns the named policy if its namespaceSelector selects namespace;
// otherwise the outcome that fails a backup or restore (PolicyNotFound, PolicyNotApplicable).
// Transient read errors also come back as an outcome-less nil policy with a nil outcome never:
// they are reported as PolicyNotFound only when the object is really absent.
func getApplicablePolicy(ctx context.Context, c client.Client, name, namespace string) (*backupv1alpha1.BackupPolicy, *outcome) {
	policy := &backupv1alpha1.BackupPolicy{}
	if err := c.Get(ctx, client.ObjectKey{Name: name}, policy); err != nil {
		msg := fmt.Sprintf("spec.policyName: BackupPolicy %s not found", name)
		if !apierrors.IsNotFound(err) {
			msg = fmt.Sprintf("spec.policyName: reading BackupPolicy %s: %v", name, err)
		}
		return nil, &outcome{stalled: true, reason: backupv1alpha1.ReasonPolicyNotFound, message: msg}
	}
	ns := &corev1.Namespace{}
	if err := c.Get(ctx, client.ObjectKey{Name: namespace}, ns); err != nil {
		return nil, &outcome{stalled: true, reason: backupv1alpha1.ReasonPolicyNotApplicable,
			message: fmt.Sprintf("reading Namespace %s: %v", namespace, err)}
	}
	if ok, err := selects(policy.Spec.NamespaceSelector, ns.Labels); err != nil || !ok {
		return nil, &outcome{stalled: true, reason: backupv1alpha1.ReasonPolicyNotApplicable, message: fmt.Sprintf(
			"spec.policyName: BackupPolicy %s does not apply to namespace %s (its spec.namespaceSelector does not select it)",
			name, namespace)}
	}
	return policy, nil
}

// selects reports whether a label selector (nil or empty = everything) matches a label set.
func selects(selector *metav1.LabelSelector, set map[string]string) (bool, error) {
	if selector == nil {
		return true, nil
	}
	s, err := metav1.LabelSelectorAsSelector(selector)
	if err != nil {
		return false, err
	}
	return s.Matches(labels.Set(set)), nil
}

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

// getApplicablePolicy returns the named policy if its namespaceSelector selects namespace. A
// policy or namespace that does not exist, or a selector that does not select the namespace, is the
// terminal PolicyNotFound or PolicyNotApplicable; a failed read is transient.
func getApplicablePolicy(ctx context.Context, c client.Client, reader client.Reader, name, namespace string) (
	*backupv1alpha1.BackupPolicy, error) {
	policy := &backupv1alpha1.BackupPolicy{}
	if err := getConfirmed(ctx, c, reader, client.ObjectKey{Name: name}, policy); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, terminalf(backupv1alpha1.ReasonPolicyNotFound, "spec.policyName: BackupPolicy %s not found", name)
		}
		return nil, fmt.Errorf("read BackupPolicy %s: %w", name, err)
	}
	ns := &corev1.Namespace{}
	if err := getConfirmed(ctx, c, reader, client.ObjectKey{Name: namespace}, ns); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, terminalf(backupv1alpha1.ReasonPolicyNotApplicable, "namespace %s not found", namespace)
		}
		return nil, fmt.Errorf("read Namespace %s: %w", namespace, err)
	}
	if ok, err := selects(policy.Spec.NamespaceSelector, ns.Labels); err != nil || !ok {
		return nil, terminalf(backupv1alpha1.ReasonPolicyNotApplicable,
			"spec.policyName: BackupPolicy %s does not apply to namespace %s (its spec.namespaceSelector does not select it)",
			name, namespace)
	}
	return policy, nil
}

// getConfirmed reads obj from the cache and, when the cache does not have it, from the API server:
// an object created a moment ago is not missing, and "not found" ends a backup or restore.
func getConfirmed(ctx context.Context, c client.Client, reader client.Reader, key client.ObjectKey, obj client.Object) error {
	err := c.Get(ctx, key, obj)
	if apierrors.IsNotFound(err) {
		err = reader.Get(ctx, key, obj)
	}
	return err
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

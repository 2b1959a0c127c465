package controller

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
)

// namespaceAuthSecretName is the Secret an admin may create in a workspace namespace with
// credentials scoped to that namespace's repository; it wins over the policy's Secret.
const namespaceAuthSecretName = "dwbackup-registry-auth"

// credentials is the Secret a mover Job mounts.
type credentials struct {
	SecretName string // "" = anonymous
	WithCA     bool
	// Copied is true for a per-backup copy that the operator deletes when the Job ends.
	Copied bool
}

// credentialsError is a missing or invalid Secret or CA; it names the field and fails the backup.
type credentialsError struct{ msg string }

func (e *credentialsError) Error() string { return e.msg }

// ensureCredentials returns the Secret the mover mounts: the namespace's own
// dwbackup-registry-auth, else a copy (named copyName, owned by owner) of the policy's
// authSecretName and CA bundle from the operator namespace. Secrets are read with the uncached
// reader (RBAC: get by name only) and never listed or watched.
func ensureCredentials(ctx context.Context, c client.Client, reader client.Reader, operatorNamespace string,
	policy *backupv1alpha1.BackupPolicy, owner client.Object, copyName string) (credentials, error) {
	reg := policy.Spec.Registry
	withCA := reg.CABundle != nil

	own := &corev1.Secret{}
	err := reader.Get(ctx, client.ObjectKey{Namespace: owner.GetNamespace(), Name: namespaceAuthSecretName}, own)
	switch {
	case err == nil:
		if _, ok := own.Data[credentialsConfigKey]; !ok {
			return credentials{}, &credentialsError{fmt.Sprintf("Secret %s/%s has no %s key", own.Namespace, own.Name, credentialsConfigKey)}
		}
		if _, ok := own.Data[credentialsCAKey]; withCA && !ok {
			return credentials{}, &credentialsError{fmt.Sprintf(
				"spec.registry.caBundle is set but Secret %s/%s has no %s key", own.Namespace, own.Name, credentialsCAKey)}
		}
		return credentials{SecretName: own.Name, WithCA: withCA}, nil
	case !apierrors.IsNotFound(err):
		return credentials{}, fmt.Errorf("get Secret %s/%s: %w", owner.GetNamespace(), namespaceAuthSecretName, err)
	}

	if reg.AuthSecretName == "" && !withCA {
		return credentials{}, nil
	}
	data := map[string][]byte{}
	if reg.AuthSecretName != "" {
		src := &corev1.Secret{}
		if err := reader.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: reg.AuthSecretName}, src); err != nil {
			if apierrors.IsNotFound(err) {
				return credentials{}, &credentialsError{fmt.Sprintf("spec.registry.authSecretName: Secret %s/%s not found",
					operatorNamespace, reg.AuthSecretName)}
			}
			return credentials{}, fmt.Errorf("get Secret %s/%s: %w", operatorNamespace, reg.AuthSecretName, err)
		}
		cfg, ok := src.Data[credentialsConfigKey]
		if !ok {
			return credentials{}, &credentialsError{fmt.Sprintf("spec.registry.authSecretName: Secret %s/%s has no %s key",
				operatorNamespace, reg.AuthSecretName, credentialsConfigKey)}
		}
		data[credentialsConfigKey] = cfg
	} else {
		// The mover reads a config.json whenever --auth-dir is given; an empty one means anonymous.
		data[credentialsConfigKey] = []byte(`{"auths":{}}`)
	}
	if withCA {
		ca, err := readCABundle(ctx, reader, operatorNamespace, reg.CABundle)
		if err != nil {
			return credentials{}, err
		}
		data[credentialsCAKey] = ca
	}

	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: copyName, Namespace: owner.GetNamespace(), Labels: childLabels()},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       data,
	}
	secret.Labels[labelOwnerUID] = string(owner.GetUID())
	if err := controllerutil.SetControllerReference(owner, secret, c.Scheme()); err != nil {
		return credentials{}, err
	}
	if err := c.Create(ctx, secret); err != nil && !apierrors.IsAlreadyExists(err) {
		return credentials{}, fmt.Errorf("create Secret copy %s/%s: %w", secret.Namespace, secret.Name, err)
	}
	return credentials{SecretName: copyName, WithCA: withCA, Copied: true}, nil
}

// readCABundle reads the CA ConfigMap key from the operator namespace.
func readCABundle(ctx context.Context, reader client.Reader, namespace string, src *backupv1alpha1.CABundleSource) ([]byte, error) {
	cm := &corev1.ConfigMap{}
	if err := reader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: src.ConfigMapName}, cm); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, &credentialsError{fmt.Sprintf("spec.registry.caBundle.configMapName: ConfigMap %s/%s not found", namespace, src.ConfigMapName)}
		}
		return nil, fmt.Errorf("get ConfigMap %s/%s: %w", namespace, src.ConfigMapName, err)
	}
	ca, ok := cm.Data[src.Key]
	if !ok || ca == "" {
		return nil, &credentialsError{fmt.Sprintf("spec.registry.caBundle.key: ConfigMap %s/%s has no key %q", namespace, src.ConfigMapName, src.Key)}
	}
	return []byte(ca), nil
}

// deleteCredentialsCopy removes a per-backup Secret copy; it is gone already when absent.
func deleteCredentialsCopy(ctx context.Context, c client.Client, namespace, name string) error {
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace}}
	if err := c.Delete(ctx, secret); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete Secret copy %s/%s: %w", namespace, name, err)
	}
	return nil
}

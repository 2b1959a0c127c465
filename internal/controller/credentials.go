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
	"github.com/dwbackup/devworkspace-backup-operator/internal/registry"
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

// registryAuth is what a workspace namespace's registry access uses.
type registryAuth struct {
	// NamespaceSecret is set when the namespace has its own dwbackup-registry-auth.
	NamespaceSecret string
	Config          []byte // docker config.json; nil = anonymous
	CA              []byte // PEM; nil = system roots only
}

// readRegistryAuth reads the namespace's own dwbackup-registry-auth, else the policy's
// authSecretName and CA bundle from the operator namespace. Secrets are read with the uncached
// reader (RBAC: get by name only) and never listed or watched.
func readRegistryAuth(ctx context.Context, reader client.Reader, operatorNamespace string,
	policy *backupv1alpha1.BackupPolicy, namespace string) (registryAuth, error) {
	reg := policy.Spec.Registry
	withCA := reg.CABundle != nil

	own := &corev1.Secret{}
	err := reader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: namespaceAuthSecretName}, own)
	switch {
	case err == nil:
		cfg, ok := own.Data[credentialsConfigKey]
		if !ok {
			return registryAuth{}, &credentialsError{fmt.Sprintf("Secret %s/%s has no %s key", own.Namespace, own.Name, credentialsConfigKey)}
		}
		ca, ok := own.Data[credentialsCAKey]
		if withCA && !ok {
			return registryAuth{}, &credentialsError{fmt.Sprintf(
				"spec.registry.caBundle is set but Secret %s/%s has no %s key", own.Namespace, own.Name, credentialsCAKey)}
		}
		return registryAuth{NamespaceSecret: own.Name, Config: cfg, CA: ca}, nil
	case !apierrors.IsNotFound(err):
		return registryAuth{}, fmt.Errorf("get Secret %s/%s: %w", namespace, namespaceAuthSecretName, err)
	}

	auth := registryAuth{}
	if reg.AuthSecretName != "" {
		src := &corev1.Secret{}
		if err := reader.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: reg.AuthSecretName}, src); err != nil {
			if apierrors.IsNotFound(err) {
				return registryAuth{}, &credentialsError{fmt.Sprintf("spec.registry.authSecretName: Secret %s/%s not found",
					operatorNamespace, reg.AuthSecretName)}
			}
			return registryAuth{}, fmt.Errorf("get Secret %s/%s: %w", operatorNamespace, reg.AuthSecretName, err)
		}
		cfg, ok := src.Data[credentialsConfigKey]
		if !ok {
			return registryAuth{}, &credentialsError{fmt.Sprintf("spec.registry.authSecretName: Secret %s/%s has no %s key",
				operatorNamespace, reg.AuthSecretName, credentialsConfigKey)}
		}
		auth.Config = cfg
	}
	if withCA {
		ca, err := readCABundle(ctx, reader, operatorNamespace, reg.CABundle)
		if err != nil {
			return registryAuth{}, err
		}
		auth.CA = ca
	}
	return auth, nil
}

// ensureCredentials returns the Secret the mover mounts: the namespace's own
// dwbackup-registry-auth, else a copy (named copyName, owned by owner) of the policy's
// credentials and CA bundle, which the reconciler deletes when the Job ends.
func ensureCredentials(ctx context.Context, c client.Client, reader client.Reader, operatorNamespace string,
	policy *backupv1alpha1.BackupPolicy, owner client.Object, copyName string) (credentials, error) {
	auth, err := readRegistryAuth(ctx, reader, operatorNamespace, policy, owner.GetNamespace())
	if err != nil {
		return credentials{}, err
	}
	withCA := policy.Spec.Registry.CABundle != nil
	if auth.NamespaceSecret != "" {
		return credentials{SecretName: auth.NamespaceSecret, WithCA: withCA}, nil
	}
	if auth.Config == nil && auth.CA == nil {
		return credentials{}, nil
	}
	// The mover reads a config.json whenever --auth-dir is given; an empty one means anonymous.
	data := map[string][]byte{credentialsConfigKey: []byte(`{"auths":{}}`)}
	if auth.Config != nil {
		data[credentialsConfigKey] = auth.Config
	}
	if auth.CA != nil {
		data[credentialsCAKey] = auth.CA
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

// newRegistryClient opens the registry for the operator itself (artifact deletion, the digest of
// a result the mover could not report) with the same credentials a mover in namespace would use.
// It does not retry on its own: the reconciler's requeue is the retry, bounded by the caller.
func newRegistryClient(ctx context.Context, reader client.Reader, operatorNamespace string,
	policy *backupv1alpha1.BackupPolicy, namespace string) (*registry.Client, error) {
	auth, err := readRegistryAuth(ctx, reader, operatorNamespace, policy, namespace)
	if err != nil {
		return nil, err
	}
	return registry.New(registry.Options{
		DockerConfigJSON: auth.Config, CAPEM: auth.CA, Insecure: policy.Spec.Registry.Insecure,
		UserAgent: eventReporter, Retry: registry.Backoff{Attempts: 1},
	})
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
	if bin, isBinary := cm.BinaryData[src.Key]; !ok && isBinary {
		ca, ok = string(bin), true
	}
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

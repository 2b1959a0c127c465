package controller

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
	"github.com/dwbackup/devworkspace-backup-operator/internal/registry"
)

// namespaceAuthSecretName is the Secret an admin may create in a workspace namespace with
// credentials scoped to that namespace's repository; it wins over the policy's Secret.
const namespaceAuthSecretName = "dwbackup-registry-auth"

// defaultCAKey is the ConfigMap key of a caBundle without one (the schema defaults it too).
const defaultCAKey = "ca.crt"

// credentials is the Secret a mover Job mounts.
type credentials struct {
	SecretName string // "" = anonymous
	WithCA     bool
	// CopyUID is set for a per-backup copy that the operator deletes when the Job ends.
	CopyUID types.UID
}

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
			return registryAuth{}, terminalf(backupv1alpha1.ReasonInvalidSecret, "Secret %s/%s has no %s key", own.Namespace, own.Name, credentialsConfigKey)
		}
		ca, ok := own.Data[credentialsCAKey]
		if withCA && !ok {
			return registryAuth{}, terminalf(backupv1alpha1.ReasonCABundleNotFound,
				"spec.registry.caBundle is set but Secret %s/%s has no %s key", own.Namespace, own.Name, credentialsCAKey)
		}
		return registryAuth{NamespaceSecret: own.Name, Config: cfg, CA: ca}, nil
	case !apierrors.IsNotFound(err):
		return registryAuth{}, fmt.Errorf("get Secret %s/%s: %w", namespace, namespaceAuthSecretName, err)
	}

	cfg, ca, err := readPolicyCredentials(ctx, reader, operatorNamespace, reg)
	return registryAuth{Config: cfg, CA: ca}, err
}

// readPolicyCredentials is the one reader of a policy's registry credentials, used by policy
// validation and by every backup and restore, so the same cause reads the same reason everywhere:
// the authSecretName Secret (SecretNotFound; InvalidSecret when it is not a dockerconfigjson
// Secret with its key) and the CA bundle ConfigMap (CABundleNotFound), both in the operator
// namespace, read with the uncached reader (Secrets are never listed or watched). Other read
// errors are transient.
func readPolicyCredentials(ctx context.Context, reader client.Reader, operatorNamespace string,
	reg backupv1alpha1.RegistrySpec) (config, ca []byte, err error) {
	if reg.AuthSecretName != "" {
		secret, err := readDockerConfigSecret(ctx, reader, operatorNamespace, reg.AuthSecretName, "spec.registry.authSecretName")
		if err != nil {
			return nil, nil, err
		}
		config = secret.Data[corev1.DockerConfigJsonKey]
	}
	if reg.CABundle != nil {
		if ca, err = readCABundle(ctx, reader, operatorNamespace, reg.CABundle); err != nil {
			return nil, nil, err
		}
	}
	return config, ca, nil
}

// readDockerConfigSecret reads a kubernetes.io/dockerconfigjson Secret the policy names in field:
// SecretNotFound, or InvalidSecret when it has another type or no .dockerconfigjson key. Other read
// errors are transient.
func readDockerConfigSecret(ctx context.Context, reader client.Reader, namespace, name, field string) (*corev1.Secret, error) {
	secret := &corev1.Secret{}
	key := client.ObjectKey{Namespace: namespace, Name: name}
	if err := reader.Get(ctx, key, secret); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, terminalf(backupv1alpha1.ReasonSecretNotFound, "%s: Secret %s not found", field, key)
		}
		return nil, fmt.Errorf("reading Secret %s: %w", key, err)
	}
	if secret.Type != corev1.SecretTypeDockerConfigJson {
		return nil, terminalf(backupv1alpha1.ReasonInvalidSecret, "%s: Secret %s has type %q, want %q",
			field, key, secret.Type, corev1.SecretTypeDockerConfigJson)
	}
	if len(secret.Data[corev1.DockerConfigJsonKey]) == 0 {
		return nil, terminalf(backupv1alpha1.ReasonInvalidSecret, "%s: Secret %s has no %s key", field, key, corev1.DockerConfigJsonKey)
	}
	return secret, nil
}

// ensureCredentials returns the Secret the mover mounts: the namespace's own
// dwbackup-registry-auth, else a copy of the policy's credentials and CA bundle owned by owner and
// labelled with its UID, which the reconciler deletes when the Job ends. The copy's name is
// generated by the API server: a Secret of the namespace can never be taken for it.
func ensureCredentials(ctx context.Context, c client.Client, reader client.Reader, operatorNamespace string,
	policy *backupv1alpha1.BackupPolicy, owner client.Object) (credentials, error) {
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
		ObjectMeta: metav1.ObjectMeta{GenerateName: childName(owner.GetName(), "registry") + "-", Namespace: owner.GetNamespace(),
			Labels: childLabels()},
		Type: corev1.SecretTypeDockerConfigJson,
		Data: data,
	}
	secret.Labels[labelOwnerUID] = string(owner.GetUID())
	if err := controllerutil.SetControllerReference(owner, secret, c.Scheme()); err != nil {
		return credentials{}, err
	}
	if err := c.Create(ctx, secret); err != nil {
		return credentials{}, fmt.Errorf("create Secret copy in %s: %w", secret.Namespace, err)
	}
	return credentials{SecretName: secret.Name, WithCA: withCA, CopyUID: secret.UID}, nil
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
	return registryClientFor(auth, policy.Spec.Registry.Insecure)
}

// newPolicyRegistryClient opens the registry with the policy's own credentials (the history
// import lists the whole repository, which no namespace's credentials cover).
func newPolicyRegistryClient(ctx context.Context, reader client.Reader, operatorNamespace string,
	policy *backupv1alpha1.BackupPolicy) (*registry.Client, error) {
	config, ca, err := readPolicyCredentials(ctx, reader, operatorNamespace, policy.Spec.Registry)
	if err != nil {
		return nil, err
	}
	return registryClientFor(registryAuth{Config: config, CA: ca}, policy.Spec.Registry.Insecure)
}

// registryClientFor is the operator's registry client for some credentials.
func registryClientFor(auth registryAuth, insecure bool) (*registry.Client, error) {
	reg, err := registry.New(registry.Options{
		DockerConfigJSON: auth.Config, CAPEM: auth.CA, Insecure: insecure,
		UserAgent: eventReporter, Retry: registry.Backoff{Attempts: 1},
	})
	if err != nil {
		// Only the configuration can fail here (a CA or credentials that do not parse): no retry fixes it.
		return nil, terminalf(string(registry.ReasonOf(err)), "%v", err)
	}
	return reg, nil
}

// readCABundle reads the CA ConfigMap key from the operator namespace.
func readCABundle(ctx context.Context, reader client.Reader, namespace string, src *backupv1alpha1.CABundleSource) ([]byte, error) {
	cm := &corev1.ConfigMap{}
	if err := reader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: src.ConfigMapName}, cm); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, terminalf(backupv1alpha1.ReasonCABundleNotFound, "spec.registry.caBundle.configMapName: ConfigMap %s/%s not found", namespace, src.ConfigMapName)
		}
		return nil, fmt.Errorf("get ConfigMap %s/%s: %w", namespace, src.ConfigMapName, err)
	}
	key := src.Key
	if key == "" {
		key = defaultCAKey
	}
	ca, ok := cm.Data[key]
	if bin, isBinary := cm.BinaryData[key]; !ok && isBinary {
		ca, ok = string(bin), true
	}
	if !ok || ca == "" {
		return nil, terminalf(backupv1alpha1.ReasonCABundleNotFound, "spec.registry.caBundle.key: ConfigMap %s/%s has no key %q",
			namespace, src.ConfigMapName, key)
	}
	return []byte(ca), nil
}

// deleteCredentialsCopy removes one Secret copy, with the UID it was created with as precondition.
func deleteCredentialsCopy(ctx context.Context, c client.Client, namespace string, creds credentials) error {
	if creds.CopyUID == "" {
		return nil
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: creds.SecretName, Namespace: namespace}}
	err := c.Delete(ctx, secret, client.Preconditions{UID: &creds.CopyUID})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("delete Secret copy %s/%s: %w", namespace, creds.SecretName, err)
	}
	return nil
}

// deleteCredentialsCopies removes every Secret copy made for owner: the API server selects them
// by the owner-UID label, so no Secret of the namespace is touched by its name, and a copy left by
// an attempt that crashed before its Job existed goes too (RBAC: deletecollection, no get or list).
func deleteCredentialsCopies(ctx context.Context, c client.Client, owner client.Object) error {
	err := c.DeleteAllOf(ctx, &corev1.Secret{}, client.InNamespace(owner.GetNamespace()),
		client.MatchingLabels{labelOwnerUID: string(owner.GetUID()), backupv1alpha1.LabelManagedBy: backupv1alpha1.ManagedByValue})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete Secret copies of %s %s/%s: %w", kindOf(owner), owner.GetNamespace(), owner.GetName(), err)
	}
	return nil
}

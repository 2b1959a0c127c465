package controller

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
)

// defaultCAKey is the ConfigMap key of a caBundle without one (the schema defaults it too).
const defaultCAKey = "ca.crt"

// validPolicy is a policy spec that passed every check beyond the schema, parsed once.
type validPolicy struct {
	schedule  cron.Schedule
	location  *time.Location
	selectors selectors
	deadline  time.Duration
}

// descriptors are the only @-schedules the API accepts (robfig also knows @every, @midnight and
// @annually).
var descriptors = map[string]bool{"@yearly": true, "@monthly": true, "@weekly": true, "@daily": true, "@hourly": true}

// validateSpec checks what the schema cannot (or what an older schema let through). It reads
// nothing: the registry references are checked by checkRegistryRefs.
func validateSpec(spec *backupv1alpha1.BackupPolicySpec) (validPolicy, error) {
	var v validPolicy
	var err error
	if v.schedule, err = parseSchedule(spec.Schedule); err != nil {
		return v, err
	}
	if v.location, err = loadTimeZone(spec.TimeZone); err != nil {
		return v, err
	}
	if v.selectors, err = parseSelectors(spec.NamespaceSelector, spec.WorkspaceSelector); err != nil {
		return v, err
	}
	v.deadline = defaultStartingDeadline
	if spec.StartingDeadlineSeconds != nil {
		v.deadline = time.Duration(*spec.StartingDeadlineSeconds) * time.Second
	}
	return v, nil
}

// parseSchedule parses a 5-field cron expression or one of the accepted descriptors.
func parseSchedule(spec string) (cron.Schedule, error) {
	s := strings.TrimSpace(spec)
	switch {
	case strings.HasPrefix(s, "TZ=") || strings.HasPrefix(s, "CRON_TZ="):
		return nil, terminalf(backupv1alpha1.ReasonInvalidSchedule,
			"spec.schedule: %q must not carry a time zone prefix; set spec.timeZone instead", spec)
	case strings.HasPrefix(s, "@") && !descriptors[s]:
		return nil, terminalf(backupv1alpha1.ReasonInvalidSchedule,
			"spec.schedule: %q is not supported; use a 5-field cron expression or @yearly, @monthly, @weekly, @daily, @hourly", spec)
	}
	sched, err := cron.ParseStandard(s)
	if err != nil {
		return nil, terminalf(backupv1alpha1.ReasonInvalidSchedule, "spec.schedule: %q is not a valid cron expression: %v", spec, err)
	}
	// "0 0 30 2 *" parses but never fires: say so rather than wait forever.
	if sched.Next(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)).IsZero() {
		return nil, terminalf(backupv1alpha1.ReasonInvalidSchedule, "spec.schedule: %q never matches a date", spec)
	}
	return sched, nil
}

// loadTimeZone loads an IANA zone; empty means UTC. "Local" is refused: the operator's own zone
// would make the schedule depend on where the manager runs.
func loadTimeZone(name string) (*time.Location, error) {
	if name == "" {
		return time.UTC, nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil || name == "Local" {
		return nil, terminalf(backupv1alpha1.ReasonInvalidTimeZone, "spec.timeZone: %q is not a known IANA time zone", name)
	}
	return loc, nil
}

// parseSelectors converts both selectors; nil and empty select everything.
func parseSelectors(namespace, workspace *metav1.LabelSelector) (selectors, error) {
	ns, err := metav1.LabelSelectorAsSelector(namespace)
	if err != nil {
		return selectors{}, terminalf(backupv1alpha1.ReasonInvalidSelector, "spec.namespaceSelector: %v", err)
	}
	ws, err := metav1.LabelSelectorAsSelector(workspace)
	if err != nil {
		return selectors{}, terminalf(backupv1alpha1.ReasonInvalidSelector, "spec.workspaceSelector: %v", err)
	}
	// LabelSelectorAsSelector maps nil to Nothing; the API says unset selects all.
	if namespace == nil {
		ns = labels.Everything()
	}
	if workspace == nil {
		ws = labels.Everything()
	}
	return selectors{Namespace: ns, Workspace: ws}, nil
}

// checkRegistryRefs reads the registry Secret and CA ConfigMap in the operator namespace with the
// uncached reader (Secrets are never listed or watched). Missing or malformed objects are stalled
// errors; any other read error is returned as is, to be retried.
func checkRegistryRefs(ctx context.Context, reader client.Reader, namespace string, reg backupv1alpha1.RegistrySpec) error {
	if reg.AuthSecretName != "" {
		secret := &corev1.Secret{}
		key := client.ObjectKey{Namespace: namespace, Name: reg.AuthSecretName}
		if err := reader.Get(ctx, key, secret); err != nil {
			if apierrors.IsNotFound(err) {
				return terminalf(backupv1alpha1.ReasonSecretNotFound, "spec.registry.authSecretName: Secret %s not found", key)
			}
			return fmt.Errorf("reading Secret %s: %w", key, err)
		}
		if err := checkDockerConfigSecret(secret); err != nil {
			return err
		}
	}
	if ca := reg.CABundle; ca != nil {
		cm := &corev1.ConfigMap{}
		key := client.ObjectKey{Namespace: namespace, Name: ca.ConfigMapName}
		if err := reader.Get(ctx, key, cm); err != nil {
			if apierrors.IsNotFound(err) {
				return terminalf(backupv1alpha1.ReasonCABundleNotFound, "spec.registry.caBundle.configMapName: ConfigMap %s not found", key)
			}
			return fmt.Errorf("reading ConfigMap %s: %w", key, err)
		}
		caKey := ca.Key
		if caKey == "" {
			caKey = defaultCAKey
		}
		_, inData := cm.Data[caKey]
		_, inBinary := cm.BinaryData[caKey]
		if !inData && !inBinary {
			return terminalf(backupv1alpha1.ReasonCABundleNotFound, "spec.registry.caBundle.key: ConfigMap %s has no key %q", key, caKey)
		}
	}
	return nil
}

// checkDockerConfigSecret accepts only what the mover can mount as config.json.
func checkDockerConfigSecret(secret *corev1.Secret) error {
	key := client.ObjectKeyFromObject(secret)
	if secret.Type != corev1.SecretTypeDockerConfigJson {
		return terminalf(backupv1alpha1.ReasonInvalidSecret, "spec.registry.authSecretName: Secret %s has type %q, want %q",
			key, secret.Type, corev1.SecretTypeDockerConfigJson)
	}
	if len(secret.Data[corev1.DockerConfigJsonKey]) == 0 {
		return terminalf(backupv1alpha1.ReasonInvalidSecret, "spec.registry.authSecretName: Secret %s has no %s key",
			key, corev1.DockerConfigJsonKey)
	}
	return nil
}

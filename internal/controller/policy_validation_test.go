package controller

import (
	"context"
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
)

// wantStalled checks err is a terminalError with the reason and a message naming the field.
func wantStalled(t *testing.T, err error, reason, field string) {
	t.Helper()
	var s *terminalError
	if !errors.As(err, &s) {
		t.Fatalf("error %v, want a stalled error %s", err, reason)
	}
	if s.reason != reason || !strings.HasPrefix(s.message, field+": ") {
		t.Errorf("reason %s, message %q; want %s, a message starting with %q", s.reason, s.message, reason, field)
	}
}

func TestParseSchedule(t *testing.T) {
	for _, tt := range []struct {
		spec string
		ok   bool
	}{
		{"0 2 * * *", true}, {"*/15 * * * 1-5", true}, {"@hourly", true}, {"@daily", true}, {"@weekly", true},
		{"@monthly", true}, {"@yearly", true}, {" 0 2 * * * ", true},
		{"@every 1h", false}, {"@midnight", false}, {"@annually", false}, {"@reboot", false},
		{"TZ=Europe/Prague 0 2 * * *", false}, {"CRON_TZ=UTC 0 2 * * *", false},
		{"0 2 * *", false}, {"0 0 2 * * *", false}, {"61 * * * *", false}, {"nonsense", false},
		{"0 0 30 2 *", false}, // parses, never fires
	} {
		t.Run(tt.spec, func(t *testing.T) {
			_, err := parseSchedule(tt.spec)
			if tt.ok && err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			if !tt.ok {
				wantStalled(t, err, backupv1alpha1.ReasonInvalidSchedule, "spec.schedule")
			}
		})
	}
}

func TestLoadTimeZone(t *testing.T) {
	for _, tt := range []struct {
		name string
		ok   bool
	}{{"", true}, {"UTC", true}, {"Europe/Prague", true}, {"America/Sao_Paulo", true}, {"Mars/Olympus_Mons", false}, {"Local", false}} {
		t.Run(tt.name, func(t *testing.T) {
			loc, err := loadTimeZone(tt.name)
			if tt.ok && (err != nil || loc == nil) {
				t.Fatalf("unexpected error %v", err)
			}
			if !tt.ok {
				wantStalled(t, err, backupv1alpha1.ReasonInvalidTimeZone, "spec.timeZone")
			}
		})
	}
}

func TestParseSelectors(t *testing.T) {
	bad := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "a", Operator: "Near"}}}
	_, err := parseSelectors(bad, nil)
	wantStalled(t, err, backupv1alpha1.ReasonInvalidSelector, "spec.namespaceSelector")
	_, err = parseSelectors(nil, bad)
	wantStalled(t, err, backupv1alpha1.ReasonInvalidSelector, "spec.workspaceSelector")
}

func TestCheckRegistryRefs(t *testing.T) {
	const ns = "dwbackup-system"
	dockerSecret := func(name string, typ corev1.SecretType, data map[string][]byte) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Type: typ, Data: data}
	}
	objects := []client.Object{
		dockerSecret("good", corev1.SecretTypeDockerConfigJson, map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{}}`)}),
		dockerSecret("opaque", corev1.SecretTypeOpaque, map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{}`)}),
		dockerSecret("empty", corev1.SecretTypeDockerConfigJson, nil),
		dockerSecret("elsewhere", corev1.SecretTypeDockerConfigJson, nil),
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ca"}, Data: map[string]string{"ca.crt": "PEM", "other.pem": "PEM"}},
	}
	reader := fake.NewClientBuilder().WithScheme(scheme.Scheme).WithObjects(objects...).Build()
	for _, tt := range []struct {
		name   string
		reg    backupv1alpha1.RegistrySpec
		reason string // "" = valid
		field  string
	}{
		{name: "anonymous, no CA", reg: backupv1alpha1.RegistrySpec{}},
		{name: "good secret and CA", reg: backupv1alpha1.RegistrySpec{AuthSecretName: "good",
			CABundle: &backupv1alpha1.CABundleSource{ConfigMapName: "ca"}}},
		{name: "CA with another key", reg: backupv1alpha1.RegistrySpec{
			CABundle: &backupv1alpha1.CABundleSource{ConfigMapName: "ca", Key: "other.pem"}}},
		{name: "missing secret", reg: backupv1alpha1.RegistrySpec{AuthSecretName: "missing"},
			reason: backupv1alpha1.ReasonSecretNotFound, field: "spec.registry.authSecretName"},
		{name: "wrong secret type", reg: backupv1alpha1.RegistrySpec{AuthSecretName: "opaque"},
			reason: backupv1alpha1.ReasonInvalidSecret, field: "spec.registry.authSecretName"},
		{name: "no .dockerconfigjson", reg: backupv1alpha1.RegistrySpec{AuthSecretName: "empty"},
			reason: backupv1alpha1.ReasonInvalidSecret, field: "spec.registry.authSecretName"},
		{name: "missing CA ConfigMap", reg: backupv1alpha1.RegistrySpec{CABundle: &backupv1alpha1.CABundleSource{ConfigMapName: "nope"}},
			reason: backupv1alpha1.ReasonCABundleNotFound, field: "spec.registry.caBundle.configMapName"},
		{name: "missing CA key", reg: backupv1alpha1.RegistrySpec{CABundle: &backupv1alpha1.CABundleSource{ConfigMapName: "ca", Key: "x.pem"}},
			reason: backupv1alpha1.ReasonCABundleNotFound, field: "spec.registry.caBundle.key"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := checkRegistryRefs(context.Background(), reader, ns, tt.reg)
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			wantStalled(t, err, tt.reason, tt.field)
		})
	}
}

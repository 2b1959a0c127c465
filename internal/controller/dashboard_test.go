package controller

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
)

func TestLastBackupAnnotations(t *testing.T) {
	const (
		ok  = backupv1alpha1.AnnotationLastBackupSuccessful
		at  = backupv1alpha1.AnnotationLastBackupFinishedAt
		msg = backupv1alpha1.AnnotationLastBackupError
	)
	finished := time.Date(2026, 11, 26, 2, 0, 13, 987654321, time.UTC)
	// DWO formats a Job condition's second-precision time with RFC3339Nano: no fraction shows.
	const finishedAt = "2026-11-26T02:00:13Z"
	tests := []struct {
		name    string
		current map[string]string
		phase   backupv1alpha1.BackupPhase
		want    map[string]string // nil: no patch; "<delete>": the key is removed
	}{
		{name: "first success", phase: backupv1alpha1.BackupSucceeded,
			want: map[string]string{ok: "true", at: finishedAt, msg: "<delete>"}},
		{name: "first failure", phase: backupv1alpha1.BackupFailed,
			want: map[string]string{ok: "false", at: finishedAt, msg: "boom"}},
		{name: "a success clears an earlier error", phase: backupv1alpha1.BackupSucceeded,
			current: map[string]string{ok: "false", at: "2026-11-25T02:00:00Z", msg: "old"},
			want:    map[string]string{ok: "true", at: finishedAt, msg: "<delete>"}},
		{name: "already reported: no write", phase: backupv1alpha1.BackupSucceeded,
			current: map[string]string{ok: "true", at: finishedAt, "other": "kept"}},
		{name: "already reported failure: no write", phase: backupv1alpha1.BackupFailed,
			current: map[string]string{ok: "false", at: finishedAt, msg: "boom"}},
		{name: "a newer outcome (by DWO or another policy) is never replaced", phase: backupv1alpha1.BackupFailed,
			current: map[string]string{ok: "true", at: "2026-11-26T02:00:14.5Z"}},
		{name: "an unparsable time is replaced", phase: backupv1alpha1.BackupSucceeded,
			current: map[string]string{ok: "true", at: "yesterday"},
			want:    map[string]string{ok: "true", at: finishedAt, msg: "<delete>"}},
		{name: "skipped: nothing to report", phase: backupv1alpha1.BackupSkipped},
		{name: "unfinished: nothing to report", phase: backupv1alpha1.BackupRunning},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := lastBackupAnnotations(tt.current, tt.phase, finished, "boom")
			if tt.want == nil {
				if got != nil {
					t.Fatalf("want no patch, got %v", flatten(got))
				}
				return
			}
			if g := flatten(got); len(g) != len(tt.want) {
				t.Fatalf("got %v, want %v", g, tt.want)
			}
			for k, v := range tt.want {
				if g := flatten(got)[k]; g != v {
					t.Errorf("%s = %q, want %q", k, g, v)
				}
			}
			if _, err := time.Parse(time.RFC3339Nano, *got[at]); err != nil {
				t.Errorf("finished-at %q does not parse as DWO and the Dashboard parse it: %v", *got[at], err)
			}
		})
	}
}

func flatten(m map[string]*string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = "<delete>"
		if v != nil {
			out[k] = *v
		}
	}
	return out
}

func TestTruncateUTF8(t *testing.T) {
	for _, tt := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"0123456789abc", 10, "0123456..."},
		{"ééééé", 8, "éé..."}, // never cuts inside a 2-byte character
	} {
		got := truncateUTF8(tt.in, tt.n)
		if got != tt.want || len(got) > tt.n || !utf8.ValidString(got) {
			t.Errorf("truncateUTF8(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
	if got := truncateUTF8(strings.Repeat("x", 5000), maxLastBackupError); len(got) != maxLastBackupError {
		t.Errorf("a long error is cut to %d bytes, want %d", len(got), maxLastBackupError)
	}
}

func TestSecretHash(t *testing.T) {
	base := &corev1.Secret{Type: corev1.SecretTypeDockerConfigJson, Data: map[string][]byte{".dockerconfigjson": []byte(`{"auths":{}}`), "a": []byte("1")}}
	same := &corev1.Secret{Type: corev1.SecretTypeDockerConfigJson, Data: map[string][]byte{"a": []byte("1"), ".dockerconfigjson": []byte(`{"auths":{}}`)}}
	if secretHash(base) != secretHash(same) {
		t.Error("the hash depends on map order")
	}
	for name, other := range map[string]*corev1.Secret{
		"data changed":             {Type: base.Type, Data: map[string][]byte{".dockerconfigjson": []byte(`{"auths":{"x":{}}}`), "a": []byte("1")}},
		"key added":                {Type: base.Type, Data: map[string][]byte{".dockerconfigjson": []byte(`{"auths":{}}`), "a": []byte("1"), "quay-api-token": nil}},
		"type changed":             {Type: corev1.SecretTypeOpaque, Data: base.Data},
		"bytes moved between keys": {Type: base.Type, Data: map[string][]byte{".dockerconfigjson": []byte(`{"auths":{}}a`), "a": []byte("")}},
	} {
		if secretHash(other) == secretHash(base) {
			t.Errorf("%s: same hash", name)
		}
	}
}

func TestConflictMessage(t *testing.T) {
	got := conflictMessage([]string{"a", "b", "c", "d", "e", "f", "g"})
	if !strings.Contains(got, "namespace a, b, c, d, e and 2 more") || !strings.Contains(got, backupv1alpha1.DashboardSecretName) {
		t.Errorf("message %q does not name the namespaces and the Secret", got)
	}
	if got := conflictMessage([]string{"team-a"}); !strings.Contains(got, "namespace team-a;") {
		t.Errorf("message %q does not name the namespace", got)
	}
}

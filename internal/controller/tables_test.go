package controller

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
	"github.com/dwbackup/devworkspace-backup-operator/internal/dwo"
)

// Tables for pure helpers that the envtest specs reach only through one or two inputs.

func TestPullReference(t *testing.T) {
	const d = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
	const other = "sha256:3333333333333333333333333333333333333333333333333333333333333333"
	cases := []struct {
		name, reference, digest, want string
	}{
		{"no digest known: as given", "r.example/backups/ns/ws:nightly-20261126T020000Z", "",
			"r.example/backups/ns/ws:nightly-20261126T020000Z"},
		{"a tag is replaced by the digest", "r.example/backups/ns/ws:nightly-20261126T020000Z", d,
			"r.example/backups/ns/ws@" + d},
		{"no tag: the digest is appended", "r.example/backups/ns/ws", d, "r.example/backups/ns/ws@" + d},
		{"a registry port is not a tag", "127.0.0.1:5000/backups/ns/ws", d, "127.0.0.1:5000/backups/ns/ws@" + d},
		{"a registry port and a tag", "127.0.0.1:5000/backups/ns/ws:latest", d, "127.0.0.1:5000/backups/ns/ws@" + d},
		{"already by digest: as given", "r.example/backups/ns/ws@" + d, other, "r.example/backups/ns/ws@" + d},
		{"a tag and a digest: as given", "r.example/backups/ns/ws:latest@" + d, other, "r.example/backups/ns/ws:latest@" + d},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := pullReference(backupv1alpha1.RestoreSource{Reference: tc.reference, Digest: tc.digest})
			if got != tc.want {
				t.Fatalf("pullReference(%q, %q) = %q, want %q", tc.reference, tc.digest, got, tc.want)
			}
		})
	}
}

func TestCompareQueue(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 2, 0, 0, 0, time.UTC)
	backup := func(trigger backupv1alpha1.Trigger, created time.Time, namespace, name string) *backupv1alpha1.WorkspaceBackup {
		b := &backupv1alpha1.WorkspaceBackup{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name,
			CreationTimestamp: metav1.NewTime(created)}}
		if trigger != "" {
			b.Labels = map[string]string{backupv1alpha1.LabelTrigger: string(trigger)}
		}
		return b
	}
	scheduled, manual, preRestore := backupv1alpha1.TriggerScheduled, backupv1alpha1.TriggerManual, backupv1alpha1.TriggerPreRestore
	cases := []struct {
		name string
		a, b *backupv1alpha1.WorkspaceBackup
		want int // the sign of compareQueue(a, b); compareQueue(b, a) must be its opposite
	}{
		{"manual before an older scheduled", backup(manual, t0.Add(time.Hour), "ns", "m"), backup(scheduled, t0, "ns", "s"), -1},
		{"pre-restore before an older scheduled", backup(preRestore, t0.Add(time.Hour), "ns", "p"), backup(scheduled, t0, "ns", "s"), -1},
		{"no trigger label ranks as manual", backup("", t0.Add(time.Hour), "ns", "x"), backup(scheduled, t0, "ns", "s"), -1},
		{"manual and pre-restore: older first", backup(preRestore, t0, "ns", "p"), backup(manual, t0.Add(time.Second), "ns", "m"), -1},
		{"scheduled: older first", backup(scheduled, t0, "zz", "z"), backup(scheduled, t0.Add(time.Minute), "aa", "a"), -1},
		{"one slot: by namespace", backup(scheduled, t0, "ns-a", "z"), backup(scheduled, t0, "ns-b", "a"), -1},
		{"one slot and namespace: by name", backup(scheduled, t0, "ns", "a"), backup(scheduled, t0, "ns", "b"), -1},
		{"namespace and name are not concatenated", backup(scheduled, t0, "ns-a", "b"), backup(scheduled, t0, "ns", "a-c"), 1},
		{"the same backup", backup(scheduled, t0, "ns", "a"), backup(scheduled, t0, "ns", "a"), 0},
	}
	sign := func(n int) int { return min(max(n, -1), 1) }
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := sign(compareQueue(tc.a, tc.b)); got != tc.want {
				t.Fatalf("compareQueue(a, b) = %d, want %d", got, tc.want)
			}
			if got := sign(compareQueue(tc.b, tc.a)); got != -tc.want {
				t.Fatalf("compareQueue(b, a) = %d, want %d", got, -tc.want)
			}
			if got := servedBefore(tc.a, tc.b); got != (tc.want < 0) {
				t.Fatalf("servedBefore(a, b) = %v, want %v", got, tc.want < 0)
			}
		})
	}
}

func TestConfigRefFrom(t *testing.T) {
	want := &types.NamespacedName{Namespace: "dwo", Name: "cfg"}
	cases := []struct {
		name, raw string
		want      *types.NamespacedName
	}{
		{"an object", `{"name":"cfg","namespace":"dwo"}`, want},
		{"an object with other fields", `{"name":"cfg","namespace":"dwo","kind":"DevWorkspaceOperatorConfig"}`, want},
		{"the object JSON-encoded in a string", `"{\"name\":\"cfg\",\"namespace\":\"dwo\"}"`, want},
		{"no namespace", `{"name":"cfg"}`, nil},
		{"no name", `{"namespace":"dwo"}`, nil},
		{"a plain string", `"cfg"`, nil},
		{"a string holding an incomplete object", `"{\"name\":\"cfg\"}"`, nil},
		{"null", `null`, nil},
		{"a number", `42`, nil},
		{"not JSON", `{name: cfg`, nil},
		{"empty", ``, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := configRefFrom([]byte(tc.raw))
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("configRefFrom(%s) = %v, want %v", tc.raw, got, tc.want)
			}
		})
	}
}

func TestTrimDevWorkspace(t *testing.T) {
	attr := func(v any) apiextensionsv1.JSON {
		raw, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return apiextensionsv1.JSON{Raw: raw}
	}
	storage := attr(storagePerWorkspace)
	config := attr(map[string]string{"name": "cfg", "namespace": "dwo"})
	other := attr("x")
	devWorkspace := func(attrs map[string]apiextensionsv1.JSON) *dwo.DevWorkspace {
		return &dwo.DevWorkspace{
			ObjectMeta: metav1.ObjectMeta{Name: "ws", Namespace: "ns", Labels: map[string]string{"l": "v"},
				ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "dwo"}}},
			Spec:   dwo.DevWorkspaceSpec{Started: true, Template: dwo.DevWorkspaceTemplate{Attributes: attrs}},
			Status: dwo.DevWorkspaceStatus{DevWorkspaceID: "workspace1", Phase: "Running"},
		}
	}
	cases := []struct {
		name  string
		attrs map[string]apiextensionsv1.JSON
		want  map[string]apiextensionsv1.JSON
	}{
		{"keeps storage-type and devworkspace-config only",
			map[string]apiextensionsv1.JSON{attrStorageType: storage, attrDevWorkspaceCfg: config, "controller.devfile.io/restore-workspace": other},
			map[string]apiextensionsv1.JSON{attrStorageType: storage, attrDevWorkspaceCfg: config}},
		{"keeps one of them", map[string]apiextensionsv1.JSON{attrDevWorkspaceCfg: config, "other": other},
			map[string]apiextensionsv1.JSON{attrDevWorkspaceCfg: config}},
		{"no kept attribute: none at all", map[string]apiextensionsv1.JSON{"other": other}, nil},
		{"no attributes", nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := devWorkspace(tc.attrs)
			out, err := TrimDevWorkspace(in)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := out.(*dwo.DevWorkspace)
			if !ok {
				t.Fatalf("TrimDevWorkspace returned %T", out)
			}
			if got.ManagedFields != nil {
				t.Errorf("managedFields kept: %v", got.ManagedFields)
			}
			if !reflect.DeepEqual(got.Spec.Template.Attributes, tc.want) {
				t.Errorf("attributes = %v, want %v", got.Spec.Template.Attributes, tc.want)
			}
			// What the operator reads stays (devworkspace.go, workspaceFrom).
			wantRest := devWorkspace(nil)
			wantRest.ManagedFields = nil
			got.Spec.Template.Attributes = nil
			if !reflect.DeepEqual(got, wantRest) {
				t.Errorf("TrimDevWorkspace changed more than managedFields and attributes:\n got %+v\nwant %+v", got, wantRest)
			}
		})
	}
	t.Run("other objects pass through", func(t *testing.T) {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "m"}}}}
		out, err := TrimDevWorkspace(pod)
		if err != nil || out != any(pod) || len(pod.ManagedFields) != 1 {
			t.Fatalf("TrimDevWorkspace(pod) = %v, %v; want the pod untouched", out, err)
		}
	})
}

func TestReferenceAllowed(t *testing.T) {
	const repo = "reg.example.com/backups"
	digest := "sha256:" + sha256Hex("x")
	own := &backupv1alpha1.BackupPolicy{Spec: backupv1alpha1.BackupPolicySpec{Registry: backupv1alpha1.RegistrySpec{Repository: repo}}}
	cross := own.DeepCopy()
	cross.Spec.AllowCrossNamespaceRestore = true
	cases := []struct {
		name   string
		ref    string
		policy *backupv1alpha1.BackupPolicy
		want   bool
	}{
		{"own workspace by tag", repo + "/team-a/ws:nightly-20261126T020000Z", own, true},
		{"own workspace by digest", repo + "/team-a/ws@" + digest, own, true},
		{"a deleted workspace's backups stay restorable", repo + "/team-a/old-ws:latest", own, true},
		{"another namespace", repo + "/team-b/ws:latest", own, false},
		{"another namespace, allowed", repo + "/team-b/ws:latest", cross, true},
		{"deeper path: another policy's repository", repo + "/team-a/ws/other:latest", own, false},
		{"deeper path even across namespaces", repo + "/team-b/nested/ws@" + digest, cross, false},
		{"no workspace segment", repo + "/team-a:latest", own, false},
		{"empty workspace segment", repo + "/team-a/:latest", own, false},
		{"dot-dot segment", repo + "/team-a/../team-b/ws:latest", own, false},
		{"outside the repository", "evil.example.com/backups/team-a/ws:latest", own, false},
		{"repository prefix without a slash", repo + "-evil/team-a/ws:latest", own, false},
		{"not a reference", repo + "/team-a/WS:latest", own, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := referenceAllowed(tc.ref, tc.policy, "team-a"); got != tc.want {
				t.Fatalf("referenceAllowed(%q) = %v, want %v", tc.ref, got, tc.want)
			}
		})
	}
}

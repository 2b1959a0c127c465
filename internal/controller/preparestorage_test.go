package controller

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func TestPerWorkspaceClaimSize(t *testing.T) {
	def := resource.MustParse("10Gi")
	for _, tc := range []struct {
		name    string
		volumes []devfileVolume
		want    string
	}{
		{"no volumes: the default", nil, "10Gi"},
		{"all sizes set: their sum, even below the default", []devfileVolume{{Size: "1Gi"}, {Size: "2Gi"}}, "3Gi"},
		{"one without a size, sum below the default: the default", []devfileVolume{{Size: "1Gi"}, {}}, "10Gi"},
		{"one without a size, sum above the default: the sum", []devfileVolume{{Size: "12Gi"}, {}}, "12Gi"},
		{"ephemeral volumes do not count", []devfileVolume{{Size: "2Gi"}, {Size: "50Gi", Ephemeral: true}}, "2Gi"},
	} {
		got, err := perWorkspaceClaimSize(def, tc.volumes)
		if err != nil || got.Cmp(resource.MustParse(tc.want)) != 0 {
			t.Errorf("%s: %s, %v; want %s", tc.name, got.String(), err, tc.want)
		}
	}
	if _, err := perWorkspaceClaimSize(def, []devfileVolume{{Size: "lots"}}); err == nil {
		t.Error("a size that is no quantity is accepted")
	}
}

func TestApplyClaimSettings(t *testing.T) {
	claim := dwoDefaultClaimSettings()
	dwoc := &unstructured.Unstructured{Object: map[string]any{"config": map[string]any{"workspace": map[string]any{
		"storageClassName":   "fast",
		"storageAccessMode":  []any{"ReadWriteMany"},
		"defaultStorageSize": map[string]any{"perWorkspace": "20Gi"},
	}}}}
	if err := applyClaimSettings(&claim, dwoc); err != nil {
		t.Fatal(err)
	}
	if claim.StorageClassName == nil || *claim.StorageClassName != "fast" ||
		len(claim.AccessModes) != 1 || claim.AccessModes[0] != corev1.ReadWriteMany ||
		claim.PerWorkspaceSize.String() != "20Gi" || claim.CommonSize.String() != "10Gi" {
		t.Errorf("claim settings %+v", claim)
	}
	bad := &unstructured.Unstructured{Object: map[string]any{"config": map[string]any{"workspace": map[string]any{
		"defaultStorageSize": map[string]any{"common": "big"}}}}}
	if err := applyClaimSettings(&claim, bad); err == nil {
		t.Error("a size that is no quantity is accepted")
	}
}

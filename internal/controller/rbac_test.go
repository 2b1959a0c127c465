package controller

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/util/yaml"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
	"github.com/dwbackup/devworkspace-backup-operator/internal/testenv"
)

// TestRBACLeastPrivilege reads the generated ClusterRole and Role: Secrets are never listed or
// watched, read only by name cluster-wide, and created/deleted only for the per-backup copies.
func TestRBACLeastPrivilege(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	decoder := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	sawSecretGet := false
	for {
		var role struct {
			Kind     string
			Metadata struct{ Namespace string }
			Rules    []rbacv1.PolicyRule
		}
		if err := decoder.Decode(&role); err != nil {
			break
		}
		for _, rule := range role.Rules {
			if !slices.Contains(rule.Resources, "secrets") {
				continue
			}
			for _, verb := range rule.Verbs {
				switch verb {
				case "list", "watch", "patch", "*":
					t.Errorf("%s grants %q on Secrets", role.Kind, verb)
				case "update":
					// Only the Dashboard's Secret copies are ever updated (dashboard.go).
					if !slices.Equal(rule.ResourceNames, []string{backupv1alpha1.DashboardSecretName}) {
						t.Errorf("update on Secrets must be limited to %s, got %v", backupv1alpha1.DashboardSecretName, rule.ResourceNames)
					}
				case "get":
					sawSecretGet = true
					if role.Kind == "ClusterRole" && (len(rule.ResourceNames) != 1 ||
						!slices.Contains([]string{namespaceAuthSecretName, backupv1alpha1.DashboardSecretName}, rule.ResourceNames[0])) {
						t.Errorf("cluster-wide get on Secrets must be limited to %s or %s, got %v",
							namespaceAuthSecretName, backupv1alpha1.DashboardSecretName, rule.ResourceNames)
					}
					if role.Kind == "Role" && role.Metadata.Namespace != "dwbackup-system" {
						t.Errorf("the Role with get on Secrets is in %q, want the operator namespace", role.Metadata.Namespace)
					}
				}
			}
		}
	}
	if !sawSecretGet {
		t.Fatal("no rule lets the operator read the registry Secrets at all")
	}
}

package controller

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/util/yaml"

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
				case "list", "watch", "update", "patch", "*":
					t.Errorf("%s grants %q on Secrets", role.Kind, verb)
				case "get":
					sawSecretGet = true
					if role.Kind == "ClusterRole" && !slices.Equal(rule.ResourceNames, []string{namespaceAuthSecretName}) {
						t.Errorf("cluster-wide get on Secrets must be limited to %s, got %v", namespaceAuthSecretName, rule.ResourceNames)
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

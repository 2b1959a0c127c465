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

// TestUserRolesAggregate reads the roles config/rbac gives namespace users: the viewer roles of
// WorkspaceBackups and WorkspaceRestores aggregate into Kubernetes' view role with read verbs only,
// the editor roles into edit (and admin) with create and delete besides; none writes status,
// updates or patches; and config/rbac deploys them all (test/e2e/rbac_test.go checks them as a user).
func TestUserRolesAggregate(t *testing.T) {
	dir := filepath.Join(testenv.RepoRoot(), "config", "rbac")
	kustomization, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	read := []string{"get", "list", "watch"}
	for _, tt := range []struct {
		file, aggregateTo string
		verbs             []string
	}{
		{"workspacebackup_viewer_role.yaml", "view", read},
		{"workspacerestore_viewer_role.yaml", "view", read},
		{"workspacebackup_editor_role.yaml", "edit", append([]string{"create", "delete"}, read...)},
		{"workspacerestore_editor_role.yaml", "edit", append([]string{"create", "delete"}, read...)},
	} {
		if !bytes.Contains(kustomization, []byte("- "+tt.file)) {
			t.Errorf("config/rbac/kustomization.yaml does not deploy %s", tt.file)
		}
		data, err := os.ReadFile(filepath.Join(dir, tt.file))
		if err != nil {
			t.Fatal(err)
		}
		var role rbacv1.ClusterRole
		if err := yaml.Unmarshal(data, &role); err != nil {
			t.Fatalf("%s: %v", tt.file, err)
		}
		if role.Labels["rbac.authorization.k8s.io/aggregate-to-"+tt.aggregateTo] != "true" {
			t.Errorf("%s does not aggregate to %s: labels %v", tt.file, tt.aggregateTo, role.Labels)
		}
		for _, rule := range role.Rules {
			for _, res := range rule.Resources {
				if res != "workspacebackups" && res != "workspacerestores" {
					t.Errorf("%s grants %v on %s", tt.file, rule.Verbs, res)
				}
			}
			if got := slices.Sorted(slices.Values(rule.Verbs)); !slices.Equal(got, slices.Sorted(slices.Values(tt.verbs))) {
				t.Errorf("%s grants %v, want %v", tt.file, got, tt.verbs)
			}
		}
	}
}

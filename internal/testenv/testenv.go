// Package testenv starts the envtest control plane (etcd + kube-apiserver built by
// hack/k8s/build.sh) with the project's CRDs and the DevWorkspace fixtures installed.
package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// K8sVersion is the Kubernetes version of the envtest binaries; keep it equal to the Makefile's.
const K8sVersion = "1.37.2"

// RepoRoot is the repository's root directory, found from this source file.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Start starts an API server with the backup CRDs and the trimmed DevWorkspace and
// DevWorkspaceOperatorConfig CRDs from test/crd. KUBEBUILDER_ASSETS wins; otherwise the binaries
// that `make envtest-assets` builds into bin/ are used.
func Start() (*envtest.Environment, *rest.Config, error) {
	root := RepoRoot()
	env := &envtest.Environment{
		CRDDirectoryPaths: []string{
			filepath.Join(root, "config", "crd", "bases"),
			filepath.Join(root, "test", "crd"),
		},
		ErrorIfCRDPathMissing: true,
	}
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		dir := filepath.Join(root, "bin", "k8s", K8sVersion+"-linux-amd64")
		if _, err := os.Stat(filepath.Join(dir, "kube-apiserver")); err != nil {
			return nil, nil, fmt.Errorf("envtest binaries missing in %s: run `make envtest-assets` or set KUBEBUILDER_ASSETS", dir)
		}
		env.BinaryAssetsDirectory = dir
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, nil, err
	}
	return env, cfg, nil
}

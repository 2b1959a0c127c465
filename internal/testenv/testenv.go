// Package testenv starts the envtest control plane (etcd + kube-apiserver built by
// hack/k8s/build.sh) with the project's CRDs and the DevWorkspace fixtures installed.
package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// K8sVersion is the Kubernetes version of the envtest and local-cluster binaries, without the
// leading v: the k8s.io/kubernetes requirement of hack/k8s/go.mod, read at run time. That
// requirement is the version's one source; hack/k8s/version.sh reads the same line for the
// Makefile and the scripts (version_test.go checks that they agree).
func K8sVersion() (string, error) {
	path := filepath.Join(RepoRoot(), "hack", "k8s", "go.mod")
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read the Kubernetes version: %w", err)
	}
	v, err := kubernetesRequirement(data)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

// K8sBinDir is where `make envtest-assets` (hack/k8s/build.sh) builds the Kubernetes binaries:
// bin/k8s/<K8sVersion>-linux-amd64 at the repository's root.
func K8sBinDir() (string, error) {
	v, err := K8sVersion()
	if err != nil {
		return "", err
	}
	return filepath.Join(RepoRoot(), "bin", "k8s", v+"-linux-amd64"), nil
}

// kubernetesRequirement finds the one k8s.io/kubernetes v1.x.y requirement of a go.mod, on a
// `require` line or inside a `require (` block, and returns it without the v.
func kubernetesRequirement(gomod []byte) (string, error) {
	var found []string
	inBlock := false
	for line := range strings.Lines(string(gomod)) {
		if i := strings.Index(line, "//"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && f[0] == "require" && f[1] == "(":
			inBlock = true
		case inBlock && len(f) == 1 && f[0] == ")":
			inBlock = false
		case len(f) == 3 && f[0] == "require" && f[1] == "k8s.io/kubernetes":
			found = append(found, f[2])
		case inBlock && len(f) == 2 && f[0] == "k8s.io/kubernetes":
			found = append(found, f[1])
		}
	}
	if len(found) != 1 || !kubernetesVersion.MatchString(found[0]) {
		return "", fmt.Errorf("want one k8s.io/kubernetes v1.x.y requirement, found %q", found)
	}
	return strings.TrimPrefix(found[0], "v"), nil
}

var kubernetesVersion = regexp.MustCompile(`^v1\.[0-9]+\.[0-9]+$`)

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
		dir, err := K8sBinDir()
		if err != nil {
			return nil, nil, err
		}
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

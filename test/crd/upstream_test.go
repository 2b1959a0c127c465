// Package crd_test checks that the trimmed DevWorkspace CRD the project's tests use agrees with
// DWO's real one: DWO's sample DevWorkspaces, with the status DWO writes, are accepted by both.
package crd_test

import (
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/dwbackup/devworkspace-backup-operator/internal/testenv"
)

// upstreamFixtures holds DevWorkspace Operator's own CRD (gzip, 560 KB unpacked) and sample
// DevWorkspaces, copied from github.com/devfile/devworkspace-operator (Apache-2.0): data to check
// the trimmed CRD against, not code (testdata/dwo/README.md).
var upstreamFixtures = filepath.Join(testenv.RepoRoot(), "test", "crd", "testdata", "dwo")

func TestSamplesAgainstUpstreamCRD(t *testing.T) {
	dir := t.TempDir()
	in, err := os.Open(filepath.Join(upstreamFixtures, "workspace.devfile.io_devworkspaces.yaml.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = in.Close() }()
	zr, err := gzip.NewReader(in)
	if err != nil {
		t.Fatal(err)
	}
	crd := filepath.Join(dir, "workspace.devfile.io_devworkspaces.yaml")
	out, err := os.Create(crd)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, zr); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	runSamples(t, []string{crd})
}

func TestSamplesAgainstTrimmedCRD(t *testing.T) {
	runSamples(t, []string{filepath.Join(testenv.RepoRoot(), "test", "crd", "workspace.devfile.io_devworkspaces.yaml")})
}

func runSamples(t *testing.T, crdPaths []string) {
	env := &envtest.Environment{CRDDirectoryPaths: crdPaths, ErrorIfCRDPathMissing: true}
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		dir, err := testenv.K8sBinDir()
		if err != nil {
			t.Fatal(err)
		}
		env.BinaryAssetsDirectory = dir
	}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("start envtest: %v", err)
	}
	defer func() { _ = env.Stop() }()
	c, err := client.New(cfg, client.Options{Scheme: scheme.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	samples, _ := filepath.Glob(filepath.Join(upstreamFixtures, "devworkspace-*.yaml"))
	if len(samples) == 0 {
		t.Fatalf("no DWO samples in %s", upstreamFixtures)
	}
	for _, f := range samples {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dw := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(data, &dw.Object); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		dw.SetNamespace("default")
		if err := c.Create(ctx, dw); err != nil {
			t.Fatalf("%s: create: %v", filepath.Base(f), err)
		}
		// The status DWO writes for a stopped workspace (docs/architecture.md, "DevWorkspaces").
		status := map[string]any{
			"phase":          "Stopped",
			"devworkspaceId": "workspace0123456789abcdef",
			"message":        "Workspace is stopped",
			"conditions": []any{map[string]any{
				"type": "Started", "status": "False", "message": "Workspace is stopped",
				"lastTransitionTime": "2026-11-26T02:00:00Z",
			}},
		}
		if err := unstructured.SetNestedField(dw.Object, status, "status"); err != nil {
			t.Fatal(err)
		}
		if err := c.Status().Update(ctx, dw); err != nil {
			t.Fatalf("%s: status: %v", filepath.Base(f), err)
		}
		got := &unstructured.Unstructured{}
		got.SetGroupVersionKind(dw.GroupVersionKind())
		if err := c.Get(ctx, client.ObjectKeyFromObject(dw), got); err != nil {
			t.Fatal(err)
		}
		if phase, _, _ := unstructured.NestedString(got.Object, "status", "phase"); phase != "Stopped" {
			t.Errorf("%s: status.phase = %q after update, want Stopped", filepath.Base(f), phase)
		}
		attr := []string{"spec", "template", "attributes", "controller.devfile.io/storage-type"}
		storage, _, _ := unstructured.NestedString(dw.Object, attr...)
		gotStorage, _, _ := unstructured.NestedString(got.Object, attr...)
		if storage != gotStorage {
			t.Errorf("%s: storage-type attribute %q came back as %q", filepath.Base(f), storage, gotStorage)
		}
	}
}

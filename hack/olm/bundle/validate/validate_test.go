// Package validate checks the committed OLM bundle and catalog with the validators OperatorHub
// runs (those of `operator-sdk bundle validate --select-optional suite=operatorframework`),
// operator-registry's bundle format check, and opm itself (render, validate). `make test-bundle`
// runs it with OPM set to the pinned opm binary.
package validate

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/operator-framework/api/pkg/manifests"
	"github.com/operator-framework/api/pkg/validation"
	"github.com/operator-framework/api/pkg/validation/errors"
	"github.com/operator-framework/operator-registry/pkg/lib/bundle"
	"github.com/sirupsen/logrus"
	corev1 "k8s.io/api/core/v1"
)

const (
	root       = "../../../.."
	bundleDir  = root + "/bundle"
	catalogDir = root + "/catalog"
	pkgDir     = catalogDir + "/devworkspace-backup-operator"
)

// knownWarnings are the warnings left on purpose, each explained in docs/olm.md ("Validator
// warnings"). A new warning fails the test until it is fixed or explained there and listed here.
var knownWarnings = []string{}

func TestBundleValidators(t *testing.T) {
	b, err := manifests.GetBundleFromDir(bundleDir)
	if err != nil {
		t.Fatalf("load %s: %v", bundleDir, err)
	}
	validators := validation.DefaultBundleValidators.WithValidators(
		validation.OperatorHubV2Validator,
		validation.StandardCapabilitiesValidator,
		validation.StandardCategoriesValidator,
		validation.GoodPracticesValidator,
		validation.AlphaDeprecatedAPIsValidator,
	)
	// No API the bundle uses may be deprecated or removed in the Kubernetes it installs on (its
	// minKubeVersion is hack/k8s/go.mod's, the one the project builds and tests against).
	parts := strings.Split(b.CSV.Spec.MinKubeVersion, ".")
	if len(parts) != 3 {
		t.Fatalf("minKubeVersion %q, want x.y.z", b.CSV.Spec.MinKubeVersion)
	}
	minor := parts[0] + "." + parts[1]
	results := validators.Validate(b, map[string]string{"k8s-version": minor})
	var warnings []string
	for _, r := range results {
		for _, e := range r.Errors {
			t.Errorf("%s: error: %v", r.Name, e)
		}
		for _, w := range r.Warnings {
			warnings = append(warnings, w.Error())
		}
	}
	for _, w := range warnings {
		if !slices.Contains(knownWarnings, w) {
			t.Errorf("warning not explained in docs/olm.md: %s", w)
		}
	}
	for _, w := range knownWarnings {
		if !slices.Contains(warnings, w) {
			t.Errorf("knownWarnings lists %q, which the validators no longer report: remove it here and in docs/olm.md", w)
		}
	}
	checkValidatorsRan(t, results)
}

// checkValidatorsRan guards against a bundle the validators silently skip (no CSV loaded, no
// CRDs): every validator must have seen the CSV.
func checkValidatorsRan(t *testing.T, results []errors.ManifestResult) {
	t.Helper()
	if len(results) < 6 {
		t.Errorf("only %d validation results: some validators did not run on the bundle", len(results))
	}
}

func TestBundleFormat(t *testing.T) {
	logger := logrus.NewEntry(logrus.New())
	v := bundle.NewImageValidator(nil, logger)
	if err := v.ValidateBundleFormat(bundleDir); err != nil {
		t.Errorf("bundle format: %v", err)
	}
	if err := v.ValidateBundleContent(filepath.Join(bundleDir, "manifests")); err != nil {
		t.Errorf("bundle content: %v", err)
	}
}

func opm(t *testing.T, args ...string) []byte {
	t.Helper()
	bin := os.Getenv("OPM")
	if bin == "" {
		t.Fatal("OPM is not set: run make test-bundle (it builds opm into bin/)")
	}
	var stderr bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("opm %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

func TestCatalogValidates(t *testing.T) {
	opm(t, "validate", catalogDir)
}

// The catalog's entry for the current version is what `opm render` makes of the committed
// bundle: the catalog cannot drift from the bundle.
func TestCatalogHoldsTheBundle(t *testing.T) {
	version := currentVersion(t)
	committed, err := os.ReadFile(filepath.Join(pkgDir, "bundle-v"+version+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	image := imageOf(t, committed)
	rendered := opm(t, "render", bundleDir, "--alpha-image-ref-template", image, "-o", "yaml")
	if !bytes.Equal(rendered, committed) {
		t.Errorf("catalog/.../bundle-v%s.yaml is not opm render of bundle/: run make catalog", version)
	}
}

func currentVersion(t *testing.T) string {
	t.Helper()
	b, err := manifests.GetBundleFromDir(bundleDir)
	if err != nil {
		t.Fatal(err)
	}
	return b.CSV.Spec.Version.String()
}

// imageOf reads the image: line of a rendered olm.bundle.
func imageOf(t *testing.T, rendered []byte) string {
	t.Helper()
	for line := range strings.Lines(string(rendered)) {
		if v, ok := strings.CutPrefix(line, "image: "); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatal("no image: in the rendered bundle")
	return ""
}

// What the validators do not check but users of the CSV rely on: the manager pod meets the
// restricted Pod Security Standard and has resource requests, relatedImages lists every image the
// Deployment uses (mirroring for disconnected clusters), alm-examples offers every kind, and the
// operator installs cluster-wide only.
func TestCSVPromises(t *testing.T) {
	b, err := manifests.GetBundleFromDir(bundleDir)
	if err != nil {
		t.Fatal(err)
	}
	csv := b.CSV
	related := map[string]bool{}
	for _, r := range csv.Spec.RelatedImages {
		related[r.Image] = true
	}
	for _, d := range csv.Spec.InstallStrategy.StrategySpec.DeploymentSpecs {
		pod := d.Spec.Template.Spec
		if sc := pod.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot ||
			sc.SeccompProfile == nil || sc.SeccompProfile.Type != "RuntimeDefault" {
			t.Errorf("%s: the pod must run as non-root with the RuntimeDefault seccomp profile", d.Name)
		}
		if pod.HostNetwork {
			t.Errorf("%s: hostNetwork belongs only to the local variant", d.Name)
		}
		for _, c := range pod.Containers {
			sc := c.SecurityContext
			if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
				sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) ||
				sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				t.Errorf("%s/%s: no privilege escalation, all capabilities dropped, read-only root", d.Name, c.Name)
			}
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
				t.Errorf("%s/%s: no CPU or memory request", d.Name, c.Name)
			}
			images := []string{c.Image}
			for _, e := range c.Env {
				if strings.HasSuffix(e.Name, "_IMAGE") {
					images = append(images, e.Value)
				}
			}
			for _, image := range images {
				if !related[image] {
					t.Errorf("%s/%s uses %s, which relatedImages does not list", d.Name, c.Name, image)
				}
			}
		}
	}
	examples := csv.Annotations["alm-examples"]
	for _, crd := range csv.Spec.CustomResourceDefinitions.Owned {
		if !strings.Contains(examples, `"kind": "`+crd.Kind+`"`) {
			t.Errorf("alm-examples has no %s", crd.Kind)
		}
	}
	for _, m := range csv.Spec.InstallModes {
		if m.Supported != (m.Type == "AllNamespaces") {
			t.Errorf("install mode %s supported=%v: the operator watches all namespaces", m.Type, m.Supported)
		}
	}
}

package main

import (
	"bytes"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/blang/semver/v4"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// bundleOptions are the flags of `gen bundle`.
type bundleOptions struct {
	in          string // kustomize build output of config/manifests; "-" is stdin
	out         string // the bundle directory (manifests/, metadata/, tests/scorecard/)
	dockerfile  string // bundle.Dockerfile, written beside the bundle directory
	pkg         string // the OLM package name
	version     string // the bundle's semantic version, without v
	replaces    string // the version this one upgrades from, without v; empty for the first
	image       string // the operator image the bundle deploys (a tag, or @sha256: for a release)
	placeholder string // the image name config/ uses, replaced by image everywhere
	channels    string // comma-separated channels; the first is the default
	icon        string // an SVG file, embedded as the CSV icon
	scorecard   string // the scorecard test image
	minKube     string // the oldest Kubernetes the bundle installs on, major.minor.patch
}

func runBundle(args []string) error {
	var o bundleOptions
	fs := flag.NewFlagSet("bundle", flag.ContinueOnError)
	fs.StringVar(&o.in, "in", "-", "kustomize build output of config/manifests (- for stdin)")
	fs.StringVar(&o.out, "out", "bundle", "the bundle directory to write")
	fs.StringVar(&o.dockerfile, "dockerfile", "bundle.Dockerfile", "the bundle image's Dockerfile to write")
	fs.StringVar(&o.pkg, "package", "devworkspace-backup-operator", "the OLM package name")
	fs.StringVar(&o.version, "version", "", "the bundle version (semver without v)")
	fs.StringVar(&o.replaces, "replaces", "", "the version this bundle upgrades from (semver without v)")
	fs.StringVar(&o.image, "image", "", "the operator image the bundle deploys")
	fs.StringVar(&o.placeholder, "image-placeholder", "controller:latest",
		"the image name in config/ that --image replaces")
	fs.StringVar(&o.channels, "channels", "stable", "comma-separated channels, the default first")
	fs.StringVar(&o.icon, "icon", "", "an SVG icon file")
	fs.StringVar(&o.minKube, "min-kube-version", "", "the oldest Kubernetes version the bundle installs on (x.y.z)")
	fs.StringVar(&o.scorecard, "scorecard-image", "quay.io/operator-framework/scorecard-test:v1.42.0",
		"the scorecard test image")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.version == "" || o.image == "" || o.icon == "" || o.minKube == "" {
		return errors.New("--version, --image, --icon and --min-kube-version are required")
	}
	var in io.Reader = os.Stdin
	if o.in != "-" {
		f, err := os.Open(o.in)
		if err != nil {
			return err
		}
		defer func() { _ = f.Close() }()
		in = f
	}
	objs, err := decodeAll(in)
	if err != nil {
		return err
	}
	icon, err := os.ReadFile(o.icon)
	if err != nil {
		return err
	}
	files, err := buildBundle(objs, o, icon)
	if err != nil {
		return err
	}
	if err := writeDir(o.out, files); err != nil {
		return err
	}
	return os.WriteFile(o.dockerfile, dockerfile(o.out, annotations(o)), 0o644)
}

// decodeAll reads every object of a multi-document YAML stream.
func decodeAll(r io.Reader) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(r, 4096)
	var objs []*unstructured.Unstructured
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return objs, nil
			}
			return nil, err
		}
		if len(u.Object) == 0 {
			continue
		}
		objs = append(objs, u)
	}
}

// buildBundle returns the bundle's files (path relative to the bundle directory -> content).
func buildBundle(objs []*unstructured.Unstructured, o bundleOptions, icon []byte) (map[string][]byte, error) {
	if _, err := semver.Parse(o.version); err != nil {
		return nil, fmt.Errorf("--version %q: %w", o.version, err)
	}
	if o.replaces != "" {
		if _, err := semver.Parse(o.replaces); err != nil {
			return nil, fmt.Errorf("--replaces %q: %w", o.replaces, err)
		}
	}
	if _, err := semver.Parse(o.minKube); err != nil {
		return nil, fmt.Errorf("--min-kube-version %q: %w", o.minKube, err)
	}
	parts, err := sortObjects(objs)
	if err != nil {
		return nil, err
	}
	csv, err := buildCSV(parts, o, icon)
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{}
	csvYAML, err := yaml.Marshal(csv)
	if err != nil {
		return nil, err
	}
	files["manifests/"+o.pkg+".clusterserviceversion.yaml"] = csvYAML
	for _, u := range parts.crds {
		group, _, _ := unstructured.NestedString(u.Object, "spec", "group")
		plural, _, _ := unstructured.NestedString(u.Object, "spec", "names", "plural")
		if err := addObject(files, fmt.Sprintf("manifests/%s_%s.yaml", group, plural), u); err != nil {
			return nil, err
		}
	}
	for _, u := range parts.extra {
		gv := strings.ReplaceAll(u.GetAPIVersion(), "/", "_")
		name := fmt.Sprintf("manifests/%s_%s_%s.yaml", u.GetName(), gv, strings.ToLower(u.GetKind()))
		if err := addObject(files, name, u); err != nil {
			return nil, err
		}
	}
	ann, err := yaml.Marshal(map[string]any{"annotations": annotations(o)})
	if err != nil {
		return nil, err
	}
	files["metadata/annotations.yaml"] = ann
	sc, err := yaml.Marshal(scorecardConfig(o.scorecard))
	if err != nil {
		return nil, err
	}
	files["tests/scorecard/config.yaml"] = sc
	return files, nil
}

// addObject writes one object without the namespace kustomize gave it: OLM creates the bundle's
// objects in the namespace the operator is installed in.
func addObject(files map[string][]byte, name string, u *unstructured.Unstructured) error {
	c := u.DeepCopy()
	c.SetNamespace("")
	data, err := yaml.Marshal(c.Object)
	if err != nil {
		return err
	}
	if _, dup := files[name]; dup {
		return fmt.Errorf("two objects would be written to %s", name)
	}
	files[name] = data
	return nil
}

// annotations are the bundle's metadata/annotations.yaml and the bundle image's labels.
func annotations(o bundleOptions) map[string]string {
	channels := strings.Split(o.channels, ",")
	return map[string]string{
		"operators.operatorframework.io.bundle.mediatype.v1":       "registry+v1",
		"operators.operatorframework.io.bundle.manifests.v1":       "manifests/",
		"operators.operatorframework.io.bundle.metadata.v1":        "metadata/",
		"operators.operatorframework.io.bundle.package.v1":         o.pkg,
		"operators.operatorframework.io.bundle.channels.v1":        o.channels,
		"operators.operatorframework.io.bundle.channel.default.v1": channels[0],
		"operators.operatorframework.io.test.mediatype.v1":         "scorecard+v1",
		"operators.operatorframework.io.test.config.v1":            "tests/scorecard/",
	}
}

// dockerfile builds the bundle image from the bundle directory, for those who use Docker; the
// project itself builds it without Docker (hack/olm/bundle/ociimage).
func dockerfile(bundleDir string, labels map[string]string) []byte {
	var b bytes.Buffer
	b.WriteString("# Generated by make bundle (hack/olm/bundle/gen). DO NOT EDIT.\nFROM scratch\n\n")
	for _, k := range sortedKeys(labels) {
		fmt.Fprintf(&b, "LABEL %s=%s\n", k, labels[k])
	}
	dir := filepath.ToSlash(filepath.Clean(bundleDir))
	b.WriteString("\n")
	for _, sub := range []string{"manifests", "metadata", "tests/scorecard"} {
		fmt.Fprintf(&b, "COPY %s/%s /%s/\n", dir, sub, sub)
	}
	return b.Bytes()
}

// scorecardConfig is operator-sdk's default scorecard suite: the basic spec check and the OLM
// checks of the bundle, run with `operator-sdk scorecard bundle` against a cluster.
func scorecardConfig(image string) map[string]any {
	test := func(suite, name string) map[string]any {
		return map[string]any{
			"entrypoint": []string{"scorecard-test", name},
			"image":      image,
			"labels":     map[string]string{"suite": suite, "test": name + "-test"},
		}
	}
	return map[string]any{
		"apiVersion": "scorecard.operatorframework.io/v1alpha3",
		"kind":       "Configuration",
		"metadata":   map[string]string{keyName: "config"},
		"stages": []map[string]any{{
			"parallel": true,
			"tests": []map[string]any{
				test("basic", "basic-check-spec"),
				test("olm", "olm-bundle-validation"),
				test("olm", "olm-crds-have-validation"),
				test("olm", "olm-crds-have-resources"),
				test("olm", "olm-spec-descriptors"),
				test("olm", "olm-status-descriptors"),
			},
		}},
	}
}

// writeDir replaces dir's content with files, so a file the generator no longer writes goes away.
func writeDir(dir string, files map[string][]byte) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	for _, name := range sortedKeys(files) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, files[name], 0o644); err != nil {
			return err
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// svgDataIcon is the CSV icon: base64 data and its media type.
func svgDataIcon(svg []byte) (string, string) {
	return base64.StdEncoding.EncodeToString(svg), "image/svg+xml"
}

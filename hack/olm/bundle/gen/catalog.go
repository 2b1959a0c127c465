package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/blang/semver/v4"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// catalogBundle is one olm.bundle of the catalog, as `opm render` wrote it.
type catalogBundle struct {
	file     string
	doc      map[string]any
	name     string
	version  semver.Version
	replaces string
	objects  []*unstructured.Unstructured // the olm.bundle.object properties, decoded
}

func runCatalog(args []string) error {
	fs := flag.NewFlagSet("catalog", flag.ContinueOnError)
	dir := fs.String("dir", "", "the package's catalog directory, holding bundle-v*.yaml from opm render")
	pkg := fs.String("package", "devworkspace-backup-operator", "the OLM package name")
	channel := fs.String("channel", "stable", "the channel, also the default")
	icon := fs.String("icon", "", "an SVG icon file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" || *icon == "" {
		return errors.New("--dir and --icon are required")
	}
	svg, err := os.ReadFile(*icon)
	if err != nil {
		return err
	}
	bundles, err := loadBundles(*dir)
	if err != nil {
		return err
	}
	files, err := packageFiles(*pkg, *channel, svg, bundles)
	if err != nil {
		return err
	}
	for _, name := range sortedKeys(files) {
		if err := os.WriteFile(filepath.Join(*dir, name), files[name], 0o644); err != nil {
			return err
		}
	}
	return nil
}

// loadBundles reads every bundle-v*.yaml of dir, oldest version first.
func loadBundles(dir string) ([]catalogBundle, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "bundle-v*.yaml"))
	if err != nil {
		return nil, err
	}
	var out []catalogBundle
	for _, p := range paths {
		b, err := loadBundle(p)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		out = append(out, b)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no bundle-v*.yaml in %s", dir)
	}
	slices.SortFunc(out, func(a, b catalogBundle) int { return a.version.Compare(b.version) })
	return out, nil
}

func loadBundle(path string) (catalogBundle, error) {
	b := catalogBundle{file: filepath.Base(path)}
	data, err := os.ReadFile(path)
	if err != nil {
		return b, err
	}
	docs, err := decodeAll(bytes.NewReader(data))
	if err != nil {
		return b, err
	}
	if len(docs) != 1 || docs[0].Object["schema"] != "olm.bundle" {
		return b, errors.New("want exactly one olm.bundle")
	}
	b.doc = docs[0].Object
	b.name, _ = b.doc["name"].(string)
	props, _, _ := unstructured.NestedSlice(b.doc, "properties")
	for _, p := range props {
		prop, _ := p.(map[string]any)
		value, _ := prop["value"].(map[string]any)
		switch prop["type"] {
		case "olm.package":
			v, _ := value["version"].(string)
			if b.version, err = semver.Parse(v); err != nil {
				return b, fmt.Errorf("olm.package version %q: %w", v, err)
			}
		case "olm.bundle.object":
			obj, err := decodeBundleObject(value)
			if err != nil {
				return b, err
			}
			if obj.GetKind() == kindCSV {
				b.replaces, _, _ = unstructured.NestedString(obj.Object, "spec", "replaces")
			}
			b.objects = append(b.objects, obj)
		}
	}
	if b.name == "" || b.version.Equals(semver.Version{}) {
		return b, errors.New("the bundle has no name or no olm.package version")
	}
	return b, nil
}

// decodeBundleObject reads one olm.bundle.object property value: {"data": base64 JSON}.
func decodeBundleObject(value map[string]any) (*unstructured.Unstructured, error) {
	raw, err := json.Marshal(value)
	if err != nil {
		return nil, err
	}
	var v struct {
		Data []byte `json:"data"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{}
	if err := json.Unmarshal(v.Data, &u.Object); err != nil {
		return nil, fmt.Errorf("olm.bundle.object: %w", err)
	}
	return u, nil
}

// packageFiles writes the package and its channel. Each entry replaces what its CSV's
// spec.replaces names, which must be the previous bundle of the channel: OLM upgrades along it.
func packageFiles(pkg, channel string, svg []byte, bundles []catalogBundle) (map[string][]byte, error) {
	data, mediatype := svgDataIcon(svg)
	entries := []map[string]any{}
	for i, b := range bundles {
		entry := map[string]any{keyName: b.name}
		want := ""
		if i > 0 {
			want = bundles[i-1].name
		}
		if b.replaces != want {
			return nil, fmt.Errorf("%s replaces %q, but the bundle before it in the channel is %q", b.name, b.replaces, want)
		}
		if want != "" {
			entry["replaces"] = want
		}
		entries = append(entries, entry)
	}
	files := map[string][]byte{}
	var err error
	if files["package.yaml"], err = yaml.Marshal(map[string]any{
		"schema":         "olm.package",
		"name":           pkg,
		"defaultChannel": channel,
		"icon":           map[string]string{"base64data": data, "mediatype": mediatype},
	}); err != nil {
		return nil, err
	}
	if files["channels.yaml"], err = yaml.Marshal(map[string]any{
		"schema":  "olm.channel",
		"package": pkg,
		"name":    channel,
		"entries": entries,
	}); err != nil {
		return nil, err
	}
	return files, nil
}

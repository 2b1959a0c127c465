package main

import (
	"bytes"
	"maps"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// input is a small config/manifests output: the CSV base, one CRD, the manager's Deployment,
// its ServiceAccount, a bound ClusterRole and Role, an unbound ClusterRole, a Service and a sample.
const input = `
apiVersion: operators.coreos.com/v1alpha1
kind: ClusterServiceVersion
metadata:
  name: x.v0.0.0
  namespace: placeholder
spec:
  displayName: X
  customresourcedefinitions:
    owned:
    - name: things.example.io
      version: v1
      kind: Thing
      displayName: Thing
      description: A thing.
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: things.example.io
spec:
  group: example.io
  names: {kind: Thing, plural: things}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
---
apiVersion: v1
kind: Namespace
metadata:
  name: sys
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: sa
  namespace: sys
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: manager
rules:
- apiGroups: [""]
  resources: [pods]
  verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: viewer
rules:
- apiGroups: [example.io]
  resources: [things]
  verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: leader
  namespace: sys
rules:
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: manager
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: manager}
subjects:
- {kind: ServiceAccount, name: sa, namespace: sys}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: leader
  namespace: sys
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: leader}
subjects:
- {kind: ServiceAccount, name: sa, namespace: sys}
---
apiVersion: v1
kind: Service
metadata:
  name: metrics
  namespace: sys
spec:
  ports: [{port: 8443}]
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: manager
  namespace: sys
  labels: {app: x}
spec:
  selector: {matchLabels: {app: x}}
  template:
    metadata: {labels: {app: x}}
    spec:
      serviceAccountName: sa
      containers:
      - name: manager
        image: controller:latest
        env:
        - {name: MOVER_IMAGE, value: controller:latest}
---
apiVersion: example.io/v1
kind: Thing
metadata:
  name: sample
spec: {}
`

var testOptions = bundleOptions{
	pkg: "x", version: "1.2.3", replaces: "1.2.2", image: "registry.example/x@sha256:abc",
	placeholder: "controller:latest", channels: "stable", scorecard: "scorecard:v1", minKube: "1.2.0",
}

func generate(t *testing.T, in string, o bundleOptions) (map[string][]byte, error) {
	t.Helper()
	objs, err := decodeAll(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	return buildBundle(objs, o, []byte("<svg/>"))
}

func TestBundleLayout(t *testing.T) {
	files, err := generate(t, input, testOptions)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"manifests/example.io_things.yaml",
		"manifests/metrics_v1_service.yaml",
		"manifests/viewer_rbac.authorization.k8s.io_v1_clusterrole.yaml",
		"manifests/x.clusterserviceversion.yaml",
		"metadata/annotations.yaml",
		"tests/scorecard/config.yaml",
	}
	if got := sortedKeys(files); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("files\n  %v\nwant\n  %v", got, want)
	}
	if bytes.Contains(files["manifests/metrics_v1_service.yaml"], []byte("namespace")) {
		t.Error("the Service keeps kustomize's namespace; OLM installs it into the operator's")
	}
	again, err := generate(t, input, testOptions)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.EqualFunc(files, again, bytes.Equal) {
		t.Error("two runs on the same input differ")
	}
}

func TestCSVContent(t *testing.T) {
	files, err := generate(t, input, testOptions)
	if err != nil {
		t.Fatal(err)
	}
	var csv map[string]any
	if err := yaml.Unmarshal(files["manifests/x.clusterserviceversion.yaml"], &csv); err != nil {
		t.Fatal(err)
	}
	str := func(path ...string) string {
		s, _, _ := unstructured.NestedString(csv, path...)
		return s
	}
	for _, c := range []struct{ got, want string }{
		{str("metadata", "name"), "x.v1.2.3"},
		{str("metadata", "namespace"), ""},
		{str("spec", "version"), "1.2.3"},
		{str("spec", "replaces"), "x.v1.2.2"},
		{str("spec", "minKubeVersion"), "1.2.0"},
		{str("metadata", "annotations", "containerImage"), testOptions.image},
		{str("spec", "install", "strategy"), "deployment"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
	if strings.Contains(string(files["manifests/x.clusterserviceversion.yaml"]), "controller:latest") {
		t.Error("the placeholder image is left in the CSV")
	}
	if !strings.Contains(str("metadata", "annotations", "alm-examples"), `"kind": "Thing"`) {
		t.Error("alm-examples lacks the sample")
	}
	related, _, _ := unstructured.NestedSlice(csv, "spec", "relatedImages")
	if len(related) != 2 {
		t.Errorf("relatedImages %v, want the manager and the mover", related)
	}
	for _, path := range [][]string{
		{"spec", "install", "spec", "clusterPermissions"},
		{"spec", "install", "spec", "permissions"},
	} {
		perms, _, _ := unstructured.NestedSlice(csv, path...)
		if len(perms) != 1 || perms[0].(map[string]any)["serviceAccountName"] != "sa" {
			t.Errorf("%s = %v, want one entry for sa", strings.Join(path, "."), perms)
		}
	}
}

// Every input the generator cannot turn into a correct bundle is refused with an error that says
// what to fix.
func TestBundleRefuses(t *testing.T) {
	replace := func(old, new string) string {
		if !strings.Contains(input, old) {
			t.Fatalf("the fixture has no %q", old)
		}
		return strings.Replace(input, old, new, 1)
	}
	for _, c := range []struct {
		name, in string
		o        bundleOptions
		want     string
	}{
		{"bad version", input, with(func(o *bundleOptions) { o.version = "1.2" }), "--version"},
		{"bad replaces", input, with(func(o *bundleOptions) { o.replaces = "x" }), "--replaces"},
		{"bad min-kube-version", input, with(func(o *bundleOptions) { o.minKube = "1.2" }), "--min-kube-version"},
		{"no CSV base", replace("kind: ClusterServiceVersion", "kind: Other"), testOptions, "no ClusterServiceVersion base"},
		{"CRD not described", replace("      kind: Thing\n      displayName", "      kind: Other\n      displayName"),
			testOptions, "describes things.example.io as Other"},
		{"owned CRD without description", replace("      description: A thing.", ""),
			testOptions, "needs a displayName and a description"},
		{"unserved version", replace("    served: true", "    served: false"), testOptions, "describes things.example.io"},
		{"no placeholder image", input, with(func(o *bundleOptions) { o.placeholder = "other:latest" }),
			"no container uses the image"},
		{"foreign subject", replace(saSubject+nextBinding, "- {kind: User, name: alice}"+nextBinding),
			testOptions, "can only grant its own service accounts"},
		{"unbound Role", replace(leaderRef, strings.ReplaceAll(leaderRef, "Role, name: leader", "ClusterRole, name: viewer")),
			testOptions, "Role/leader is bound by nothing"},
		{"unknown kind", input + "---\napiVersion: v1\nkind: Pod\nmetadata: {name: p}\n", testOptions, "Pod p: not a kind"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := generate(t, c.in, c.o)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}

const (
	saSubject   = "- {kind: ServiceAccount, name: sa, namespace: sys}"
	nextBinding = "\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding"
	leaderRef   = "roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: leader}"
)

func with(change func(*bundleOptions)) bundleOptions {
	o := testOptions
	change(&o)
	return o
}

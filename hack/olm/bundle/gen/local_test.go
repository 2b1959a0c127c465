package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

const (
	repoRoot   = "../../../.."
	catalogPkg = repoRoot + "/catalog/devworkspace-backup-operator"
)

var testLocal = localOptions{
	apiServerPort: "16443",
	images:        imageMap{"quay.io/dwbackup/": "127.0.0.1:5001/dwbackup/"},
}

// The local variant of every catalog bundle differs from the validated one only in what the
// loopback-only cluster needs: host network, loopback API server and endpoints, Recreate, one
// replica, and images from the local registry. Nothing else of the CSV, and no other object, changes.
func TestLocalVariantChangesOnlyLocalFields(t *testing.T) {
	bundles, err := loadBundles(catalogPkg)
	if err != nil {
		t.Fatal(err)
	}
	if len(bundles) < 2 {
		t.Fatalf("the catalog holds %d bundles, want the current and the previous", len(bundles))
	}
	for _, b := range bundles {
		t.Run(b.name, func(t *testing.T) {
			files, err := localBundleFiles(b, testLocal, bundleOptions{pkg: "devworkspace-backup-operator", channels: "stable"})
			if err != nil {
				t.Fatal(err)
			}
			if len(files) != len(b.objects)+1 {
				t.Errorf("%d files for %d objects and the annotations", len(files), len(b.objects))
			}
			for _, obj := range b.objects {
				local := localObject(t, files, obj)
				got := diffPaths("", obj.Object, local)
				var want []string
				if obj.GetKind() == "ClusterServiceVersion" {
					want = wantLocalChanges(tagOf(b), replicas(t, obj))
				}
				if !slices.Equal(got, want) {
					t.Errorf("%s %s: the local variant changes\n  %s\nwant\n  %s", obj.GetKind(), obj.GetName(),
						strings.Join(got, "\n  "), strings.Join(want, "\n  "))
				}
			}
		})
	}
}

func tagOf(b catalogBundle) string { return "v" + b.version.String() }

// replicas is the replica count of the CSV's manager Deployment.
func replicas(t *testing.T, csv *unstructured.Unstructured) float64 {
	t.Helper()
	deployments, _, _ := unstructured.NestedSlice(csv.Object, "spec", "install", "spec", "deployments")
	if len(deployments) != 1 {
		t.Fatalf("%d deployments in the CSV, want 1", len(deployments))
	}
	n, found, err := unstructured.NestedFieldNoCopy(deployments[0].(map[string]any), "spec", "replicas")
	if err != nil || !found {
		t.Fatalf("the CSV's Deployment has no replicas (%v)", err)
	}
	return n.(float64) // decoded from JSON
}

// wantLocalChanges are the local variant's changes to the CSV of version v, whose Deployment has
// the given replicas.
func wantLocalChanges(v string, replicas float64) []string {
	const dep = "spec.install.spec.deployments[name=devworkspace-backup-operator-controller-manager].spec"
	const mgr = dep + ".template.spec.containers[name=manager]"
	local := "127.0.0.1:5001/dwbackup/devworkspace-backup-operator:" + v
	want := []string{
		"metadata.annotations.containerImage: " + local,
		"spec.relatedImages[name=manager].image: " + local,
		"spec.relatedImages[name=mover].image: " + local,
		dep + ".strategy.type: Recreate",
		dep + ".template.spec.hostNetwork: true",
		mgr + ".args[+--metrics-bind-address=127.0.0.1:18443]",
		mgr + ".args[+--health-probe-bind-address=127.0.0.1:18081]",
		mgr + ".args[+--mover-host-network]",
		mgr + ".env[name=KUBERNETES_SERVICE_HOST]: map[name:127.0.0.1]",
		mgr + ".env[name=KUBERNETES_SERVICE_PORT]: map[name:16443]",
		mgr + ".env[name=MOVER_IMAGE].value: " + local,
		mgr + ".image: " + local,
		mgr + ".ports[name=health].containerPort: 18081",
		mgr + ".ports[name=https]: map[containerPort:18443 name:https protocol:TCP]",
		mgr + ".livenessProbe.httpGet.host: 127.0.0.1",
		mgr + ".livenessProbe.httpGet.port: 18081",
		mgr + ".readinessProbe.httpGet.host: 127.0.0.1",
		mgr + ".readinessProbe.httpGet.port: 18081",
	}
	if replicas != 1 {
		want = append(want, dep+".replicas: 1")
	}
	slices.Sort(want)
	return want
}

// localObject finds obj's counterpart among the local bundle's files.
func localObject(t *testing.T, files map[string][]byte, obj *unstructured.Unstructured) map[string]any {
	t.Helper()
	for name, data := range files {
		if !strings.HasPrefix(name, "manifests/") {
			continue
		}
		objs, err := decodeAll(bytes.NewReader(data))
		if err != nil || len(objs) != 1 {
			t.Fatalf("%s: %v", name, err)
		}
		if objs[0].GetKind() == obj.GetKind() && objs[0].GetName() == obj.GetName() {
			return objs[0].Object
		}
	}
	t.Fatalf("the local bundle has no %s %s", obj.GetKind(), obj.GetName())
	return nil
}

// diffPaths lists where b differs from a, one line per change, sorted. Lists of objects with a
// name are matched by name ([name=x]), lists of strings as sets ([+x] added, [-x] removed), other
// lists by index. A changed or added value is printed after the path; a removed one as "removed".
func diffPaths(path string, a, b any) []string {
	var out []string
	switch av := a.(type) {
	case map[string]any:
		bv, ok := b.(map[string]any)
		if !ok {
			return []string{changed(path, b)}
		}
		keys := map[string]bool{}
		for k := range av {
			keys[k] = true
		}
		for k := range bv {
			keys[k] = true
		}
		for k := range keys {
			out = append(out, diffPaths(join(path, k), av[k], bv[k])...)
		}
	case []any:
		bv, ok := b.([]any)
		if !ok {
			return []string{changed(path, b)}
		}
		out = diffLists(path, av, bv)
	default:
		if fmt.Sprint(a) != fmt.Sprint(b) {
			out = []string{changed(path, b)}
		}
	}
	slices.Sort(out)
	return out
}

func diffLists(path string, a, b []any) []string {
	var out []string
	if named(a) && named(b) {
		byName := func(l []any) map[string]any {
			m := map[string]any{}
			for _, x := range l {
				m[fmt.Sprint(x.(map[string]any)["name"])] = x
			}
			return m
		}
		am, bm := byName(a), byName(b)
		for _, k := range sortedKeys(am) {
			out = append(out, diffPaths(fmt.Sprintf("%s[name=%s]", path, k), am[k], bm[k])...)
		}
		for _, k := range sortedKeys(bm) {
			if _, ok := am[k]; !ok {
				out = append(out, changed(fmt.Sprintf("%s[name=%s]", path, k), summarize(bm[k].(map[string]any))))
			}
		}
		return out
	}
	if strings_(a) && strings_(b) {
		for _, x := range a {
			if !slices.Contains(b, x) {
				out = append(out, fmt.Sprintf("%s[-%s]", path, x))
			}
		}
		for _, x := range b {
			if !slices.Contains(a, x) {
				out = append(out, fmt.Sprintf("%s[+%s]", path, x))
			}
		}
		return out
	}
	for i := 0; i < max(len(a), len(b)); i++ {
		var x, y any
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		out = append(out, diffPaths(fmt.Sprintf("%s[%d]", path, i), x, y)...)
	}
	return out
}

// summarize prints an added named entry: its value (env) or its other fields.
func summarize(m map[string]any) any {
	if v, ok := m["value"]; ok && len(m) == 2 {
		return map[string]any{"name": v}
	}
	return m
}

func named(l []any) bool {
	for _, x := range l {
		m, ok := x.(map[string]any)
		if !ok {
			return false
		}
		if _, ok := m["name"]; !ok {
			return false
		}
	}
	return len(l) > 0
}

func strings_(l []any) bool {
	for _, x := range l {
		if _, ok := x.(string); !ok {
			return false
		}
	}
	return len(l) > 0
}

func changed(path string, v any) string {
	if v == nil {
		return path + ": removed"
	}
	return fmt.Sprintf("%s: %v", path, v)
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// The local variant makes the changes config/local makes to config/default: the manager's host
// network, strategy, arguments, environment, ports and probes equal those of
// `kustomize build config/local` (which hack/local-cluster/deploy.sh applies), apart from the image.
func TestLocalVariantMatchesConfigLocal(t *testing.T) {
	kustomize := os.Getenv("KUSTOMIZE")
	if kustomize == "" {
		t.Fatal("KUSTOMIZE is not set: run make test-bundle")
	}
	out, err := exec.Command(kustomize, "build", repoRoot+"/config/local").Output()
	if err != nil {
		t.Fatalf("kustomize build config/local: %v", err)
	}
	objs, err := decodeAll(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	var want appsv1.Deployment // the first replica's (config/local runs a second with other ports)
	for _, u := range objs {
		if u.GetKind() == "Deployment" && u.GetName() == "devworkspace-backup-operator-controller-manager" {
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &want); err != nil {
				t.Fatal(err)
			}
		}
	}
	bundles, err := loadBundles(catalogPkg)
	if err != nil {
		t.Fatal(err)
	}
	current := bundles[len(bundles)-1]
	var got appsv1.DeploymentSpec
	for _, obj := range current.objects {
		if obj.GetKind() != "ClusterServiceVersion" {
			continue
		}
		local, err := localizeCSV(obj.Object, localOptions{apiServerPort: "16443", images: imageMap{
			"quay.io/dwbackup/devworkspace-backup-operator:" + tagOf(current): want.Spec.Template.Spec.Containers[0].Image,
		}})
		if err != nil {
			t.Fatal(err)
		}
		deployments, _, _ := unstructured.NestedSlice(local, "spec", "install", "spec", "deployments")
		spec, _, _ := unstructured.NestedMap(deployments[0].(map[string]any), "spec")
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(spec, &got); err != nil {
			t.Fatal(err)
		}
	}
	if *got.Replicas != *want.Spec.Replicas {
		t.Errorf("replicas %d, config/local %d", *got.Replicas, *want.Spec.Replicas)
	}
	if got.Strategy.Type != want.Spec.Strategy.Type {
		t.Errorf("strategy %q, config/local %q", got.Strategy.Type, want.Spec.Strategy.Type)
	}
	if got.Template.Spec.HostNetwork != want.Spec.Template.Spec.HostNetwork {
		t.Errorf("hostNetwork %v, config/local %v", got.Template.Spec.HostNetwork, want.Spec.Template.Spec.HostNetwork)
	}
	g, w := got.Template.Spec.Containers[0], want.Spec.Template.Spec.Containers[0]
	for _, c := range []struct {
		field     string
		got, want any
	}{
		{"image", g.Image, w.Image},
		{"args", g.Args, w.Args},
		{"env", envMap(g), envMap(w)},
		{"ports", g.Ports, w.Ports},
		{"livenessProbe", g.LivenessProbe, w.LivenessProbe},
		{"readinessProbe", g.ReadinessProbe, w.ReadinessProbe},
	} {
		if fmt.Sprintf("%+v", c.got) != fmt.Sprintf("%+v", c.want) {
			t.Errorf("manager %s:\n  local variant %+v\n  config/local  %+v", c.field, c.got, c.want)
		}
	}
}

// envMap is a container's environment by name (config/local's strategic merge appends in another
// order).
func envMap(c corev1.Container) map[string]string {
	m := map[string]string{}
	for _, e := range c.Env {
		m[e.Name] = e.Value
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			m[e.Name] = "fieldRef:" + e.ValueFrom.FieldRef.FieldPath
		}
	}
	return m
}

package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/blang/semver/v4"
	"github.com/operator-framework/api/pkg/lib/version"
	operatorsv1alpha1 "github.com/operator-framework/api/pkg/operators/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// Keys and kinds the generator looks for.
const (
	keyName = "name"
	kindCSV = "ClusterServiceVersion"
	kindCRB = "ClusterRoleBinding"
)

// bundleParts is the kustomize output sorted by what the bundle does with each object.
type bundleParts struct {
	base        *unstructured.Unstructured   // the ClusterServiceVersion base
	crds        []*unstructured.Unstructured // written as they are
	deployments []*unstructured.Unstructured // the CSV's install strategy
	accounts    map[string]bool              // ServiceAccount names: OLM creates them
	roles       map[string]*unstructured.Unstructured
	bindings    []*unstructured.Unstructured
	samples     []*unstructured.Unstructured // alm-examples
	extra       []*unstructured.Unstructured // other objects OLM applies (Services, unbound ClusterRoles)
}

// roleKey names a Role or a ClusterRole in bundleParts.roles.
func roleKey(kind, name string) string { return kind + "/" + name }

func sortObjects(objs []*unstructured.Unstructured) (bundleParts, error) {
	p := bundleParts{accounts: map[string]bool{}, roles: map[string]*unstructured.Unstructured{}}
	var crs []*unstructured.Unstructured
	for _, u := range objs {
		switch u.GetKind() {
		case kindCSV:
			if p.base != nil {
				return p, fmt.Errorf("two ClusterServiceVersions: %s and %s", p.base.GetName(), u.GetName())
			}
			p.base = u
		case "CustomResourceDefinition":
			p.crds = append(p.crds, u)
		case "Deployment":
			p.deployments = append(p.deployments, u)
		case "ServiceAccount":
			p.accounts[u.GetName()] = true
		case "Role", "ClusterRole":
			p.roles[roleKey(u.GetKind(), u.GetName())] = u
		case "RoleBinding", kindCRB:
			p.bindings = append(p.bindings, u)
		case "Namespace":
			// OLM installs into the namespace of the OperatorGroup.
		case "Service", "ConfigMap", "PodDisruptionBudget":
			p.extra = append(p.extra, u)
		default:
			crs = append(crs, u)
		}
	}
	if p.base == nil {
		return p, fmt.Errorf("no ClusterServiceVersion base in the input (config/manifests/bases)")
	}
	if len(p.deployments) == 0 {
		return p, fmt.Errorf("no Deployment in the input")
	}
	owned := map[string]bool{}
	for _, crd := range p.crds {
		group, _, _ := unstructured.NestedString(crd.Object, "spec", "group")
		kind, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "kind")
		owned[group+"/"+kind] = true
	}
	for _, u := range crs {
		if !owned[u.GroupVersionKind().Group+"/"+u.GetKind()] {
			return p, fmt.Errorf("%s %s: not a kind the bundle knows what to do with", u.GetKind(), u.GetName())
		}
		p.samples = append(p.samples, u)
	}
	roles, err := unboundRoles(p)
	if err != nil {
		return p, err
	}
	p.extra = append(p.extra, roles...)
	slices.SortFunc(p.crds, byKindName)
	slices.SortFunc(p.samples, byKindName)
	slices.SortFunc(p.extra, byKindName)
	return p, nil
}

func byKindName(a, b *unstructured.Unstructured) int {
	return strings.Compare(a.GetKind()+"/"+a.GetName(), b.GetKind()+"/"+b.GetName())
}

// buildCSV fills the base with what the bundle generator knows.
func buildCSV(p bundleParts, o bundleOptions, icon []byte) (map[string]any, error) {
	var csv operatorsv1alpha1.ClusterServiceVersion
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(p.base.Object, &csv); err != nil {
		return nil, fmt.Errorf("the CSV base: %w", err)
	}
	csv.Name = o.pkg + ".v" + o.version
	csv.Namespace = ""
	csv.Spec.Version = version.OperatorVersion{Version: semver.MustParse(o.version)}
	csv.Spec.Replaces = ""
	csv.Spec.MinKubeVersion = o.minKube
	if o.replaces != "" {
		csv.Spec.Replaces = o.pkg + ".v" + o.replaces
	}
	data, mediatype := svgDataIcon(icon)
	csv.Spec.Icon = []operatorsv1alpha1.Icon{{Data: data, MediaType: mediatype}}

	if err := checkOwnedCRDs(csv.Spec.CustomResourceDefinitions.Owned, p.crds); err != nil {
		return nil, err
	}
	examples, err := almExamples(p.samples)
	if err != nil {
		return nil, err
	}
	if csv.Annotations == nil {
		csv.Annotations = map[string]string{}
	}
	csv.Annotations["alm-examples"] = examples
	csv.Annotations["containerImage"] = o.image

	strategy, related, err := installStrategy(p, o)
	if err != nil {
		return nil, err
	}
	csv.Spec.InstallStrategy = operatorsv1alpha1.NamedInstallStrategy{
		StrategyName: operatorsv1alpha1.InstallStrategyNameDeployment,
		StrategySpec: strategy,
	}
	csv.Spec.RelatedImages = related

	return csvObject(&csv)
}

// csvObject is the CSV as a bundle file holds it: no status, and no creation times, which the
// converter adds and which would make the output differ run to run.
func csvObject(csv *operatorsv1alpha1.ClusterServiceVersion) (map[string]any, error) {
	out, err := runtime.DefaultUnstructuredConverter.ToUnstructured(csv)
	if err != nil {
		return nil, err
	}
	delete(out, "status")
	unstructured.RemoveNestedField(out, "metadata", "creationTimestamp")
	deployments, _, _ := unstructured.NestedSlice(out, "spec", "install", "spec", "deployments")
	for _, d := range deployments {
		if m, ok := d.(map[string]any); ok {
			unstructured.RemoveNestedField(m, "spec", "template", "metadata", "creationTimestamp")
		}
	}
	return out, unstructured.SetNestedSlice(out, deployments, "spec", "install", "spec", "deployments")
}

// checkOwnedCRDs makes sure the base describes every CRD the bundle carries, and nothing else:
// OperatorHub shows the base's display names and descriptors.
func checkOwnedCRDs(owned []operatorsv1alpha1.CRDDescription, crds []*unstructured.Unstructured) error {
	described := map[string]operatorsv1alpha1.CRDDescription{}
	for _, d := range owned {
		described[d.Name] = d
	}
	for _, crd := range crds {
		d, ok := described[crd.GetName()]
		if !ok {
			return fmt.Errorf("CRD %s has no entry in the CSV base's spec.customresourcedefinitions.owned", crd.GetName())
		}
		kind, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "kind")
		if d.Kind != kind || !servesVersion(crd, d.Version) {
			return fmt.Errorf("CSV base describes %s as %s %s, the CRD serves kind %s", crd.GetName(), d.Kind, d.Version, kind)
		}
		if d.DisplayName == "" || d.Description == "" {
			return fmt.Errorf("CSV base: owned CRD %s needs a displayName and a description", crd.GetName())
		}
		delete(described, crd.GetName())
	}
	for name := range described {
		return fmt.Errorf("CSV base describes %s, which is not among the CRDs", name)
	}
	return nil
}

func servesVersion(crd *unstructured.Unstructured, v string) bool {
	versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	for _, x := range versions {
		if m, ok := x.(map[string]any); ok && m["name"] == v && m["served"] == true {
			return true
		}
	}
	return false
}

// almExamples is the samples as the JSON array OperatorHub offers as templates.
func almExamples(samples []*unstructured.Unstructured) (string, error) {
	list := make([]map[string]any, 0, len(samples))
	for _, s := range samples {
		list = append(list, s.Object)
	}
	data, err := json.MarshalIndent(list, "", "  ")
	return string(data), err
}

// installStrategy turns the Deployments and the service accounts' bindings into the CSV's install
// strategy, and lists every image the Deployments use.
func installStrategy(p bundleParts, o bundleOptions) (
	operatorsv1alpha1.StrategyDetailsDeployment, []operatorsv1alpha1.RelatedImage, error,
) {
	var s operatorsv1alpha1.StrategyDetailsDeployment
	var related []operatorsv1alpha1.RelatedImage
	for _, u := range p.deployments {
		var d appsv1.Deployment
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &d); err != nil {
			return s, nil, fmt.Errorf("deployment %s: %w", u.GetName(), err)
		}
		images, err := setImage(&d.Spec.Template.Spec, o.placeholder, o.image)
		if err != nil {
			return s, nil, fmt.Errorf("deployment %s: %w", d.Name, err)
		}
		related = append(related, images...)
		s.DeploymentSpecs = append(s.DeploymentSpecs, operatorsv1alpha1.StrategyDeploymentSpec{
			Name: d.Name, Spec: d.Spec, Label: d.Labels,
		})
	}
	perms := map[string][]rbacv1.PolicyRule{}
	clusterPerms := map[string][]rbacv1.PolicyRule{}
	for _, b := range p.bindings {
		var rb rbacv1.RoleBinding // a ClusterRoleBinding has the same fields
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(b.Object, &rb); err != nil {
			return s, nil, fmt.Errorf("%s %s: %w", b.GetKind(), b.GetName(), err)
		}
		role, ok := p.roles[roleKey(rb.RoleRef.Kind, rb.RoleRef.Name)]
		if !ok {
			return s, nil, fmt.Errorf("%s %s binds %s %s, which is not in the input",
				b.GetKind(), b.GetName(), rb.RoleRef.Kind, rb.RoleRef.Name)
		}
		var r rbacv1.ClusterRole // a Role has the same rules
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(role.Object, &r); err != nil {
			return s, nil, err
		}
		for _, subject := range rb.Subjects {
			if subject.Kind != rbacv1.ServiceAccountKind || !p.accounts[subject.Name] {
				return s, nil, fmt.Errorf("%s %s binds %s %s: the bundle can only grant its own service accounts",
					b.GetKind(), b.GetName(), subject.Kind, subject.Name)
			}
			if b.GetKind() == kindCRB {
				clusterPerms[subject.Name] = append(clusterPerms[subject.Name], r.Rules...)
			} else {
				perms[subject.Name] = append(perms[subject.Name], r.Rules...)
			}
		}
	}
	for _, sa := range sortedKeys(perms) {
		s.Permissions = append(s.Permissions,
			operatorsv1alpha1.StrategyDeploymentPermissions{ServiceAccountName: sa, Rules: perms[sa]})
	}
	for _, sa := range sortedKeys(clusterPerms) {
		s.ClusterPermissions = append(s.ClusterPermissions,
			operatorsv1alpha1.StrategyDeploymentPermissions{ServiceAccountName: sa, Rules: clusterPerms[sa]})
	}
	return s, related, nil
}

// unboundRoles are the ClusterRoles no binding of the bundle uses (the user-facing roles): OLM
// creates them as they are.
func unboundRoles(p bundleParts) ([]*unstructured.Unstructured, error) {
	bound := map[string]bool{}
	for _, b := range p.bindings {
		ref, _, _ := unstructured.NestedStringMap(b.Object, "roleRef")
		bound[roleKey(ref["kind"], ref["name"])] = true
	}
	var out []*unstructured.Unstructured
	for _, key := range sortedKeys(p.roles) {
		if bound[key] {
			continue
		}
		if strings.HasPrefix(key, "Role/") {
			return nil, fmt.Errorf("%s is bound by nothing: bind it to the manager or drop it", key)
		}
		out = append(out, p.roles[key])
	}
	return out, nil
}

// setImage replaces the placeholder image in the containers and in their *_IMAGE environment
// variables (MOVER_IMAGE: the mover runs from the manager's image) and returns them as related
// images, named after the container or the variable.
func setImage(pod *corev1.PodSpec, placeholder, image string) ([]operatorsv1alpha1.RelatedImage, error) {
	var related []operatorsv1alpha1.RelatedImage
	found := false
	for i := range pod.Containers {
		c := &pod.Containers[i]
		if c.Image == placeholder {
			c.Image, found = image, true
		}
		related = append(related, operatorsv1alpha1.RelatedImage{Name: c.Name, Image: c.Image})
		for j := range c.Env {
			e := &c.Env[j]
			if !strings.HasSuffix(e.Name, "_IMAGE") {
				continue
			}
			if e.Value == placeholder {
				e.Value = image
			}
			related = append(related, operatorsv1alpha1.RelatedImage{
				Name: strings.ToLower(strings.TrimSuffix(e.Name, "_IMAGE")), Image: e.Value,
			})
		}
	}
	if !found {
		return nil, fmt.Errorf("no container uses the image %q that --image replaces", placeholder)
	}
	return related, nil
}

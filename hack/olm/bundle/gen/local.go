package main

import (
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"strings"

	operatorsv1alpha1 "github.com/operator-framework/api/pkg/operators/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// The local single-node cluster (hack/local-cluster, docs/local-cluster.md) has no pod network and
// no kube-proxy: config/local runs the manager on the host network, reaching the API server on
// loopback, with its endpoints on these loopback ports. The local variant of the bundle makes the
// same changes, and only those (TestLocalVariantChangesOnlyLocalFields).
const (
	localHost        = "127.0.0.1"
	localHealthPort  = 18081
	localMetricsPort = 18443
)

// localOptions say how the local variant differs from the bundle.
type localOptions struct {
	apiServerPort string
	images        imageMap
}

// imageMap rewrites image references: exact FROM=TO pairs first, then PREFIX/=NEWPREFIX/ pairs.
type imageMap map[string]string

func (m imageMap) String() string { return fmt.Sprint(map[string]string(m)) }

func (m imageMap) Set(v string) error {
	from, to, ok := strings.Cut(v, "=")
	if !ok || from == "" || to == "" {
		return fmt.Errorf("want FROM=TO, got %q", v)
	}
	m[from] = to
	return nil
}

// apply returns the image ref rewritten, or an error when no pair matches: the local cluster can
// pull only from its own registry.
func (m imageMap) apply(ref string) (string, error) {
	if to, ok := m[ref]; ok {
		return to, nil
	}
	for from, to := range m {
		if strings.HasSuffix(from, "/") && strings.HasPrefix(ref, from) {
			return to + strings.TrimPrefix(ref, from), nil
		}
	}
	return "", fmt.Errorf("no --image pair maps %q to the local registry", ref)
}

// runLocal writes, for every bundle of the catalog, its local variant as a bundle directory
// OUT/bundles/v<version> (opm renders them into the local catalog; make bundle-local).
func runLocal(args []string) error {
	o := localOptions{images: imageMap{}}
	fs := flag.NewFlagSet("local", flag.ContinueOnError)
	catalogDir := fs.String("catalog", "", "the package's catalog directory (bundle-v*.yaml)")
	out := fs.String("out", "", "the directory to write bundles/v<version>/ into")
	pkg := fs.String("package", "devworkspace-backup-operator", "the OLM package name")
	channel := fs.String("channel", "stable", "the channel")
	fs.StringVar(&o.apiServerPort, "apiserver-port", "16443", "the local API server's port on 127.0.0.1")
	fs.Var(o.images, "image", "FROM=TO (an exact reference) or PREFIX/=NEWPREFIX/ (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *catalogDir == "" || *out == "" || len(o.images) == 0 {
		return errors.New("--catalog, --out and --image are required")
	}
	bundles, err := loadBundles(*catalogDir)
	if err != nil {
		return err
	}
	for _, b := range bundles {
		files, err := localBundleFiles(b, o, bundleOptions{pkg: *pkg, channels: *channel})
		if err != nil {
			return fmt.Errorf("%s: %w", b.name, err)
		}
		if err := writeDir(filepath.Join(*out, "bundles", "v"+b.version.String()), files); err != nil {
			return err
		}
	}
	return nil
}

// localBundleFiles is the bundle directory of b's objects with the CSV localized.
func localBundleFiles(b catalogBundle, o localOptions, meta bundleOptions) (map[string][]byte, error) {
	files := map[string][]byte{}
	for _, obj := range b.objects {
		content := obj.Object
		if obj.GetKind() == kindCSV {
			var err error
			if content, err = localizeCSV(obj.Object, o); err != nil {
				return nil, err
			}
		}
		data, err := yaml.Marshal(content)
		if err != nil {
			return nil, err
		}
		gv := strings.ReplaceAll(obj.GetAPIVersion(), "/", "_")
		files[fmt.Sprintf("manifests/%s_%s_%s.yaml", obj.GetName(), gv, strings.ToLower(obj.GetKind()))] = data
	}
	// The local bundles carry no scorecard tests: nothing runs them on the local cluster.
	ann := annotations(meta)
	delete(ann, "operators.operatorframework.io.test.mediatype.v1")
	delete(ann, "operators.operatorframework.io.test.config.v1")
	annYAML, err := yaml.Marshal(map[string]any{"annotations": ann})
	if err != nil {
		return nil, err
	}
	files["metadata/annotations.yaml"] = annYAML
	return files, nil
}

// localizeCSV returns the CSV for the local cluster: the changes config/local makes to
// config/default's Deployment, and the images from the local registry.
func localizeCSV(in map[string]any, o localOptions) (map[string]any, error) {
	var csv operatorsv1alpha1.ClusterServiceVersion
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(in, &csv); err != nil {
		return nil, err
	}
	for i := range csv.Spec.InstallStrategy.StrategySpec.DeploymentSpecs {
		if err := localizeDeployment(&csv.Spec.InstallStrategy.StrategySpec.DeploymentSpecs[i].Spec, o); err != nil {
			return nil, err
		}
	}
	for i := range csv.Spec.RelatedImages {
		ref, err := o.images.apply(csv.Spec.RelatedImages[i].Image)
		if err != nil {
			return nil, err
		}
		csv.Spec.RelatedImages[i].Image = ref
	}
	if ref, ok := csv.Annotations["containerImage"]; ok {
		local, err := o.images.apply(ref)
		if err != nil {
			return nil, err
		}
		csv.Annotations["containerImage"] = local
	}
	return csvObject(&csv)
}

// localizeDeployment is config/local's manager_local_patch.yaml and its JSON patch, in Go.
func localizeDeployment(d *appsv1.DeploymentSpec, o localOptions) error {
	// One node, and the manager holds host ports: a surge pod could never be scheduled.
	d.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
	// and one replica: two on one node's host network would want the same ports (config/local runs
	// its second replica as a Deployment of its own, with other ports).
	one := int32(1)
	d.Replicas = &one
	pod := &d.Template.Spec
	pod.HostNetwork = true
	var manager *corev1.Container
	for i := range pod.Containers {
		c := &pod.Containers[i]
		if c.Name == "manager" {
			manager = c
		}
		ref, err := o.images.apply(c.Image)
		if err != nil {
			return err
		}
		c.Image = ref
		for j := range c.Env {
			if strings.HasSuffix(c.Env[j].Name, "_IMAGE") {
				if c.Env[j].Value, err = o.images.apply(c.Env[j].Value); err != nil {
					return err
				}
			}
		}
	}
	if manager == nil {
		return errors.New("no container named manager")
	}
	// The flag package keeps the last value of a repeated flag: appending overrides.
	manager.Args = append(manager.Args,
		fmt.Sprintf("--metrics-bind-address=%s:%d", localHost, localMetricsPort),
		fmt.Sprintf("--health-probe-bind-address=%s:%d", localHost, localHealthPort),
		"--mover-host-network")
	manager.Env = append(manager.Env,
		corev1.EnvVar{Name: "KUBERNETES_SERVICE_HOST", Value: localHost},
		corev1.EnvVar{Name: "KUBERNETES_SERVICE_PORT", Value: o.apiServerPort})
	manager.Ports = []corev1.ContainerPort{
		{Name: "health", ContainerPort: localHealthPort, Protocol: corev1.ProtocolTCP},
		{Name: "https", ContainerPort: localMetricsPort, Protocol: corev1.ProtocolTCP},
	}
	for _, probe := range []*corev1.Probe{manager.LivenessProbe, manager.ReadinessProbe} {
		if probe == nil || probe.HTTPGet == nil {
			return errors.New("the manager's liveness and readiness probes must be httpGet")
		}
		probe.HTTPGet.Host = localHost
		probe.HTTPGet.Port = intstr.FromInt32(localHealthPort)
	}
	return nil
}

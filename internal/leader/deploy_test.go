/*
Copyright 2026.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package leader

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/dwbackup/devworkspace-backup-operator/internal/testenv"
)

// The manifests as users deploy them (config/default) and as the local cluster runs them
// (config/local), rendered by kustomize: two replicas with leader election, each able to start.

func TestConfigDefaultRunsTwoReplicasWithLeaderElection(t *testing.T) {
	r := build(t, "default")
	if len(r.deployments) != 1 {
		t.Fatalf("config/default has %d Deployments, want 1", len(r.deployments))
	}
	d := r.deployments[0]
	if replicas(d) != 2 {
		t.Errorf("replicas = %d, want 2", replicas(d))
	}
	pod := d.Spec.Template.Spec
	if pod.HostNetwork {
		t.Error("config/default must not use the host network")
	}
	manager := managerContainer(t, pod)
	checkLeaderElection(t, d.Name, manager)
	if a := pod.Affinity; a == nil || a.PodAntiAffinity == nil ||
		len(a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) != 1 ||
		a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm.TopologyKey != corev1.LabelHostname ||
		!selects(a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm.LabelSelector,
			d.Spec.Template.Labels) {
		t.Errorf("want a preferred anti-affinity of the replicas by host name, got %+v", pod.Affinity)
	}
	if len(r.budgets) != 1 {
		t.Fatalf("config/default has %d PodDisruptionBudgets, want 1", len(r.budgets))
	}
	pdb := r.budgets[0].Spec
	if pdb.MaxUnavailable == nil || pdb.MaxUnavailable.IntValue() != 1 || !selects(pdb.Selector, d.Spec.Template.Labels) {
		t.Errorf("want a PodDisruptionBudget of maxUnavailable 1 over the manager pods, got %+v", pdb)
	}
}

func TestConfigLocalRunsTwoReplicasOnOwnHostPorts(t *testing.T) {
	r := build(t, "local")
	if len(r.deployments) != 2 {
		t.Fatalf("config/local has %d Deployments, want 2 (one replica each)", len(r.deployments))
	}
	ports := map[string]string{}
	for _, d := range r.deployments {
		if replicas(d) != 1 {
			t.Errorf("%s: replicas = %d, want 1", d.Name, replicas(d))
		}
		if !d.Spec.Template.Spec.HostNetwork {
			t.Errorf("%s: the local cluster's pods use the host network", d.Name)
		}
		manager := managerContainer(t, d.Spec.Template.Spec)
		checkLeaderElection(t, d.Name, manager)
		probe := lastFlag(manager.Args, "--health-probe-bind-address")
		metrics := lastFlag(manager.Args, "--metrics-bind-address")
		for _, addr := range []string{probe, metrics} {
			if other, taken := ports[addr]; taken || !strings.HasPrefix(addr, "127.0.0.1:") {
				t.Errorf("%s: address %q (also %s's): want a loopback port of its own", d.Name, addr, other)
			}
			ports[addr] = d.Name
		}
		for _, p := range []*corev1.Probe{manager.LivenessProbe, manager.ReadinessProbe} {
			if got := "127.0.0.1:" + p.HTTPGet.Port.String(); p.HTTPGet.Host != "127.0.0.1" || got != probe {
				t.Errorf("%s: probe on %s:%s, the manager serves them on %s", d.Name, p.HTTPGet.Host, p.HTTPGet.Port.String(), probe)
			}
		}
	}
}

// checkLeaderElection checks that the manager runs with --leader-elect and leader-election
// timings it accepts.
func checkLeaderElection(t *testing.T, name string, manager corev1.Container) {
	t.Helper()
	var f Flags
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	f.Bind(fs)
	var args []string
	for _, a := range manager.Args {
		if strings.HasPrefix(a, "--leader-elect") {
			args = append(args, a)
		}
	}
	if err := fs.Parse(args); err != nil {
		t.Errorf("%s: %v", name, err)
	}
	if !f.Enabled {
		t.Errorf("%s: no --leader-elect in %q", name, manager.Args)
	}
	if err := f.Validate(); err != nil {
		t.Errorf("%s: %v", name, err)
	}
	for _, e := range manager.Env {
		if e.Name == "POD_NAME" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil &&
			e.ValueFrom.FieldRef.FieldPath == "metadata.name" {
			return
		}
	}
	t.Errorf("%s: no POD_NAME from metadata.name: the Lease would not name the leader's pod", name)
}

// replicas is a Deployment's replica count, defaulted as the API server does.
func replicas(d appsv1.Deployment) int32 {
	if d.Spec.Replicas == nil {
		return 1
	}
	return *d.Spec.Replicas
}

// lastFlag is the value of the last --name=value in args (the one the flag package keeps).
func lastFlag(args []string, name string) string {
	var v string
	for _, a := range args {
		if rest, ok := strings.CutPrefix(a, name+"="); ok {
			v = rest
		}
	}
	return v
}

func selects(s *metav1.LabelSelector, podLabels map[string]string) bool {
	sel, err := metav1.LabelSelectorAsSelector(s)
	return err == nil && s != nil && !sel.Empty() && sel.Matches(labels.Set(podLabels))
}

func managerContainer(t *testing.T, pod corev1.PodSpec) corev1.Container {
	t.Helper()
	for _, c := range pod.Containers {
		if c.Name == "manager" {
			return c
		}
	}
	t.Fatal("no manager container")
	return corev1.Container{}
}

// rendered holds the kinds these tests read from `kustomize build`.
type rendered struct {
	deployments []appsv1.Deployment
	budgets     []policyv1.PodDisruptionBudget
}

// build runs kustomize (bin/kustomize, or $KUSTOMIZE) on a directory under config/.
func build(t *testing.T, dir string) rendered {
	t.Helper()
	kustomize := os.Getenv("KUSTOMIZE")
	if kustomize == "" {
		kustomize = filepath.Join(testenv.RepoRoot(), "bin", "kustomize")
	}
	out, err := exec.Command(kustomize, "build", filepath.Join(testenv.RepoRoot(), "config", dir)).Output()
	if err != nil {
		t.Fatalf("kustomize build config/%s (make kustomize installs kustomize): %v", dir, err)
	}
	var r rendered
	docs := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(out)))
	for {
		doc, err := docs.Read()
		if errors.Is(err, io.EOF) {
			return r
		}
		if err != nil {
			t.Fatal(err)
		}
		var meta metav1.TypeMeta
		if err := utilyaml.Unmarshal(doc, &meta); err != nil {
			t.Fatal(err)
		}
		switch meta.Kind {
		case "Deployment":
			var d appsv1.Deployment
			if err := utilyaml.Unmarshal(doc, &d); err != nil {
				t.Fatal(err)
			}
			r.deployments = append(r.deployments, d)
		case "PodDisruptionBudget":
			var p policyv1.PodDisruptionBudget
			if err := utilyaml.Unmarshal(doc, &p); err != nil {
				t.Fatal(err)
			}
			r.budgets = append(r.budgets, p)
		}
	}
}

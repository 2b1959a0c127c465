package main

import (
	"context"
	"fmt"
	"hash/fnv"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Fields of DWO's API the benchmark writes (docs/architecture.md, "DevWorkspaces").
const (
	attrStorageType = "controller.devfile.io/storage-type"
	storagePerWS    = "per-workspace"
	phaseStopped    = "Stopped"
	phaseRunning    = "Running"
)

// Keys of the unstructured DevWorkspace.
const (
	keyName       = "name"
	keyStatus     = "status"
	keyTransition = "lastTransitionTime"
)

// stoppedWorkspace is a DevWorkspace a slot must back up.
type stoppedWorkspace struct {
	Namespace string
	Name      string
	ID        string
}

// population is what populate created.
type population struct {
	namespaces []string
	stopped    []stoppedWorkspace
}

// populate creates the namespaces, DevWorkspaces (status through the status subresource, as
// DWO writes it) and the stopped workspaces' Bound PVCs, one namespace per task on workers
// goroutines. Setup, not measured.
func populate(ctx context.Context, c client.Client, sh shape, workers int) (population, error) {
	pop := population{}
	for i := range sh.namespaces {
		ns := fmt.Sprintf("bench-%04d", i)
		pop.namespaces = append(pop.namespaces, ns)
		for j := range sh.stoppedPerNS {
			name := workspaceName(j)
			pop.stopped = append(pop.stopped, stoppedWorkspace{Namespace: ns, Name: name, ID: workspaceID(ns, name)})
		}
	}
	var done atomic.Int64
	err := forEach(ctx, workers, pop.namespaces, func(ctx context.Context, ns string) error {
		if err := populateNamespace(ctx, c, ns, sh); err != nil {
			return err
		}
		if n := done.Add(1); n%100 == 0 {
			logf("populated %d/%d namespaces", n, sh.namespaces)
		}
		return nil
	})
	return pop, err
}

// populateNamespace creates one namespace, its DevWorkspaces (the first stoppedPerNS stopped with
// per-workspace storage, the others running) and the stopped ones' PVCs.
func populateNamespace(ctx context.Context, c client.Client, ns string, sh shape) error {
	labels := map[string]string{"app.kubernetes.io/part-of": "che.eclipse.org", "che.eclipse.org/username": ns}
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: labels}}); err != nil {
		return err
	}
	stoppedAt := time.Now().Add(-time.Hour).UTC()
	for j := range sh.perNamespace {
		name := workspaceName(j)
		id := workspaceID(ns, name)
		stopped := j < sh.stoppedPerNS
		if err := createDevWorkspace(ctx, c, ns, name, id, stopped, stoppedAt); err != nil {
			return err
		}
		if stopped {
			if err := createBoundPVC(ctx, c, ns, "storage-"+id); err != nil {
				return err
			}
		}
	}
	return nil
}

func workspaceName(j int) string { return fmt.Sprintf("ws-%02d", j) }

// workspaceID is a stable devworkspaceId in DWO's format (workspace + 16 hex).
func workspaceID(ns, name string) string {
	h := fnv.New64a()
	_, _ = h.Write([]byte(ns + "/" + name))
	return fmt.Sprintf("workspace%016x", h.Sum64())
}

// createDevWorkspace creates a DevWorkspace with a realistic devfile template, then writes its
// status through the status subresource.
func createDevWorkspace(ctx context.Context, c client.Client, ns, name, id string, stopped bool,
	stoppedAt time.Time) error {
	dw := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "workspace.devfile.io/v1alpha2",
		"kind":       "DevWorkspace",
		"metadata": map[string]any{
			keyName: name, "namespace": ns,
			"labels":      map[string]any{"controller.devfile.io/creator": ns},
			"annotations": map[string]any{"che.eclipse.org/che-editor": "che-incubator/che-code/latest"},
		},
		"spec": map[string]any{"started": !stopped, "routingClass": "che", "template": devfileTemplate(name, stopped)},
	}}
	if err := c.Create(ctx, dw); err != nil {
		return fmt.Errorf("create DevWorkspace %s/%s: %w", ns, name, err)
	}
	dw.Object["status"] = workspaceStatus(id, stopped, stoppedAt)
	if err := c.Status().Update(ctx, dw); err != nil {
		return fmt.Errorf("status of DevWorkspace %s/%s: %w", ns, name, err)
	}
	return nil
}

// devfileTemplate is a typical Che devfile: a tools container with env, endpoints and volume
// mounts, a volume, two projects and a few commands. The manager's cache transform drops all of
// it but the storage-type attribute, which is why it is here.
func devfileTemplate(name string, perWorkspace bool) map[string]any {
	attrs := map[string]any{"controller.devfile.io/scc": "container-build", "pod-overrides": map[string]any{
		"metadata": map[string]any{"annotations": map[string]any{"io.kubernetes.cri-o.Devices": "/dev/fuse"}}}}
	if perWorkspace {
		attrs[attrStorageType] = storagePerWS
	}
	vars := []string{"GOPATH", "GOCACHE", "NODE_OPTIONS", "MAVEN_OPTS", "KUBEDOCK_ENABLED", "CHE_DASHBOARD_URL"}
	env := make([]any, 0, len(vars))
	for _, k := range vars {
		env = append(env, map[string]any{keyName: k, "value": "/projects/.cache/" + k})
	}
	tools := map[string]any{keyName: "tools", "container": map[string]any{
		"image": "quay.io/devfile/universal-developer-image:ubi9-latest", "memoryLimit": "6G", "memoryRequest": "512Mi",
		"cpuLimit": "4000m", "cpuRequest": "1000m", "mountSources": true, "env": env,
		"endpoints": []any{
			map[string]any{keyName: "http-8080", "targetPort": 8080, "exposure": "public", "protocol": "https"},
			map[string]any{keyName: "debug", "targetPort": 5005, "exposure": "internal"},
		},
		"volumeMounts": []any{map[string]any{keyName: "m2", "path": "/home/user/.m2"}},
	}}
	return map[string]any{
		"attributes": attrs,
		"components": []any{tools, map[string]any{keyName: "m2", "volume": map[string]any{"size": "1G"}}},
		"projects": []any{
			map[string]any{keyName: name, "git": map[string]any{"remotes": map[string]any{
				"origin": "https://github.com/example/" + name + ".git"}, "checkoutFrom": map[string]any{"revision": "main"}}},
			map[string]any{keyName: "docs", "git": map[string]any{"remotes": map[string]any{
				"origin": "https://github.com/example/docs.git"}}},
		},
		"commands": []any{
			command("build", "mvn clean install -DskipTests", "build"),
			command("test", "mvn test", "test"),
			command("run", "java -jar target/*.jar", "run"),
		},
	}
}

func command(id, line, group string) map[string]any {
	return map[string]any{"id": id, "exec": map[string]any{"component": "tools", "commandLine": line,
		"workingDir": "${PROJECT_SOURCE}", "group": map[string]any{"kind": group}}}
}

// workspaceStatus is DWO's status of a stopped or running workspace: its id, phase and the
// Started condition, whose transition to False is the stop time the policy compares.
func workspaceStatus(id string, stopped bool, stoppedAt time.Time) map[string]any {
	ts := stoppedAt.Format(time.RFC3339)
	if stopped {
		return map[string]any{"devworkspaceId": id, "phase": phaseStopped, "message": "Workspace is stopped",
			"conditions": []any{condition("Started", "False", "Stopped", ts)}}
	}
	return map[string]any{"devworkspaceId": id, "phase": phaseRunning, "mainUrl": "https://che.example.com/" + id,
		"conditions": []any{condition("Started", "True", "Running", ts), condition("Ready", "True", "", ts)}}
}

func condition(typ, status, reason, ts string) map[string]any {
	c := map[string]any{"type": typ, keyStatus: status, keyTransition: ts}
	if reason != "" {
		c["reason"] = reason
	}
	return c
}

// createBoundPVC creates a claim and marks it Bound (envtest runs no PV controller).
func createBoundPVC(ctx context.Context, c client.Client, ns, name string) error {
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources: corev1.VolumeResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("10Gi")}},
			VolumeName: "pv-" + name,
		},
	}
	if err := c.Create(ctx, pvc); err != nil {
		return fmt.Errorf("create PVC %s/%s: %w", ns, name, err)
	}
	pvc.Status.Phase = corev1.ClaimBound
	return c.Status().Update(ctx, pvc)
}

// forEach runs fn on every item with n goroutines and returns the first error (the others stop).
func forEach[T any](ctx context.Context, n int, items []T, fn func(context.Context, T) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	work := make(chan T)
	var wg sync.WaitGroup
	for range max(n, 1) {
		wg.Go(func() {
			for item := range work {
				if ctx.Err() != nil {
					continue
				}
				if err := fn(ctx, item); err != nil {
					cancel(err)
				}
			}
		})
	}
	for _, item := range items {
		work <- item
	}
	close(work)
	wg.Wait()
	return context.Cause(ctx)
}

//go:build olm && !e2e

package e2e

// The OLM suite (`make test-olm`, hack/olm/test-olm.sh): the operator installed, upgraded and
// uninstalled by a real Operator Lifecycle Manager (OLM v0's olm and catalog operators running as
// processes beside the local cluster, the file-based catalog served by `opm serve`), the way an
// administrator does it. It shares the e2e suite's helpers (build tag olm) but not its suite: the
// e2e suite expects the operator deployed by deploy.sh, this one installs it itself.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
)

var (
	env *cluster
	fx  *fixtures
)

func TestOLM(t *testing.T) {
	RegisterFailHandler(Fail)
	SetDefaultEventuallyTimeout(3 * time.Minute)
	SetDefaultEventuallyPollingInterval(time.Second)
	RunSpecs(t, "OLM suite (local cluster)")
}

var _ = BeforeSuite(func(ctx SpecContext) {
	env = connectCluster()
	fx = newFixtures(env)
	By("removing what earlier runs left, run id " + fx.id)
	fx.cleanPrevious(ctx)
}, NodeTimeout(time.Minute))

var _ = AfterEach(func() {
	if !CurrentSpecReport().Failed() || env == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, args := range [][]string{
		{"get", "catalogsources,subscriptions,installplans,clusterserviceversions,operatorgroups", "-A", "-o", "yaml"},
		{"get", "deployments,pods", "-A", "-o", "wide"},
	} {
		out, _ := env.kubectl(ctx, args...)
		_, _ = fmt.Fprintf(GinkgoWriter, "\n===== kubectl %s =====\n%s\n", strings.Join(args, " "), lastLines(out, 600))
	}
	if len(env.operatorDeployments) > 0 {
		env.dump(ctx, GinkgoWriter)
	}
})

const olmGroup = "operators.coreos.com"

var (
	catalogSourceGVK = schema.GroupVersionKind{Group: olmGroup, Version: "v1alpha1", Kind: "CatalogSource"}
	operatorGroupGVK = schema.GroupVersionKind{Group: olmGroup, Version: "v1", Kind: "OperatorGroup"}
	subscriptionGVK  = schema.GroupVersionKind{Group: olmGroup, Version: "v1alpha1", Kind: "Subscription"}
	installPlanGVK   = schema.GroupVersionKind{Group: olmGroup, Version: "v1alpha1", Kind: "InstallPlan"}
	csvGVK           = schema.GroupVersionKind{Group: olmGroup, Version: "v1alpha1", Kind: "ClusterServiceVersion"}
)

var _ = Describe("Install, upgrade and uninstall through OLM", Ordered, func() {
	var (
		cat    catalogChannel
		opNS   string // where the operator is installed
		wsNS   string // a user's namespace with a workspace
		ws     *workspace
		policy *backupv1alpha1.BackupPolicy
		repo   string
		first  backupv1alpha1.WorkspaceBackup
		uids   map[string]types.UID // every policy and backup by namespace/name, before the upgrade
		tags   map[string]string    // every artifact reference -> digest seen so far
	)

	BeforeAll(func() {
		cat = readCatalog(mustEnv("OLM_CATALOG_DIR"))
		By(fmt.Sprintf("catalog: package %s, channel %s, %s -> %s", cat.pkg, cat.channel, cat.older, cat.newer))
		tags = map[string]string{}
	})

	It("serves the catalog through a CatalogSource at the opm address", func(ctx SpecContext) {
		opNS = fx.createNamespace(ctx, "operator")
		src := newObject(catalogSourceGVK, opNS, "dwbackup-catalog")
		src.Object["spec"] = map[string]any{
			"sourceType":  "grpc",
			"address":     mustEnv("OLM_CATALOG_ADDRESS"),
			"displayName": "DevWorkspace Backup Operator (test catalog)",
		}
		Expect(env.client.Create(ctx, src)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(env.client.Get(ctx, client.ObjectKeyFromObject(src), src)).To(Succeed())
			state, _, _ := unstructured.NestedString(src.Object, "status", "connectionState", "lastObservedState")
			g.Expect(state).To(Equal("READY"))
		}).Should(Succeed(), "the catalog operator connects to the catalog")
	}, SpecTimeout(4*time.Minute))

	It("installs the older version after the administrator approves its InstallPlan", func(ctx SpecContext) {
		og := newObject(operatorGroupGVK, opNS, "dwbackup")
		og.Object["spec"] = map[string]any{} // no targetNamespaces: AllNamespaces
		Expect(env.client.Create(ctx, og)).To(Succeed())
		sub := newObject(subscriptionGVK, opNS, cat.pkg)
		sub.Object["spec"] = map[string]any{
			"name": cat.pkg, "channel": cat.channel, "source": "dwbackup-catalog", "sourceNamespace": opNS,
			"startingCSV": cat.older, "installPlanApproval": "Manual",
		}
		Expect(env.client.Create(ctx, sub)).To(Succeed())

		approvePlanFor(ctx, opNS, cat.older)
		dep := waitCSVSucceeded(ctx, opNS, cat.older)
		env.operatorNamespace, env.operatorDeployments = opNS, []string{dep}
		Expect(deploymentAvailable(ctx, opNS, dep)).To(Succeed())
		Expect(csvOwnsDeployment(ctx, opNS, dep, cat.older)).To(Succeed())
		By("OLM ran nothing in the cluster for the catalog: no registry pod, no bundle unpack Job")
		for _, ns := range []string{opNS, "olm"} {
			jobs := &batchv1.JobList{}
			Expect(env.client.List(ctx, jobs, client.InNamespace(ns))).To(Succeed())
			Expect(jobs.Items).To(BeEmpty(), "Jobs in %s", ns)
		}
		pods := &corev1.PodList{}
		Expect(env.client.List(ctx, pods, client.InNamespace("olm"))).To(Succeed())
		Expect(pods.Items).To(BeEmpty(), "pods in namespace olm")
	}, SpecTimeout(6*time.Minute))

	It("backs up a stopped workspace at the policy's slot", func(ctx SpecContext) {
		wsNS = fx.createNamespace(ctx, "ws")
		ws = fx.createWorkspace(ctx, wsNS, "app", storagePerWS, "olm",
			func(dir string) { writeSampleTree(dir, "olm before") })
		policy = fx.createPolicy(ctx, "olm", "olm", nil)
		repo = fx.repository("olm")
		slot := fx.waitForSlot(ctx, policy.Name)
		backups := fx.waitForScheduled(ctx, policy.Name, slotEqual(slot), 1, 3*time.Minute)
		first = backups[ws.String()]
		expectArtifact(ctx, &first, ws, repo)
		tags[first.Status.Artifact.Reference] = first.Status.Artifact.Digest
		uids = objectUIDs(ctx, Default, policy.Name)
		Expect(uids).To(HaveKey("/" + policy.Name))
		Expect(uids).To(HaveKey(wsNS + "/" + first.Name))
	}, SpecTimeout(6*time.Minute))

	It("upgrades to the newer version when the administrator approves, keeping every object", func(ctx SpecContext) {
		approvePlanFor(ctx, opNS, cat.newer)
		dep := waitCSVSucceeded(ctx, opNS, cat.newer)
		Expect([]string{dep}).To(Equal(env.operatorDeployments), "the new CSV runs the same Deployment")
		Eventually(func() error { return csvOwnsDeployment(ctx, opNS, dep, cat.newer) }).Should(Succeed())
		Eventually(func() error { return deploymentAvailable(ctx, opNS, dep) }).Should(Succeed())
		Eventually(func() bool { return objectGone(ctx, newObject(csvGVK, opNS, cat.older)) }).
			Should(BeTrue(), "OLM removes the replaced CSV %s", cat.older)
		Expect(objectUIDs(ctx, Default, policy.Name)).To(Equal(uids), "the same policies and backups, same UIDs")
	}, SpecTimeout(6*time.Minute))

	It("backs up again at the next slot after the upgrade, and loses no artifact", func(ctx SpecContext) {
		writeFile(filepath.Join(ws.projectsDir(), "after-upgrade.txt"), 0o644, []byte("written after the upgrade\n"))
		chownTree(ws.claimRoot)
		stopped := time.Now()
		fx.markStopped(ctx, ws, stopped)
		backups := fx.waitForScheduled(ctx, policy.Name, slotAfter(stopped), 1, 3*time.Minute)
		next := backups[ws.String()]
		Expect(next.UID).NotTo(Equal(first.UID))
		expectArtifact(ctx, &next, ws, repo)
		Expect(next.Status.Artifact.Digest).NotTo(Equal(first.Status.Artifact.Digest),
			"the changed files make a new artifact")
		tags[next.Status.Artifact.Reference] = next.Status.Artifact.Digest
		expectTagsResolve(ctx, tags)
		now := objectUIDs(ctx, Default, policy.Name)
		for k, uid := range uids {
			Expect(now).To(HaveKeyWithValue(k, uid), "%s kept across the upgrade", k)
		}
	}, SpecTimeout(6*time.Minute))

	It("uninstalls: the operator goes, the CRDs, backups and artifacts stay", func(ctx SpecContext) {
		before := objectUIDs(ctx, Default, policy.Name)
		By("release-finalizers.sh refuses while the operator runs")
		out, err := command(ctx, mustEnv("RELEASE_FINALIZERS"), "--kubeconfig", env.kubeconfig)
		Expect(err).To(HaveOccurred(), out)
		Expect(out).To(ContainSubstring("the operator is still running"))
		b := &backupv1alpha1.WorkspaceBackup{}
		Expect(env.client.Get(ctx, client.ObjectKeyFromObject(&first), b)).To(Succeed())
		Expect(b.Finalizers).To(ContainElement(backupv1alpha1.FinalizerArtifact))

		Expect(env.client.Delete(ctx, newObject(subscriptionGVK, opNS, cat.pkg))).To(Succeed())
		Expect(env.client.Delete(ctx, newObject(csvGVK, opNS, cat.newer))).To(Succeed())
		Eventually(func() bool {
			return objectGone(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{
				Namespace: opNS, Name: env.operatorDeployments[0]}})
		}).Should(BeTrue(), "the operator's Deployment is deleted")
		Eventually(func(g Gomega) {
			pods := &corev1.PodList{}
			g.Expect(env.client.List(ctx, pods, client.InNamespace(opNS))).To(Succeed())
			g.Expect(pods.Items).To(BeEmpty(), "no operator pod left")
		}).Should(Succeed())
		for _, crd := range []string{"backuppolicies", "workspacebackups", "workspacerestores"} {
			_, err := env.kubectl(ctx, "get", "crd", crd+"."+backupv1alpha1.GroupVersion.Group)
			Expect(err).NotTo(HaveOccurred(), "CRD %s kept", crd)
		}
		Expect(objectUIDs(ctx, Default, policy.Name)).To(Equal(before), "every policy and backup kept")
		expectTagsResolve(ctx, tags)
	}, SpecTimeout(4*time.Minute))

	It("deletes a namespace holding backups once the finalizers are released", func(ctx SpecContext) {
		list := &backupv1alpha1.WorkspaceBackupList{}
		Expect(env.client.List(ctx, list, client.InNamespace(wsNS))).To(Succeed())
		Expect(list.Items).NotTo(BeEmpty())
		for _, b := range list.Items {
			Expect(b.Finalizers).To(ContainElement(backupv1alpha1.FinalizerArtifact), b.Name)
		}
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: wsNS}}
		Expect(env.client.Delete(ctx, ns)).To(Succeed())
		By("the namespace waits for the backups' finalizer, since no operator runs to release it")
		Eventually(func(g Gomega) {
			g.Expect(env.client.Get(ctx, client.ObjectKeyFromObject(ns), ns)).To(Succeed())
			g.Expect(ns.Status.Conditions).To(ContainElement(And(
				HaveField("Type", corev1.NamespaceFinalizersRemaining),
				HaveField("Status", corev1.ConditionTrue),
				HaveField("Message", ContainSubstring(backupv1alpha1.FinalizerArtifact)))))
		}).Should(Succeed())

		By("releasing the finalizers as docs/olm-lifecycle.md says")
		out, err := command(ctx, mustEnv("RELEASE_FINALIZERS"), "--kubeconfig", env.kubeconfig)
		Expect(err).NotTo(HaveOccurred(), out)
		GinkgoWriter.Println(out)
		Eventually(func() bool { return objectGone(ctx, ns) }).WithTimeout(2*time.Minute).
			Should(BeTrue(), "namespace %s is deleted", wsNS)
		expectTagsResolve(ctx, tags)
	}, SpecTimeout(4*time.Minute))
})

// catalogChannel is what the suite needs from the file-based catalog: the package, its default
// channel and the two bundles on it (newer replaces or skips older).
type catalogChannel struct {
	pkg, channel, older, newer string
}

// readCatalog reads a file-based catalog directory (YAML or JSON documents, any file layout).
func readCatalog(dir string) catalogChannel {
	GinkgoHelper()
	var out catalogChannel
	type entry struct {
		Name      string   `json:"name"`
		Replaces  string   `json:"replaces"`
		Skips     []string `json:"skips"`
		SkipRange string   `json:"skipRange"`
	}
	channels := map[string][]entry{}
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !slices.Contains([]string{".yaml", ".yml", ".json"}, filepath.Ext(path)) {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer func() { _ = f.Close() }()
		dec := utilyaml.NewYAMLOrJSONDecoder(f, 4096)
		for {
			var doc struct {
				Schema         string  `json:"schema"`
				Name           string  `json:"name"`
				Package        string  `json:"package"`
				DefaultChannel string  `json:"defaultChannel"`
				Entries        []entry `json:"entries"`
			}
			if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
				return nil
			} else if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			switch doc.Schema {
			case "olm.package":
				out.pkg, out.channel = doc.Name, doc.DefaultChannel
			case "olm.channel":
				channels[doc.Name] = append(channels[doc.Name], doc.Entries...)
			}
		}
	})
	Expect(err).NotTo(HaveOccurred())
	Expect(out.pkg).NotTo(BeEmpty(), "an olm.package in %s", dir)
	entries := channels[out.channel]
	Expect(entries).To(HaveLen(2), "the default channel %q holds the previous and the current bundle", out.channel)
	for i, e := range entries {
		other := entries[1-i]
		if e.Replaces == other.Name || slices.Contains(e.Skips, other.Name) || e.SkipRange != "" {
			out.newer, out.older = e.Name, other.Name
		}
	}
	Expect(out.newer).NotTo(BeEmpty(), "one entry of %v upgrades from the other", entries)
	return out
}

func mustEnv(name string) string {
	GinkgoHelper()
	v := os.Getenv(name)
	Expect(v).NotTo(BeEmpty(), "%s is not set: run make test-olm", name)
	return v
}

func newObject(gvk schema.GroupVersionKind, ns, name string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gvk)
	u.SetNamespace(ns)
	u.SetName(name)
	return u
}

func objectGone(ctx context.Context, obj client.Object) bool {
	return apierrors.IsNotFound(env.client.Get(ctx, client.ObjectKeyFromObject(obj), obj))
}

// approvePlanFor waits for the InstallPlan that installs csv, checks that it waits for an
// approval (Manual) and installs nothing else, and approves it as an administrator does.
func approvePlanFor(ctx context.Context, ns, csv string) {
	GinkgoHelper()
	var plan *unstructured.Unstructured
	Eventually(func(g Gomega) {
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(installPlanGVK)
		g.Expect(env.client.List(ctx, list, client.InNamespace(ns))).To(Succeed())
		plan = nil
		for i := range list.Items {
			names, _, _ := unstructured.NestedStringSlice(list.Items[i].Object, "spec", "clusterServiceVersionNames")
			if slices.Contains(names, csv) {
				plan = &list.Items[i]
			}
		}
		g.Expect(plan).NotTo(BeNil(), "an InstallPlan for %s", csv)
		if lookups, _, _ := unstructured.NestedSlice(plan.Object, "status", "bundleLookups"); len(lookups) > 0 {
			StopTrying("OLM unpacks " + csv + " with a Job: its catalog entry names a bundle image " +
				"instead of carrying its objects (olm.bundle.object)").Now()
		}
		phase, _, _ := unstructured.NestedString(plan.Object, "status", "phase")
		g.Expect(phase).To(Equal("RequiresApproval"))
	}).Should(Succeed())
	names, _, _ := unstructured.NestedStringSlice(plan.Object, "spec", "clusterServiceVersionNames")
	Expect(names).To(Equal([]string{csv}), "the plan installs %s alone", csv)
	approved, _, _ := unstructured.NestedBool(plan.Object, "spec", "approved")
	Expect(approved).To(BeFalse(), "installPlanApproval Manual: nothing is installed before the approval")
	Expect(objectGone(ctx, newObject(csvGVK, ns, csv))).To(BeTrue(), "no CSV %s before the approval", csv)
	By("approving InstallPlan " + plan.GetName() + " for " + csv)
	Expect(env.client.Patch(ctx, plan, client.RawPatch(types.MergePatchType,
		[]byte(`{"spec":{"approved":true}}`)))).To(Succeed())
}

// waitCSVSucceeded waits until the CSV is Succeeded and returns the name of its one Deployment.
func waitCSVSucceeded(ctx context.Context, ns, name string) string {
	GinkgoHelper()
	csv := newObject(csvGVK, ns, name)
	Eventually(func(g Gomega) {
		g.Expect(env.client.Get(ctx, client.ObjectKeyFromObject(csv), csv)).To(Succeed())
		phase, _, _ := unstructured.NestedString(csv.Object, "status", "phase")
		msg, _, _ := unstructured.NestedString(csv.Object, "status", "message")
		if phase == "Failed" {
			StopTrying("CSV " + name + " Failed: " + msg).Now()
		}
		g.Expect(phase).To(Equal("Succeeded"), msg)
	}).WithTimeout(4*time.Minute).Should(Succeed(), "CSV %s Succeeded", name)
	deployments, _, _ := unstructured.NestedSlice(csv.Object, "spec", "install", "spec", "deployments")
	Expect(deployments).To(HaveLen(1))
	dep, _ := deployments[0].(map[string]any)["name"].(string)
	Expect(dep).NotTo(BeEmpty())
	return dep
}

func deploymentAvailable(ctx context.Context, ns, name string) error {
	d := &appsv1.Deployment{}
	if err := env.client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, d); err != nil {
		return err
	}
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentAvailable && c.Status == corev1.ConditionTrue &&
			d.Status.UpdatedReplicas == d.Status.Replicas && d.Status.ObservedGeneration == d.Generation {
			return nil
		}
	}
	return fmt.Errorf("deployment %s/%s not Available and rolled out: %+v", ns, name, d.Status)
}

// csvOwnsDeployment checks that OLM created the Deployment for that CSV (its owner reference).
func csvOwnsDeployment(ctx context.Context, ns, name, csv string) error {
	d := &appsv1.Deployment{}
	if err := env.client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, d); err != nil {
		return err
	}
	for _, o := range d.OwnerReferences {
		if o.Kind == "ClusterServiceVersion" && o.Name == csv {
			return nil
		}
	}
	return fmt.Errorf("deployment %s/%s is not owned by CSV %s: %v", ns, name, csv, d.OwnerReferences)
}

// objectUIDs maps the policy ("/name") and every WorkspaceBackup of it ("namespace/name") to its UID.
func objectUIDs(ctx context.Context, g Gomega, policyName string) map[string]types.UID {
	out := map[string]types.UID{}
	p := &backupv1alpha1.BackupPolicy{}
	g.Expect(env.client.Get(ctx, client.ObjectKey{Name: policyName}, p)).To(Succeed())
	out["/"+p.Name] = p.UID
	for _, b := range fx.policyBackups(ctx, g, policyName) {
		out[b.Namespace+"/"+b.Name] = b.UID
	}
	return out
}

// expectTagsResolve checks with oras that every artifact reference still resolves to its digest.
func expectTagsResolve(ctx context.Context, tags map[string]string) {
	GinkgoHelper()
	Expect(tags).NotTo(BeEmpty())
	for ref, digest := range tags {
		Expect(env.resolve(ctx, ref)).To(Equal(digest), "%s still resolves", ref)
	}
	data, _ := json.Marshal(tags)
	By("artifacts still in the registry: " + string(data))
}

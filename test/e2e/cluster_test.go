//go:build e2e || olm

package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
	"github.com/dwbackup/devworkspace-backup-operator/internal/testenv"
)

// cluster is the local cluster of hack/local-cluster with the operator deployed by deploy.sh
// (make local-up deploy-local). Every read goes to the API server: no cache can lag.
type cluster struct {
	stateDir          string
	kubeconfig        string
	kubectlBin        string
	orasBin           string
	registry          string // host:port of the local registry
	operatorNamespace string
	// operatorDeployments are config/local's manager Deployments: two replicas, one elected.
	operatorDeployments []string
	client              client.Client
	clientset           kubernetes.Interface
	restConfig          *rest.Config // the admin's, for clients that impersonate a user
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// connect finds the cluster the way the scripts do (LOCAL_CLUSTER_DIR, REGISTRY_PORT) and the
// operator that deploy.sh recorded in deploy/operator.env.
func connect() *cluster {
	GinkgoHelper()
	c := connectCluster()
	operator := readEnvFile(filepath.Join(c.stateDir, "deploy", "operator.env"))
	c.operatorNamespace = operator["OPERATOR_NAMESPACE"]
	c.operatorDeployments = strings.Fields(operator["OPERATOR_DEPLOYMENTS"])
	Expect(c.operatorDeployments).NotTo(BeEmpty(), "the operator was not deployed: run make deploy-local")
	return c
}

// connectCluster finds the cluster, its tools and registry, whoever installed the operator.
func connectCluster() *cluster {
	GinkgoHelper()
	root := testenv.RepoRoot()
	stateDir := envOr("LOCAL_CLUSTER_DIR", "/var/tmp/dwbackup-local-cluster")
	k8sBin, err := testenv.K8sBinDir()
	Expect(err).NotTo(HaveOccurred())
	c := &cluster{
		stateDir:   stateDir,
		kubeconfig: filepath.Join(stateDir, "kubeconfig"),
		kubectlBin: envOr("KUBECTL", filepath.Join(k8sBin, "kubectl")),
		orasBin:    envOr("ORAS", filepath.Join(root, "bin", "oras")),
		registry:   "127.0.0.1:" + envOr("REGISTRY_PORT", "5001"),
	}
	Expect(c.kubeconfig).To(BeARegularFile(), "no local cluster: run make local-up")
	Expect(c.kubectlBin).To(BeARegularFile(), "no kubectl: run make local-up")
	Expect(c.orasBin).To(BeARegularFile(), "no oras: run make oras")

	cfg, err := clientcmd.BuildConfigFromFlags("", c.kubeconfig)
	Expect(err).NotTo(HaveOccurred())
	cfg.QPS, cfg.Burst = 50, 100
	c.restConfig = cfg
	scheme := runtime.NewScheme()
	Expect(clientgoscheme.AddToScheme(scheme)).To(Succeed())
	Expect(backupv1alpha1.AddToScheme(scheme)).To(Succeed())
	c.client, err = client.New(cfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())
	c.clientset, err = kubernetes.NewForConfig(cfg)
	Expect(err).NotTo(HaveOccurred())
	return c
}

// readEnvFile reads KEY=VALUE lines.
func readEnvFile(path string) map[string]string {
	GinkgoHelper()
	f, err := os.Open(path)
	Expect(err).NotTo(HaveOccurred(), "the operator was not deployed: run make deploy-local")
	defer func() { _ = f.Close() }()
	out := map[string]string{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		if k, v, ok := strings.Cut(strings.TrimSpace(s.Text()), "="); ok {
			out[k] = v
		}
	}
	Expect(s.Err()).NotTo(HaveOccurred())
	return out
}

// command runs a program and returns its combined output.
func command(ctx context.Context, bin string, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", filepath.Base(bin), strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// kubectl runs kubectl against the local cluster.
func (c *cluster) kubectl(ctx context.Context, args ...string) (string, error) {
	return command(ctx, c.kubectlBin, append([]string{"--kubeconfig", c.kubeconfig}, args...)...)
}

// dump writes what a person debugging a failed spec looks at first: every object of the
// operator's kinds, the workspaces, the mover Jobs and Pods, recent events and every manager replica's log.
func (c *cluster) dump(ctx context.Context, w io.Writer) {
	type section struct {
		title string
		args  []string
		tail  int
	}
	sections := make([]section, 0, 6+len(c.operatorDeployments))
	sections = append(sections, []section{
		{"backup objects", []string{"get", "dwbackup", "-A", "-o", "yaml"}, 1500},
		{"backup objects (table)", []string{"get", "dwbackup", "-A", "-o", "wide"}, 200},
		{"DevWorkspaces", []string{"get", "devworkspaces", "-A", "-o", "yaml"}, 400},
		{"mover Jobs and Pods", []string{"get", "jobs,pods", "-A", "-o", "wide",
			"-l", backupv1alpha1.LabelManagedBy + "=" + backupv1alpha1.ManagedByValue}, 100},
		{"events", []string{"get", "events", "-A", "--sort-by=.lastTimestamp"}, 150},
		{"operator pods and leader Lease", []string{"-n", c.operatorNamespace, "get", "pods,leases", "-o", "wide"}, 20},
	}...)
	for _, d := range c.operatorDeployments {
		sections = append(sections, section{"manager log of " + d,
			[]string{"-n", c.operatorNamespace, "logs", "deployment/" + d, "--tail=300"}, 300})
	}
	for _, s := range sections {
		out, err := c.kubectl(ctx, s.args...)
		if err != nil {
			out = err.Error()
		}
		_, _ = fmt.Fprintf(w, "\n===== %s: kubectl %s =====\n%s\n",
			s.title, strings.Join(s.args, " "), lastLines(out, s.tail))
	}
}

// waitManagers waits until every manager Deployment is Available.
func (c *cluster) waitManagers(ctx context.Context) {
	GinkgoHelper()
	for _, d := range c.operatorDeployments {
		out, err := c.kubectl(ctx, "-n", c.operatorNamespace, "rollout", "status", "deployment/"+d, "--timeout=180s")
		Expect(err).NotTo(HaveOccurred(), out)
	}
}

// lastLines keeps the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) <= n {
		return strings.Join(lines, "\n")
	}
	return fmt.Sprintf("[... %d lines cut ...]\n%s", len(lines)-n, strings.Join(lines[len(lines)-n:], "\n"))
}

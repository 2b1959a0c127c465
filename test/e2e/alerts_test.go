//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
	"github.com/dwbackup/devworkspace-backup-operator/internal/registry/registrytest"
)

// metricsAddrs are where config/local's two manager replicas serve their metrics: HTTPS with
// authentication and authorization, on loopback (the manager pods use the host network). Only the
// elected leader exports the cache-derived series, so both are scraped, as a ServiceMonitor
// scrapes every pod.
var metricsAddrs = []string{"127.0.0.1:18443", "127.0.0.1:18444"}

// The alerts as an administrator meets them: a real Prometheus (built from hack/prometheus, the
// shipped rules of config/prometheus/alerts.yaml) scrapes the deployed manager the way the
// ServiceMonitor does (a bearer token of a ServiceAccount bound to the metrics-reader ClusterRole),
// and the policy's registry, a docker-registry of this spec alone, is stopped and started again.
var _ = Describe("Alerts on a real Prometheus", Ordered, func() {
	var (
		prom  *prometheus
		reg   *registrytest.Distribution
		token string
	)

	BeforeAll(func(ctx SpecContext) {
		promBin, rules := os.Getenv("PROMETHEUS"), os.Getenv("ALERT_RULES")
		Expect(promBin).To(BeARegularFile(), "PROMETHEUS names the Prometheus binary: run through make test-e2e")
		Expect(rules).To(BeARegularFile(), "ALERT_RULES names the rules file: run through make test-e2e")
		token = metricsReaderToken(ctx)
		reg = registrytest.StartDistribution(GinkgoT())
		prom = startPrometheus(rules, token)
	})

	It("fires WorkspaceBackupFailing while the registry is stopped, resolves it after", func(ctx SpecContext) {
		ns := fx.createNamespace(ctx, "alerts")
		w := fx.createWorkspace(ctx, ns, "ws", storagePerWS, "alerts", func(dir string) { writeSampleTree(dir, "alerts") })
		p := fx.createPolicy(ctx, "alerts", "alerts", func(s *backupv1alpha1.BackupPolicySpec) {
			s.Suspend = true // manual backups only: no minute boundary to wait for
			s.Registry.Repository = reg.Host + "/e2e-" + fx.id + "/alerts"
			s.Job.BackoffLimit = ptr.To[int32](0) // a mover that cannot reach the registry fails the Job at once
		})
		status := fmt.Sprintf(`dwbackup_backup_last_status{namespace=%q,workspace=%q,policy=%q}`, ns, w.Name, p.Name)

		By("a backup succeeds: Prometheus scrapes last_status 1")
		b := fx.waitForBackup(ctx, ns, fx.createBackup(ctx, w, "before", p.Name).Name, 3*time.Minute)
		Expect(b.Status.Phase).To(Equal(backupv1alpha1.BackupSucceeded), b.Status.Message)
		Eventually(func() []float64 { return prom.query(ctx, status) }).WithTimeout(time.Minute).Should(Equal([]float64{1}))

		By("the registry stopped: the next backup fails and the alert fires")
		reg.Kill()
		DeferCleanup(func() {
			if !reachable(reg.Host) {
				reg.Start(GinkgoT())
			}
		})
		b = fx.waitForBackup(ctx, ns, fx.createBackup(ctx, w, "registry-down", p.Name).Name, 3*time.Minute)
		Expect(b.Status.Phase).To(Equal(backupv1alpha1.BackupFailed), b.Status.Message)
		Eventually(func() []float64 { return prom.query(ctx, status) }).WithTimeout(time.Minute).Should(Equal([]float64{0}))
		Eventually(func() string { return prom.alertState(ctx, "WorkspaceBackupFailing", ns, w.Name) }).
			WithTimeout(3 * time.Minute).WithPolling(2 * time.Second).Should(Equal("firing"))
		report("metrics while WorkspaceBackupFailing fires", scrapeManager(ctx, token, ns))

		By("the registry back: a backup succeeds and the alert resolves")
		reg.Start(GinkgoT())
		b = fx.waitForBackup(ctx, ns, fx.createBackup(ctx, w, "registry-back", p.Name).Name, 3*time.Minute)
		Expect(b.Status.Phase).To(Equal(backupv1alpha1.BackupSucceeded), b.Status.Message)
		Eventually(func() string { return prom.alertState(ctx, "WorkspaceBackupFailing", ns, w.Name) }).
			WithTimeout(time.Minute).WithPolling(2*time.Second).Should(BeEmpty(), "resolved: no longer pending or firing")
		report("metrics after it resolved", scrapeManager(ctx, token, ns))
	}, SpecTimeout(10*time.Minute))
})

// metricsReaderToken makes a ServiceAccount bound to the operator's metrics-reader ClusterRole
// (what a Prometheus is given) and returns a token of it.
func metricsReaderToken(ctx context.Context) string {
	GinkgoHelper()
	ns := fx.createNamespace(ctx, "prometheus")
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "prometheus", Namespace: ns}}
	Expect(env.client.Create(ctx, sa)).To(Succeed())
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-" + fx.id + "-metrics-reader", Labels: fx.labels(nil)},
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole",
			Name: "devworkspace-backup-operator-metrics-reader"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: sa.Name, Namespace: ns}},
	}
	Expect(env.client.Create(ctx, binding)).To(Succeed())
	DeferCleanup(func(ctx SpecContext) { Expect(env.client.Delete(ctx, binding)).To(Succeed()) })
	out, err := env.kubectl(ctx, "-n", ns, "create", "token", sa.Name, "--duration=1h")
	Expect(err).NotTo(HaveOccurred(), out)
	return strings.TrimSpace(out)
}

// insecureClient talks to the manager's self-signed metrics endpoint, as the ServiceMonitor of
// config/prometheus does (insecureSkipVerify), on loopback only.
var insecureClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
	TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // the manager's self-signed certificate
}}

// scrapeManager fetches every replica's metrics with the token and keeps the operator's own lines
// about namespace (and the counters and policy series, which carry no namespace), under a line
// naming the replica's address.
func scrapeManager(ctx context.Context, token, namespace string) string {
	GinkgoHelper()
	var lines []string
	ours := fmt.Sprintf("namespace=%q", namespace)
	for _, addr := range metricsAddrs {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+"/metrics", nil)
		Expect(err).NotTo(HaveOccurred())
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := insecureClient.Do(req)
		Expect(err).NotTo(HaveOccurred())
		body, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		Expect(err).NotTo(HaveOccurred())
		Expect(resp.StatusCode).To(Equal(http.StatusOK), string(body))
		lines = append(lines, "# "+addr)
		for l := range strings.SplitSeq(string(body), "\n") {
			if strings.HasPrefix(l, "dwbackup_") && (!strings.Contains(l, "namespace=") || strings.Contains(l, ours)) {
				lines = append(lines, l)
			}
		}
	}
	return strings.Join(lines, "\n")
}

// report puts text in the spec's report and output (make test-e2e keeps it in logs/e2e.log).
func report(name, text string) {
	AddReportEntry(name, text)
	_, _ = fmt.Fprintf(GinkgoWriter, "%s:\n%s\n", name, text)
}

func reachable(host string) bool {
	conn, err := net.DialTimeout("tcp", host, time.Second)
	if err != nil {
		return false
	}
	_ = conn.Close()
	return true
}

// prometheus is a Prometheus server process on a free loopback port, stopped by PID when the
// container's specs end.
type prometheus struct {
	url string
	cmd *exec.Cmd
}

// startPrometheus runs Prometheus with the rules file, scraping both manager replicas every 2 s with token
// and evaluating the rules every 2 s (the rules' own `for` stays as shipped).
func startPrometheus(rules, token string) *prometheus {
	GinkgoHelper()
	dir := GinkgoT().TempDir()
	tokenFile := filepath.Join(dir, "token")
	Expect(os.WriteFile(tokenFile, []byte(token), 0o600)).To(Succeed())
	config := fmt.Sprintf(`global:
  scrape_interval: 2s
  evaluation_interval: 2s
rule_files:
- %s
scrape_configs:
- job_name: devworkspace-backup-operator
  scheme: https
  tls_config:
    insecure_skip_verify: true
  authorization:
    credentials_file: %s
  static_configs:
  - targets: [%s]
`, rules, tokenFile, strings.Join(metricsAddrs, ", "))
	configFile := filepath.Join(dir, "prometheus.yml")
	Expect(os.WriteFile(configFile, []byte(config), 0o600)).To(Succeed())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	addr := ln.Addr().String()
	Expect(ln.Close()).To(Succeed())
	cmd := exec.Command(os.Getenv("PROMETHEUS"), "--config.file="+configFile,
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = GinkgoWriter, GinkgoWriter
	Expect(cmd.Start()).To(Succeed())
	p := &prometheus{url: "http://" + addr, cmd: cmd}
	DeferCleanup(p.stop)
	Eventually(func() error {
		resp, err := http.Get(p.url + "/-/ready") //nolint:noctx // readiness poll
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}).WithTimeout(time.Minute).Should(Succeed(), "Prometheus answers on %s", addr)
	return p
}

func (p *prometheus) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	_ = p.cmd.Wait()
}

// get decodes the data of a Prometheus API answer.
func (p *prometheus) get(ctx context.Context, path string, query url.Values, data any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url+path+"?"+query.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	var answer struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
		return err
	}
	if answer.Status != "success" {
		return fmt.Errorf("prometheus %s: %s", path, answer.Error)
	}
	return json.Unmarshal(answer.Data, data)
}

// query evaluates an instant PromQL query and returns the sample values.
func (p *prometheus) query(ctx context.Context, promQL string) []float64 {
	GinkgoHelper()
	var data struct {
		Result []struct {
			Value [2]any `json:"value"`
		} `json:"result"`
	}
	Expect(p.get(ctx, "/api/v1/query", url.Values{"query": {promQL}}, &data)).To(Succeed())
	values := make([]float64, 0, len(data.Result))
	for _, r := range data.Result {
		var v float64
		_, err := fmt.Sscan(fmt.Sprint(r.Value[1]), &v)
		Expect(err).NotTo(HaveOccurred())
		values = append(values, v)
	}
	return values
}

// alertState is the state (pending, firing) of the alert for one workspace in /api/v1/alerts, or
// "" when it is neither.
func (p *prometheus) alertState(ctx context.Context, name, namespace, workspace string) string {
	GinkgoHelper()
	var data struct {
		Alerts []struct {
			Labels map[string]string `json:"labels"`
			State  string            `json:"state"`
		} `json:"alerts"`
	}
	Expect(p.get(ctx, "/api/v1/alerts", nil, &data)).To(Succeed())
	for _, a := range data.Alerts {
		if a.Labels["alertname"] == name && a.Labels["namespace"] == namespace && a.Labels["workspace"] == workspace {
			return a.State
		}
	}
	return ""
}

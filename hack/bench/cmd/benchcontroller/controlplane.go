package main

import (
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
	"github.com/dwbackup/devworkspace-backup-operator/internal/testenv"
)

// managerUser is the identity the manager subprocess authenticates as: the audit log attributes
// every write to it, so the benchmark's own writes (populating, playing the Job controller) are
// never counted against the manager.
const managerUser = "dwbackup-manager"

// auditPolicy logs every write at Metadata level (verb, user, resource, name) and no reads.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: None
  verbs: ["get", "list", "watch"]
- level: Metadata
`

// controlPlane is envtest's etcd and kube-apiserver, an unthrottled admin client for setup and
// checks, and a kubeconfig for the manager.
type controlPlane struct {
	env            *envtest.Environment
	adminConfig    *rest.Config
	admin          client.WithWatch
	managerConfig  string // kubeconfig file of managerUser
	auditPath      string
	operatorNS     string
	registrySecret string
	// registryHost is an in-process registry on 127.0.0.1 (host:port): the manager confirms each
	// finished backup's tag there, and the drain pushes what the mover would.
	registryHost string
}

// startControlPlane starts envtest with the project's CRDs and the trimmed DevWorkspace CRDs
// (as internal/testenv does) plus an audit log, which testenv.Start has no hook for.
func startControlPlane(work string) (*controlPlane, error) {
	utilruntime.Must(backupv1alpha1.AddToScheme(scheme.Scheme))
	root := testenv.RepoRoot()
	reg := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	cp := &controlPlane{auditPath: filepath.Join(work, "audit.log"), operatorNS: "dwbackup-system",
		registrySecret: "bench-registry", registryHost: strings.TrimPrefix(reg.URL, "http://")}
	policyPath := filepath.Join(work, "audit-policy.yaml")
	if err := os.WriteFile(policyPath, []byte(auditPolicy), 0o600); err != nil {
		return nil, err
	}
	cp.env = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases"), filepath.Join(root, "test", "crd")},
		ErrorIfCRDPathMissing: true,
	}
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		dir, err := testenv.K8sBinDir()
		if err != nil {
			return nil, err
		}
		cp.env.BinaryAssetsDirectory = dir
	}
	args := cp.env.ControlPlane.GetAPIServer().Configure()
	args.Set("audit-policy-file", policyPath)
	args.Set("audit-log-path", cp.auditPath)
	args.Set("audit-log-maxsize", "0") // one file, never rotated: it is read once at the end
	cfg, err := cp.env.Start()
	if err != nil {
		return nil, fmt.Errorf("start envtest (make envtest-assets?): %w", err)
	}
	if err := cp.init(cfg, work); err != nil {
		cp.stop()
		return nil, err
	}
	return cp, nil
}

// init builds the admin client (no client-side limit: setup is not measured) and writes the
// manager's kubeconfig.
func (cp *controlPlane) init(cfg *rest.Config, work string) error {
	cp.adminConfig = rest.CopyConfig(cfg)
	cp.adminConfig.QPS, cp.adminConfig.Burst = -1, 0
	var err error
	if cp.admin, err = client.NewWithWatch(cp.adminConfig, client.Options{Scheme: scheme.Scheme}); err != nil {
		return err
	}
	user, err := cp.env.AddUser(envtest.User{Name: managerUser, Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("add user %s: %w", managerUser, err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		return err
	}
	cp.managerConfig = filepath.Join(work, "manager.kubeconfig")
	return os.WriteFile(cp.managerConfig, kubeconfig, 0o600)
}

func (cp *controlPlane) stop() {
	if err := cp.env.Stop(); err != nil {
		logf("stopping envtest: %v", err)
	}
}

// throttledConfig is the admin's config with the client-side limit the baseline and the manager share.
func (cp *controlPlane) throttledConfig(qps float64, burst int) *rest.Config {
	cfg := rest.CopyConfig(cp.adminConfig)
	cfg.QPS, cfg.Burst = float32(qps), burst
	return cfg
}

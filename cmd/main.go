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

package main

import (
	"crypto/tls"
	"flag"
	"os"

	// Static binary on an empty base: embed the time-zone database (policies' timeZone) and CA
	// roots (the operator reads digests and deletes artifacts over TLS).
	_ "time/tzdata"

	_ "golang.org/x/crypto/x509roots/fallback"

	// Import all Kubernetes client auth plugins (e.g. Azure, GCP, OIDC, etc.)
	// to ensure that exec-entrypoint and run can make use of them.
	_ "k8s.io/client-go/plugin/pkg/client/auth"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/dwbackup/devworkspace-backup-operator/internal/controller"
	"github.com/dwbackup/devworkspace-backup-operator/internal/leader"
	// +kubebuilder:scaffold:imports
)

var (
	scheme   = runtime.NewScheme()
	setupLog = ctrl.Log.WithName("setup")
)

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))

	utilruntime.Must(controller.AddToScheme(scheme))
	// +kubebuilder:scaffold:scheme
}

// nolint:gocyclo
func main() {
	var metricsAddr, probeAddr string
	var metricsCertPath, metricsCertName, metricsCertKey string
	var secureMetrics, enableHTTP2 bool
	var leaderElection leader.Flags
	var kubeAPIQPS float64
	var kubeAPIBurst int
	opts := controller.Options{Clock: clock.RealClock{}}
	flag.StringVar(&metricsAddr, "metrics-bind-address", "0", "The address the metrics endpoint binds to. "+
		"Use :8443 for HTTPS or :8080 for HTTP, or leave as 0 to disable the metrics service.")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "The address the probe endpoint binds to.")
	leaderElection.Bind(flag.CommandLine)
	flag.BoolVar(&secureMetrics, "metrics-secure", true,
		"Serve the metrics endpoint over HTTPS with authentication. --metrics-secure=false for HTTP.")
	flag.StringVar(&metricsCertPath, "metrics-cert-path", "", "The directory with the metrics server certificate.")
	flag.StringVar(&metricsCertName, "metrics-cert-name", "tls.crt", "The name of the metrics server certificate file.")
	flag.StringVar(&metricsCertKey, "metrics-cert-key", "tls.key", "The name of the metrics server key file.")
	flag.BoolVar(&enableHTTP2, "enable-http2", false, "Enable HTTP/2 for the metrics server.")
	flag.StringVar(&opts.DWONamespace, "dwo-namespace", "",
		"The namespace DevWorkspace Operator runs in (its devworkspace-operator-config). Empty: search for it.")
	flag.StringVar(&opts.MoverImage, "mover-image", os.Getenv("MOVER_IMAGE"),
		"The image with /mover that backup and restore Jobs run (default $MOVER_IMAGE).")
	flag.BoolVar(&opts.MoverHostNetwork, "mover-host-network", false,
		"Run mover pods on the host network. Only for the loopback-only local test cluster.")
	// Client-side rate limit of the manager's clients. 0 keeps controller-runtime's default (no
	// client-side limit: API Priority and Fairness decides); the controller benchmark sets both.
	flag.Float64Var(&kubeAPIQPS, "kube-api-qps", 0, "Client-side QPS towards the API server (0: no client-side limit).")
	flag.IntVar(&kubeAPIBurst, "kube-api-burst", 0, "Client-side burst towards the API server (used with --kube-api-qps).")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))

	opts.OperatorNamespace = os.Getenv("POD_NAMESPACE")
	if opts.OperatorNamespace == "" {
		opts.OperatorNamespace = "dwbackup-system"
	}
	if opts.MoverImage == "" {
		setupLog.Error(nil, "No mover image: set --mover-image or MOVER_IMAGE")
		os.Exit(1)
	}
	if err := leaderElection.Validate(); err != nil {
		setupLog.Error(err, "Invalid leader election settings")
		os.Exit(1)
	}

	var tlsOpts []func(*tls.Config)
	if !enableHTTP2 {
		tlsOpts = append(tlsOpts, func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} })
	}
	metricsServerOptions := metricsserver.Options{
		BindAddress:   metricsAddr,
		SecureServing: secureMetrics,
		TLSOpts:       tlsOpts,
	}
	if secureMetrics {
		metricsServerOptions.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	if len(metricsCertPath) > 0 {
		metricsServerOptions.CertDir = metricsCertPath
		metricsServerOptions.CertName = metricsCertName
		metricsServerOptions.KeyName = metricsCertKey
	}

	restConfig := ctrl.GetConfigOrDie()
	if kubeAPIQPS > 0 {
		restConfig.QPS = float32(kubeAPIQPS)
		restConfig.Burst = max(kubeAPIBurst, 1)
	}
	mgrOpts := ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsServerOptions,
		HealthProbeBindAddress: probeAddr,
		Cache:                  controller.CacheOptions(),
		Client:                 controller.ClientOptions(),
	}
	if err := leaderElection.Apply(&mgrOpts, restConfig, opts.OperatorNamespace); err != nil {
		setupLog.Error(err, "Failed to set up leader election")
		os.Exit(1)
	}
	mgr, err := ctrl.NewManager(restConfig, mgrOpts)
	if err != nil {
		setupLog.Error(err, "Failed to start manager")
		os.Exit(1)
	}
	if err := controller.SetupAll(mgr, opts); err != nil {
		setupLog.Error(err, "Failed to set up controllers")
		os.Exit(1)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		setupLog.Error(err, "Failed to set up health check")
		os.Exit(1)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		setupLog.Error(err, "Failed to set up ready check")
		os.Exit(1)
	}

	setupLog.Info("Starting manager", "namespace", opts.OperatorNamespace, "moverImage", opts.MoverImage)
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		setupLog.Error(err, "Failed to run manager")
		os.Exit(1)
	}
}

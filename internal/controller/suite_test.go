package controller

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/dwbackup/devworkspace-backup-operator/internal/testenv"
)

// The reconciler specs run the real manager (cache, indexes, watches, all three reconcilers)
// against an envtest API server. Time is a fake clock the specs step; envtest runs no Job, PV or
// Pod controllers, so specs play their part through the status subresource (docs/architecture.md, "Tests").

const operatorNamespace = "dwbackup-system"

var (
	ctx       context.Context
	cancel    context.CancelFunc
	testEnv   *envtest.Environment
	cfg       *rest.Config
	k8sClient client.Client // uncached, so specs see the API server's truth
	fakeClock *clocktesting.FakeClock
	testOpts  Options
	// suiteRegistry is the registry every fixture policy points at: the controller reads the
	// digest of a finished backup from it.
	suiteRegistry string
	mgrCache      interface {
		Get(context.Context, client.ObjectKey, client.Object, ...client.GetOption) error
	}
)

func TestControllers(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Controller Suite")
}

var _ = BeforeSuite(func() {
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	// The first reconciles wait for the manager's caches; nothing here is a timing assertion.
	SetDefaultEventuallyTimeout(20 * time.Second)
	SetDefaultEventuallyPollingInterval(50 * time.Millisecond)
	ctx, cancel = context.WithCancel(context.TODO())
	Expect(AddToScheme(scheme.Scheme)).To(Succeed())

	var err error
	testEnv, cfg, err = testenv.Start()
	Expect(err).NotTo(HaveOccurred())
	k8sClient, err = client.New(cfg, client.Options{Scheme: scheme.Scheme})
	Expect(err).NotTo(HaveOccurred())
	Expect(k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: operatorNamespace}})).To(Succeed())
	suiteRegistry = inProcessRegistry()

	fakeClock = clocktesting.NewFakeClock(time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC))
	testOpts = Options{
		OperatorNamespace: operatorNamespace,
		MoverImage:        "registry.example.com/dwbackup/operator:test",
		Clock:             fakeClock,
		// Fast artifact-delete retries keep the bounded-retry spec short.
		ArtifactRetryInterval: 100 * time.Millisecond,
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:  scheme.Scheme,
		Metrics: metricsserver.Options{BindAddress: "0"},
		Cache:   CacheOptions(),
		Client:  ClientOptions(),
	})
	Expect(err).NotTo(HaveOccurred())
	Expect(SetupAll(mgr, testOpts)).To(Succeed())
	mgrCache = mgr.GetCache()
	go func() {
		defer GinkgoRecover()
		Expect(mgr.Start(ctx)).To(Succeed())
	}()
})

var _ = AfterSuite(func() {
	cancel()
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
})

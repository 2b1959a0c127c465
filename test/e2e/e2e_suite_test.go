//go:build e2e

// Package e2e runs the operator, deployed as users deploy it, on the real single-node cluster of
// hack/local-cluster: real mover Jobs on real hostPath volumes, pushing to the local registry.
// Run it with `make test-e2e` (docs/e2e.md); the build tag keeps it out of `make test`.
package e2e

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

var (
	env *cluster
	fx  *fixtures
	rec *recorder
)

func TestE2E(t *testing.T) {
	RegisterFailHandler(Fail)
	SetDefaultEventuallyTimeout(2 * time.Minute)
	SetDefaultEventuallyPollingInterval(500 * time.Millisecond)
	RunSpecs(t, "e2e suite (local cluster)")
}

var _ = BeforeSuite(func(ctx SpecContext) {
	env = connect()
	fx = newFixtures(env)
	By("removing what earlier runs left, run id " + fx.id)
	fx.cleanPrevious(ctx)
	By("recording every mover Job and Pod")
	rec = startRecorder(env)
	DeferCleanup(rec.Stop)
	By("checking the operator is Available")
	env.waitManagers(ctx)
}, NodeTimeout(3*time.Minute))

// On failure, dump the objects, events and the manager's log, so a CI log alone explains it.
var _ = AfterEach(func() {
	if !CurrentSpecReport().Failed() || env == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	env.dump(ctx, GinkgoWriter)
})

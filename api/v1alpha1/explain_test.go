package v1alpha1_test

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

var _ = Describe("kubectl", func() {
	It("explains the policy's retention with the field documentation", func() {
		user, err := testEnv.ControlPlane.AddUser(envtestAdmin(), nil)
		Expect(err).NotTo(HaveOccurred())
		kubectl, err := user.Kubectl()
		Expect(err).NotTo(HaveOccurred())
		// The API server publishes a new CRD's OpenAPI schema asynchronously.
		var out string
		Eventually(func(g Gomega) {
			stdout, stderr, err := kubectl.Run("explain", "backuppolicy.spec.retention")
			g.Expect(err).NotTo(HaveOccurred(), "stderr: %v", readAll(stderr))
			out = readAll(stdout)
		}).WithTimeout(30 * time.Second).Should(Succeed())
		Expect(out).To(ContainSubstring("keepLast"))
		Expect(out).To(ContainSubstring("newest successful backups kept per workspace"))
		Expect(out).To(ContainSubstring("failedHistoryLimit"))
	})

	It("lists every kind in the dwbackup category with its short names", func() {
		user, err := testEnv.ControlPlane.AddUser(envtestAdmin(), nil)
		Expect(err).NotTo(HaveOccurred())
		kubectl, err := user.Kubectl()
		Expect(err).NotTo(HaveOccurred())
		stdout, stderr, err := kubectl.Run("api-resources", "--categories=dwbackup", "--no-headers")
		Expect(err).NotTo(HaveOccurred(), "stderr: %v", stderr)
		out := readAll(stdout)
		Expect(out).To(MatchRegexp(`backuppolicies\s+bp\s`))
		Expect(out).To(MatchRegexp(`workspacebackups\s+wsb\s`))
		Expect(out).To(MatchRegexp(`workspacerestores\s+wsr\s`))
	})
})

//go:build e2e

package e2e

import (
	"fmt"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
)

// A layered policy (docs/mover-contract.md, "Layered artifacts") with a DWO-compatible latest: the
// second backup reuses the first one's unchanged layers, latest restores the DWO way, and an older
// tag restores into the workspace.
var _ = Describe("A layered policy", Ordered, func() {
	It("backs up by changed layers, keeps latest DWO-compatible and restores an older tag", func(ctx SpecContext) {
		ns := fx.createNamespace(ctx, "layered")
		ws := fx.createWorkspace(ctx, ns, "layered", storagePerWS, "layered", func(dir string) {
			writeSampleTree(dir, "layered")
			// 25 MiB in 100 files: several groups of the default 4 MiB.
			for i := range 100 {
				writeRandomFile(filepath.Join(dir, fmt.Sprintf("src/pkg%02d/file%03d.bin", i%12, i)), 256<<10)
			}
		})
		p := fx.createPolicy(ctx, "layered", "layered", func(s *backupv1alpha1.BackupPolicySpec) {
			s.Suspend = true // manual backups only
			s.Artifact = backupv1alpha1.ArtifactSpec{Format: backupv1alpha1.ArtifactFormatLayered, DWOCompatibleLatest: true}
		})
		projects := ws.projectsDir()
		first := snapshot(projects)
		older := fx.waitForBackup(ctx, ns, fx.createBackup(ctx, ws, "layered-1", p.Name).Name, 3*time.Minute)
		Expect(older.Status.Phase).To(Equal(backupv1alpha1.BackupSucceeded), older.Status.Message)
		m1 := env.manifest(ctx, older.Status.Artifact.Reference)
		Expect(m1["annotations"]).To(HaveKeyWithValue("backup.dwbackup.io/format", "layered"))

		By("a second backup after a change: a layered manifest that reuses unchanged layers")
		writeFile(filepath.Join(projects, "src/pkg03/file003.bin"), 0o644, []byte("changed\n"))
		writeFile(filepath.Join(projects, "notes/today.md"), 0o644, []byte("new work\n"))
		chownTree(projects)
		second := snapshot(projects)
		newer := fx.waitForBackup(ctx, ns, fx.createBackup(ctx, ws, "layered-2", p.Name).Name, 3*time.Minute)
		Expect(newer.Status.Phase).To(Equal(backupv1alpha1.BackupSucceeded), newer.Status.Message)
		Expect(newer.Status.Artifact.Digest).NotTo(Equal(older.Status.Artifact.Digest))
		m2 := env.manifest(ctx, newer.Status.Artifact.Reference)
		Expect(layerDigests(m2)).To(ContainElement(BeElementOf(layerDigests(m1))), "at least one layer reused")

		By("latest is one devworkspace-backup.tar.gz that oras pull + tar -xzf restores")
		repository, _ := splitRef(newer.Status.Artifact.Reference)
		latest := env.manifest(ctx, repository+":latest")
		Expect(latest["layers"]).To(HaveLen(1))
		Expect(latest["annotations"]).To(HaveKeyWithValue("backup.dwbackup.io/layered-manifest",
			newer.Status.Artifact.Digest))
		Expect(env.pullTree(ctx, repository+":latest")).To(Equal(second))

		By("restoring the older tag over the workspace")
		r := createRestore(ctx, ws, "layered-restore-older", older.Name, true)
		r = fx.waitForRestore(ctx, r.Namespace, r.Name)
		Expect(r.Status.Phase).To(Equal(backupv1alpha1.RestoreSucceeded), r.Status.Message)
		Expect(r.Status.Source.Digest).To(Equal(older.Status.Artifact.Digest))
		Expect(snapshot(projects)).To(Equal(first), "the older tree, without the newer files")
	}, SpecTimeout(10*time.Minute))
})

// layerDigests lists the layer digests of a decoded manifest.
func layerDigests(m map[string]any) []string {
	var out []string
	layers, _ := m["layers"].([]any)
	for _, l := range layers {
		if d, ok := l.(map[string]any)["digest"].(string); ok {
			out = append(out, d)
		}
	}
	return out
}

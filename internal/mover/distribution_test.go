package mover

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dwbackup/devworkspace-backup-operator/internal/registry/registrytest"
)

// Tests against a real distribution registry (Debian docker-registry) and the
// real oras CLI, which is what DevWorkspace Operator uses.

func TestDistributionRoundTripAndUnchanged(t *testing.T) {
	d := registrytest.StartDistribution(t)
	src := t.TempDir()
	makeTree(t, src)
	want := snapshot(t, src)
	ctx := context.Background()

	first := mustSucceed(t, Backup(ctx, backupOpts(d.Host, src, "20261126T020000Z")))
	blobs := d.Blobs(t)
	target := t.TempDir()
	mustSucceed(t, Restore(ctx, restoreOpts(first.Reference, target)))
	compareTrees(t, want, snapshot(t, target))

	opens := &countingOpen{}
	o := backupOpts(d.Host, src, "20261127T020000Z")
	o.Open = opens.open
	second := mustSucceed(t, Backup(ctx, o))
	if !second.Unchanged || second.Digest != first.Digest || opens.n != 0 {
		t.Fatalf("second backup %+v opened %d files, want unchanged %s", second, opens.n, first.Digest)
	}
	if n := d.Blobs(t); n != blobs {
		t.Fatalf("unchanged backup changed the registry's blobs from %d to %d", blobs, n)
	}
}

func TestDistributionPlainHTTPRefused(t *testing.T) {
	d := registrytest.StartDistribution(t)
	src := t.TempDir()
	makeTree(t, src)
	o := backupOpts(d.Host, src, "20261126T020000Z")
	o.Registry.Insecure = false
	wantReason(t, Backup(context.Background(), o), ReasonPlainHTTPRefused)
	if n := d.Blobs(t); n != 0 {
		t.Fatalf("%d blobs reached the registry over plain HTTP", n)
	}
}

func runCmd(t *testing.T, dir, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

// Our artifact restored the way DWO restores: oras pull, then tar -xzf.
func TestDWOCanRestoreOurArtifact(t *testing.T) {
	oras := registrytest.Oras(t)
	d := registrytest.StartDistribution(t)
	src := t.TempDir()
	makeTree(t, src)
	want := snapshot(t, src)
	res := mustSucceed(t, Backup(context.Background(), backupOpts(d.Host, src, "20261126T020000Z")))

	pulled := t.TempDir()
	runCmd(t, pulled, oras, "pull", "--plain-http", res.Reference, "--output", pulled)
	out := t.TempDir()
	runCmd(t, out, "tar", "-xzf", filepath.Join(pulled, LayerTitle), "-C", out)
	compareTrees(t, want, snapshot(t, out))
}

// DWO's artifact (tar -czf + oras push with its default layer type) restored by us.
func TestWeRestoreDWOArtifact(t *testing.T) {
	oras := registrytest.Oras(t)
	d := registrytest.StartDistribution(t)
	src := t.TempDir()
	makeTree(t, src)
	// GNU tar would archive the FIFO and socket; DWO's tar does too, and we skip them.
	want := snapshot(t, src)

	work := t.TempDir()
	runCmd(t, work, "tar", "-czf", LayerTitle, "-C", src, ".")
	ref := d.Host + "/backups/ns/ws:latest"
	runCmd(t, work, oras, "push", "--plain-http", ref, "--artifact-type", ArtifactType,
		"--annotation", "devworkspace.name=ws", "--annotation", "devworkspace.namespace=ns", LayerTitle)

	target := filepath.Join(t.TempDir(), "projects")
	res := mustSucceed(t, Restore(context.Background(), restoreOpts(ref, target)))
	compareTrees(t, want, snapshot(t, target))
	if res.Files == 0 {
		t.Errorf("result counts no files: %+v", res)
	}
	if _, err := os.Stat(filepath.Join(target, "fifo")); err == nil {
		t.Errorf("FIFO restored")
	}
}

// The same rule against distribution: tree B under tree A's tag is refused and
// moves nothing; tree A under its own tag again succeeds with the same digest.
func TestDistributionUniqueTagNeverMoved(t *testing.T) {
	d := registrytest.StartDistribution(t)
	treeA, treeB := twoTrees(t)
	ctx := context.Background()
	const tag = "nightly-20261126T020000Z"
	a := mustSucceed(t, Backup(ctx, backupOpts(d.Host, treeA, tag)))

	b := Backup(ctx, backupOpts(d.Host, treeB, tag))
	wantReason(t, b, ReasonTagExists)
	if b.ExitCode() != ExitPermanent || !strings.Contains(b.Message, tag) {
		t.Errorf("exit %d, message %q: want %d and the tag named", b.ExitCode(), b.Message, ExitPermanent)
	}
	for _, ref := range []string{a.Reference, d.Host + "/backups/ns/ws:" + LatestTag} {
		if got := resolve(t, ref); got.String() != a.Digest {
			t.Fatalf("%s names %s after the refused backup, want %s", ref, got, a.Digest)
		}
	}

	again := mustSucceed(t, Backup(ctx, backupOpts(d.Host, treeA, tag)))
	if again.Digest != a.Digest {
		t.Fatalf("re-run of tree A gave %s, want %s", again.Digest, a.Digest)
	}
}

// The same against distribution, with the layer blob really deleted: the
// restore with --overwrite fails and the target keeps its files.
func TestDistributionOverwriteKeepsTargetWhenBlobDeleted(t *testing.T) {
	d := registrytest.StartDistribution(t)
	src := t.TempDir()
	makeTree(t, src)
	ctx := context.Background()
	res := mustSucceed(t, Backup(ctx, backupOpts(d.Host, src, "20261126T020000Z")))
	layer := manifestAt(t, res.Reference).Layers[0].Digest
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, "http://"+d.Host+"/v2/backups/ns/ws/blobs/"+layer, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("delete blob: HTTP %d", resp.StatusCode)
	}

	target := t.TempDir()
	if err := os.WriteFile(filepath.Join(target, "work.txt"), []byte("unsaved work"), 0o644); err != nil {
		t.Fatal(err)
	}
	want := snapshot(t, target)
	o := restoreOpts(res.Reference, target)
	o.Overwrite = true
	wantReason(t, Restore(ctx, o), ReasonArtifactNotFound)
	compareTrees(t, want, snapshot(t, target))
}

package mover

import (
	"context"
	"fmt"
	"iter"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dwbackup/devworkspace-backup-operator/internal/registry"
	"github.com/dwbackup/devworkspace-backup-operator/internal/registry/registrytest"
)

// layeredOpts is backupOpts in the layered format with groups of 64 KiB.
func layeredOpts(host, src, tag string) BackupOptions {
	o := backupOpts(host, src, tag)
	o.Format, o.GroupBytes = FormatLayered, minGroupBytes
	return o
}

// addFiles writes n files of 8 KiB over ten directories, all with treeTime.
func addFiles(t testing.TB, dir string, n int) {
	t.Helper()
	for i := range n {
		p := filepath.Join(dir, fmt.Sprintf("many/d%02d/f%04d.txt", i%10, i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		data := []byte(strings.Repeat(fmt.Sprintf("line %d of file %d\n", i, i), 8<<10)[:8<<10])
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	setTimes(t, dir)
}

// rewrite gives a file new content of the same size and a new mtime.
func rewrite(t testing.TB, p string) {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	data[0] ^= 0xff
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	later := treeTime.Add(time.Hour)
	if err := os.Chtimes(p, later, later); err != nil {
		t.Fatal(err)
	}
}

func layerDigests(m ociManifest) []string {
	out := make([]string, 0, len(m.Layers))
	for _, l := range m.Layers {
		out = append(out, l.Digest)
	}
	return out
}

// newLayers counts the layers of b that a does not have.
func newLayers(a, b ociManifest) int {
	old := layerDigests(a)
	return countIf(slices.Values(layerDigests(b)), func(d string) bool { return !slices.Contains(old, d) })
}

// countIf counts the values of seq for which keep holds.
func countIf[V any](seq iter.Seq[V], keep func(V) bool) int {
	n := 0
	for v := range seq {
		if keep(v) {
			n++
		}
	}
	return n
}

func TestLayeredBackupReusesUnchangedGroups(t *testing.T) {
	reg, src := registryAndTree(t)
	addFiles(t, src, 300)
	ctx := context.Background()
	want1 := snapshot(t, src)

	first := mustSucceed(t, Backup(ctx, layeredOpts(reg.Host, src, "20261126T020000Z")))
	m1 := manifestAt(t, first.Reference)
	if m1.Annotations[AnnotationFormat] != FormatLayered || len(m1.Layers) < 10 || len(m1.Layers) > MaxLayers {
		t.Fatalf("first backup: format %q, %d layers", m1.Annotations[AnnotationFormat], len(m1.Layers))
	}
	for i, l := range m1.Layers {
		if !strings.HasPrefix(l.Annotations[AnnotationLayerFingerprint], layerFingerprintVersion+":sha256:") ||
			l.MediaType != MediaTypeLayerGzip || l.Annotations[AnnotationTitle] != "" {
			t.Fatalf("layer %d: %+v", i, l)
		}
	}
	if first.Files != int64(len(want1)-countDirs(want1)) {
		t.Errorf("result counts %d files, the tree has %d", first.Files, len(want1)-countDirs(want1))
	}

	// One file rewritten with the same size: its group alone is read again.
	rewrite(t, filepath.Join(src, "many/d03/f0123.txt"))
	want2 := snapshot(t, src)
	opens := &countingOpen{}
	o := layeredOpts(reg.Host, src, "20261127T020000Z")
	o.Open = opens.open
	second := mustSucceed(t, Backup(ctx, o))
	m2 := manifestAt(t, second.Reference)
	if n := newLayers(m1, m2); n != 1 || len(m2.Layers) != len(m1.Layers) {
		t.Fatalf("one rewritten file gave %d new layers of %d (first backup %d)", n, len(m2.Layers), len(m1.Layers))
	}
	if opens.n == 0 || opens.n > 40 {
		t.Fatalf("second backup opened %d files, want those of one group", opens.n)
	}

	// A file added and one deleted move at most one boundary each.
	addOne := filepath.Join(src, "many/d05/f0105-new.txt")
	if err := os.WriteFile(addOne, []byte("new file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(src, "many/d08/f0208.txt")); err != nil {
		t.Fatal(err)
	}
	third := mustSucceed(t, Backup(ctx, layeredOpts(reg.Host, src, "20261128T020000Z")))
	if n := newLayers(m2, manifestAt(t, third.Reference)); n < 1 || n > 4 {
		t.Fatalf("a file added and one deleted gave %d new layers", n)
	}
	want3 := snapshot(t, src)

	// Nothing changed: the previous manifest is tagged again and no file is opened.
	opens = &countingOpen{}
	o = layeredOpts(reg.Host, src, "20261129T020000Z")
	o.Open = opens.open
	fourth := mustSucceed(t, Backup(ctx, o))
	if !fourth.Unchanged || fourth.Digest != third.Digest || opens.n != 0 {
		t.Fatalf("unchanged layered backup: %+v, opened %d files", fourth, opens.n)
	}
	if got := resolve(t, reg.Host+"/backups/ns/ws:latest"); got.String() != third.Digest {
		t.Fatalf("latest is %s, want %s", got, third.Digest)
	}

	// Every tag restores byte-exact, the oldest included.
	for _, c := range []struct {
		ref  string
		want map[string]snap
	}{{first.Reference, want1}, {second.Reference, want2}, {fourth.Reference, want3}} {
		target := t.TempDir()
		res := mustSucceed(t, Restore(ctx, restoreOpts(c.ref, target)))
		compareTrees(t, c.want, snapshot(t, target))
		if res.Files == 0 {
			t.Errorf("restore of %s counts no files", c.ref)
		}
	}
}

func countDirs(s map[string]snap) int {
	return countIf(maps.Values(s), func(e snap) bool { return e.kind == 'd' })
}

// --previous names the backup to compare with; without it latest is used.
func TestLayeredPreviousFlag(t *testing.T) {
	reg, src := registryAndTree(t)
	addFiles(t, src, 100)
	ctx := context.Background()
	first := mustSucceed(t, Backup(ctx, layeredOpts(reg.Host, src, "20261126T020000Z")))
	// latest moves to a single-layer backup of the same tree: nothing to reuse there.
	mustSucceed(t, Backup(ctx, backupOpts(reg.Host, src, "20261126T030000Z")))
	rewrite(t, filepath.Join(src, "many/d01/f0001.txt"))

	opens := &countingOpen{}
	o := layeredOpts(reg.Host, src, "20261127T020000Z")
	o.Open, o.Previous = opens.open, first.Digest
	mustSucceed(t, Backup(ctx, o))
	if opens.n == 0 || opens.n > 40 {
		t.Fatalf("with --previous the backup opened %d files, want those of one group", opens.n)
	}

	// Nothing to reuse: every group is read and compressed again, but the
	// registry has every blob already, so none is uploaded.
	opens = &countingOpen{}
	o = layeredOpts(reg.Host, src, "20261128T020000Z")
	o.Open, o.Previous = opens.open, "no-such-tag"
	uploads := reg.Count(http.MethodPost, "/blobs/uploads/")
	mustSucceed(t, Backup(ctx, o))
	if opens.n < 100 {
		t.Fatalf("a missing --previous opened %d files, want every file (nothing to reuse)", opens.n)
	}
	if n := reg.Count(http.MethodPost, "/blobs/uploads/") - uploads; n != 0 {
		t.Fatalf("%d blob uploads started for blobs the registry has", n)
	}

	o = layeredOpts(reg.Host, src, "20261129T020000Z")
	o.Previous = "bad/ref"
	wantReason(t, Backup(ctx, o), ReasonInvalidArguments)
}

func TestLayeredArguments(t *testing.T) {
	reg, src := registryAndTree(t)
	for name, mut := range map[string]func(*BackupOptions){
		"unknown format":             func(o *BackupOptions) { o.Format = "zip" },
		"previous without layered":   func(o *BackupOptions) { o.Format, o.Previous = "", "x" },
		"dwo latest without layered": func(o *BackupOptions) { o.Format, o.DWOCompatibleLatest = FormatDWO, true },
		"tiny groups":                func(o *BackupOptions) { o.GroupBytes = 1024 },
	} {
		t.Run(name, func(t *testing.T) {
			o := layeredOpts(reg.Host, src, "20261126T020000Z")
			mut(&o)
			wantReason(t, Backup(context.Background(), o), ReasonInvalidArguments)
		})
	}
}

// More groups than MaxLayers would make are merged into the last one.
func TestLayeredLayerLimit(t *testing.T) {
	reg, src := registryAndTree(t)
	addFiles(t, src, 300)
	want := snapshot(t, src)
	o := layeredOpts(reg.Host, src, "20261126T020000Z")
	o.exactGroupBytes = 4096 // every file is "large": 300 groups without the limit
	res := mustSucceed(t, Backup(context.Background(), o))
	if n := len(manifestAt(t, res.Reference).Layers); n != MaxLayers {
		t.Fatalf("%d layers, want the limit %d", n, MaxLayers)
	}
	target := t.TempDir()
	mustSucceed(t, Restore(context.Background(), restoreOpts(res.Reference, target)))
	compareTrees(t, want, snapshot(t, target))
}

// Which name of an inode is archived first can change while every entry of a
// later group keeps its lstat: the group must not be reused with a link to a
// name that is gone.
func TestLayeredHardLinkTargetChanges(t *testing.T) {
	reg := registrytest.NewInProcess(t, nil)
	src := t.TempDir()
	addFiles(t, src, 200)
	for _, p := range []string{"a/x", "m/w", "z/y"} {
		if err := os.MkdirAll(filepath.Join(src, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(src, "a/x"), []byte("linked"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"m/w", "z/y"} {
		if err := os.Link(filepath.Join(src, "a/x"), filepath.Join(src, p)); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	o := layeredOpts(reg.Host, src, "20261126T020000Z")
	o.exactGroupBytes = 16 << 10
	mustSucceed(t, Backup(ctx, o))
	// a/x goes, b/v comes: the inode keeps three names, z/y its lstat.
	if err := os.MkdirAll(filepath.Join(src, "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(src, "a/x"), filepath.Join(src, "b/v")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(src, "a/x")); err != nil {
		t.Fatal(err)
	}
	want := snapshot(t, src)
	o.Tag = "20261127T020000Z"
	res := mustSucceed(t, Backup(ctx, o))
	target := t.TempDir()
	mustSucceed(t, Restore(ctx, restoreOpts(res.Reference, target)))
	compareTrees(t, want, snapshot(t, target))
}

// layeredInDistribution backs up 200 files in the layered format into a
// docker-registry and returns it, the result and the manifest.
func layeredInDistribution(t *testing.T) (*registrytest.Distribution, Result, ociManifest) {
	t.Helper()
	d := registrytest.StartDistribution(t)
	src := t.TempDir()
	addFiles(t, src, 200)
	res := mustSucceed(t, Backup(context.Background(), layeredOpts(d.Host, src, "20261126T020000Z")))
	return d, res, manifestAt(t, res.Reference)
}

// blobDir is where docker-registry keeps a blob; it also returns the digest's hex.
func blobDir(d *registrytest.Distribution, digest string) (string, string) {
	hexDigest := strings.TrimPrefix(digest, "sha256:")
	return filepath.Join(d.Root, "docker/registry/v2/blobs/sha256", hexDigest[:2], hexDigest), hexDigest
}

// A layer whose blob differs from its digest fails the restore with DigestMismatch.
func TestLayeredRestoreVerifiesEveryLayer(t *testing.T) {
	d, res, m := layeredInDistribution(t)
	dir, hexDigest := blobDir(d, m.Layers[len(m.Layers)-1].Digest)
	f, err := os.OpenFile(filepath.Join(dir, "data"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Flip a byte inside the gzip data of the last layer, keeping its size.
	if _, err := f.WriteAt([]byte{0}, 20); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()
	res = Restore(context.Background(), restoreOpts(res.Reference, t.TempDir()))
	wantReason(t, res, ReasonDigestMismatch)
	if !strings.Contains(res.Message, hexDigest[:12]) {
		t.Errorf("message %q does not name the layer", res.Message)
	}
}

// A missing layer blob fails before the target is touched.
func TestLayeredOverwriteKeepsTargetWhenALayerIsMissing(t *testing.T) {
	d, res, m := layeredInDistribution(t)
	dir, _ := blobDir(d, m.Layers[len(m.Layers)/2].Digest)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	target := t.TempDir()
	keep := filepath.Join(target, "keep.txt")
	if err := os.WriteFile(keep, []byte("work"), 0o644); err != nil {
		t.Fatal(err)
	}
	o := restoreOpts(res.Reference, target)
	o.Overwrite = true
	wantReason(t, Restore(context.Background(), o), ReasonArtifactNotFound)
	if _, err := os.Stat(keep); err != nil {
		t.Fatalf("the target lost its content: %v", err)
	}
}

// DWO-compatible latest: one layer that oras pull + tar -xzf restores, built
// from the layered blobs; the unique tags keep the layered history.
func TestDistributionDWOCompatibleLatest(t *testing.T) {
	oras := registrytest.Oras(t)
	d := registrytest.StartDistribution(t)
	src := t.TempDir()
	makeTree(t, src)
	addFiles(t, src, 200)
	ctx := context.Background()
	latestRef := d.Host + "/backups/ns/ws:latest"
	repo := openRepo(t, d.Host+"/backups/ns/ws")
	var previousLatest string
	for i, tag := range []string{"20261126T020000Z", "20261127T020000Z", "20261128T020000Z"} {
		if i == 1 {
			rewrite(t, filepath.Join(src, "many/d04/f0014.txt"))
		}
		want := snapshot(t, src)
		o := layeredOpts(d.Host, src, tag)
		o.DWOCompatibleLatest = true
		res := mustSucceed(t, Backup(ctx, o))
		if (i == 2) != res.Unchanged {
			t.Fatalf("backup %d unchanged=%v", i, res.Unchanged)
		}
		if m := manifestAt(t, res.Reference); m.Annotations[AnnotationFormat] != FormatLayered {
			t.Fatalf("unique tag %s is not layered", tag)
		}
		latest := manifestAt(t, latestRef)
		if len(latest.Layers) != 1 || latest.Layers[0].Annotations[AnnotationTitle] != LayerTitle ||
			latest.Annotations[AnnotationLayeredManifest] != res.Digest || latest.ArtifactType != ArtifactType ||
			latest.Annotations[AnnotationWorkspaceName] != "ws" {
			t.Fatalf("latest after backup %d: %+v", i, latest)
		}

		pulled := t.TempDir()
		runCmd(t, pulled, oras, "pull", "--plain-http", latestRef, "--output", pulled)
		out := t.TempDir()
		runCmd(t, out, "tar", "-xzf", filepath.Join(pulled, LayerTitle), "-C", out)
		compareTrees(t, want, snapshot(t, out))

		target := t.TempDir()
		mustSucceed(t, Restore(ctx, restoreOpts(latestRef, target)))
		compareTrees(t, want, snapshot(t, target))

		// The replaced DWO-compatible latest is deleted (nothing else names
		// it), so garbage collection can free its full-size blob.
		current := resolve(t, latestRef).String()
		if previousLatest != "" && previousLatest != current {
			if _, err := repo.GetManifest(ctx, previousLatest); registry.ReasonOf(err) != registry.ReasonNotFound {
				t.Fatalf("replaced latest %s still there: %v", previousLatest, err)
			}
		}
		previousLatest = current
	}
}

// Deleting one backup's manifest (what retention does) never removes a blob a
// kept backup needs: distribution deletes manifests, not blobs, and its
// garbage collection frees only the blobs no remaining manifest refers to.
func TestDistributionSharedLayersSurviveManifestDelete(t *testing.T) {
	d := registrytest.StartDistribution(t)
	src := t.TempDir()
	addFiles(t, src, 300)
	ctx := context.Background()
	older := mustSucceed(t, Backup(ctx, layeredOpts(d.Host, src, "20261126T020000Z")))
	rewrite(t, filepath.Join(src, "many/d07/f0207.txt"))
	want := snapshot(t, src)
	newer := mustSucceed(t, Backup(ctx, layeredOpts(d.Host, src, "20261127T020000Z")))
	mOld, mNew := manifestAt(t, older.Reference), manifestAt(t, newer.Reference)
	if shared := len(mNew.Layers) - newLayers(mOld, mNew); shared < 10 {
		t.Fatalf("the backups share %d layers, want most", shared)
	}
	blobs := d.Blobs(t)

	repo := openRepo(t, d.Host+"/backups/ns/ws")
	if err := repo.DeleteManifest(ctx, older.Digest); err != nil {
		t.Fatal(err)
	}
	if n := d.Blobs(t); n != blobs {
		t.Fatalf("deleting a manifest removed blobs: %d -> %d", blobs, n)
	}
	d.GarbageCollect(t)
	// Garbage collection frees the old manifest (distribution stores it as a
	// blob) and the old backup's own layer, nothing the newer one uses.
	if freed := newLayers(mNew, mOld) + 1; d.Blobs(t) != blobs-freed {
		t.Fatalf("after garbage collection %d blobs, want %d (%d freed)", d.Blobs(t), blobs-freed, freed)
	}
	target := t.TempDir()
	mustSucceed(t, Restore(ctx, restoreOpts(newer.Reference, target)))
	compareTrees(t, want, snapshot(t, target))
}

// The cut rule is local: adding, removing or resizing one entry changes the
// cut after that entry only, so every other boundary stays.
func TestCutAfterIsLocal(t *testing.T) {
	const target = 64 << 10
	paths := make([]string, 5000)
	for i := range paths {
		paths[i] = fmt.Sprintf("src/pkg%03d/file%05d.go", i%97, i)
	}
	slices.Sort(paths)
	cuts := func(ps []string, size func(string) int64) []string {
		var out []string
		for _, p := range ps {
			if cutAfter(p, entryWeight(size(p)), target) {
				out = append(out, p)
			}
		}
		return out
	}
	base := func(string) int64 { return 4000 }
	before := cuts(paths, base)
	if n := len(before); n < 250 || n > 450 {
		t.Fatalf("%d cuts in 5000 entries of 4.5 KiB with 64 KiB groups, want about 350", n)
	}
	for name, c := range map[string]struct {
		paths []string
		size  func(string) int64
	}{
		"insert": {append(slices.Clone(paths), "src/pkg050/new.go"), base},
		"delete": {slices.Delete(slices.Clone(paths), 2500, 2501), base},
		"resize": {paths, func(p string) int64 {
			if p == paths[1234] {
				return 60000
			}
			return 4000
		}},
	} {
		t.Run(name, func(t *testing.T) {
			ps := slices.Clone(c.paths)
			slices.Sort(ps)
			after := cuts(ps, c.size)
			diff := 0
			for _, p := range after {
				if !slices.Contains(before, p) {
					diff++
				}
			}
			for _, p := range before {
				if !slices.Contains(after, p) {
					diff++
				}
			}
			if diff > 1 {
				t.Fatalf("%d boundaries moved", diff)
			}
		})
	}
	if !cutAfter("big.bin", target, target) || !startsGroup(target, target) {
		t.Fatal("a file as large as the group size is not alone")
	}
}

func TestGroupTarget(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		name    string
		weights treeWeights
		min     int64
		want    int64
	}{
		{"small tree: the default", treeWeights{total: 50 * mib}, 0, DefaultGroupBytes},
		{"large tree of small files: tree / 64", treeWeights{total: 1024 * mib}, 0, 16 * mib},
		{"rounded up to 64 KiB", treeWeights{total: 1000*mib + 64}, 0, 1000*mib/groupsPerTree + 64<<10},
		// 20 binaries of 40 MiB beside 320 MiB of sources: 20 groups for them, 44 of
		// 320/44 MiB (rounded up) for the sources, not 64 groups of 17.5 MiB.
		{"large files alone do not widen the small files' groups",
			treeWeights{total: 1120 * mib, large: slices.Repeat([]int64{40 * mib}, 20)}, 0, 117 << 16},
		{"minimum from --group-bytes", treeWeights{total: 50 * mib}, 64 << 10, 13 << 16},
		{"empty tree", treeWeights{}, 0, DefaultGroupBytes},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := groupTarget(c.weights, c.min); got != c.want {
				t.Fatalf("groupTarget(%+v, %d) = %d, want %d", c.weights, c.min, got, c.want)
			}
		})
	}
}

func TestKeepTarget(t *testing.T) {
	for _, c := range []struct {
		name     string
		previous int64
		layers   int
		minimum  int64
		want     bool
	}{
		{"fits", 8 << 20, 80, 0, true},
		{"too many layers last time", 8 << 20, 112, 0, false},
		{"below a raised minimum", 8 << 20, 80, 16 << 20, false},
		{"no previous size", 0, 10, 0, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := keepTarget(c.previous, c.layers, c.minimum); got != c.want {
				t.Fatalf("keepTarget(%d, %d, %d) = %v", c.previous, c.layers, c.minimum, got)
			}
		})
	}
}

// openRepo opens a repository of a test registry with push access.
func openRepo(t testing.TB, repository string) *registry.Repo {
	t.Helper()
	c, err := registry.New(registry.Options{Insecure: true, Retry: fastRetry})
	if err != nil {
		t.Fatal(err)
	}
	name, err := c.ParseRepository(repository)
	if err != nil {
		t.Fatal(err)
	}
	repo, err := c.Open(context.Background(), name, registry.Delete)
	if err != nil {
		t.Fatal(err)
	}
	return repo
}

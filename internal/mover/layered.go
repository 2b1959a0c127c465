package mover

import (
	"archive/tar"
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"strconv"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/pgzip"
	"golang.org/x/sys/unix"

	"github.com/dwbackup/devworkspace-backup-operator/internal/registry"
)

// Layered backups (docs/mover-contract.md, "Layered artifacts"): one walk cuts
// the tree into groups (group.go); a group whose lstat fingerprint equals a
// layer of the previous backup reuses that layer without opening a file, any
// other group is archived, compressed and uploaded as a layer of its own.
const (
	// bufferedGroupMax is the largest group (in entry weight) compressed into
	// memory, so that its digest is known before the upload and a blob the
	// registry has is not sent again; larger groups stream. Two such buffers at
	// most are alive: one uploading, one filling.
	bufferedGroupMax = 8 << 20
	// maxGroupDirs bounds the directory descriptors a group holds open until it
	// is archived; a group reaching it ends early (only trees of thousands of
	// tiny directories do).
	maxGroupDirs = 1024
)

// groupEntry is one walked entry waiting for its group to end.
type groupEntry struct {
	e   entry       // dirfd is the group's own duplicate of the directory
	hdr *tar.Header // nil for skipped entries (sockets, FIFOs, devices)
}

// group is the entries between two cuts.
type group struct {
	entries []groupEntry
	dirs    []int // duplicated directory descriptors, closed by release
	lastSeq int
	fp      *fingerprint
	weight  int64
}

func newGroup() *group { return &group{fp: newLayerFingerprint(), lastSeq: -1} }

func (g *group) release() {
	for _, fd := range g.dirs {
		_ = unix.Close(fd)
	}
	g.dirs = nil
}

// layeredRun is one layered backup.
type layeredRun struct {
	b      *backupRun
	target int64
	reuse  map[string]ociDescriptor // the previous backup's layers by fingerprint
	arch   *archiver                // headers (hard links) and file copies
	gz     *pgzip.Writer
	tree   *fingerprint
	cur    *group
	layers []ociDescriptor
	up     *groupUploader
	ctx    context.Context

	files, bytes, reused int64
}

func (b *backupRun) runLayered(ctx context.Context) (Result, error) {
	prev, err := b.previousLayered(ctx)
	if err != nil {
		return Result{}, err
	}
	target, err := b.layeredTarget(ctx, prev)
	if err != nil {
		return Result{}, err
	}
	gz, err := pgzip.NewWriterLevel(io.Discard, gzipLevel)
	if err != nil {
		return Result{}, err
	}
	r := &layeredRun{b: b, target: target, reuse: map[string]ociDescriptor{}, gz: gz, tree: newFingerprint(),
		cur: newGroup(), arch: &archiver{root: b.opts.Source, open: b.opts.Open, links: map[fileID]string{},
			count: b.count, buf: make([]byte, copyBufSize)},
		up: newGroupUploader(ctx, b.repo), ctx: ctx}
	if prev != nil {
		for _, l := range prev.parsed.Layers {
			if fp := l.Annotations[AnnotationLayerFingerprint]; fp != "" {
				r.reuse[fp] = l
			}
		}
	}
	werr := walk(ctx, b.src, r.add)
	if werr == nil {
		werr = r.flush(ctx)
	}
	r.cur.release()
	done, uerr := r.up.wait()
	switch {
	case werr != nil:
		return Result{}, werr
	case uerr != nil:
		return Result{}, uerr
	}
	for i := range r.layers {
		if d, ok := done[i]; ok {
			r.layers[i].Digest, r.layers[i].Size = d.Digest.String(), d.Size
		}
	}
	treeFP := r.tree.sum()
	if prev != nil && prev.parsed.Annotations[AnnotationTreeFingerprint] == treeFP {
		return b.tagPreviousLayered(ctx, prev)
	}
	return b.publishLayered(ctx, r, treeFP)
}

// add puts one walked entry into the current group, cutting before and after it
// as group.go decides, and never past MaxLayers groups: the last one takes the rest.
func (r *layeredRun) add(e entry) error {
	r.tree.add(e)
	var size int64
	hdr, ok := r.arch.header(e)
	if ok && hdr.Typeflag == tar.TypeReg {
		size = hdr.Size
	}
	w := entryWeight(size)
	canCut := len(r.layers)+1 < MaxLayers
	if canCut && len(r.cur.entries) > 0 && (startsGroup(w, r.target) || len(r.cur.dirs) >= maxGroupDirs) {
		if err := r.flush(r.ctx); err != nil {
			return err
		}
	}
	g := r.cur
	ge := groupEntry{e: e}
	ge.e.dirfd = -1
	if ok {
		ge.hdr = hdr
		if hdr.Typeflag != tar.TypeDir {
			r.files++
		}
		r.bytes += size
		if hdr.Typeflag == tar.TypeReg && r.b.opts.Open == nil {
			if e.dirSeq != g.lastSeq {
				fd, err := unix.Dup(e.dirfd)
				if err != nil {
					return fmt.Errorf("keep directory of %s open: %w", e.path, err)
				}
				unix.CloseOnExec(fd)
				g.dirs, g.lastSeq = append(g.dirs, fd), e.dirSeq
			}
			ge.e.dirfd = g.dirs[len(g.dirs)-1]
		}
	}
	g.entries = append(g.entries, ge)
	g.fp.addLayerEntry(e, ge.hdr)
	g.weight += w
	if canCut && cutAfter(e.path, w, r.target) {
		return r.flush(r.ctx)
	}
	return nil
}

// flush ends the current group: it becomes a reused layer or a new one.
func (r *layeredRun) flush(ctx context.Context) error {
	g := r.cur
	r.cur = newGroup()
	defer g.release()
	if len(g.entries) == 0 {
		return nil
	}
	fp := g.fp.sum()
	l := ociDescriptor{MediaType: MediaTypeLayerGzip, Annotations: map[string]string{AnnotationLayerFingerprint: fp}}
	if d, ok := r.reuse[fp]; ok {
		l.Digest, l.Size = d.Digest, d.Size
		r.layers = append(r.layers, l)
		r.reused++
		return nil
	}
	idx := len(r.layers)
	r.layers = append(r.layers, l)
	if g.weight <= bufferedGroupMax {
		buf := r.up.buffer()
		if err := r.archive(g, buf); err != nil {
			return err
		}
		return r.up.push(idx, buf)
	}
	d, err := r.b.streamBlob(ctx, func(w io.Writer) error { return r.archive(g, w) })
	if err != nil {
		return err
	}
	r.up.record(idx, d)
	return nil
}

// archive writes the group as a tar fragment without end-of-archive blocks
// (fragments are concatenated, see compat.go), gzip-compressed into w.
func (r *layeredRun) archive(g *group, w io.Writer) error {
	r.gz.Reset(w)
	if err := r.gz.SetConcurrency(gzipBlockSize, gzipBlocks); err != nil {
		return err
	}
	tw := tar.NewWriter(r.gz)
	r.arch.tw = tw
	for _, ge := range g.entries {
		if ge.hdr == nil {
			r.b.count.skipped.Add(1)
			continue
		}
		if err := tw.WriteHeader(ge.hdr); err != nil {
			return fmt.Errorf("write tar header for %s: %w", ge.e.path, err)
		}
		if ge.hdr.Typeflag != tar.TypeDir {
			r.b.count.files.Add(1)
		}
		if ge.hdr.Typeflag == tar.TypeReg {
			if err := r.arch.copyFile(ge.e); err != nil {
				return err
			}
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return r.gz.Close()
}

// previousBackup is the layered manifest a backup compares its groups with.
type previousBackup struct {
	manifest registry.Manifest
	parsed   ociManifest
}

// previousLayered reads the layered manifest --previous names (a tag or digest
// of the repository), else latest's; a DWO-compatible latest names its layered
// manifest in an annotation. No such manifest, or one of another format, means
// nothing to reuse (a first layered backup), never a failure.
func (b *backupRun) previousLayered(ctx context.Context) (*previousBackup, error) {
	ref := b.opts.Previous
	if ref == "" {
		ref = LatestTag
	}
	for range 2 {
		m, err := b.repo.GetManifest(ctx, ref)
		if registry.ReasonOf(err) == registry.ReasonNotFound {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		parsed, err := parseManifest(m.Bytes)
		if err != nil || parsed.ArtifactType != ArtifactType {
			return nil, nil //nolint:nilerr // an unreadable previous backup just means nothing to reuse
		}
		if parsed.Annotations[AnnotationFormat] == FormatLayered {
			return &previousBackup{manifest: m, parsed: parsed}, nil
		}
		if ref = parsed.Annotations[AnnotationLayeredManifest]; ref == "" {
			return nil, nil
		}
	}
	return nil, nil
}

// layeredTarget is the group size: the previous backup's while it fits
// (keepTarget), else one chosen from the tree's weights (groupTarget), which an
// lstat-only walk learns.
func (b *backupRun) layeredTarget(ctx context.Context, prev *previousBackup) (int64, error) {
	if b.opts.exactGroupBytes > 0 {
		return b.opts.exactGroupBytes, nil
	}
	if prev != nil {
		previous, _ := strconv.ParseInt(prev.parsed.Annotations[AnnotationGroupBytes], 10, 64)
		if keepTarget(previous, len(prev.parsed.Layers), b.opts.GroupBytes) {
			return previous, nil
		}
	}
	minimum := cmp.Or(b.opts.GroupBytes, DefaultGroupBytes)
	var w treeWeights
	err := walk(ctx, b.src, func(e entry) error {
		size := int64(0)
		if e.info.Mode().IsRegular() {
			size = e.info.Size()
		}
		weight := entryWeight(size)
		w.total += weight
		if weight >= minimum {
			w.large = append(w.large, weight)
		}
		return nil
	})
	return groupTarget(w, b.opts.GroupBytes), err
}

// tagPreviousLayered is the unchanged shortcut of the layered format: the tree's
// fingerprint equals the previous backup's, so its manifest is tagged again.
func (b *backupRun) tagPreviousLayered(ctx context.Context, prev *previousBackup) (Result, error) {
	if err := b.publishLayeredManifest(ctx, prev.manifest.Digest, prev.manifest.Bytes, prev.parsed); err != nil {
		return Result{}, err
	}
	files, _ := strconv.ParseInt(prev.parsed.Annotations[AnnotationFiles], 10, 64)
	content, _ := strconv.ParseInt(prev.parsed.Annotations[AnnotationBytes], 10, 64)
	return Result{Phase: PhaseSucceeded, Reason: ReasonUnchanged, Unchanged: true,
		Message:   fmt.Sprintf("tree unchanged since the backup %s: tagged the same artifact, read no file", prev.manifest.Digest),
		Reference: b.repo.Reference(b.opts.Tag), Digest: prev.manifest.Digest.String(),
		SizeBytes: layersSize(prev.parsed.Layers), Bytes: content, Files: files}, nil
}

func (b *backupRun) publishLayered(ctx context.Context, r *layeredRun, treeFP string) (Result, error) {
	config, err := b.repo.PushBlob(ctx, MediaTypeEmpty, emptyConfig)
	if err != nil {
		return Result{}, err
	}
	meta := b.meta(r.files, r.bytes, treeFP)
	meta.format, meta.groupBytes = FormatLayered, r.target
	manifest, err := buildManifestLayers(r.layers, config, meta)
	if err != nil {
		return Result{}, err
	}
	parsed, err := parseManifest(manifest)
	if err != nil {
		return Result{}, err
	}
	digest := sha256Digest(manifest)
	if err := b.publishLayeredManifest(ctx, digest, manifest, parsed); err != nil {
		return Result{}, err
	}
	size := layersSize(r.layers)
	return Result{Phase: PhaseSucceeded, Reason: ReasonCompleted,
		Message: fmt.Sprintf("backed up %d files (%d bytes, %d skipped) into %d layers of %d bytes: %d reused, %d read and uploaded",
			r.files, r.bytes, b.count.skipped.Load(), len(r.layers), size, r.reused, int64(len(r.layers))-r.reused),
		Reference: b.repo.Reference(b.opts.Tag), Digest: digest.String(), SizeBytes: size, Bytes: r.bytes, Files: r.files}, nil
}

// publishLayeredManifest puts the layered manifest under the unique tag, then
// moves latest to it, or, with --dwo-compatible-latest, to its single-layer
// form (compat.go), which is built first: a failure there tags nothing. latest
// is not moved once the run is cancelled: a SIGTERM never moves latest.
func (b *backupRun) publishLayeredManifest(ctx context.Context, digest v1.Hash, manifest []byte, parsed ociManifest) error {
	latest, replaced := manifest, ""
	if b.opts.DWOCompatibleLatest {
		var err error
		if latest, replaced, err = b.compatLatest(ctx, digest, parsed); err != nil {
			return err
		}
	}
	if _, err := b.putUniqueTag(ctx, registry.MediaTypeOCIManifest, manifest); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("stopped before moving %s: %w", LatestTag, err)
	}
	if latest == nil {
		return nil // latest already is this backup's
	}
	if _, err := b.repo.PutManifest(ctx, LatestTag, registry.MediaTypeOCIManifest, latest); err != nil {
		return err
	}
	b.deleteReplaced(ctx, replaced)
	return nil
}

func layersSize(layers []ociDescriptor) int64 {
	var n int64
	for _, l := range layers {
		n += l.Size
	}
	return n
}

// groupUploader uploads compressed groups from memory in a goroutine of its own
// while the next group is read and compressed. Two buffers circulate, which
// bounds memory; PushBlob asks the registry first and skips a blob it has.
type groupUploader struct {
	ctx   context.Context
	repo  *registry.Repo
	jobs  chan uploadJob
	free  chan *bytes.Buffer
	mu    sync.Mutex
	done  map[int]registry.Descriptor
	err   error
	ended chan struct{}
}

type uploadJob struct {
	idx int
	buf *bytes.Buffer
}

func newGroupUploader(ctx context.Context, repo *registry.Repo) *groupUploader {
	u := &groupUploader{ctx: ctx, repo: repo, jobs: make(chan uploadJob), free: make(chan *bytes.Buffer, 2),
		done: map[int]registry.Descriptor{}, ended: make(chan struct{})}
	u.free <- new(bytes.Buffer)
	u.free <- new(bytes.Buffer)
	go u.run()
	return u
}

func (u *groupUploader) run() {
	defer close(u.ended)
	for j := range u.jobs {
		if u.failed() == nil {
			d, err := u.repo.PushBlob(u.ctx, MediaTypeLayerGzip, j.buf.Bytes())
			if err != nil {
				u.mu.Lock()
				u.err = err
				u.mu.Unlock()
			} else {
				u.record(j.idx, d)
			}
		}
		u.free <- j.buf
	}
}

func (u *groupUploader) failed() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.err
}

// buffer waits for a free buffer and empties it.
func (u *groupUploader) buffer() *bytes.Buffer {
	b := <-u.free
	b.Reset()
	return b
}

// push hands a filled buffer to the upload goroutine; an earlier upload's
// failure stops the backup at the next group.
func (u *groupUploader) push(idx int, buf *bytes.Buffer) error {
	if err := u.failed(); err != nil {
		u.free <- buf
		return err
	}
	u.jobs <- uploadJob{idx: idx, buf: buf}
	return nil
}

func (u *groupUploader) record(idx int, d registry.Descriptor) {
	u.mu.Lock()
	u.done[idx] = d
	u.mu.Unlock()
}

// wait ends the uploads and returns the uploaded layers by index.
func (u *groupUploader) wait() (map[int]registry.Descriptor, error) {
	close(u.jobs)
	<-u.ended
	return u.done, u.err
}

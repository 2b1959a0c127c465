package mover

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/dwbackup/devworkspace-backup-operator/internal/registry"
)

// BackupOptions are the flags of `mover backup`, plus test hooks.
type BackupOptions struct {
	Source      string
	Repository  string
	Tag         string
	Workspace   string
	Namespace   string
	WorkspaceID string
	Registry    registry.Options
	// Created is the backup time the manifest records (--created); zero takes it
	// from the tag, and a tag without one records none.
	Created time.Time
	// Format is FormatDWO (the default when empty: one layer) or FormatLayered
	// (--format; docs/mover-contract.md, "Layered artifacts").
	Format string
	// Previous is the tag or digest, in the repository, of the backup whose
	// layers a layered backup may reuse (--previous); empty means latest.
	Previous string
	// DWOCompatibleLatest writes latest of a layered backup in the single-layer
	// format as well (--dwo-compatible-latest; compat.go).
	DWOCompatibleLatest bool
	// GroupBytes is the smallest average group size of a layered backup
	// (--group-bytes); zero means DefaultGroupBytes.
	GroupBytes int64
	// exactGroupBytes, in tests, is the group size whatever the tree's size.
	exactGroupBytes int64
	// Open opens source files by their full path; nil opens them relative to their
	// directory. Tests count or fail reads with it.
	Open OpenFunc
	// Progress receives a line every ProgressInterval; nil writes nothing.
	Progress         io.Writer
	ProgressInterval time.Duration
}

func (o BackupOptions) validate() error {
	for flag, v := range map[string]string{"--source": o.Source, "--repository": o.Repository, "--tag": o.Tag,
		"--workspace": o.Workspace, "--namespace": o.Namespace} {
		if v == "" {
			return failf(ReasonInvalidArguments, "%s is required", flag)
		}
	}
	if o.Tag == LatestTag {
		return failf(ReasonInvalidArguments, "--tag must be unique, not %q", LatestTag)
	}
	switch o.Format {
	case "", FormatDWO:
		if o.Previous != "" || o.DWOCompatibleLatest || o.GroupBytes != 0 {
			return failf(ReasonInvalidArguments, "--previous, --dwo-compatible-latest and --group-bytes need --format %s", FormatLayered)
		}
	case FormatLayered:
		if o.GroupBytes != 0 && o.GroupBytes < minGroupBytes {
			return failf(ReasonInvalidArguments, "--group-bytes must be at least %d", minGroupBytes)
		}
	default:
		return failf(ReasonInvalidArguments, "--format must be %s or %s, not %q", FormatDWO, FormatLayered, o.Format)
	}
	return nil
}

// minGroupBytes is the smallest --group-bytes: smaller groups only add requests.
const minGroupBytes = 64 << 10

// errUploadAborted stops the archive writer when the upload has failed.
var errUploadAborted = errors.New("upload aborted")

// Backup runs `mover backup` and returns its result; it never panics on bad input.
func Backup(ctx context.Context, o BackupOptions) Result {
	start := time.Now()
	res, err := backup(ctx, o)
	if err != nil {
		res = failed(err)
	}
	res.DurationSeconds = time.Since(start).Seconds()
	return res
}

func backup(ctx context.Context, o BackupOptions) (Result, error) {
	if err := o.validate(); err != nil {
		return Result{}, err
	}
	src, exists, err := openSource(o.Source)
	if err != nil {
		return Result{}, err
	}
	if !exists {
		return Result{Phase: PhaseSkipped, Reason: ReasonNoWorkspaceStorage,
			Message: fmt.Sprintf("source directory %s does not exist: nothing to back up", o.Source)}, nil
	}
	defer func() { _ = unix.Close(src) }()
	client, err := registry.New(o.Registry)
	if err != nil {
		return Result{}, err
	}
	repoName, err := client.ParseRepository(o.Repository)
	if err != nil {
		return Result{}, err
	}
	if _, err := name.NewTag(repoName.Name()+":"+o.Tag, name.StrictValidation); err != nil {
		return Result{}, failf(ReasonInvalidArguments, "--tag %q: %w", o.Tag, err)
	}
	if o.Previous != "" {
		if _, err := name.ParseReference(repoName.Name()+previousSeparator(o.Previous)+o.Previous, name.StrictValidation); err != nil {
			return Result{}, failf(ReasonInvalidArguments, "--previous %q is not a tag or digest: %w", o.Previous, err)
		}
	}
	repo, err := client.Open(ctx, repoName, registry.Push)
	if err != nil {
		return Result{}, err
	}
	b := &backupRun{opts: o, src: src, repo: repo, count: &counters{},
		openDelete: func(ctx context.Context) (*registry.Repo, error) { return client.Open(ctx, repoName, registry.Delete) }}
	stop := startProgress(o.Progress, o.ProgressInterval, "backup", b.count)
	defer stop()
	return b.run(ctx)
}

type backupRun struct {
	opts  BackupOptions
	src   int // the source directory, opened by openSource
	repo  *registry.Repo
	count *counters
	// openDelete opens the repository for deletion, asked for only when a
	// DWO-compatible latest replaces another (compat.go).
	openDelete func(context.Context) (*registry.Repo, error)
}

func (b *backupRun) run(ctx context.Context) (Result, error) {
	if b.opts.Format == FormatLayered {
		return b.runLayered(ctx)
	}
	if res, ok, err := b.tagIfUnchanged(ctx); ok || err != nil {
		return res, err
	}
	layer, fp, err := b.uploadLayer(ctx)
	if err != nil {
		return Result{}, err
	}
	files, bytes := b.count.files.Load(), b.count.bytes.Load()
	config, err := b.repo.PushBlob(ctx, MediaTypeEmpty, emptyConfig)
	if err != nil {
		return Result{}, err
	}
	manifest, err := buildManifest(layer, config, b.meta(files, bytes, fp))
	if err != nil {
		return Result{}, err
	}
	digest, err := b.publish(ctx, manifest)
	if err != nil {
		return Result{}, err
	}
	return Result{Phase: PhaseSucceeded, Reason: ReasonCompleted,
		Message:   fmt.Sprintf("backed up %d files (%d bytes, %d skipped) into %d bytes", files, bytes, b.count.skipped.Load(), layer.Size),
		Reference: b.repo.Reference(b.opts.Tag), Digest: digest, SizeBytes: layer.Size, Bytes: bytes, Files: files}, nil
}

// meta is what the manifest records about this backup.
func (b *backupRun) meta(files, bytes int64, fp string) artifactMeta {
	created := b.opts.Created
	if created.IsZero() {
		created = createdTime(b.opts.Tag)
	}
	return artifactMeta{workspace: b.opts.Workspace, namespace: b.opts.Namespace,
		workspaceID: b.opts.WorkspaceID, created: created, files: files, bytes: bytes, fingerprint: fp}
}

// previousSeparator joins a repository and --previous: "@" for a digest, ":" for a tag.
func previousSeparator(ref string) string {
	if strings.Contains(ref, ":") {
		return "@"
	}
	return ":"
}

// publish puts the manifest under the unique tag, then moves latest, but only
// while the run has not been cancelled: a SIGTERM never moves latest.
func (b *backupRun) publish(ctx context.Context, manifest []byte) (string, error) {
	digest, err := b.putUniqueTag(ctx, registry.MediaTypeOCIManifest, manifest)
	if err != nil {
		return "", err
	}
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("stopped before moving %s: %w", LatestTag, err)
	}
	if _, err := b.repo.PutManifest(ctx, LatestTag, registry.MediaTypeOCIManifest, manifest); err != nil {
		return "", err
	}
	return digest.String(), nil
}

// putUniqueTag puts the manifest under the unique tag unless the tag already
// names a manifest. A unique tag names one backup for ever (the controller
// records its digest, and retention deletes by it): another digest there is
// TagExists and nothing is put, while the same digest is a retried Job's own
// push and succeeds (the manifest is deterministic, see createdTime).
// Resolving and putting are two requests, so two runs racing for one tag are
// not excluded; the controller runs one Job per tag.
func (b *backupRun) putUniqueTag(ctx context.Context, mediaType string, manifest []byte) (v1.Hash, error) {
	sum := sha256.Sum256(manifest)
	ours := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	existing, err := b.repo.Resolve(ctx, b.opts.Tag)
	switch {
	case registry.ReasonOf(err) == registry.ReasonNotFound:
		return b.repo.PutManifest(ctx, b.opts.Tag, mediaType, manifest)
	case err != nil:
		return v1.Hash{}, err
	case existing.Digest != ours:
		return v1.Hash{}, failf(ReasonTagExists, "tag %s already names %s, not this backup's %s: a unique tag is never moved",
			b.opts.Tag, existing.Digest, ours)
	}
	return ours, nil
}

// treeFingerprint walks the tree with lstat only.
func treeFingerprint(ctx context.Context, root int) (string, error) {
	f := newFingerprint()
	err := walk(ctx, root, func(e entry) error {
		f.add(e)
		return nil
	})
	return f.sum(), err
}

// tagIfUnchanged puts latest's exact manifest under the new tag when its tree
// fingerprint equals ours: no file is read and no blob is uploaded. The
// lstat-only walk runs only when there is a latest to compare with: a first
// backup's archive pass computes the fingerprint anyway.
func (b *backupRun) tagIfUnchanged(ctx context.Context) (Result, bool, error) {
	latest, err := b.repo.GetManifest(ctx, LatestTag)
	if registry.ReasonOf(err) == registry.ReasonNotFound {
		return Result{}, false, nil
	}
	if err != nil {
		return Result{}, false, err
	}
	m, err := parseManifest(latest.Bytes)
	// A layered latest is not this format's: its fragments lack the tar end blocks.
	if err != nil || m.ArtifactType != ArtifactType || m.Annotations[AnnotationTreeFingerprint] == "" ||
		m.Annotations[AnnotationFormat] != "" {
		return Result{}, false, nil //nolint:nilerr // an unreadable latest just means a full backup
	}
	layer, err := backupLayer(m)
	if err != nil {
		return Result{}, false, nil //nolint:nilerr // same as above
	}
	fp, err := treeFingerprint(ctx, b.src)
	if err != nil || fp != m.Annotations[AnnotationTreeFingerprint] {
		return Result{}, false, err
	}
	if _, err := b.putUniqueTag(ctx, latest.MediaType, latest.Bytes); err != nil {
		return Result{}, false, err
	}
	files, _ := strconv.ParseInt(m.Annotations[AnnotationFiles], 10, 64)
	bytes, _ := strconv.ParseInt(m.Annotations[AnnotationBytes], 10, 64)
	since := m.Annotations[AnnotationCreated]
	if since == "" {
		since = "the backup " + latest.Digest.String()
	}
	return Result{Phase: PhaseSucceeded, Reason: ReasonUnchanged, Unchanged: true,
		Message:   fmt.Sprintf("tree unchanged since %s: tagged the same artifact, read no file", since),
		Reference: b.repo.Reference(b.opts.Tag), Digest: latest.Digest.String(), SizeBytes: layer.Size,
		Bytes: bytes, Files: files}, true, nil
}

// uploadLayer streams walk -> tar -> gzip -> registry in one pass.
func (b *backupRun) uploadLayer(ctx context.Context) (registry.Descriptor, string, error) {
	var fp string
	layer, err := b.streamBlob(ctx, func(w io.Writer) error {
		var err error
		fp, err = writeArchive(ctx, w, b.src, b.opts.Source, b.opts.Open, b.count)
		return err
	})
	return layer, fp, err
}

// streamBlob uploads what write produces as one blob, in one pass: write runs in
// a goroutine into a pipe whose reader is the upload body. The producer's error
// wins over the upload's, which is then only its consequence.
func (b *backupRun) streamBlob(ctx context.Context, write func(io.Writer) error) (registry.Descriptor, error) {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := write(pw)
		_ = pw.CloseWithError(err)
		done <- err
	}()
	layer, upErr := b.repo.PushBlobStream(ctx, MediaTypeLayerGzip, pr)
	_ = pr.CloseWithError(errUploadAborted)
	werr := <-done
	switch {
	case werr != nil && !errors.Is(werr, errUploadAborted) && !errors.Is(werr, io.ErrClosedPipe):
		return layer, werr
	case upErr != nil:
		return layer, upErr
	case werr != nil:
		return layer, werr
	}
	return layer, nil
}

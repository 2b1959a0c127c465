package mover

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/pgzip"

	"github.com/dwbackup/devworkspace-backup-operator/internal/registry"
)

// RestoreOptions are the flags of `mover restore`.
type RestoreOptions struct {
	Target    string
	Reference string
	Overwrite bool
	Registry  registry.Options
	// Progress receives a line every ProgressInterval; nil writes nothing.
	Progress         io.Writer
	ProgressInterval time.Duration
}

// Restore runs `mover restore` and returns its result.
func Restore(ctx context.Context, o RestoreOptions) Result {
	start := time.Now()
	res, err := restore(ctx, o)
	if err != nil {
		res = failed(err)
		res.Reference = o.Reference
	}
	res.DurationSeconds = time.Since(start).Seconds()
	return res
}

func restore(ctx context.Context, o RestoreOptions) (Result, error) {
	if o.Target == "" || o.Reference == "" {
		return Result{}, failf(ReasonInvalidArguments, "--target and --reference are required")
	}
	// Opening the target writes nothing: a symlink along it fails before any request.
	target, err := openTarget(o.Target)
	if err != nil {
		return Result{}, err
	}
	defer target.close()
	client, err := registry.New(o.Registry)
	if err != nil {
		return Result{}, err
	}
	repo, ref, err := client.OpenReference(ctx, o.Reference, registry.Pull)
	if err != nil {
		return Result{}, err
	}
	m, err := repo.GetManifest(ctx, ref.Identifier())
	if err != nil {
		return Result{}, err
	}
	layer, err := manifestLayer(m)
	if err != nil {
		return Result{}, err
	}
	// The blob is open (200, the manifest's size) before --overwrite removes
	// anything: a registry that lost it leaves the workspace as it was.
	blob, err := repo.FetchBlob(ctx, layer)
	if err != nil {
		return Result{}, err
	}
	defer func() { _ = blob.Close() }()
	if err := target.prepare(o.Overwrite); err != nil {
		return Result{}, err
	}
	count := &counters{}
	stop := startProgress(o.Progress, o.ProgressInterval, "restore", count)
	defer stop()
	if err := restoreLayer(ctx, blob, layer, target.fd, count); err != nil {
		return Result{}, err
	}
	files, n := count.files.Load(), count.bytes.Load()
	return Result{Phase: PhaseSucceeded, Reason: ReasonCompleted,
		Message:   fmt.Sprintf("restored %d files (%d bytes, %d skipped) from %s", files, n, count.skipped.Load(), repo.Reference(m.Digest.String())),
		Reference: o.Reference, Digest: m.Digest.String(), SizeBytes: layer.Size, Bytes: n, Files: files}, nil
}

func manifestLayer(m registry.Manifest) (registry.Descriptor, error) {
	parsed, err := parseManifest(m.Bytes)
	if err != nil {
		return registry.Descriptor{}, err
	}
	l, err := backupLayer(parsed)
	if err != nil {
		return registry.Descriptor{}, err
	}
	h, err := v1.NewHash(l.Digest)
	if err != nil {
		return registry.Descriptor{}, failf(ReasonInvalidArtifact, "layer digest: %w", err)
	}
	return registry.Descriptor{MediaType: l.MediaType, Digest: h, Size: l.Size}, nil
}

// restoreLayer streams the opened blob into the target and verifies its digest
// at the end: there is no temp file, so a mismatch is found after the files are
// written, and reported as DigestMismatch (docs/mover-contract.md).
func restoreLayer(ctx context.Context, blob io.Reader, layer registry.Descriptor, dirfd int, count *counters) error {
	vr := newBlobReader(io.LimitReader(blob, layer.Size+1))
	defer vr.close()
	extractErr := extractStream(ctx, vr, dirfd, count)
	if ctx.Err() != nil {
		return extractErr
	}
	// Read what the tar reader left (padding, a corrupt tail) to hash the whole blob.
	if _, err := io.Copy(io.Discard, vr); err != nil && extractErr == nil {
		return fmt.Errorf("read layer: %w", err)
	}
	if got := vr.sum(); got != layer.Digest.String() || vr.n != layer.Size {
		msg := fmt.Sprintf("layer %s: received %d bytes with digest %s, expected %d bytes", layer.Digest, vr.n, got, layer.Size)
		if extractErr != nil {
			msg += "; " + extractErr.Error()
		}
		return failf(ReasonDigestMismatch, "%s; files already written to the target may be corrupt", msg)
	}
	return extractErr
}

// extractStream detects gzip from its magic bytes: DWO's artifacts are gzip
// even though oras labels them application/vnd.oci.image.layer.v1.tar.
func extractStream(ctx context.Context, r io.Reader, dirfd int, count *counters) error {
	br := bufio.NewReaderSize(r, 64<<10)
	magic, _ := br.Peek(2)
	var src io.Reader = br
	if bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		gz, err := pgzip.NewReaderN(br, gzipBlockSize, gzipBlocks)
		if err != nil {
			return failf(ReasonInvalidArchive, "gzip: %w", err)
		}
		defer func() { _ = gz.Close() }()
		src = gz
	}
	return newExtractor(dirfd, count).extract(ctx, tar.NewReader(src))
}

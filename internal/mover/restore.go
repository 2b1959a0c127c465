package mover

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/klauspost/pgzip"
	"golang.org/x/sync/errgroup"

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
	layers, err := manifestLayers(m)
	if err != nil {
		return Result{}, err
	}
	// The first blob is open (200, the manifest's size) and every other one
	// known to the registry before --overwrite removes anything: a registry
	// that lost one leaves the workspace as it was.
	first, err := repo.FetchBlob(ctx, layers[0])
	if err != nil {
		return Result{}, err
	}
	chain := newLayerChain(ctx, repo, layers, first)
	defer chain.close()
	if err := checkBlobs(ctx, repo, layers[1:]); err != nil {
		return Result{}, err
	}
	if err := target.prepare(o.Overwrite); err != nil {
		return Result{}, err
	}
	count := &counters{}
	stop := startProgress(o.Progress, o.ProgressInterval, "restore", count)
	defer stop()
	if err := restoreLayers(ctx, chain, target.fd, count); err != nil {
		return Result{}, err
	}
	files, n := count.files.Load(), count.bytes.Load()
	var size int64
	for _, l := range layers {
		size += l.Size
	}
	return Result{Phase: PhaseSucceeded, Reason: ReasonCompleted,
		Message:   fmt.Sprintf("restored %d files (%d bytes, %d skipped) from %s", files, n, count.skipped.Load(), repo.Reference(m.Digest.String())),
		Reference: o.Reference, Digest: m.Digest.String(), SizeBytes: size, Bytes: n, Files: files}, nil
}

// manifestLayers are the layers that hold the archive, in order (archiveLayers).
func manifestLayers(m registry.Manifest) ([]registry.Descriptor, error) {
	parsed, err := parseManifest(m.Bytes)
	if err != nil {
		return nil, err
	}
	ls, err := archiveLayers(parsed)
	if err != nil {
		return nil, err
	}
	return descriptors(ls)
}

// checkBlobs asks the registry for every blob, a few at a time.
func checkBlobs(ctx context.Context, repo *registry.Repo, layers []registry.Descriptor) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(layerWindow)
	for _, l := range layers {
		g.Go(func() error {
			ok, err := repo.BlobExists(gctx, l.Digest)
			if err == nil && !ok {
				err = failf(ReasonArtifactNotFound, "layer %s is missing from %s", l.Digest, repo.Name())
			}
			return err
		})
	}
	return g.Wait()
}

// restoreLayers streams the layers into the target and verifies each digest as
// its blob ends: there is no temp file, so a mismatch is found after the files
// of that layer are written, and reported as DigestMismatch (docs/mover-contract.md).
func restoreLayers(ctx context.Context, chain *layerChain, dirfd int, count *counters) error {
	extractErr := extractStream(ctx, chain, dirfd, count)
	if ctx.Err() != nil {
		return extractErr
	}
	// Read what the tar reader left (padding, a corrupt tail) to verify every blob.
	if _, err := io.Copy(io.Discard, chain); err != nil && extractErr == nil {
		extractErr = err
	}
	if reasonOf(chain.err) == ReasonDigestMismatch {
		msg := chain.err.Error()
		if extractErr != nil && !errors.Is(extractErr, chain.err) {
			msg += "; " + extractErr.Error()
		}
		return failf(ReasonDigestMismatch, "%s; files already written to the target may be corrupt", msg)
	}
	if chain.err != nil {
		return chain.err
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

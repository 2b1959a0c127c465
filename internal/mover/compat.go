package mover

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"maps"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/dwbackup/devworkspace-backup-operator/internal/registry"
)

// A DWO-compatible latest (--dwo-compatible-latest) is a layered backup written
// again in the single-layer format, for DevWorkspace Operator's restore and Che's
// Dashboard, which read latest's devworkspace-backup.tar.gz: its one layer is the
// layered manifest's blobs concatenated, read back from the registry (gzip
// members concatenate into one gzip stream and the fragments, which have no tar
// end blocks, into one tar stream), then tarEndMember. Nothing is compressed twice.

// tarEndMember is a gzip member holding the tar end-of-archive marker: two zero blocks.
var tarEndMember = func() []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	_, _ = zw.Write(make([]byte, 2*tarBlock))
	_ = zw.Close()
	return buf.Bytes()
}()

// compatLatest uploads the single-layer form of the layered manifest digest and
// returns its manifest, or nil when latest already is that form (an unchanged
// backup), and the digest of the DWO-compatible latest it replaces, if any.
func (b *backupRun) compatLatest(ctx context.Context, digest v1.Hash, layered ociManifest) ([]byte, string, error) {
	var replaced string
	if cur, err := b.repo.GetManifest(ctx, LatestTag); err == nil {
		m, err := parseManifest(cur.Bytes)
		switch {
		case err != nil:
		case m.Annotations[AnnotationLayeredManifest] == digest.String():
			return nil, "", nil
		case m.Annotations[AnnotationLayeredManifest] != "":
			replaced = cur.Digest.String()
		}
	}
	layers, err := descriptors(layered.Layers)
	if err != nil {
		return nil, "", err
	}
	chain := newLayerChain(ctx, b.repo, layers, nil)
	defer chain.close()
	layer, err := b.repo.PushBlobStream(ctx, MediaTypeLayerGzip, io.MultiReader(chain, bytes.NewReader(tarEndMember)))
	if err != nil {
		if chain.err != nil {
			return nil, "", chain.err
		}
		return nil, "", err
	}
	ann := maps.Clone(layered.Annotations)
	delete(ann, AnnotationFormat)
	delete(ann, AnnotationGroupBytes)
	ann[AnnotationLayeredManifest] = digest.String()
	m := layered
	m.Layers = []ociDescriptor{{MediaType: MediaTypeLayerGzip, Digest: layer.Digest.String(), Size: layer.Size,
		Annotations: map[string]string{AnnotationTitle: LayerTitle}}}
	m.Annotations = ann
	data, err := json.Marshal(m)
	return data, replaced, err
}

// deleteReplaced deletes the DWO-compatible latest manifest latest no longer
// names. No tag or backup refers to it, and until it is gone the registry's
// garbage collection keeps its full-size blob (distribution collects untagged
// manifests only with --delete-untagged). Best effort: a registry that refuses
// deletes, or credentials without the delete scope, leave it for that option.
func (b *backupRun) deleteReplaced(ctx context.Context, digest string) {
	if digest == "" || b.openDelete == nil {
		return
	}
	if repo, err := b.openDelete(ctx); err == nil {
		_ = repo.DeleteManifest(ctx, digest)
	}
}

// descriptors turns manifest layers into registry descriptors.
func descriptors(ls []ociDescriptor) ([]registry.Descriptor, error) {
	out := make([]registry.Descriptor, 0, len(ls))
	for _, l := range ls {
		h, err := v1.NewHash(l.Digest)
		if err != nil {
			return nil, failf(ReasonInvalidArtifact, "layer digest: %w", err)
		}
		out = append(out, registry.Descriptor{MediaType: l.MediaType, Digest: h, Size: l.Size})
	}
	return out, nil
}

func sha256Digest(data []byte) v1.Hash {
	sum := sha256.Sum256(data)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}

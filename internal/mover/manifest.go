package mover

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/dwbackup/devworkspace-backup-operator/internal/registry"
)

// The artifact format shared with DevWorkspace Operator (docs/mover-contract.md, "Artifact").
const (
	ArtifactType        = "application/vnd.devworkspace.backup.artifact.v1+json"
	MediaTypeEmpty      = "application/vnd.oci.empty.v1+json"
	MediaTypeLayerGzip  = "application/vnd.oci.image.layer.v1.tar+gzip"
	LayerTitle          = "devworkspace-backup.tar.gz"
	AnnotationTitle     = "org.opencontainers.image.title"
	AnnotationCreatedOC = "org.opencontainers.image.created"
	// DWO's own annotations.
	AnnotationWorkspaceName      = "devworkspace.name"
	AnnotationWorkspaceNamespace = "devworkspace.namespace"
	// Ours.
	AnnotationPrefix          = "backup.dwbackup.io/"
	AnnotationWorkspaceID     = AnnotationPrefix + "workspace-id"
	AnnotationCreated         = AnnotationPrefix + "created"
	AnnotationFiles           = AnnotationPrefix + "files"
	AnnotationBytes           = AnnotationPrefix + "bytes"
	AnnotationTreeFingerprint = AnnotationPrefix + "tree-fingerprint"
	// The layered format (layered.go): the manifest's format and group size, each
	// layer's lstat fingerprint, and on a DWO-compatible latest the digest of the
	// layered manifest it was built from.
	AnnotationFormat           = AnnotationPrefix + "format"
	AnnotationGroupBytes       = AnnotationPrefix + "group-bytes"
	AnnotationLayerFingerprint = AnnotationPrefix + "fingerprint"
	AnnotationLayeredManifest  = AnnotationPrefix + "layered-manifest"
	// FormatDWO and FormatLayered are the values of --format.
	FormatDWO     = "dwo"
	FormatLayered = "layered"
	// LatestTag is moved to the newest successful backup.
	LatestTag = "latest"
	// TagTimeLayout is the UTC time a backup tag may hold as one of its "-"-separated segments.
	TagTimeLayout = "20060102T150405Z"
)

// emptyConfig is the OCI empty descriptor's content, `{}`.
var emptyConfig = []byte("{}")

type ociDescriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Data        []byte            `json:"data,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type ociManifest struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	ArtifactType  string            `json:"artifactType,omitempty"`
	Config        ociDescriptor     `json:"config"`
	Layers        []ociDescriptor   `json:"layers"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

// artifactMeta is what the manifest says about a backup besides its layer.
type artifactMeta struct {
	workspace, namespace, workspaceID string
	created                           time.Time
	files, bytes                      int64
	fingerprint                       string
	format                            string // FormatLayered, or empty for the single-layer format
	groupBytes                        int64
	layeredManifest                   string // a DWO-compatible latest: the layered manifest's digest
}

// buildManifest writes the manifest by hand: go-containerregistry's mutate cannot
// set artifactType or layer annotations. encoding/json sorts map keys, so the
// same inputs give the same bytes.
func buildManifest(layer, config registry.Descriptor, meta artifactMeta) ([]byte, error) {
	return buildManifestLayers([]ociDescriptor{{MediaType: MediaTypeLayerGzip, Digest: layer.Digest.String(),
		Size: layer.Size, Annotations: map[string]string{AnnotationTitle: LayerTitle}}}, config, meta)
}

// buildManifestLayers writes a manifest of any layers (the layered format).
func buildManifestLayers(layers []ociDescriptor, config registry.Descriptor, meta artifactMeta) ([]byte, error) {
	ann := map[string]string{
		AnnotationWorkspaceName:      meta.workspace,
		AnnotationWorkspaceNamespace: meta.namespace,
		AnnotationFiles:              strconv.FormatInt(meta.files, 10),
		AnnotationBytes:              strconv.FormatInt(meta.bytes, 10),
		AnnotationTreeFingerprint:    meta.fingerprint,
	}
	if meta.workspaceID != "" {
		ann[AnnotationWorkspaceID] = meta.workspaceID
	}
	if meta.format != "" {
		ann[AnnotationFormat] = meta.format
		ann[AnnotationGroupBytes] = strconv.FormatInt(meta.groupBytes, 10)
	}
	if meta.layeredManifest != "" {
		ann[AnnotationLayeredManifest] = meta.layeredManifest
	}
	// No known time leaves the annotations out: the clock would make every
	// retry of the same backup a different manifest under the same tag.
	if !meta.created.IsZero() {
		created := meta.created.UTC().Format(time.RFC3339)
		ann[AnnotationCreatedOC], ann[AnnotationCreated] = created, created
	}
	m := ociManifest{
		SchemaVersion: 2,
		MediaType:     registry.MediaTypeOCIManifest,
		ArtifactType:  ArtifactType,
		Config: ociDescriptor{MediaType: MediaTypeEmpty, Digest: config.Digest.String(),
			Size: config.Size, Data: emptyConfig},
		Layers:      layers,
		Annotations: ann,
	}
	return json.Marshal(m)
}

func parseManifest(data []byte) (ociManifest, error) {
	var m ociManifest
	if err := json.Unmarshal(data, &m); err != nil {
		return m, failf(ReasonInvalidArtifact, "manifest is not JSON: %w", err)
	}
	return m, nil
}

// archiveLayers are the layers that hold the tar, in order: the one titled
// devworkspace-backup.tar.gz, else every layer of a layered manifest (tar
// fragments to concatenate), else the only layer.
func archiveLayers(m ociManifest) ([]ociDescriptor, error) {
	if m.Annotations[AnnotationFormat] == FormatLayered && len(m.Layers) > 0 {
		for _, l := range m.Layers {
			if l.MediaType != MediaTypeLayerGzip {
				return nil, failf(ReasonInvalidArtifact, "layered artifact has a layer of type %q", l.MediaType)
			}
		}
		return m.Layers, nil
	}
	l, err := backupLayer(m)
	return []ociDescriptor{l}, err
}

// backupLayer finds the layer that holds the tar: the one titled
// devworkspace-backup.tar.gz, else the only layer.
func backupLayer(m ociManifest) (ociDescriptor, error) {
	for _, l := range m.Layers {
		if l.Annotations[AnnotationTitle] == LayerTitle {
			return l, nil
		}
	}
	if len(m.Layers) == 1 {
		return m.Layers[0], nil
	}
	return ociDescriptor{}, failf(ReasonInvalidArtifact,
		"artifact has %d layers and none titled %s", len(m.Layers), LayerTitle)
}

// createdTime is the backup time a tag holds: the first of its "-"-separated
// segments that is a TagTimeLayout time (nightly-20261126T020000Z,
// 20261126T020000Z-a1b2c3), else the zero time.
func createdTime(tag string) time.Time {
	for seg := range strings.SplitSeq(tag, "-") {
		if t, err := time.Parse(TagTimeLayout, seg); err == nil {
			return t
		}
	}
	return time.Time{}
}

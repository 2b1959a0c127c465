package controller

import (
	"context"
	"fmt"
	"strings"

	"sigs.k8s.io/controller-runtime/pkg/client"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
	"github.com/dwbackup/devworkspace-backup-operator/internal/registry"
)

// artifactRegistry is the part of the registry client artifact deletion needs.
type artifactRegistry interface {
	Resolve(ctx context.Context, ref string) (registry.Descriptor, error)
	DeleteTag(ctx context.Context, ref string) error
	DeleteManifest(ctx context.Context, ref string) error
}

// resolveArtifact asks the registry, with the credentials a mover in namespace would use, what
// reference points at. A reference the registry does not have is the terminal ArtifactNotFound.
func resolveArtifact(ctx context.Context, reader client.Reader, operatorNamespace string,
	policy *backupv1alpha1.BackupPolicy, namespace, reference string) (registry.Descriptor, error) {
	reg, err := newRegistryClient(ctx, reader, operatorNamespace, policy, namespace)
	if err != nil {
		return registry.Descriptor{}, err
	}
	desc, err := reg.Resolve(ctx, reference)
	if registry.ReasonOf(err) == registry.ReasonNotFound {
		return desc, terminalf(backupv1alpha1.ReasonArtifactNotFound, "the registry has no %s", reference)
	}
	return desc, err
}

// splitReference splits repo:tag (the port of a host is not a tag).
func splitReference(ref string) (repository, tag string) {
	slash := strings.LastIndex(ref, "/")
	if colon := strings.LastIndex(ref, ":"); colon > slash {
		return ref[:colon], ref[colon+1:]
	}
	return ref, ""
}

// deleteArtifact removes a pruned backup's registry content without ever taking a kept backup's
// with it. Where the registry deletes tags, only the backup's unique tag goes. Registries such
// as distribution 2.x delete manifests by digest only, which removes every tag of the manifest
// (the unchanged shortcut makes shared manifests common): then the manifest is deleted only when
// no remaining backup references its digest and `latest` does not point at it.
func deleteArtifact(ctx context.Context, reg artifactRegistry, reference, digest string, referenced func(digest string) bool) error {
	err := reg.DeleteTag(ctx, reference)
	switch registry.ReasonOf(err) {
	case "":
		return nil
	case registry.ReasonNotFound:
		return nil // already gone
	case registry.ReasonUnsupported:
	default:
		return fmt.Errorf("delete tag %s: %w", reference, err)
	}
	repository, _ := splitReference(reference)
	if digest == "" {
		desc, err := reg.Resolve(ctx, reference)
		if registry.ReasonOf(err) == registry.ReasonNotFound {
			return nil
		}
		if err != nil {
			return fmt.Errorf("resolve %s: %w", reference, err)
		}
		digest = desc.Digest.String()
	}
	if referenced(digest) {
		return nil // another backup still restores from this manifest
	}
	latest, err := reg.Resolve(ctx, repository+":latest")
	switch {
	case err == nil && latest.Digest.String() == digest:
		return nil // latest points at it: DWO's restore and the dashboard use latest
	case err != nil && registry.ReasonOf(err) != registry.ReasonNotFound:
		return fmt.Errorf("resolve %s:latest: %w", repository, err)
	}
	if err := reg.DeleteManifest(ctx, repository+"@"+digest); err != nil && registry.ReasonOf(err) != registry.ReasonNotFound {
		return fmt.Errorf("delete manifest %s@%s: %w", repository, digest, err)
	}
	return nil
}

package controller

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
	"github.com/dwbackup/devworkspace-backup-operator/internal/mover"
	"github.com/dwbackup/devworkspace-backup-operator/internal/registry"
)

// The history import (spec.importHistory, docs/import.md) turns the artifacts a policy wrote
// back into WorkspaceBackups. This file holds its pure steps: which repositories and tags are the
// policy's, and what a manifest must say to be imported. historyimport_step.go runs them.

// maxMissingNamespaces bounds status.historyImport.missingNamespaces.
const maxMissingNamespaces = 50

// splitRepository splits a policy's spec.registry.repository into its registry host and the
// catalog prefix its workspace repositories start with ("" for a repository without a path).
func splitRepository(repository string) (host, prefix string) {
	host, path, _ := strings.Cut(repository, "/")
	if path == "" {
		return host, ""
	}
	return host, path + "/"
}

// workspaceOfRepository reads <prefix><namespace>/<workspace> from a catalog name: exactly two
// segments below the prefix, a namespace name and a DevWorkspace name. Anything else (deeper
// repositories hold another policy's artifacts under a longer repository) is not this policy's.
func workspaceOfRepository(prefix, catalogName string) (namespace, workspace string, ok bool) {
	rest, found := strings.CutPrefix(catalogName, prefix)
	if !found {
		return "", "", false
	}
	namespace, workspace, found = strings.Cut(rest, "/")
	if !found || len(validation.IsDNS1123Label(namespace)) > 0 || len(validation.IsDNS1123Subdomain(workspace)) > 0 {
		return "", "", false
	}
	return namespace, workspace, true
}

// ownTag reads a unique tag of this policy (docs/mover-contract.md, "Tag grammar"):
// <policy>-<UTC time> for a scheduled backup, <policy>-<UTC time>-<6 hex> for a manual or
// pre-restore one. Tags of other policies, latest and anything else are not the policy's.
func ownTag(policy, tag string) (at time.Time, uid6 string, ok bool) {
	rest, found := strings.CutPrefix(tag, policy+"-")
	if !found {
		return time.Time{}, "", false
	}
	stamp, uid6, _ := strings.Cut(rest, "-")
	at, err := time.Parse(tagTimeLayout, stamp)
	if err != nil || (uid6 != "" && !uid6Pattern.MatchString(uid6)) {
		return time.Time{}, "", false
	}
	return at, uid6, true
}

var uid6Pattern = regexp.MustCompile(`^[0-9a-f]{6}$`)

// importedName is the deterministic name of an imported backup: the name its scheduled backup
// had (<workspace>-<policy>-<slot>), so an import beside the live history finds it there, and for
// a manual or pre-restore tag <workspace>-<policy>-<yyyymmddhhmmss>-<6 hex>.
func importedName(workspace, policy string, at time.Time, uid6 string) string {
	if uid6 == "" {
		return childName(workspace, policy, slotSuffix(at))
	}
	return childName(workspace, policy, at.UTC().Format("20060102150405"), uid6)
}

// importManifest is what the import reads of a manifest.
type importManifest struct {
	ArtifactType string            `json:"artifactType"`
	Annotations  map[string]string `json:"annotations"`
	Layers       []struct {
		Size int64 `json:"size"`
	} `json:"layers"`
}

// importedArtifact is what an imported WorkspaceBackup records.
type importedArtifact struct {
	Reference, Digest, WorkspaceID string
	// Taken is the backup's time, from its tag; ContentCreated the manifest's, which an
	// unchanged backup shares with the earlier one whose content it re-tagged.
	Taken, ContentCreated   time.Time
	SizeBytes, Files, Bytes int64
}

// readImportedArtifact checks that a manifest is one this policy wrote for namespace/workspace
// at the tag's time, and reads what the backup records. The namespace and workspace come from
// the repository path, which credentials scoped to a namespace's repository cannot leave; the
// annotations must agree with it, so an artifact pushed elsewhere with another namespace's name
// in its annotations is refused.
func readImportedArtifact(m registry.Manifest, reference, namespace, workspace string, tagTime time.Time) (importedArtifact, error) {
	var man importManifest
	if err := json.Unmarshal(m.Bytes, &man); err != nil {
		return importedArtifact{}, fmt.Errorf("manifest is not JSON: %w", err)
	}
	ann := man.Annotations
	switch {
	case man.ArtifactType != mover.ArtifactType:
		return importedArtifact{}, fmt.Errorf("artifactType %q, want %q", man.ArtifactType, mover.ArtifactType)
	case ann[mover.AnnotationWorkspaceNamespace] != namespace:
		return importedArtifact{}, fmt.Errorf("annotation %s is %q, but the repository is namespace %q's",
			mover.AnnotationWorkspaceNamespace, ann[mover.AnnotationWorkspaceNamespace], namespace)
	case ann[mover.AnnotationWorkspaceName] != workspace:
		return importedArtifact{}, fmt.Errorf("annotation %s is %q, but the repository is workspace %q's",
			mover.AnnotationWorkspaceName, ann[mover.AnnotationWorkspaceName], workspace)
	}
	// The content's time: an unchanged backup re-tags an earlier manifest, so it may be older
	// than the tag, never newer.
	created, err := time.Parse(time.RFC3339, ann[mover.AnnotationCreated])
	if err != nil || created.After(tagTime) {
		return importedArtifact{}, fmt.Errorf("annotation %s is %q, which is no time at or before the tag's %s",
			mover.AnnotationCreated, ann[mover.AnnotationCreated], tagTime.Format(time.RFC3339))
	}
	id := ann[mover.AnnotationWorkspaceID]
	if len(validation.IsValidLabelValue(id)) > 0 {
		return importedArtifact{}, fmt.Errorf("annotation %s %q is not a label value", mover.AnnotationWorkspaceID, id)
	}
	a := importedArtifact{Reference: reference, Digest: m.Digest.String(), WorkspaceID: id, Taken: tagTime.UTC(),
		ContentCreated: created.UTC()}
	a.Files, _ = strconv.ParseInt(ann[mover.AnnotationFiles], 10, 64)
	a.Bytes, _ = strconv.ParseInt(ann[mover.AnnotationBytes], 10, 64)
	// The artifact's size is its layers' (one in the dwo format, one per group of files in the
	// layered one), as the mover reports it.
	for _, l := range man.Layers {
		a.SizeBytes += l.Size
	}
	return a, nil
}

// importedBackup is the WorkspaceBackup of an imported artifact (newWorkspaceBackup: labelled
// and with its finalizer like every other, so retention and the finalizer treat it alike).
func importedBackup(namespace, workspace, policy string, at time.Time, uid6, workspaceID string) *backupv1alpha1.WorkspaceBackup {
	return newWorkspaceBackup(namespace, importedName(workspace, policy, at, uid6), workspace, workspaceID, policy,
		backupv1alpha1.TriggerImported)
}

// importedStatus is the status of an imported backup: Succeeded, with the artifact's reference
// and the registry's digest, and the backup's own time (its tag's) as its start and completion,
// so retention orders it among the others as it was.
func importedStatus(a importedArtifact, generation int64) backupv1alpha1.WorkspaceBackupStatus {
	at := metav1.NewTime(a.Taken)
	st := backupv1alpha1.WorkspaceBackupStatus{
		Phase:       backupv1alpha1.BackupSucceeded,
		WorkspaceID: a.WorkspaceID,
		Artifact: &backupv1alpha1.ArtifactStatus{Reference: a.Reference, Digest: a.Digest,
			SizeBytes: a.SizeBytes, Files: a.Files},
		StartTime:      &at,
		CompletionTime: at.DeepCopy(),
	}
	record(&st.Message, &st.Conditions, generation, outcome{ready: true, reason: backupv1alpha1.ReasonImported,
		message: fmt.Sprintf("imported from the registry: %s (%d files, %d bytes, content of %s)",
			a.Reference, a.Files, a.Bytes, a.ContentCreated.Format(time.RFC3339))})
	return st
}

// isImportPending reports an imported backup whose status the import has not written yet: it
// runs no Job (the import completes it), and one a person labelled Imported stays Pending.
func isImportPending(b *backupv1alpha1.WorkspaceBackup) bool {
	return b.Labels[backupv1alpha1.LabelTrigger] == string(backupv1alpha1.TriggerImported) && !b.Status.Phase.Finished()
}

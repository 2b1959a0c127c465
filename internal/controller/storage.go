package controller

import (
	"path"
)

// DWO's PVC names (docs/architecture.md, "DevWorkspaces").
const (
	defaultCommonPVCName  = "claim-devworkspace"
	legacyCommonPVCName   = "claim-che-workspace"
	perWorkspacePVCPrefix = "storage-"
	projectsDir           = "projects"
)

// storageLocation is where a workspace's /projects lives: a claim and a path inside it.
type storageLocation struct {
	ClaimName string
	Path      string
}

// resolveStorage finds a workspace's files as DWO lays them out. commonPVCName is DWO's configured
// common PVC name ("" for the default); legacyExists says whether the namespace has the legacy
// claim-che-workspace PVC, which DWO uses instead of the default when present. ok is false for
// storage types without a PVC (ephemeral, async).
func resolveStorage(w workspace, commonPVCName string, legacyExists bool) (loc storageLocation, ok bool) {
	switch w.StorageType {
	case storagePerWorkspace:
		return storageLocation{ClaimName: perWorkspacePVCPrefix + w.ID, Path: projectsDir}, true
	case storageEphemeral, storageAsync:
		return storageLocation{}, false
	default: // common, per-user and unknown values, as DWO treats them
		claim := commonPVCName
		if claim == "" {
			claim = defaultCommonPVCName
			if legacyExists {
				claim = legacyCommonPVCName
			}
		}
		return storageLocation{ClaimName: claim, Path: path.Join(w.ID, projectsDir)}, true
	}
}

// sharesClaim reports whether two workspaces keep their files on the same PVC (common storage).
func sharesClaim(a, b workspace) bool {
	return a.Namespace == b.Namespace && a.HasStorage() && b.HasStorage() &&
		a.StorageType != storagePerWorkspace && b.StorageType != storagePerWorkspace
}

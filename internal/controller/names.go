package controller

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
)

// maxNameLength is the limit of label values and Job names.
const maxNameLength = 63

// childName joins parts with "-" into a name of at most 63 characters. A longer name keeps its
// head and ends with a hash of the whole, so distinct inputs stay distinct and the result is
// deterministic (the same slot always yields the same name).
func childName(parts ...string) string {
	name := strings.Join(parts, "-")
	if len(name) <= maxNameLength {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	suffix := hex.EncodeToString(sum[:])[:10]
	head := strings.TrimRight(name[:maxNameLength-len(suffix)-1], "-.")
	return head + "-" + suffix
}

// slotSuffix is a schedule slot as UTC yyyymmddhhmm, used in WorkspaceBackup names.
func slotSuffix(slot time.Time) string {
	return slot.UTC().Format("200601021504")
}

// artifactTag is the unique registry tag of a backup: the slot (or creation time) in UTC, with a
// suffix for manual and pre-restore backups so two in the same second never share a tag.
func artifactTag(at time.Time, uniqueSuffix string) string {
	tag := at.UTC().Format("20060102T150405Z")
	if uniqueSuffix != "" {
		tag += "-" + uniqueSuffix
	}
	return tag
}

// artifactRepository is where a workspace's artifacts go: <repository>/<namespace>/<workspace>.
func artifactRepository(repository, namespace, workspaceName string) string {
	return repository + "/" + namespace + "/" + workspaceName
}

// backupTag is a backup's unique tag: its schedule slot, or for manual and pre-restore backups
// the creation time plus 6 hex characters of the UID.
func backupTag(b *backupv1alpha1.WorkspaceBackup) string {
	if slot, err := time.Parse(time.RFC3339, b.Annotations[backupv1alpha1.AnnotationSlot]); err == nil {
		return artifactTag(slot, "")
	}
	uid := strings.ReplaceAll(string(b.UID), "-", "")
	if len(uid) > 6 {
		uid = uid[:6]
	}
	return artifactTag(b.CreationTimestamp.Time, uid)
}

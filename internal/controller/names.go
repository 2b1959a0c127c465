package controller

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"

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

// maxTagLength is the OCI distribution limit of a tag ([a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}).
const maxTagLength = 128

// tagTimeLayout is the UTC time segment of every unique tag.
const tagTimeLayout = "20060102T150405Z"

// artifactTag is the unique registry tag of a backup (docs/mover-contract.md, "Tag grammar"):
// <policy>-<UTC time>[-<6 hex of the UID>]. The policy makes tags of two policies that share a
// repository and a slot distinct; the UID suffix makes two manual backups of one second distinct.
// A tag over 128 characters keeps its head and ends with a hash of the whole, as childName does.
func artifactTag(policy string, at time.Time, uniqueSuffix string) string {
	tag := policy + "-" + at.UTC().Format(tagTimeLayout)
	if uniqueSuffix != "" {
		tag += "-" + uniqueSuffix
	}
	if len(tag) <= maxTagLength {
		return tag
	}
	sum := sha256.Sum256([]byte(tag))
	suffix := hex.EncodeToString(sum[:])[:10]
	return strings.TrimRight(tag[:maxTagLength-len(suffix)-1], "-.") + "-" + suffix
}

// artifactRepository is where a workspace's artifacts go: <repository>/<namespace>/<workspace>.
func artifactRepository(repository, namespace, workspaceName string) string {
	return repository + "/" + namespace + "/" + workspaceName
}

// taggedTime is the time a backup stands for: its schedule slot, else its creation time. It is
// the time in its tag and the mover's --created, so a retried Job writes the same manifest.
func taggedTime(b *backupv1alpha1.WorkspaceBackup) time.Time {
	if slot, err := time.Parse(time.RFC3339, b.Annotations[backupv1alpha1.AnnotationSlot]); err == nil &&
		b.Labels[backupv1alpha1.LabelTrigger] == string(backupv1alpha1.TriggerScheduled) {
		return slot.UTC()
	}
	return b.CreationTimestamp.UTC()
}

// backupTag is a backup's unique tag: its policy and schedule slot, or for manual and pre-restore
// backups its policy, creation time and 6 hex characters of its UID.
func backupTag(b *backupv1alpha1.WorkspaceBackup) string {
	if b.Labels[backupv1alpha1.LabelTrigger] == string(backupv1alpha1.TriggerScheduled) {
		if _, err := time.Parse(time.RFC3339, b.Annotations[backupv1alpha1.AnnotationSlot]); err == nil {
			return artifactTag(b.Spec.PolicyName, taggedTime(b), "")
		}
	}
	return artifactTag(b.Spec.PolicyName, taggedTime(b), shortUID(b.UID))
}

// shortUID is the first 6 hex characters of a UID: names and tags derived from it differ between
// two objects of the same name.
func shortUID(uid types.UID) string {
	s := strings.ReplaceAll(string(uid), "-", "")
	return s[:min(6, len(s))]
}

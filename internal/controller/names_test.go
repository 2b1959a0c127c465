package controller

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
)

func TestChildName(t *testing.T) {
	long := strings.Repeat("w", 60)
	// The hashed names are literal: a name must not change between runs or releases, or a
	// restarted manager would not find the children it made (calling childName twice in one
	// process could not show that). They are sha256 of the joined name, first 10 hex.
	tests := []struct {
		name  string
		parts []string
		want  string
	}{
		{"short stays as is", []string{"my-ws", "nightly", "202611260200"}, "my-ws-nightly-202611260200"},
		{"exactly 63 stays", []string{strings.Repeat("a", 63)}, strings.Repeat("a", 63)},
		{"long is cut with a hash", []string{long, "nightly", "202611260200"}, strings.Repeat("w", 52) + "-af35fba7db"},
		{"another slot, another hash", []string{long, "nightly", "202611260300"}, strings.Repeat("w", 52) + "-e948df4374"},
		{"a cut after a dash drops it", []string{strings.Repeat("a", 51), "nightly", "202611260200"}, strings.Repeat("a", 51) + "-a5e0e945fd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := childName(tt.parts...)
			if len(got) > maxNameLength {
				t.Fatalf("childName = %q (%d chars), want <= 63", got, len(got))
			}
			if got != tt.want {
				t.Fatalf("childName = %q, want %q", got, tt.want)
			}
		})
	}
	a := childName(long, "nightly", "202611260200")
	b := childName(long, "nightly", "202611260300")
	if a == b {
		t.Fatalf("two slots of a long workspace name collide: %q", a)
	}
	if strings.HasSuffix(strings.TrimSuffix(a, a[len(a)-10:]), "--") {
		t.Fatalf("name %q has a doubled dash", a)
	}
}

func TestArtifactTag(t *testing.T) {
	prague, _ := time.LoadLocation("Europe/Prague")
	at := time.Date(2026, 11, 26, 3, 0, 0, 0, prague)
	long := strings.Repeat("p", 63)
	tagGrammar := regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
	cases := []struct {
		name, policy, suffix, want string
	}{
		{"scheduled: policy and UTC slot", "nightly", "", "nightly-20261126T020000Z"},
		{"manual: policy, UTC time and UID", "nightly", "a1b2c3", "nightly-20261126T020000Z-a1b2c3"},
		{"two policies at one slot differ", "weekly", "", "weekly-20261126T020000Z"},
		{"longest policy name fits unhashed", long, "a1b2c3", long + "-20261126T020000Z-a1b2c3"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := artifactTag(tc.policy, at, tc.suffix)
			if got != tc.want {
				t.Fatalf("artifactTag = %q, want %q", got, tc.want)
			}
			if !tagGrammar.MatchString(got) {
				t.Fatalf("%q is not a valid OCI tag", got)
			}
		})
	}
	// A tag over 128 characters is cut and hashed; distinct inputs stay distinct.
	a, b := artifactTag(strings.Repeat("x", 130), at, ""), artifactTag(strings.Repeat("x", 131), at, "")
	if len(a) != maxTagLength || !tagGrammar.MatchString(a) || a == b {
		t.Fatalf("long tags %q and %q: want distinct valid tags of %d characters", a, b, maxTagLength)
	}
	if got := slotSuffix(at); got != "202611260200" {
		t.Fatalf("slotSuffix = %q", got)
	}
}

func TestBackupTag(t *testing.T) {
	slot := time.Date(2026, 11, 26, 2, 0, 0, 0, time.UTC)
	created := metav1.NewTime(time.Date(2026, 11, 27, 9, 30, 5, 0, time.UTC))
	scheduled := func(policy string) *backupv1alpha1.WorkspaceBackup {
		b := scheduledBackup(policy, workspace{Name: "ws", Namespace: "ns", ID: "workspace1"}, slot)
		b.UID, b.CreationTimestamp = "0a1b2c3d-0000-0000-0000-000000000000", created
		return b
	}
	manual := &backupv1alpha1.WorkspaceBackup{ObjectMeta: metav1.ObjectMeta{Name: "m", UID: "ffeedd11-0000-0000-0000-000000000000",
		CreationTimestamp: created, Labels: map[string]string{backupv1alpha1.LabelTrigger: string(backupv1alpha1.TriggerManual)},
		Annotations: map[string]string{backupv1alpha1.AnnotationSlot: slot.Format(time.RFC3339)}},
		Spec: backupv1alpha1.WorkspaceBackupSpec{PolicyName: "nightly"}}
	cases := []struct {
		name        string
		b           *backupv1alpha1.WorkspaceBackup
		tag         string
		taggedAtUTC time.Time
	}{
		{"nightly at a slot", scheduled("nightly"), "nightly-20261126T020000Z", slot},
		{"weekly at the same slot gets its own tag", scheduled("weekly"), "weekly-20261126T020000Z", slot},
		{"a manual backup carrying a slot annotation still gets its UID", manual, "nightly-20261127T093005Z-ffeedd", created.Time},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := backupTag(tc.b); got != tc.tag {
				t.Fatalf("backupTag = %q, want %q", got, tc.tag)
			}
			if got := taggedTime(tc.b); !got.Equal(tc.taggedAtUTC) {
				t.Fatalf("taggedTime = %v, want %v", got, tc.taggedAtUTC)
			}
		})
	}
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

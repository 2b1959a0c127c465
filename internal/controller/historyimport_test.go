package controller

import (
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	backupv1alpha1 "github.com/dwbackup/devworkspace-backup-operator/api/v1alpha1"
	"github.com/dwbackup/devworkspace-backup-operator/internal/mover"
	"github.com/dwbackup/devworkspace-backup-operator/internal/registry"
)

func TestSplitRepository(t *testing.T) {
	for repo, want := range map[string][2]string{
		"registry.example.com/backups":      {"registry.example.com", "backups/"},
		"127.0.0.1:5000/team/backups":       {"127.0.0.1:5000", "team/backups/"},
		"127.0.0.1:5000":                    {"127.0.0.1:5000", ""},
		"registry.example.com:443/a/b/c/de": {"registry.example.com:443", "a/b/c/de/"},
	} {
		if host, prefix := splitRepository(repo); host != want[0] || prefix != want[1] {
			t.Errorf("splitRepository(%q) = %q, %q; want %q, %q", repo, host, prefix, want[0], want[1])
		}
	}
}

func TestWorkspaceOfRepository(t *testing.T) {
	for _, tc := range []struct {
		prefix, name string
		ns, ws       string
	}{
		{"backups/", "backups/team-a/my-ws", "team-a", "my-ws"},
		{"", "team-a/my-ws", "team-a", "my-ws"},
		{"backups/", "backups/team-a/my-ws/deeper", "", ""}, // another policy's, under a longer repository
		{"backups/", "backups/team-a", "", ""},
		{"backups/", "other/team-a/my-ws", "", ""},
		{"backups/", "backupsx/team-a/my-ws", "", ""},
		{"backups/", "backups/Team_A/my-ws", "", ""}, // not a namespace name
		{"backups/", "backups/" + strings.Repeat("n", 64) + "/ws", "", ""},
		{"backups/", "backups/team-a/ws.v2", "team-a", "ws.v2"},
	} {
		ns, ws, ok := workspaceOfRepository(tc.prefix, tc.name)
		if ns != tc.ns || ws != tc.ws || ok != (tc.ns != "") {
			t.Errorf("workspaceOfRepository(%q, %q) = %q, %q, %v; want %q, %q", tc.prefix, tc.name, ns, ws, ok, tc.ns, tc.ws)
		}
	}
}

func TestOwnTag(t *testing.T) {
	slot := time.Date(2026, 11, 26, 2, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		tag  string
		at   time.Time
		uid6 string
		ok   bool
	}{
		{tag: "nightly-20261126T020000Z", at: slot, ok: true},
		{tag: "nightly-20261126T020000Z-a1b2c3", at: slot, uid6: "a1b2c3", ok: true},
		{tag: "nightly-2-20261126T020000Z"},       // policy nightly-2's
		{tag: "weekly-20261126T020000Z"},          // another policy's
		{tag: "latest"},                           // moves: never imported
		{tag: "nightly-20261126T020000Z-A1B2C3"},  // not a UID prefix
		{tag: "nightly-20261126T020000Z-a1b2c3d"}, // too long
		{tag: "nightly-20261126T0200Z"},
		{tag: "nightly-20261126T020000Z-a1b2c3-x"},
	} {
		at, uid6, ok := ownTag("nightly", tc.tag)
		if ok != tc.ok || !at.Equal(tc.at) || uid6 != tc.uid6 {
			t.Errorf("ownTag(nightly, %q) = %v, %q, %v; want %v, %q, %v", tc.tag, at, uid6, ok, tc.at, tc.uid6, tc.ok)
		}
	}
	// Every tag the controller writes reads back as the policy's.
	for _, tag := range []string{artifactTag("nightly", slot, ""), artifactTag("nightly", slot, "ffeedd")} {
		if _, _, ok := ownTag("nightly", tag); !ok {
			t.Errorf("the controller's own tag %q is not read back", tag)
		}
	}
}

func TestImportedName(t *testing.T) {
	slot := time.Date(2026, 11, 26, 2, 0, 0, 0, time.UTC)
	// A scheduled tag's backup has the name the scheduled backup had: an import beside the live
	// history finds it there and creates nothing.
	if got, want := importedName("my-ws", "nightly", slot, ""), childName("my-ws", "nightly", slotSuffix(slot)); got != want {
		t.Errorf("scheduled: %q, want the scheduled backup's name %q", got, want)
	}
	if got := importedName("my-ws", "nightly", slot.Add(5*time.Second), "a1b2c3"); got != "my-ws-nightly-20261126020005-a1b2c3" {
		t.Errorf("manual: %q", got)
	}
}

func manifestWith(artifactType string, ann map[string]string) registry.Manifest {
	layers := `[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:00","size":1234,` +
		`"annotations":{"org.opencontainers.image.title":"devworkspace-backup.tar.gz"}}]`
	annJSON := "{"
	first := true
	for k, v := range ann {
		if !first {
			annJSON += ","
		}
		first = false
		annJSON += fmt.Sprintf("%q:%q", k, v)
	}
	annJSON += "}"
	body := fmt.Sprintf(`{"schemaVersion":2,"artifactType":%q,"layers":%s,"annotations":%s}`, artifactType, layers, annJSON)
	return registry.Manifest{Bytes: []byte(body)}
}

func TestReadImportedArtifact(t *testing.T) {
	slot := time.Date(2026, 11, 26, 2, 0, 0, 0, time.UTC)
	good := func() map[string]string {
		return map[string]string{
			mover.AnnotationWorkspaceNamespace: "team-a", mover.AnnotationWorkspaceName: "my-ws",
			mover.AnnotationWorkspaceID: "workspace0123456789abcdef", mover.AnnotationCreated: slot.Format(time.RFC3339),
			mover.AnnotationFiles: "7", mover.AnnotationBytes: "4096",
		}
	}
	with := func(k, v string) map[string]string { a := good(); a[k] = v; return a }
	for _, tc := range []struct {
		name     string
		typ      string
		ann      map[string]string
		tagTime  time.Time
		rejected string
	}{
		{name: "ours", typ: mover.ArtifactType, ann: good(), tagTime: slot},
		{name: "unchanged: content older than the tag", typ: mover.ArtifactType, ann: good(), tagTime: slot.Add(24 * time.Hour)},
		{name: "another artifact type", typ: "application/vnd.oci.image.config.v1+json", ann: good(), tagTime: slot, rejected: "artifactType"},
		{name: "annotations name another namespace", typ: mover.ArtifactType, ann: with(mover.AnnotationWorkspaceNamespace, "victim"), tagTime: slot, rejected: "namespace"},
		{name: "annotations name another workspace", typ: mover.ArtifactType, ann: with(mover.AnnotationWorkspaceName, "other"), tagTime: slot, rejected: "workspace"},
		{name: "content newer than the tag", typ: mover.ArtifactType, ann: good(), tagTime: slot.Add(-time.Second), rejected: "created"},
		{name: "no created time", typ: mover.ArtifactType, ann: with(mover.AnnotationCreated, ""), tagTime: slot, rejected: "created"},
		{name: "workspace id not a label value", typ: mover.ArtifactType, ann: with(mover.AnnotationWorkspaceID, "a b"), tagTime: slot, rejected: "workspace-id"},
	} {
		a, err := readImportedArtifact(manifestWith(tc.typ, tc.ann), "r/team-a/my-ws:t", "team-a", "my-ws", tc.tagTime)
		switch {
		case tc.rejected != "" && (err == nil || !strings.Contains(err.Error(), tc.rejected)):
			t.Errorf("%s: err %v, want one naming %s", tc.name, err, tc.rejected)
		case tc.rejected == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.rejected == "" && (a.Files != 7 || a.Bytes != 4096 || a.SizeBytes != 1234 || !a.Taken.Equal(tc.tagTime) ||
			a.WorkspaceID != "workspace0123456789abcdef" || a.Reference != "r/team-a/my-ws:t"):
			t.Errorf("%s: read %+v", tc.name, a)
		}
	}
}

func TestImportDue(t *testing.T) {
	type policyAndLast struct {
		p *backupv1alpha1.BackupPolicy
		h *backupv1alpha1.HistoryImportStatus
	}
	policy := func(enabled bool, h *backupv1alpha1.HistoryImportStatus, request string) policyAndLast {
		p := &backupv1alpha1.BackupPolicy{ObjectMeta: metav1.ObjectMeta{Generation: 2}}
		p.Spec.ImportHistory = enabled
		if request != "" {
			p.Annotations = map[string]string{backupv1alpha1.AnnotationImportHistory: request}
		}
		return policyAndLast{p, h}
	}
	done := &backupv1alpha1.HistoryImportStatus{ObservedGeneration: 2, Request: "1", MissingNamespaces: []string{"later"}}
	nsExists := map[string]namespaceInfo{"later": {}}
	nsTerminating := map[string]namespaceInfo{"later": {Terminating: true}}
	for _, tc := range []struct {
		name string
		p    policyAndLast
		ns   map[string]namespaceInfo
		want bool
	}{
		{"not asked", policy(false, nil, ""), nil, false},
		{"never ran", policy(true, nil, ""), nil, true},
		{"ran for this generation and request", policy(true, done, "1"), nil, false},
		{"new request", policy(true, done, "2"), nil, true},
		{"new generation", policy(true, &backupv1alpha1.HistoryImportStatus{ObservedGeneration: 1, Request: "1"}, "1"), nil, true},
		{"a missing namespace appeared", policy(true, done, "1"), nsExists, true},
		{"a missing namespace is terminating", policy(true, done, "1"), nsTerminating, false},
	} {
		if got := importDue(tc.p.p, tc.p.h, tc.ns); got != tc.want {
			t.Errorf("%s: importDue = %v, want %v", tc.name, got, tc.want)
		}
	}
}

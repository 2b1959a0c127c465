package mover

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dwbackup/devworkspace-backup-operator/internal/registry/registrytest"
)

// twoTrees writes makeTree's tree twice, the second with one more file.
func twoTrees(t *testing.T) (a, b string) {
	t.Helper()
	a, b = t.TempDir(), t.TempDir()
	makeTree(t, a)
	makeTree(t, b)
	if err := os.WriteFile(filepath.Join(b, "only-in-b"), []byte("b"), 0o644); err != nil {
		t.Fatal(err)
	}
	return a, b
}

// A unique tag names one backup for ever: a backup whose manifest differs from
// the one already under its tag fails with TagExists and moves neither the tag
// nor latest, on the full path and on the unchanged shortcut alike; the same
// manifest again (a retried Job) succeeds.
func TestUniqueTagNeverMoved(t *testing.T) {
	const t1, t2 = "nightly-20261126T020000Z", "manual-a1b2c3"
	reg := registrytest.NewInProcess(t, nil)
	treeA, treeB := twoTrees(t)
	type step struct{ tree, tag string }
	tests := []struct {
		name       string
		steps      []step // all but the last succeed
		reason     string // of the last step
		shortcut   bool   // the last step took the unchanged shortcut: no blob uploaded
		wantLatest string // the tree latest names at the end
	}{
		{"other tree, full backup", []step{{"A", t1}, {"B", t1}}, ReasonTagExists, false, "A"},
		{"other tree, unchanged shortcut", []step{{"A", t1}, {"B", t2}, {"B", t1}}, ReasonTagExists, true, "B"},
		{"same tree again, unchanged shortcut", []step{{"A", t1}, {"A", t1}}, ReasonUnchanged, true, "A"},
		{"same tree again, full backup", []step{{"A", t1}, {"B", t2}, {"A", t1}}, ReasonCompleted, false, "A"},
		{"same tree again without a time in the tag", []step{{"A", t2}, {"B", t1}, {"A", t2}}, ReasonCompleted, false, "A"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			repo := reg.Host + "/tags/ns/ws" + string(rune('a'+i))
			digests := map[string]string{} // tree -> digest
			tagged := map[string]string{}  // tag -> tree
			opts := func(s step) BackupOptions {
				o := backupOpts(reg.Host, map[string]string{"A": treeA, "B": treeB}[s.tree], s.tag)
				o.Repository = repo
				return o
			}
			for _, s := range tt.steps[:len(tt.steps)-1] {
				res := mustSucceed(t, Backup(context.Background(), opts(s)))
				digests[s.tree] = res.Digest
				if _, ok := tagged[s.tag]; !ok {
					tagged[s.tag] = s.tree
				}
			}
			last := tt.steps[len(tt.steps)-1]
			tagPuts := reg.Count(http.MethodPut, repo[len(reg.Host):]+"/manifests/"+last.tag)
			patches := reg.Count(http.MethodPatch, repo[len(reg.Host):]+"/blobs/uploads/")
			res := Backup(context.Background(), opts(last))
			if res.Reason != tt.reason {
				t.Fatalf("last backup %s/%s (%s), want %s", res.Phase, res.Reason, res.Message, tt.reason)
			}
			uploaded := reg.Count(http.MethodPatch, repo[len(reg.Host):]+"/blobs/uploads/") != patches
			if uploaded == tt.shortcut || (res.Phase == PhaseSucceeded && res.Unchanged != tt.shortcut) {
				t.Fatalf("last backup uploaded a blob: %v, unchanged: %v; want the shortcut: %v", uploaded, res.Unchanged, tt.shortcut)
			}
			first := tagged[last.tag]
			if tt.reason == ReasonTagExists {
				if res.Phase != PhaseFailed || res.ExitCode() != ExitPermanent {
					t.Errorf("TagExists is %s with exit %d, want Failed with %d", res.Phase, res.ExitCode(), ExitPermanent)
				}
				if n := reg.Count(http.MethodPut, repo[len(reg.Host):]+"/manifests/"+last.tag) - tagPuts; n != 0 {
					t.Errorf("the refused backup put %d manifests under %s", n, last.tag)
				}
			} else if res.Digest != digests[first] {
				t.Errorf("re-run gave %s, want the digest already tagged %s", res.Digest, digests[first])
			}
			if got := resolve(t, repo+":"+last.tag).String(); got != digests[first] {
				t.Errorf("%s names %s, want tree %s's %s", last.tag, got, first, digests[first])
			}
			if got := resolve(t, repo+":"+LatestTag).String(); got != digests[tt.wantLatest] {
				t.Errorf("latest names %s, want tree %s's %s", got, tt.wantLatest, digests[tt.wantLatest])
			}
		})
	}
}

// A Job stopped after it put the unique tag but before latest is retried: the
// retry builds the same manifest (even for a tag without a time), finds it
// under the tag, and moves latest.
func TestRetryAfterPartialPush(t *testing.T) {
	const tag = "manual-a1b2c3"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reg := registrytest.NewInProcess(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.ServeHTTP(w, r)
			if r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/manifests/"+tag) {
				cancel() // the Job is stopped right after the unique tag was written
			}
		})
	})
	src := t.TempDir()
	makeTree(t, src)
	wantReason(t, Backup(ctx, backupOpts(reg.Host, src, tag)), ReasonCanceled)
	first := resolve(t, reg.Host+"/backups/ns/ws:"+tag)

	retry := mustSucceed(t, Backup(context.Background(), backupOpts(reg.Host, src, tag)))
	if retry.Digest != first.String() {
		t.Fatalf("retry gave %s, the stopped run tagged %s", retry.Digest, first)
	}
	if got := resolve(t, reg.Host+"/backups/ns/ws:"+LatestTag); got != first {
		t.Fatalf("latest names %s after the retry, want %s", got, first)
	}
}

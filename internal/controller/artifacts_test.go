package controller

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/dwbackup/devworkspace-backup-operator/internal/mover"
	"github.com/dwbackup/devworkspace-backup-operator/internal/registry"
	"github.com/dwbackup/devworkspace-backup-operator/internal/registry/registrytest"
)

// pushBackup backs up dir with the real mover and returns the reference and digest.
func pushBackup(t *testing.T, repository, tag, dir string) (string, string) {
	t.Helper()
	res := mover.Backup(context.Background(), mover.BackupOptions{
		Source: dir, Repository: repository, Tag: tag, Workspace: "ws", Namespace: "ns",
		Registry: registry.Options{Insecure: true},
	})
	if res.Phase != mover.PhaseSucceeded {
		t.Fatalf("backup %s: %s: %s", tag, res.Reason, res.Message)
	}
	return res.Reference, res.Digest
}

func TestSplitReference(t *testing.T) {
	for ref, want := range map[string][2]string{
		"127.0.0.1:5000/b/ns/ws:20261126T020000Z": {"127.0.0.1:5000/b/ns/ws", "20261126T020000Z"},
		"reg.example.com/b/ns/ws":                 {"reg.example.com/b/ns/ws", ""},
		"127.0.0.1:5000/ws":                       {"127.0.0.1:5000/ws", ""},
	} {
		repo, tag := splitReference(ref)
		if repo != want[0] || tag != want[1] {
			t.Errorf("splitReference(%q) = %q, %q", ref, repo, tag)
		}
	}
}

// TestDeleteArtifact runs against a registry with tag deletion (go-containerregistry's) and a
// real distribution 2.x (Debian's docker-registry), which deletes manifests by digest only.
func TestDeleteArtifact(t *testing.T) {
	registries := map[string]func(t *testing.T) string{
		"in-process": func(t *testing.T) string { return registrytest.NewInProcess(t, nil).Host },
		"docker-registry": func(t *testing.T) string {
			return registrytest.StartDistribution(t).Host
		},
	}
	for regName, start := range registries {
		t.Run(regName, func(t *testing.T) {
			host := start(t)
			ctx := context.Background()
			reg, err := registry.New(registry.Options{Insecure: true, Retry: registry.Backoff{Attempts: 1}})
			if err != nil {
				t.Fatal(err)
			}
			repo := host + "/backups/ns/ws"
			exists := func(ref string) bool {
				_, err := reg.Resolve(ctx, ref)
				if err != nil && registry.ReasonOf(err) != registry.ReasonNotFound {
					t.Fatalf("resolve %s: %v", ref, err)
				}
				return err == nil
			}

			// Shared manifest: the unchanged shortcut tags the same manifest twice.
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "file.txt"), "one")
			refA, digestA := pushBackup(t, repo, "20261120T020000Z", dir)
			refB, digestB := pushBackup(t, repo, "20261121T020000Z", dir)
			if digestA != digestB {
				t.Fatalf("the unchanged backup should share the manifest: %s vs %s", digestA, digestB)
			}
			stillReferenced := func(d string) bool { return d == digestB }
			if err := deleteArtifact(ctx, reg, refA, digestA, stillReferenced); err != nil {
				t.Fatal(err)
			}
			if !exists(refB) {
				t.Fatalf("pruning %s took %s, which shares its manifest, with it", refA, refB)
			}

			// An old, unreferenced manifest that latest no longer points at goes.
			writeFile(t, filepath.Join(dir, "other.txt"), "two")
			refC, digestC := pushBackup(t, repo, "20261122T020000Z", dir)
			if err := deleteArtifact(ctx, reg, refB, digestB, func(string) bool { return false }); err != nil {
				t.Fatal(err)
			}
			if exists(refB) {
				t.Fatalf("%s still resolves after it was pruned", refB)
			}
			if !exists(refC) || !exists(repo+":latest") {
				t.Fatalf("the newest backup or latest went with an older one")
			}

			// latest points at the newest: its manifest stays even with no backup referencing it.
			if err := deleteArtifact(ctx, reg, refC, digestC, func(string) bool { return false }); err != nil {
				t.Fatal(err)
			}
			if !exists(repo + ":latest") {
				t.Fatalf("latest was deleted")
			}

			// Already gone: nothing to do.
			if err := deleteArtifact(ctx, reg, refB, digestB, func(string) bool { return false }); err != nil {
				t.Fatalf("deleting a deleted artifact: %v", err)
			}
		})
	}
}

func TestDeleteArtifactUnreachable(t *testing.T) {
	reg, err := registry.New(registry.Options{Insecure: true, Retry: registry.Backoff{Attempts: 1}})
	if err != nil {
		t.Fatal(err)
	}
	err = deleteArtifact(context.Background(), reg, "127.0.0.1:1/backups/ns/ws:20261120T020000Z", "", func(string) bool { return false })
	if registry.ReasonOf(err) != registry.ReasonRegistryUnreachable {
		t.Fatalf("want RegistryUnreachable, got %v", err)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
